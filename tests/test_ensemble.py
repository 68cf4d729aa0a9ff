"""Surrogate ensembles (bootstrap replicas and seeds, one directory of member directories) and the per-bin spread of
their templates (TemplateSpread: covariance, sampling-noise subtraction, eigen-components)."""

from __future__ import annotations

import json

import awkward as ak
import hist
import numpy as np
import pytest

from mcsurrogate import Surrogate
from mcsurrogate.ensemble import SurrogateEnsemble
from mcsurrogate.errors import InputError, ModelDirectoryError, OutputExistsError
from mcsurrogate.stats import TemplateSpread, fill_template


def tiny(conditions: list[str] | None = None, seed: int = 0) -> Surrogate:
    return Surrogate(
        ["m"],
        conditions or [],
        flow={"model": "maf", "blocks": 1, "hidden": 8},
        training={"epochs": 1, "device": "cpu", "batch_size": 256, "seed": seed},
    )


@pytest.fixture(scope="module")
def events() -> ak.Array:
    rng = np.random.default_rng(0)
    return ak.zip({"m": rng.exponential(50.0, 1500), "c": rng.uniform(0.0, 1.0, 1500)})


@pytest.fixture(scope="module")
def ensemble(events: ak.Array) -> SurrogateEnsemble:
    return SurrogateEnsemble.fit(tiny(["c"]), events, k=3, mode="both", seed=7, progress=False)


# ----------------------------------------------------------------------------------------------- training
def test_members_are_bootstrap_replicas_with_their_own_seeds(ensemble: SurrogateEnsemble, events: ak.Array) -> None:
    assert len(ensemble) == 3 and ensemble.mode == "both" and ensemble.seed == 7
    boot = [r["bootstrap_seed"] for r in ensemble.replicas]
    assert len(set(boot)) == 3 and all(isinstance(b, int) for b in boot)
    assert [r["training_seed"] for r in ensemble.replicas] == [0, 1, 2]
    for member, b in zip(ensemble, boot, strict=True):
        assert member.metrics["weights"]["bootstrap_seed"] == b  # Surrogate.fit(bootstrap_seed=...) was used
    logp = [m.log_prob(events[:50]) for m in ensemble]
    assert not np.allclose(logp[0], logp[1]) and not np.allclose(logp[1], logp[2])


def test_bootstrap_mode_keeps_the_split_and_seed(events: ak.Array) -> None:
    ens = SurrogateEnsemble.fit(tiny(), events[:600], k=2, mode="bootstrap", seed=1, progress=False)
    assert [r["training_seed"] for r in ens.replicas] == [0, 0]
    assert ens.replicas[0]["bootstrap_seed"] != ens.replicas[1]["bootstrap_seed"]
    seeds = SurrogateEnsemble.fit(tiny(), events[:600], k=2, mode="seeds", progress=False)
    assert [r["bootstrap_seed"] for r in seeds.replicas] == [None, None]
    assert [r["training_seed"] for r in seeds.replicas] == [0, 1]


def test_fit_refuses_bad_arguments(events: ak.Array) -> None:
    with pytest.raises(InputError, match="k must be"):
        SurrogateEnsemble.fit(tiny(), events, k=1)
    with pytest.raises(InputError, match="mode"):
        SurrogateEnsemble.fit(tiny(), events, k=2, mode="jackknife")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="bootstrap_seed"):
        SurrogateEnsemble.fit(tiny(), events, k=2, bootstrap_seed=3)
    with pytest.raises(InputError, match="not trained"):
        SurrogateEnsemble([tiny(), tiny()])


# ----------------------------------------------------------------------------------------------- sampling
def test_sample_from_one_member_or_the_mixture(ensemble: SurrogateEnsemble, events: ak.Array) -> None:
    cond = events[:400]
    one = ensemble.sample(conditions=cond, member=1, seed=3)
    again = ensemble[1].sample(conditions=cond, seed=np.random.default_rng([3, 1]))
    np.testing.assert_array_equal(one.m, again.m)
    mix = ensemble.sample(conditions=cond, seed=3)
    assert len(mix) == 400
    np.testing.assert_array_equal(mix.c, cond.c)  # one event per condition row, in order
    # as documented: event i comes from member a_i ~ U{0..K-1} (seed (3, K)), member k samples its rows (seed (3, k))
    assign = np.random.default_rng([3, 3]).integers(3, size=400)
    assert len(set(assign)) == 3
    for k in range(3):
        rows = np.flatnonzero(assign == k)
        by_hand = ensemble[k].sample(conditions=cond[rows], seed=np.random.default_rng([3, k]))
        np.testing.assert_array_equal(np.asarray(mix.m)[rows], by_hand.m)
    np.testing.assert_array_equal(ensemble.sample(conditions=cond, seed=3).m, mix.m)  # seeded
    with pytest.raises(InputError, match="member must be"):
        ensemble.sample(conditions=cond, member=3)
    with pytest.raises(InputError, match="conditional"):
        ensemble.sample(10)


def test_unconditional_mixture_has_n_events(events: ak.Array) -> None:
    ens = SurrogateEnsemble.fit(tiny(), events[:500], k=2, mode="seeds", progress=False)
    assert len(ens.sample(123, seed=0)) == 123
    with pytest.raises(InputError, match="number of events"):
        ens.sample(seed=0)


# ----------------------------------------------------------------------------------------------- storage
def test_save_and_load_round_trip(ensemble: SurrogateEnsemble, events: ak.Array, tmp_path) -> None:
    path = ensemble.save(tmp_path / "ens")
    assert sorted(p.name for p in path.iterdir()) == ["ensemble.json", "member_000", "member_001", "member_002"]
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pt"))
    meta = json.loads((path / "ensemble.json").read_text())
    assert meta["format"] == "mcsurrogate.ensemble" and meta["schema_version"] == 1
    assert [m["bootstrap_seed"] for m in meta["members"]] == [r["bootstrap_seed"] for r in ensemble.replicas]
    loaded = SurrogateEnsemble.load(path, device="cpu")
    assert loaded.replicas == ensemble.replicas and loaded.mode == "both" and loaded.seed == 7
    a = ensemble.sample(conditions=events[:100], seed=5)
    b = loaded.sample(conditions=events[:100], seed=5)
    np.testing.assert_allclose(np.asarray(a.m), np.asarray(b.m), rtol=1e-6)
    with pytest.raises(OutputExistsError):
        ensemble.save(path)
    ensemble.save(path, overwrite=True)


def test_load_refuses_what_is_not_an_ensemble(ensemble: SurrogateEnsemble, tmp_path) -> None:
    path = ensemble.save(tmp_path / "ens")
    with pytest.raises(ModelDirectoryError, match="single model"):
        SurrogateEnsemble.load(path / "member_000")
    with pytest.raises(ModelDirectoryError, match="no such"):
        SurrogateEnsemble.load(tmp_path / "missing")
    meta = json.loads((path / "ensemble.json").read_text())
    (path / "ensemble.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(ModelDirectoryError, match=r"schema_version|upgrade|newer"):
        SurrogateEnsemble.load(path)
    (path / "ensemble.json").write_text(json.dumps({**meta, "members": [{"directory": "../elsewhere"}] * 2}))
    with pytest.raises(ModelDirectoryError, match="inside the ensemble"):
        SurrogateEnsemble.load(path)
    (path / "ensemble.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ModelDirectoryError, match="not written by mcsurrogate"):
        SurrogateEnsemble.load(path)


# ----------------------------------------------------------------------------------------------- templates
def test_member_templates_and_their_spread(ensemble: SurrogateEnsemble, events: ak.Array) -> None:
    hists = ensemble.templates("m", conditions=events, bins=8, range=(0.0, 200.0), seed=2)
    assert len(hists) == 3 and all(isinstance(h, hist.Hist) for h in hists)
    spread = ensemble.spread("m", conditions=events, bins=8, range=(0.0, 200.0), seed=2)
    assert spread.k == 3 and spread.members.shape == (3, 8)
    np.testing.assert_allclose(spread.nominal, spread.members.mean(axis=0))
    np.testing.assert_allclose(spread.members.sum(axis=1), spread.nominal.sum())  # shape only
    assert spread.nominal_hist().values() == pytest.approx(spread.nominal)
    doubled = ensemble.spread(lambda ev: 2 * ev.m, conditions=events, bins=8, range=(0.0, 400.0), seed=2)
    np.testing.assert_allclose(doubled.members, spread.members)  # a function of the records, same events
    with pytest.raises(InputError, match="not a column"):
        ensemble.templates("pt", conditions=events, bins=8, range=(0.0, 200.0))
    # a selection (a cut on the generated events) keeps only its events, with their weights
    w = np.linspace(0.5, 1.5, len(events))
    cut = ensemble.templates(
        "m", conditions=events, bins=8, range=(0.0, 200.0), weights=w, selection=lambda ev: ev.c < 0.5, seed=2
    )
    kept = ensemble.sample_members(conditions=events, seed=2)[1]
    mask = np.asarray(kept.c) < 0.5
    expected = np.histogram(np.asarray(kept.m)[mask], bins=8, range=(0.0, 200.0), weights=w[mask])[0]
    np.testing.assert_allclose(cut[1].values(), expected)
    with pytest.raises(InputError, match="one boolean per event"):
        ensemble.templates("m", conditions=events, bins=8, range=(0.0, 200.0), selection=lambda ev: ev.c)


# ----------------------------------------------------------------------------------------------- the spread
def _hist(values: np.ndarray, variances: np.ndarray | None = None) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(values.size, 0.0, 1.0), storage=hist.storage.Weight())
    h.view().value = values
    h.view().variance = np.zeros_like(values) if variances is None else variances
    return h


def test_one_correlated_shape_is_one_component() -> None:
    rng = np.random.default_rng(1)
    nominal = np.linspace(100.0, 20.0, 12)
    tilt = np.linspace(-1.0, 1.0, 12) * 0.05 * nominal  # a 5 % tilt, zero-sum
    members = [_hist(nominal + a * tilt) for a in rng.normal(size=400)]
    spread = TemplateSpread.from_templates(members, nominal=_hist(nominal), shape_only=False)
    shifts, explained, residual = spread.components(max_components=3)
    assert shifts.shape == (1, 12) and explained[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(shifts[0]), np.abs(tilt), rtol=0.1)  # √eigenvalue × eigenvector = the tilt
    assert np.all(residual < 1e-6 * nominal)
    corr = spread.correlation()
    assert corr[0, -1] == pytest.approx(-1.0, abs=1e-9)


def test_sampling_noise_is_subtracted_and_normalisation_removed() -> None:
    rng = np.random.default_rng(2)
    parent = np.linspace(2000.0, 500.0, 10)
    members = [_hist(c, c) for c in rng.poisson(parent, size=(200, 10)).astype(float)]
    spread = TemplateSpread.from_templates(members, shape_only=False)
    raw = spread.std(subtract_sampling=False)
    np.testing.assert_allclose(raw, np.sqrt(parent), rtol=0.15)  # Poisson noise of each member
    left = np.diag(spread.covariance()) / raw**2  # the model variance left after subtracting it: 0 ± √(2/199)
    assert np.all(np.abs(left) < 0.35) and abs(left.mean()) < 0.1
    scaled = [_hist(parent * f) for f in (0.5, 1.0, 2.0)]
    assert np.allclose(TemplateSpread.from_templates(scaled).std(), 0.0)  # shape only: no spread


def test_spread_refuses_bad_templates() -> None:
    with pytest.raises(InputError, match="at least 2"):
        TemplateSpread.from_templates([_hist(np.ones(3))])
    other = fill_template(np.array([0.5]), bins=4, range=(0.0, 1.0))
    with pytest.raises(InputError, match="binning"):
        TemplateSpread.from_templates([_hist(np.ones(3)), other])
    with pytest.raises(InputError, match="no positive yield in 1 bin"):
        TemplateSpread.from_templates([_hist(np.array([1.0, 0.0, 1.0])), _hist(np.array([1.0, 0.0, 2.0]))])
    with pytest.raises(InputError, match="max_components"):
        TemplateSpread.from_templates([_hist(np.ones(3)), _hist(np.ones(3) * 2)]).components(max_components=0)
    spread = TemplateSpread.from_templates([_hist(np.array([1.0, 2.0])), _hist(np.array([2.0, 1.0]))])
    assert TemplateSpread.from_dict(json.loads(json.dumps(spread.to_dict(), allow_nan=False))).members.tolist() == (
        spread.members.tolist()
    )


# ----------------------------------------------------------------------------------------------- the CLI
def test_cli_fit_scan_and_coverage_with_an_ensemble(ensemble: SurrogateEnsemble, events: ak.Array, tmp_path) -> None:
    import pyhf

    from mcsurrogate.cli import main
    from mcsurrogate.io import write_events
    from mcsurrogate.stats import Inference, model_and_data

    rng = np.random.default_rng(4)
    ens_dir = str(ensemble.save(tmp_path / "ens"))
    files = {}
    generated = ensemble.sample(conditions=events, seed=9)
    for name, arrays in {
        "sig": {"m": rng.normal(60.0, 8.0, 2000), "c": rng.uniform(0, 1, 2000)},
        "mc": {"m": np.asarray(events.m), "c": np.asarray(events.c)},
        "gen": {"m": np.asarray(generated.m), "c": np.asarray(generated.c)},
    }.items():
        files[name] = str(tmp_path / f"{name}.parquet")
        write_events(ak.Array(arrays), files[name])
    common = ["--var", "m", "--bins", "6", "--range", "0,150", "--empty-bins", "floor"]
    out = tmp_path / "fit"
    code = main(
        [
            *["fit", files["sig"], files["gen"], *common, "--out", str(out)],
            *["--surrogate-uncertainty", "histosys,spurious", "--ensemble", ens_dir],
            *["--ensemble-conditions", files["mc"], "--spurious-mc", files["mc"]],
        ]
    )
    assert code == 0
    result = json.loads((out / "fit.json").read_text())
    names = [n for m in result["surrogate_uncertainty"]["modifiers"] for n in m["modifiers"]]
    assert "surrogate_shape0" in names and "spurious_signal" in names
    assert result["surrogate_uncertainty"]["spurious_signal"]["signal_yield"] > 0
    spec = json.loads((out / "workspace.json").read_text())
    model, data = model_and_data(pyhf.Workspace(spec))
    assert "surrogate_shape0" in model.config.par_order and "spurious_signal" in model.config.par_order
    assert Inference(model, data).mu_hat().mu == pytest.approx(result["mu_hat"], abs=1e-6)

    out = tmp_path / "scan"
    code = main(
        [
            *["scan", files["sig"], files["mc"], files["gen"], *common, "--out", str(out), "--lumis", "1,10"],
            *["--ngen", "500,1500", "--systematics", "0.1", "--surrogate-uncertainty", "spurious"],
            *["--spurious-size", "0.2"],
        ]
    )
    assert code == 0
    rows = json.loads((out / "scan.json").read_text())["rows"]
    assert {r.get("surrogate_modifiers") for r in rows if r["template"] == "generated"} == {"spurious_signal"}

    out = tmp_path / "coverage"
    code = main(
        [
            *["coverage", files["sig"], files["mc"], files["gen"], *common, "--out", str(out), "--lumis", "1,5"],
            *["--toys", "6", "--n-generated", "1000", "--n-training", "800", "--limit-toys", "2"],
            *["--surrogate-uncertainty", "shapesys", "--ensemble", ens_dir, "--ensemble-conditions", files["mc"]],
        ]
    )
    assert code == 0
    report = json.loads((out / "coverage.json").read_text())
    assert {p["template"] for p in report["points"]} == {"generated", "generated+modifier", "perfect", "learner"}
    assert report["surrogate_uncertainty"]["modifiers"][0]["modifiers"] == ["surrogate_spread"]
    assert (out / "coverage.png").stat().st_size > 0 and "| 5 |" in (out / "coverage.md").read_text()


def test_cli_modifier_flags_are_checked_before_any_file_is_read(ensemble: SurrogateEnsemble, tmp_path, capsys) -> None:
    from mcsurrogate.cli import main

    common = [
        "missing_sig.parquet",
        "missing_bkg.parquet",
        "--var",
        "m",
        "--range",
        "0,150",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(["fit", *common, "--surrogate-uncertainty", "histosys"]) == 2
    assert "needs --ensemble DIR" in capsys.readouterr().err
    assert main(["fit", *common, "--surrogate-uncertainty", "spurious"]) == 2
    assert "--spurious-size MU" in capsys.readouterr().err
    assert main(["fit", *common, "--spurious-size", "0.1"]) == 2
    assert "act through --surrogate-uncertainty" in capsys.readouterr().err
    for bad, message in (
        (["--surrogate-uncertainty", "histosys,shapesys"], "choose one"),
        (["--surrogate-uncertainty", "normsys"], "expected one or more of histosys, shapesys, spurious"),
        (["--ensemble", str(tmp_path)], "not an ensemble directory"),
        (["--components", "0"], "expected an integer ≥ 1"),
        (["--spurious-size", "-1"], "expected a number ≥ 0"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["fit", *common, *bad])
        assert exc.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["coverage", "a", "b", "c", "--var", "m", "--range", "0,1", "--out", "x", "--toys", "0"])
    assert "expected an integer ≥ 1" in capsys.readouterr().err
