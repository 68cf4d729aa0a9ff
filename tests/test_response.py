"""Response surrogate on the packaged Pythia truth sample, smeared by the reference smearing (small, fast)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import awkward as ak
import numpy as np
import pytest

from mcsurrogate import Surrogate
from mcsurrogate.cli.response import RESPONSE_PRESETS
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import InputError
from mcsurrogate.flows.distilled import DistilledFlow
from mcsurrogate.response import SmearingConfig, apply_response, distill_response, response_table, smear_photons
from mcsurrogate.response.evaluation import evaluate_response
from mcsurrogate.response.resolution import binned_core_widths, core_width
from mcsurrogate.response.study import run_scenario
from mcsurrogate.response.surrogate import PRESETS, response_surrogate, wrap_phi

TINY = {"flow": {"blocks": 2, "hidden": 32}, "training": {"epochs": 4, "device": "cpu"}}


@pytest.fixture(scope="module")
def smeared() -> ak.Array:
    return smear_photons(load_default_truth()[:20000], SmearingConfig("baseline"), seed=0)


@pytest.fixture(scope="module")
def study(smeared: ak.Array):
    def resmear(truth: ak.Array, seed: int) -> ak.Array:
        return smear_photons(truth, SmearingConfig("baseline"), seed=seed)

    return run_scenario(smeared, preset="demo", n_boot=3, oversample=2, train_smearings=2, resmear=resmear, **TINY)


def test_response_table_and_phi_wrapping(smeared: ak.Array) -> None:
    t = response_table(smeared)
    assert "d_photon1_pt" in t.fields and "photon2_eta" in t.fields and "mu" in t.fields
    d = t.d_photon1_phi.to_numpy()
    assert np.all(np.abs(d) < 0.1)  # wrapped: no 2π jumps
    assert wrap_phi(np.array([np.pi + 0.1, -np.pi - 0.1, -np.pi]))[2] == pytest.approx(np.pi)
    edges = np.array([np.nextafter(np.pi, 4), -np.pi, np.nextafter(-np.pi, -4), 3 * np.pi, -3 * np.pi, 1e6, 0.5])
    wrapped = wrap_phi(np.concatenate([edges, np.random.default_rng(0).uniform(-60, 60, 100_000)]))
    assert ((wrapped > -np.pi) & (wrapped <= np.pi)).all() and wrapped[6] == 0.5
    np.testing.assert_allclose(np.cos(wrapped[:6]), np.cos(edges[:6]), atol=1e-9)


def test_study_trains_on_disjoint_events_and_reproduces_the_mass_peak(study) -> None:
    assert study.n_events == 20000 and study.n_test == 2000
    # two smearings of every test truth event on each side: the first reference smearing, then a fresh one
    assert len(study.reference) == len(study.generated) == 4000
    first, second = study.reference[:2000], study.reference[2000:]
    assert ak.all(first.truth_photons.pt == second.truth_photons.pt) and ak.all(first.photons.pt != second.photons.pt)
    assert ak.all(study.generated.truth_photons.pt[:2000] == first.truth_photons.pt)
    # 16 000 training and 2 000 validation truth events, each smeared twice, kept apart by truth event
    assert study.model.metrics["split"] == {"train": 32000, "validation": 4000, "test": 0}
    ev = study.evaluation.to_dict()
    # even a 4-epoch model gets the diphoton mass peak roughly right
    assert abs(ev["mass_mean_difference_gev"]) < 0.3
    assert 0.8 < ev["mass_sd_ratio"] < 1.25
    assert len(ev["widths"]) == 6 and set(ev["widths"]["d_photon1_pt"]) == {"pt", "eta", "mu"}
    m = (study.generated.photons[:, 0] + study.generated.photons[:, 1]).mass  # vector behaviours on the output
    assert abs(float(np.median(ak.to_numpy(m))) - 125.0) < 0.5


def test_apply_is_seeded_and_checks_its_input(study) -> None:
    truth = ak.zip({"photons": study.reference.truth_photons[:50], "mu": study.reference.mu[:50]}, depth_limit=1)
    a = apply_response(study.model, truth, seed=3)
    b = apply_response(study.model, truth, seed=3)
    assert ak.all(a.photons.pt == b.photons.pt)
    assert ak.all(a.truth_photons.pt == truth.photons.pt)
    # reco = truth + the model's sample at the truth conditions, object by object
    columns = {f"photon{i + 1}_{f}": truth.photons[f][:, i] for i in range(2) for f in ("pt", "eta", "phi")}
    gen = study.model.sample(conditions=ak.zip(columns | {"mu": truth.mu}, depth_limit=1), seed=3)
    for i in range(2):
        for f in ("pt", "eta"):
            np.testing.assert_allclose(
                ak.to_numpy(a.photons[f][:, i] - truth.photons[f][:, i]), gen[f"d_photon{i + 1}_{f}"], atol=1e-9
            )
    dphi = wrap_phi(ak.to_numpy(a.photons.phi[:, 1] - truth.photons.phi[:, 1]) - ak.to_numpy(gen.d_photon2_phi))
    np.testing.assert_allclose(dphi, 0, atol=1e-9)
    with pytest.raises(InputError, match="pile-up field 'mu'"):
        apply_response(study.model, ak.zip({"photons": truth.photons}, depth_limit=1))
    nan_mu = ak.with_field(truth, np.r_[np.nan, np.ones(49)], "mu")
    with pytest.raises(InputError, match=r"mu.*1 NaN"):
        apply_response(study.model, nan_mu)
    far = ak.with_field(truth, np.full(50, 80.0), "mu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_response(study.model, far)
    assert any("mu: 100.00% outside" in str(w.message) for w in caught)
    other = Surrogate(["x"], ["mu"])
    with pytest.raises(InputError, match="do not match the response layout"):
        apply_response(other, truth)


def test_distilled_response_sampler(study, smeared: ak.Array) -> None:
    truth = ak.zip({"photons": smeared.truth_photons[:3000], "mu": smeared.mu[:3000]}, depth_limit=1)
    fast = distill_response(study.model, truth, {"pairs": 40_000, "epochs": 4, "hidden": 64, "batch_size": 512})
    assert isinstance(fast.model, DistilledFlow) and not isinstance(study.model.model, DistilledFlow)
    a, b = apply_response(study.model, truth, seed=4), apply_response(fast, truth, seed=4)
    for f in ("pt", "eta"):  # same noise, event by event: the student tracks the flow well within the response width
        da = ak.to_numpy(a.photons[f][:, 0] - truth.photons[f][:, 0])
        db = ak.to_numpy(b.photons[f][:, 0] - truth.photons[f][:, 0])
        assert np.sqrt(np.mean((da - db) ** 2)) < 0.25 * np.std(da), f
    # and inside a study: the distilled sampler is what is evaluated, its report travels with the result
    small = run_scenario(
        smeared[:4000], preset="demo", n_boot=2, distill={"pairs": 5000, "epochs": 1, "hidden": 16}, **TINY
    )
    assert isinstance(small.model.model, DistilledFlow) and small.seconds["distill"] > 0
    assert small.to_dict()["distillation"]["config"]["hidden"] == 16


def test_paper_a_preset_drops_and_counts_responses_outside_the_tanh_bound(smeared: ak.Array) -> None:
    asym = smear_photons(load_default_truth()[:3000], SmearingConfig("asymmetric"), seed=1)
    model = response_surrogate("paper-a", flow={"blocks": 1, "hidden": 8}, training={"epochs": 1, "device": "cpu"})
    with pytest.warns(UserWarning, match="outside the domain"):
        model.fit(response_table(asym), progress=False)
    dropped = model.metrics["data"]["dropped_outside_preprocessing_domain"]
    assert 0 < dropped < 0.3 * len(asym)


def test_core_width_estimator() -> None:
    rng = np.random.default_rng(0)
    assert core_width(rng.normal(2.0, 3.0, 100_000))[1] == pytest.approx(3.0, rel=0.01)
    mix = np.where(rng.random(100_000) < 0.84, rng.normal(0, 1, 100_000), rng.normal(-3, 3, 100_000))
    assert core_width(mix)[1] == pytest.approx(1.0, abs=0.08)  # the core, not the tails (full SD ≈ 1.9)
    x = rng.uniform(0, 10, 50_000)
    w = binned_core_widths(x, rng.normal(0, 1 + x / 10), rng.normal(0, 1 + x / 10), np.array([0, 5, 10.0]), n_boot=5)
    assert w.target[1] > w.target[0] and np.all(np.abs(w.ratio - 1) < 0.05)


def test_width_uncertainty_resamples_whole_events_when_told() -> None:
    """Four objects per event with one shared response (ρ = 1): the values are as informative as one per event, so the
    grouped bootstrap's uncertainty matches the one of the single values and the per-object one understates it (×½)."""
    rng = np.random.default_rng(1)
    one = rng.normal(0, 1, 4000)
    shared, event = np.repeat(one, 4), np.repeat(np.arange(4000), 4)
    x, edges = np.zeros(len(shared)), np.array([-1.0, 1.0])
    single = binned_core_widths(np.zeros(4000), one, one, edges, n_boot=60, seed=2)
    objects = binned_core_widths(x, shared, shared, edges, n_boot=60, seed=2)
    events = binned_core_widths(x, shared, shared, edges, n_boot=60, seed=2, groups=event, generated_groups=event)
    assert events.target[0] == objects.target[0] == pytest.approx(single.target[0])
    assert 0.75 < events.target_err[0] / single.target_err[0] < 1.33
    assert 0.35 < objects.target_err[0] / single.target_err[0] < 0.67
    with pytest.raises(InputError, match="generated_groups must hold one label per response"):
        binned_core_widths(x, shared, shared, edges, generated_groups=event[:-1])


def test_evaluation_requires_the_same_events(smeared: ak.Array) -> None:
    with pytest.raises(ValueError, match="same truth events"):
        evaluate_response(smeared[:10], smeared[:25])
    with pytest.raises(ValueError, match="column 'photon1_pt' differs"):
        evaluate_response(smeared[:10], smeared[10:30])


def test_evaluation_with_several_smearings_per_truth_event(smeared: ak.Array) -> None:
    # the reference smearing against itself, three independent smearings per truth event: ratios at 1 within
    # errors, and the generated side three times better measured
    target = smeared[:6000]
    truth = ak.zip({"photons": target.truth_photons, "mu": target.mu}, depth_limit=1)
    generated = ak.concatenate([smear_photons(truth, SmearingConfig("baseline"), seed=s) for s in (11, 12, 13)])
    ev = evaluate_response(target, generated, n_boot=10)
    w = ev.widths["d_photon1_pt"]["pt"]
    ok = np.array(w.counts) > 500
    assert np.all(np.abs(w.ratio[ok] - 1) < 4 * w.ratio_err[ok])
    err_ratio = [
        ge / te
        for per in ev.widths.values()
        for b in per.values()
        for ge, te, n in zip(b.generated_err, b.target_err, b.counts, strict=True)
        if n > 500
    ]
    assert np.median(err_ratio) < 0.75  # 1/√3 ≈ 0.58 expected
    assert np.abs(ev.correlation_generated - ev.correlation_target).max() < 0.05
    assert abs(ev.to_dict()["mass_mean_difference_gev"]) < 0.1
    with pytest.raises(InputError, match="oversample"):
        run_scenario(smeared, preset="demo", oversample=0)
    with pytest.raises(InputError, match="train_smearings"):
        run_scenario(smeared, preset="demo", train_smearings=0)
    with pytest.raises(InputError, match="needs resmear"):
        run_scenario(smeared, preset="demo", train_smearings=2)


def test_apply_and_train_response_cli(study, tmp_path) -> None:
    from mcsurrogate.io import read_events, write_events

    study.model.save(tmp_path / "model")
    truth = ak.zip({"photons": study.reference.truth_photons[:300], "mu": study.reference.mu[:300]}, depth_limit=1)
    write_events(truth, tmp_path / "truth.root")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "apply",
            str(tmp_path / "model"),
            str(tmp_path / "truth.root"),
            "-o",
            str(tmp_path / "reco.parquet"),
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    reco = read_events(tmp_path / "reco.parquet")
    assert len(reco) == 300
    write_events(study.reference[:3000], tmp_path / "smeared.parquet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "train-response",
            str(tmp_path / "smeared.parquet"),
            "--preset",
            "demo",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m2"),
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m2" / "weights.safetensors").is_file()


def test_demo_writes_its_report(tmp_path) -> None:
    import json

    from mcsurrogate.demo import run_demo
    from mcsurrogate.errors import OutputExistsError

    report = run_demo(tmp_path / "demo", n_events=4000, epochs=1, progress=False)
    files = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"report.json", "summary.md", "model", "diphoton.png", "width_vs_pt.png", "correlations.png"} <= files
    on_disk = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert on_disk["verdict"] == report["verdict"] and on_disk["n_test"] == 400
    with pytest.raises(OutputExistsError):
        run_demo(tmp_path / "demo", n_events=4000, epochs=1, progress=False)


def test_demo_command_never_overwrites_an_earlier_demo(tmp_path) -> None:
    for expected in ("mcsurrogate-demo", "mcsurrogate-demo-2"):
        proc = subprocess.run(
            [sys.executable, "-m", "mcsurrogate", "demo", "--events", "3000", "--epochs", "1"],
            capture_output=True,
            check=False,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert "core-resolution ratio" in proc.stdout and f"{expected}/summary.md" in proc.stdout
        assert (tmp_path / expected / "report.json").is_file()


def test_the_command_line_offers_every_preset() -> None:
    assert RESPONSE_PRESETS == PRESETS


def test_train_response_with_several_detector_passes_per_truth_event(tmp_path) -> None:
    """``train-response --train-smearings K --smearing S`` learns from K reference smearings of each truth event, the
    truth split into training and validation before the extra passes (run_scenario's train_smearings)."""
    import json

    from mcsurrogate.cli import main
    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.io import write_events
    from mcsurrogate.response.smearing import SmearingConfig, smear_photons
    from mcsurrogate.response.study import detector_passes

    truth = load_default_truth()[:1000]
    smeared = smear_photons(truth, SmearingConfig("baseline"), seed=1)
    write_events(smeared, tmp_path / "smeared.parquet")
    base = ["train-response", str(tmp_path / "smeared.parquet"), "--preset", "demo", "--epochs", "1", "--device", "cpu"]
    assert main([*base, "--train-smearings", "3", "--smearing", "baseline", "--out", str(tmp_path / "m")]) == 0
    split = json.loads((tmp_path / "m" / "metrics.json").read_text())["split"]
    assert split == {"train": 2700, "validation": 300, "test": 0}
    # K > 1 needs the smearing to repeat: one paragraph, exit code 2, nothing written
    assert main([*base, "--train-smearings", "3", "--out", str(tmp_path / "m2")]) == 2
    assert not (tmp_path / "m2").exists()
    # the passes: the file's smearing first, then new smearings of the same truth
    passes = detector_passes(smeared[:10], 3, 7, lambda t, s: smear_photons(t, SmearingConfig("baseline"), seed=s))
    assert len(passes) == 30
    np.testing.assert_array_equal(passes.truth_photons.pt[10:20].to_numpy(), smeared.truth_photons.pt[:10].to_numpy())
    assert not np.array_equal(passes.photons.pt[10:20].to_numpy(), passes.photons.pt[:10].to_numpy())
