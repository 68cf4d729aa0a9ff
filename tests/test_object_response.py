"""Object-level response: the efficiency classifier, the pull scale, the autoregressive bookkeeping and the public
ObjectResponse API (fit on matched truth–reco pairs of the reference detector, apply, save/load). Tiny trainings."""

from __future__ import annotations

import dataclasses
import itertools
import json

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError, ModelDirectoryError
from mcsurrogate.response.efficiency import EfficiencyConfig, EfficiencyModel, reliability
from mcsurrogate.response.matching import match_objects
from mcsurrogate.response.objects import ObjectLayout, ObjectResponse, PullScale, TruthObjects, _previous
from mcsurrogate.response.reference_detector import PhotonDetector, reconstruct_photons
from mcsurrogate.response.smearing import PolynomialMapping, SmearingConfig, resolution


def jagged_truth(n_events: int, seed: int, max_objects: int = 5) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_objects + 1, n_events)
    n = int(counts.sum())
    photons = ak.unflatten(
        ak.zip(
            {"pt": 10 + rng.exponential(30, n), "eta": rng.uniform(-2.4, 2.4, n), "phi": rng.uniform(-np.pi, np.pi, n)}
        ),
        counts,
    )
    return ak.zip({"photons": photons, "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)


def jagged_jets(n_events: int, seed: int, *, eta_max: float = 2.5, max_objects: int = 6) -> ak.Array:
    """Truth jets (p_T > 20 GeV, mass, flavour 5/4/0) with a μ per event, as ``reconstruct_jets`` reads them."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_objects + 1, n_events)
    n = int(counts.sum())
    jets = ak.zip(
        {
            "pt": 20 + rng.exponential(40, n),
            "eta": rng.uniform(-eta_max, eta_max, n),
            "phi": rng.uniform(-np.pi, np.pi, n),
            "mass": rng.uniform(0, 10, n),
            "flavour": rng.choice([0, 4, 5], n),
        }
    )
    return ak.zip({"jets": ak.unflatten(jets, counts), "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)


def test_efficiency_model_learns_a_known_probability_and_is_calibrated(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 60_000
    x = np.column_stack([rng.uniform(5, 200, n), rng.uniform(-2.5, 2.5, n)])
    p = 0.95 - 0.4 * np.exp(-(x[:, 0] - 5) / 20) - 0.1 * x[:, 1] ** 2 / 6.25
    y = rng.random(n) < p
    model = EfficiencyModel(["pt", "eta"], ["log", "linear"], EfficiencyConfig(epochs=8, seed=1, device="cpu"))
    model.fit(x, y)
    q = model.probability(x)
    assert np.max(np.abs(q - p)) < 0.06 and np.mean(np.abs(q - p)) < 0.015
    rel = model.metrics["reliability_validation"]
    assert rel["ece"] < 0.02 and set(rel) == {"ece", "chi2_per_bin", "n_bins", "log_loss", "brier"}
    assert len(model.metrics["validation_bce"]) == 8  # no early stopping by default: the whole decaying schedule
    with pytest.raises(InputError, match="patience"):
        EfficiencyConfig(patience=0)
    model.save(tmp_path)
    again = EfficiencyModel.load(tmp_path, device="cpu")
    np.testing.assert_allclose(again.probability(x[:100]), q[:100], rtol=1e-6)
    json.loads((tmp_path / "efficiency.json").read_text())  # strict JSON
    with pytest.raises(InputError, match="all reconstructed or all lost"):
        EfficiencyModel(["pt", "eta"]).fit(x[:50], np.ones(50, bool))
    with pytest.raises(InputError, match="enters as a log"):
        model.probability(np.array([[-1.0, 0.0]]))
    with pytest.raises(InputError, match=r"matrix \(n, 2\)"):
        model.probability(x[:, :1])
    with pytest.raises(InputError, match="NaN"):
        model.probability(np.array([[10.0, np.nan]]))
    (tmp_path / "efficiency.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelDirectoryError, match="not an mcsurrogate efficiency model"):
        EfficiencyModel.load(tmp_path)


def test_efficiency_inference_with_fused_layers_equals_the_network(monkeypatch) -> None:
    """The classifier runs its layers frozen (oneDNN, bias and SiLU fused on CPU): the same probabilities as the
    torch modules to float32 rounding, and the same again where oneDNN is not there."""
    import torch

    from mcsurrogate.flows import frozen

    rng = np.random.default_rng(5)
    x = np.column_stack([rng.uniform(5, 200, 3000), rng.uniform(-2.5, 2.5, 3000)])
    y = rng.random(3000) < 0.7
    model = EfficiencyModel(["pt", "eta"], ["log", "linear"], EfficiencyConfig(epochs=1, seed=1, device="cpu"))
    model.fit(x, y)
    zs = ((model._inputs(x) - model.mean) / model.std).astype(np.float32)
    assert model.network is not None
    with torch.no_grad():
        plain = model.network(torch.from_numpy(zs))[:, 0].double().numpy()
    fused = model._logits(zs, batch_size=1000)
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-6)
    monkeypatch.setitem(frozen._onednn_dense, "works", False)
    np.testing.assert_allclose(model._logits(zs), plain, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="at most one activation"):
        frozen.FrozenMLP(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout(0.1)))


def test_reliability_of_perfect_and_miscalibrated_probabilities() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.1, 0.9, 200_000)
    y = rng.random(len(p)) < p
    good, bad = reliability(p, y), reliability(np.clip(p + 0.1, 0, 1), y)
    assert good["ece"] < 0.005 and good["chi2_per_bin"] < 3
    assert bad["ece"] == pytest.approx(0.1, abs=0.01) and bad["chi2_per_bin"] > 100


def test_previous_objects_bookkeeping() -> None:
    # two events: (found, lost, found, found) and (found, found); pulls 1, 9, 2, 4 | 3, 5
    event = np.array([0, 0, 0, 0, 1, 1])
    found = np.array([True, False, True, True, True, True])
    pulls = np.array([[1.0], [9.0], [2.0], [4.0], [3.0], [5.0]])
    n_prev, mean = _previous(event, found, pulls, 2)
    np.testing.assert_array_equal(n_prev, [0, 1, 1, 2, 0, 1])
    np.testing.assert_allclose(mean[:, 0], [0, 1, 1, 1.5, 0, 3])
    # without earlier objects the mean is exactly 0, also after running sums over many objects
    rng = np.random.default_rng(3)
    event = np.repeat(np.arange(20_000), 3)
    _, mean = _previous(event, np.ones(len(event), bool), rng.normal(0, 1e3, (len(event), 1)), 20_000)
    assert (mean[::3] == 0.0).all()


def test_pull_scale_recovers_a_factorising_resolution_smoothly() -> None:
    rng = np.random.default_rng(4)
    n = 300_000
    pt = np.exp(rng.uniform(np.log(10), np.log(300), n))
    eta, mu = rng.uniform(-2.5, 2.5, n), rng.uniform(0, 40, n)
    true = np.column_stack([resolution(f, pt, eta, mu) for f in ("pt", "eta", "phi")])  # paper A: a product
    delta = rng.standard_normal((n, 3)) * true
    scale = PullScale.fit(pt, eta, mu, delta)
    assert scale.kind == "additive"
    ratio = true / scale.sigma(pt, eta, mu)
    # σ̂ within ~2 % of σ everywhere (the first, binned σ̂ of such samples: 6-10 % rms inside its bins)
    assert np.abs(ratio.mean(axis=0) - 1).max() < 0.02 and ratio.std(axis=0).max() < 0.035
    # smooth: no jump between two objects a hair apart
    a = scale.sigma(np.array([40.0]), np.array([1.0]), np.array([20.0]))
    b = scale.sigma(np.array([40.01]), np.array([1.0001]), np.array([20.001]))
    np.testing.assert_allclose(a, b, rtol=1e-3)
    again = PullScale.from_dict(json.loads(json.dumps(scale.to_dict())))
    np.testing.assert_array_equal(again.sigma(pt[:5], eta[:5], mu[:5]), scale.sigma(pt[:5], eta[:5], mu[:5]))
    # few pairs: fewer knots, still a width per response; none: a clear error
    small = PullScale.fit(pt[:50], eta[:50], mu[:50], delta[:50])
    assert small.sigma(pt[:3], eta[:3], mu[:3]).shape == (3, 3) and np.isfinite(small.log_widths).all()
    with pytest.raises(InputError, match="at least 10 matched pairs"):
        PullScale.fit(pt[:5], eta[:5], mu[:5], delta[:5])
    with pytest.raises(InputError, match="zero width"):
        PullScale.fit(pt[:1000], eta[:1000], mu[:1000], np.zeros((1000, 1)))
    with pytest.raises(InputError, match="one count per variable"):
        PullScale.fit(pt[:1000], eta[:1000], mu[:1000], delta[:1000], bins=(4, 4))  # type: ignore[arg-type]


def test_additive_pull_scale_is_the_sum_of_piecewise_linear_functions_constant_beyond_the_knots() -> None:
    """σ̂ = exp(Σ f_j) with each f_j np.interp's interpolation between its knots (held flat beyond the outer ones);
    a variable with a single knot adds a constant."""
    scale = PullScale(
        [],
        [],
        [],
        [],
        kind="additive",
        knots=[[np.log(10.0), np.log(30.0), np.log(200.0)], [0.0, 1.0, 2.4], [20.0]],
        log_widths=[[[0.1, -0.4, -1.0], [0.0, 0.2, 0.5], [0.05]], [[-3.0, -3.1, -3.3], [0.1, 0.0, 0.3], [-0.2]]],
    )
    rng = np.random.default_rng(2)
    pt = np.exp(rng.uniform(np.log(3.0), np.log(900.0), 2000))  # beyond both outer E_T knots too
    eta, mu = rng.uniform(-3.0, 3.0, 2000), rng.uniform(0, 60, 2000)
    x = (np.log(pt), np.abs(eta), mu)
    expected = np.column_stack(
        [np.exp(sum(np.interp(x[j], scale.knots[j], field[j]) for j in range(3))) for field in scale.log_widths]
    )
    np.testing.assert_allclose(scale.sigma(pt, eta, mu), expected, rtol=1e-12)


def test_a_binned_pull_scale_of_an_older_model_directory_still_reads() -> None:
    old = {
        "pt_edges": [10.0, 50.0, 500.0],
        "eta_edges": [0.0, 2.5],
        "mu_edges": [0.0, 40.0],
        "widths": [[[[1.0]], [[2.0]]]],
    }
    scale = PullScale.from_dict(old)
    assert scale.kind == "binned"
    np.testing.assert_allclose(
        scale.sigma(np.array([20.0, 100.0]), np.array([0.5, -1.0]), np.array([5.0, 5.0])), [[1.0], [2.0]]
    )
    with pytest.raises(InputError, match="binned' or 'additive"):
        PullScale.from_dict(old | {"kind": "splines"})


def test_truth_objects_are_ranked_by_pt_with_their_context() -> None:
    objects = ak.Array([[{"pt": 20.0, "eta": 0.0, "phi": 0.0}, {"pt": 50.0, "eta": 0.3, "phi": 0.0}], []])
    t = TruthObjects.from_events(objects, np.array([10.0, 20.0]), dr_cap=5.0)
    np.testing.assert_array_equal(t.kin["pt"], [50, 20])
    np.testing.assert_array_equal(t.rank, [0, 1])
    np.testing.assert_allclose(t.dr_nearest, [0.3, 0.3])
    np.testing.assert_array_equal(t.n_objects, [2, 2])
    np.testing.assert_array_equal(t.feeds_later, [True, False])  # the last object's pull conditions nothing
    with pytest.raises(InputError, match="pt > 0"):
        TruthObjects.from_events(ak.Array([[{"pt": 0.0, "eta": 0.0, "phi": 0.0}]]), np.array([1.0]), 5.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[ObjectResponse, PhotonDetector]:
    detector = PhotonDetector(SmearingConfig("correlation", rho=1.0))
    train = reconstruct_photons(jagged_truth(5000, 1), detector, seed=1)
    model = ObjectResponse.fit(
        train,
        preset="demo",
        training={"epochs": 3, "device": "cpu"},
        efficiency={"epochs": 6, "device": "cpu"},
        progress=False,
    )
    return model, detector


def test_object_response_reproduces_efficiency_and_multiplicity(trained) -> None:
    model, detector = trained
    truth = jagged_truth(6000, 2)
    ref = reconstruct_photons(truth, detector, seed=5)
    sur = model.apply(ak.zip({"truth_photons": ref.truth_photons, "mu": ref.mu}, depth_limit=1), seed=3)
    assert sur.fields == ["photons", "truth_photons", "mu"]
    assert ak.all(sur.truth_photons.pt == ref.truth_photons.pt)
    assert ak.all(ak.num(sur.photons) <= ak.num(sur.truth_photons))
    assert ak.all(sur.photons.pt[:, :-1] >= sur.photons.pt[:, 1:])
    n_ref, n_sur = ak.to_numpy(ak.num(ref.photons)), ak.to_numpy(ak.num(sur.photons))
    assert n_sur.mean() == pytest.approx(n_ref.mean(), abs=0.04)  # the mean reco multiplicity, ~2 per event
    m = match_objects(sur.truth_photons, sur.photons)
    assert int(ak.sum(m.reco_matched)) == len(ak.flatten(sur.photons))  # every surrogate photon near its truth
    t, r = m.pairs(sur.truth_photons, sur.photons)
    d_sur = ak.to_numpy(ak.flatten(r.pt - t.pt))
    m_ref = match_objects(ref.truth_photons, ref.photons)
    t2, r2 = m_ref.pairs(ref.truth_photons, ref.photons)
    d_ref = ak.to_numpy(ak.flatten(r2.pt - t2.pt))
    assert np.std(d_sur) == pytest.approx(np.std(d_ref), rel=0.15)
    # ρ = 1: the two leading reco photons' E_T responses move together (pulls of the reference scale)
    two = (ak.num(r) >= 2).to_numpy()
    sigma = model.scale.sigma
    z = []
    for k in (0, 1):
        tk, rk = t[two][:, k], r[two][:, k]
        mu = sur.mu[two].to_numpy()
        z.append(ak.to_numpy(rk.pt - tk.pt) / sigma(ak.to_numpy(tk.pt), ak.to_numpy(tk.eta), mu)[:, 0])
    # (the reference gives ~1; this 3-epoch demo flow ~0.8; without the previous-object conditions it would be ~0)
    assert np.corrcoef(z[0], z[1])[0, 1] > 0.5


def _matched_pt_widths(events: ak.Array, edges: list[float]) -> np.ndarray:
    """Core width of the matched photons' E_T response (GeV) in bins of truth E_T."""
    from mcsurrogate.response.resolution import core_width

    m = match_objects(events.truth_photons, events.photons)
    t, r = m.pairs(events.truth_photons, events.photons)
    pt, d = ak.to_numpy(ak.flatten(t.pt)), ak.to_numpy(ak.flatten(r.pt - t.pt))
    return np.array([core_width(d[(pt >= a) & (pt < b)])[1] for a, b in itertools.pairwise(edges)])


def test_the_width_calibration_undoes_a_known_width_error_of_the_flow(trained) -> None:
    model, detector = trained
    assert model.width_calibration is not None  # fit calibrates by default
    calib = reconstruct_photons(jagged_truth(3000, 21), detector, seed=4)
    base = model.with_width_calibration(calib, seed=3)
    assert base.with_width_calibration(calib, seed=3).width_calibration == base.width_calibration  # seeded
    assert base.metrics["width_calibration"]["pairs"] > 5000
    # a flow whose every response comes out 25 % too wide: its factor is exactly 1/1.25 times the other one
    wide = _too_wide(model, 1.25)
    assert wide.width_calibration is None
    fixed = wide.with_width_calibration(calib, seed=3)
    pt, eta, mu = np.array([15.0, 40.0, 120.0]), np.array([0.3, -1.2, 2.0]), np.array([5.0, 20.0, 35.0])
    np.testing.assert_allclose(
        fixed.width_calibration.sigma(pt, eta, mu) * 1.25, base.width_calibration.sigma(pt, eta, mu), rtol=1e-6
    )
    with pytest.raises(InputError, match="calibrate_widths"):
        ObjectResponse.fit(calib, preset="demo", calibrate_widths="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="same knots"):
        other = np.random.default_rng(1).standard_normal((60, 3))
        base.width_calibration.ratio(PullScale.fit(pt.repeat(20), eta.repeat(20), mu.repeat(20), other))


def _too_wide(model: ObjectResponse, factor: float) -> ObjectResponse:
    """An uncalibrated copy of ``model`` whose flow gives every response ``factor`` times too wide."""
    from mcsurrogate.surrogate import Surrogate

    response = Surrogate.__new__(Surrogate)
    response.__dict__.update(model.response.__dict__)
    response.sample_array = lambda **k: factor * model.response.sample_array(**k)  # type: ignore[method-assign]
    return ObjectResponse(model.layout, model.efficiency, response, model.scale, dict(model.metrics))


def test_the_width_calibration_brings_a_wrong_flow_to_the_reference_widths_on_new_truth() -> None:
    detector = PhotonDetector(SmearingConfig("baseline"))  # independent responses: sampling = one teacher-forced step
    train = reconstruct_photons(jagged_truth(6000, 1), detector, seed=1)
    model = ObjectResponse.fit(
        train, preset="demo", training={"epochs": 6}, efficiency={"epochs": 2}, calibrate_widths=False, progress=False
    )
    assert model.width_calibration is None and "width_calibration" not in model.metrics
    wide = _too_wide(model, 1.25)
    fixed = wide.with_width_calibration(train, seed=0)
    ref = reconstruct_photons(jagged_truth(8000, 22), detector, seed=6)
    inputs = ak.zip({"truth_photons": ref.truth_photons, "mu": ref.mu}, depth_limit=1)
    edges = [10.0, 20.0, 35.0, 60.0, 500.0]
    w_ref = _matched_pt_widths(ref, edges)
    off_wide = _matched_pt_widths(wide.apply(inputs, seed=7), edges) / w_ref - 1
    off_fixed = _matched_pt_widths(fixed.apply(inputs, seed=7), edges) / w_ref - 1
    assert np.all(off_wide > 0.12)
    # what is left is the tiny flow's own error beyond an additive model of its widths (a few %; 1 % for the study's)
    assert np.all(np.abs(off_fixed) < off_wide - 0.05) and np.abs(off_fixed).mean() < 0.08


def test_non_finite_responses_stop_sampling_with_a_clear_error(trained, monkeypatch) -> None:
    from mcsurrogate.errors import TrainingError

    model = trained[0]
    truth = jagged_truth(50, 9)
    monkeypatch.setattr(model.response, "sample_array", lambda conditions, **k: np.full((len(conditions), 3), np.nan))
    with pytest.raises(TrainingError, match=r"non-finite responses for \d+ of \d+ objects of rank 0"):
        model.apply(ak.zip({"truth_photons": truth.photons, "mu": truth.mu}, depth_limit=1), seed=1)


def test_object_response_save_load_and_errors(trained, tmp_path) -> None:
    model, _ = trained
    truth = ak.zip({"gen": jagged_truth(300, 7).photons, "mu": jagged_truth(300, 7).mu}, depth_limit=1)
    a = model.apply(truth, seed=1, collection="gen")
    model.save(tmp_path / "m")
    again = ObjectResponse.load(tmp_path / "m", device="cpu")
    b = again.apply(truth, seed=1, collection="gen")
    assert ak.all(ak.flatten(a.photons.pt) == ak.flatten(b.photons.pt))
    assert not ak.all(ak.num(model.apply(truth, seed=2, collection="gen").photons) == ak.num(a.photons))
    assert again.context_bounds == model.context_bounds
    assert set(model.context_bounds) == {
        "n_objects",
        "dr_nearest",
        "n_previous",
        *(f"previous_pull_{f}" for f in ["pt", "eta", "phi"]),
    }
    assert model.context_bounds["n_objects"][1] <= 5  # the training events hold at most five photons
    # a crowded event (12 photons) samples with the context clipped into the training range
    crowded = ak.zip({"gen": jagged_truth(50, 8, max_objects=12).photons, "mu": np.full(50, 20.0)}, depth_limit=1)
    with pytest.warns(UserWarning, match="n_objects"):
        assert len(model.apply(crowded, collection="gen", seed=1)) == 50
    config = json.loads((tmp_path / "m" / "object_response.json").read_text())
    assert config["layout"]["fields"] == ["pt", "eta", "phi"] and config["format"] == "mcsurrogate.object_response"
    assert again.width_calibration == model.width_calibration is not None
    # a directory written before the width calibration existed reads as uncalibrated
    del config["width_calibration"]
    (tmp_path / "m" / "object_response.json").write_text(json.dumps(config))
    assert ObjectResponse.load(tmp_path / "m", device="cpu").width_calibration is None
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "efficiency.json",
        "efficiency.safetensors",
        "object_response.json",
        "response",
    ]
    with pytest.raises(Exception, match="exists"):
        model.save(tmp_path / "m")
    with pytest.raises(InputError, match="no field 'truth_photons'"):
        model.apply(truth)
    with pytest.raises(InputError, match=r"ObjectLayout\.fields"):
        ObjectLayout(fields=("pt", "mass"))
    with pytest.raises(InputError, match="unknown object-response preset"):
        ObjectResponse.fit(reconstruct_photons(jagged_truth(50, 1)), preset="huge")
    with pytest.raises(ModelDirectoryError, match=r"no object_response\.json"):
        ObjectResponse.load(tmp_path)
    empty = model.apply(ak.zip({"truth_photons": jagged_truth(5, 1).photons[:0], "mu": np.zeros(0)}, depth_limit=1))
    assert len(empty) == 0


def test_the_flow_reads_truth_et_and_the_nearest_distance_in_log(trained, tmp_path) -> None:
    model, _ = trained

    def chains(m: ObjectResponse) -> dict[str, list[str]]:
        pre = m.response.condition_preprocessor
        return {c: [t.name for t in pre.chains[c].transforms] for c in m.layout.conditions}

    assert chains(model)["pt"] == chains(model)["dr_nearest"] == ["log", "standardize"]
    assert {tuple(v) for c, v in chains(model).items() if c not in ("pt", "dr_nearest")} == {("standardize",)}
    # the standardised log E_T spans a few units (in GeV, objects at 10⁻¹–10³ GeV sit up to 60 SD out)
    z = model.response.condition_preprocessor.chains["pt"].forward(np.array([10.0, 1000.0]))
    assert np.all(np.abs(z) < 6)
    model.save(tmp_path / "m")
    assert chains(ObjectResponse.load(tmp_path / "m", device="cpu")) == chains(model)
    train = reconstruct_photons(jagged_truth(300, 3), PhotonDetector(), seed=1)
    plain = ObjectResponse.fit(
        train, preset="demo", training={"epochs": 1}, efficiency={"epochs": 1}, log_conditions=(), progress=False
    )
    assert {tuple(v) for v in chains(plain).values()} == {("standardize",)}
    with pytest.raises(InputError, match="log_conditions"):
        ObjectResponse.fit(train, preset="demo", log_conditions=("mu",))


@pytest.mark.filterwarnings("ignore:the distilled student does not reproduce")
def test_the_distilled_object_sampler_is_3_x_128_unless_told_otherwise(trained) -> None:
    from mcsurrogate.response.objects import OBJECT_STUDENT_HIDDEN

    model, detector = trained
    train = reconstruct_photons(jagged_truth(400, 9), detector, seed=2)
    small = {"pairs": 3000, "epochs": 1, "batch_size": 512}
    student = model.distill(train, small, progress=False)
    assert OBJECT_STUDENT_HIDDEN == 128 and student.response.model.sampler.net[0].out_features == 128
    wider = model.distill(train, small | {"hidden": 32}, progress=False)
    assert wider.response.model.sampler.net[0].out_features == 32
    truth = ak.zip({"truth_photons": train.truth_photons, "mu": train.mu}, depth_limit=1)
    out = student.apply(truth, seed=1)
    assert len(out) == len(train) and np.isfinite(ak.to_numpy(ak.flatten(out.photons.pt))).all()
    # the student's width calibration on the events given for it (the flow's calibration events), else the training's
    assert student.width_calibration == student.with_width_calibration(train, seed=0).width_calibration
    other = reconstruct_photons(jagged_truth(400, 10), detector, seed=3)
    on_other = model.distill(train, small, calibration_events=other, progress=False)
    assert on_other.width_calibration == on_other.with_width_calibration(other, seed=0).width_calibration
    assert on_other.width_calibration != student.width_calibration


def test_a_symmetric_detector_layout_conditions_the_flow_on_abs_eta(tmp_path) -> None:
    import warnings

    layout = ObjectLayout(symmetric_eta=True)
    train = reconstruct_photons(jagged_truth(2000, 31), PhotonDetector(), seed=1)
    model = ObjectResponse.fit(train, layout, preset="demo", training={"epochs": 1}, efficiency={"epochs": 1})
    eta = ak.to_numpy(model.training_conditions(train)["eta"])
    assert eta.min() >= 0 and eta.max() > 2.0  # |η| of the training objects, both halves of the detector in one
    model.save(tmp_path / "m")
    again = ObjectResponse.load(tmp_path / "m", device="cpu")
    assert again.layout.symmetric_eta
    truth = ak.zip({"truth_photons": train.truth_photons, "mu": train.mu}, depth_limit=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # negative η is inside the training range of |η|: no extrapolation warning
        a = again.apply(truth, seed=4)
    matched = match_objects(a.truth_photons, a.photons).reco_matched
    assert int(ak.sum(matched)) == len(ak.flatten(a.photons))  # each reco photon beside its truth: η keeps its sign
    with pytest.raises(InputError, match="symmetric_eta"):
        ObjectLayout(symmetric_eta="yes")  # type: ignore[arg-type]


def test_evaluation_of_two_reference_passes_is_consistent_and_a_wrong_detector_is_not() -> None:
    from mcsurrogate.response.object_study import evaluate_objects, headline
    from mcsurrogate.response.reference_detector import ParametricEfficiency

    truth = jagged_truth(20_000, 11)
    detector = PhotonDetector(SmearingConfig("correlation", rho=0.5))
    a = reconstruct_photons(truth, detector, seed=1)
    b = reconstruct_photons(truth, detector, seed=2)
    same = evaluate_objects(a, b, rho=0.5, n_boot=5)
    assert same.efficiency_chi2() < 1.8 and same.multiplicity_chi2()["chi2_per_bin"] < 2.5
    for f in ("pt", "eta", "phi"):
        c = same.correlation[f]
        assert c["reference"] == pytest.approx(0.5, abs=0.03) and c["generated"] == pytest.approx(0.5, abs=0.03)
    assert same.width_consistency()["chi2_per_bin"] < 2.0
    lower = PhotonDetector(detector.smearing, ParametricEfficiency(plateau=0.90))
    worse = evaluate_objects(a, reconstruct_photons(truth, lower, seed=2), rho=0.5, n_boot=5)
    assert worse.efficiency_chi2() > 10 and not headline(worse)["met"]["efficiency"]
    wider = PhotonDetector(SmearingConfig("asymmetric"))
    tails = evaluate_objects(a, reconstruct_photons(truth, wider, seed=2), rho=0.5, n_boot=5)
    assert tails.correlation["pt"]["generated"] < 0.1 and not headline(tails)["met"]["correlations"]
    json.dumps(same.to_dict(), allow_nan=False)


def test_statistical_floor_scores_the_reference_against_itself() -> None:
    from mcsurrogate.response.object_study import statistical_floor

    truth = ak.zip({"all_photons": jagged_truth(4000, 21).photons, "mu": jagged_truth(4000, 21).mu}, depth_limit=1)
    floor = statistical_floor(truth, PhotonDetector(SmearingConfig("correlation", rho=0.5)), draws=2, oversample=2)
    assert len(floor["draws"]) == 2 and set(floor["met"]) >= {"efficiency", "widths", "widths_precise_bins"}
    assert all(0 <= n <= 2 for n in floor["met"].values())
    lo, hi = floor["range"]["efficiency_chi2_per_bin"]
    assert 0 < lo <= hi < 3  # a perfect surrogate: χ²/bin about 1, not the 10+ of a wrong efficiency
    assert all(abs(d["correlation_minus_reference"]["pt"]) < 0.1 for d in floor["draws"])
    json.dumps(floor, allow_nan=False)


def test_the_study_truth_is_read_from_its_cache_by_name(tmp_path) -> None:
    """Cached samples (named by process, size and seed) are read back, not generated again; a cache with more events
    than asked for gives the first ones."""
    from mcsurrogate.response.object_study import load_study_truth

    ggh = ak.zip({"all_photons": jagged_truth(30, 1).photons, "mu": jagged_truth(30, 1).mu}, depth_limit=1)
    tth = ak.zip({"all_photons": jagged_truth(20, 2).photons, "mu": jagged_truth(20, 2).mu}, depth_limit=1)
    ak.to_parquet(ggh, tmp_path / "ggH_had_all_photons10_n30_seed4.parquet")
    ak.to_parquet(tth, tmp_path / "ttH_had_all_photons10_n20_seed5.parquet")
    a, b, info = load_study_truth(tmp_path, 30, 20, seed=4)
    assert len(a) == 30 and len(b) == 20 and ak.all(ak.flatten(a.all_photons.pt) == ak.flatten(ggh.all_photons.pt))
    assert info["ggH"]["cached"].endswith("ggH_had_all_photons10_n30_seed4.parquet") and info["ttH"]["n_events"] == 20


def test_efficiency_chi2_of_draws_averages_the_surrogates_decisions() -> None:
    from mcsurrogate.response.object_study import efficiency_chi2_of_draws

    rng = np.random.default_rng(4)
    n = 200_000
    x = np.column_stack([rng.uniform(10, 300, n), rng.uniform(-2.5, 2.5, n), rng.uniform(0, 40, n)])
    p = 0.6 + 0.3 * (x[:, 0] > 40)  # the truth's efficiency, E_T-dependent
    found = rng.random(n) < p
    draws = efficiency_chi2_of_draws(x, found, p, 24, seed=1)
    assert len(draws) == 24 and draws == efficiency_chi2_of_draws(x, found, p, 24, seed=1)
    assert np.std(draws) > 0.05  # one draw scatters: what the mean is for
    assert 0.75 < np.mean(draws) < 1.25  # the right p: χ²/bin ≈ 1 on average
    assert np.mean(efficiency_chi2_of_draws(x, found, p + 0.02, 4, seed=1)) > 5  # a 2 % bias: far off
    assert efficiency_chi2_of_draws(x, found, p, 1, seed=1) == draws[:1]  # draw k does not depend on how many
    with pytest.raises(InputError, match="draws"):
        efficiency_chi2_of_draws(x, found, p, 0, seed=1)


def test_multiplicity_chi2_of_draws_averages_the_surrogates_decisions() -> None:
    from mcsurrogate.response.object_study import multiplicity_chi2_of_draws

    rng = np.random.default_rng(5)
    n_events = 100_000
    counts = rng.integers(0, 6, n_events)
    event = np.repeat(np.arange(n_events), counts)
    p = np.where(rng.random(len(event)) < 0.5, 0.9, 0.6)
    observed = np.bincount(np.bincount(event[rng.random(len(event)) < p], minlength=n_events))
    draws = multiplicity_chi2_of_draws(event, n_events, observed.tolist(), p, 24, seed=1)
    assert len(draws) == 24 and draws == multiplicity_chi2_of_draws(event, n_events, observed, p, 24, seed=1)
    assert np.std(draws) > 0.1 and 0.6 < np.mean(draws) < 1.5  # the right p: χ²/bin ≈ 1 on average
    assert np.mean(multiplicity_chi2_of_draws(event, n_events, observed, p - 0.03, 4, seed=1)) > 5  # 3 % less
    with pytest.raises(InputError, match="draws"):
        multiplicity_chi2_of_draws(event, n_events, observed, p, 0, seed=1)


def test_width_chi2_of_draws_scores_each_sample_as_the_evaluation_does() -> None:
    from mcsurrogate.response.object_study import evaluate_objects, width_chi2_of_draws

    truth = jagged_truth(6000, 31)
    detector = PhotonDetector(SmearingConfig("correlation", rho=1.0))
    ref = reconstruct_photons(truth, detector, seed=1)
    others = [reconstruct_photons(truth, detector, seed=s) for s in (2, 3)]
    other_resolution = SmearingConfig("correlation", rho=1.0, mapping=PolynomialMapping(pt_range=(5.0, 50.0)))
    wider = reconstruct_photons(truth, PhotonDetector(other_resolution), seed=4)
    draws = width_chi2_of_draws(ref, iter([*others, wider]), n_boot=5, seed=3)
    assert len(draws) == 3
    for d, other in zip(draws, others, strict=False):
        assert d == evaluate_objects(ref, other, n_boot=5, seed=3).width_consistency()["chi2_per_bin"]
    assert width_chi2_of_draws(ref, [ref], n_boot=5) == [0.0]  # a sample against itself
    assert draws[2] > 5 * max(draws[:2])  # another resolution


def test_object_study_end_to_end_writes_strict_json_and_a_readme(tmp_path) -> None:
    from mcsurrogate.response.object_study import headline, run_object_study, split_study_events, write_study_report

    truth = ak.zip({"all_photons": jagged_truth(3000, 12).photons, "mu": jagged_truth(3000, 12).mu}, depth_limit=1)
    other = ak.zip({"all_photons": jagged_truth(500, 13).photons, "mu": jagged_truth(500, 13).mu}, depth_limit=1)
    result = run_object_study(
        truth,
        PhotonDetector(SmearingConfig("correlation", rho=0.5)),
        other_processes={"other": other},
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency={"epochs": 2, "device": "cpu"},
        efficiency_features=("pt", "eta", "mu", "dr_nearest"),
        calibration_passes=2,
        scale_passes=2,
        scale_bins=(10, 6, 4),
        compare_classifiers=True,
        width_draws=2,
    )
    assert result.sizes["scale_passes"] == 2 and result.sizes["scale_bins"] == [10, 6, 4]
    assert result.model.efficiency.features == ["pt", "eta", "mu", "dr_nearest"]
    # the width bar on the mean over two samples of the surrogate (the floor: of the detector), the first the main one
    for ev in (result.evaluation, result.floor["test"], result.generalisation["other"], result.floor["other"]):
        assert len(ev.width_draws) == 2 and ev.width_draws[0] == ev.width_consistency()["chi2_per_bin"]
        assert ev.width_draws[1] != ev.width_draws[0]
        h = headline(ev)
        assert h["width_chi2_per_bin_mean_of_draws"] == pytest.approx(np.mean(ev.width_draws))
        assert h["met"]["widths"] == (np.mean(ev.width_draws) <= 1.3)
    # the width calibration is fitted on two detector passes of the training truth, the flow on one
    assert result.sizes["calibration_passes"] == 2 and result.sizes["train_passes"] == 1
    assert result.model.metrics["width_calibration"]["pairs"] > 1.5 * result.model.metrics["matching"]["n_matched"]
    report = write_study_report({"rho0.5": result}, tmp_path, {"command": "test", "wall_seconds": 1.0})
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["scenarios"]["rho0.5"]["headline"].keys() == {"test", "other"}
    # the efficiency bar is held to the mean over draws of the surrogate's decisions (of the floor's: from ε)
    for h in (saved["scenarios"]["rho0.5"]["headline"]["other"], saved["scenarios"]["rho0.5"]["floor"]["other"]):
        assert h["met"]["efficiency"] == (h["efficiency_chi2_per_bin_mean_of_draws"] <= 1.3)
        assert h["met"]["multiplicity"] == (h["multiplicity_chi2_per_bin_mean_of_draws"] <= 1.3)
    mult = saved["scenarios"]["rho0.5"]["generalisation"]["other"]["multiplicity_chi2_per_bin_draws"]
    assert len(mult) == 8 and len(set(mult)) > 1
    draws = saved["scenarios"]["rho0.5"]["generalisation"]["other"]["efficiency_chi2_per_bin_draws"]
    assert len(draws) == 8 and np.isclose(
        np.mean(draws), saved["scenarios"]["rho0.5"]["headline"]["other"]["efficiency_chi2_per_bin_mean_of_draws"]
    )
    assert set(saved["scenarios"]["rho0.5"]["efficiency_classifiers"]) >= {
        "mlp_platt",
        "hist_gradient_boosting_isotonic",
    }
    assert report["scenarios"]["rho0.5"]["sizes"]["test_events"] > 400
    held_out = split_study_events(truth, seed=0)[1]  # the split the scripts use to find the study's test events
    assert report["scenarios"]["rho0.5"]["sizes"]["test_events"] == len(held_out)
    readme = (tmp_path / "README.md").read_text()
    assert "| rho0.5 | other |" in readme and "| rho0.5 | other floor |" in readme
    w = saved["scenarios"]["rho0.5"]["headline"]["other"]
    assert f"| {w['width_chi2_per_bin_mean_of_draws']:.2f} ({w['width_chi2_per_bin']:.2f}) |" in readme
    # the floor: the reference against more passes of its own over the same truth, scored as the surrogate is
    floor = saved["scenarios"]["rho0.5"]["floor"]
    assert floor.keys() == {"test", "other"} and result.floor["test"].n_events == result.evaluation.n_events
    assert floor["test"]["met"]["widths"] == (floor["test"]["width_chi2_per_bin"] <= 1.3)
    assert abs(floor["test"]["correlation_minus_reference"]["pt"]) < 0.1
    assert (tmp_path / "rho0.5_test.png").is_file() and (tmp_path / "rho0.5_other.png").is_file()
    # another smearing of the same detector efficiency: the first study's classifier serves, untrained again
    rho1 = run_object_study(
        truth,
        PhotonDetector(SmearingConfig("correlation", rho=1.0)),
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency=result.model.efficiency,
        efficiency_passes=3,
        floor=False,
    )
    assert rho1.model.efficiency is result.model.efficiency and rho1.sizes["efficiency_shared"]
    assert not result.sizes["efficiency_shared"] and rho1.evaluation.width_draws == []


def test_any_collection_jets_with_a_pt_response_only() -> None:
    from mcsurrogate.response.reference_detector import reconstruct_jets

    events = reconstruct_jets(jagged_jets(4000, 5), seed=1)
    layout = ObjectLayout(truth="truth_jets", reco="jets", fields=("pt",), max_dr=0.2)
    model = ObjectResponse.fit(
        events,
        layout,
        preset="demo",
        training={"epochs": 2, "device": "cpu"},
        efficiency={"epochs": 4, "device": "cpu"},
    )
    assert model.layout.targets == ["d_pt"] and len(model.layout.conditions) == 7
    out = model.apply(ak.zip({"truth_jets": events.truth_jets, "mu": events.mu}, depth_limit=1), seed=2)
    m = match_objects(out.truth_jets, out.jets, max_dr=1e-9)  # η and φ are copied from truth: only E_T moves
    assert int(ak.sum(m.reco_matched)) == len(ak.flatten(out.jets))
    frac_ref = len(ak.flatten(events.jets)) / len(ak.flatten(events.truth_jets))
    frac_sur = len(ak.flatten(out.jets)) / len(ak.flatten(out.truth_jets))
    assert frac_sur == pytest.approx(frac_ref, abs=0.03)
    assert ak.all(out.jets.mass >= 0)
    # the mass scales with p_T, as the reference detector's four-momentum scale does
    truth, reco = m.pairs(out.truth_jets, out.jets)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(reco.mass)), ak.to_numpy(ak.flatten(truth.mass * reco.pt / truth.pt)), rtol=1e-5
    )
    assert not np.allclose(ak.to_numpy(ak.flatten(reco.mass)), ak.to_numpy(ak.flatten(truth.mass)))


def test_a_learned_b_tag_by_flavour_saved_loaded_and_keyed_in_the_columnar_path(tmp_path) -> None:
    from mcsurrogate.generators.higgs_benchmark import DEFAULT_DETECTOR
    from mcsurrogate.response.columnar import add_surrogate_objects
    from mcsurrogate.response.reference_detector import reconstruct_jets

    truth = jagged_jets(5000, 8, eta_max=2.4)
    events = reconstruct_jets(truth, seed=1)
    more = ak.concatenate([reconstruct_jets(truth, seed=s) for s in (1, 2, 3, 4)])
    layout = ObjectLayout(
        truth="truth_jets", reco="jets", fields=("pt",), max_dr=0.2, tags=("btag",), tag_inputs=("flavour",)
    )
    model = ObjectResponse.fit(
        events,
        layout,
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency={"epochs": 3, "device": "cpu"},
        efficiency_events=more,
        tag_classifier={"epochs": 6, "device": "cpu", "batch_size": 512},
        calibrate_widths=False,
    )
    assert model.metrics["tags"]["btag"]["reliability_validation"]["ece"] < 0.03
    out = model.apply(ak.zip({"truth_jets": events.truth_jets, "mu": events.mu}, depth_limit=1), seed=2)
    assert "btag" in out.jets.fields
    m = match_objects(out.truth_jets, out.jets, max_dr=1e-9)
    t, r = m.pairs(out.truth_jets, out.jets)
    flavour, tag = ak.to_numpy(ak.flatten(t.flavour)), ak.to_numpy(ak.flatten(r.btag))
    assert set(np.unique(tag)) == {0.0, 1.0}
    # the reference tags b / c / light jets with 70 / 20 / 1 % (|η| < 2.5): per flavour within ~4 binomial SDs
    for label, rate in ((5, DEFAULT_DETECTOR.btag_efficiency), (4, DEFAULT_DETECTOR.c_mistag), (0, 0.01)):
        sel = flavour == label
        assert tag[sel].mean() == pytest.approx(rate, abs=0.02 + 4 * np.sqrt(rate * (1 - rate) / sel.sum()))
    # saved and loaded: the same tags for the same seed; a model directory without the tag's classifier is damaged
    model.save(tmp_path / "m")
    again = ObjectResponse.load(tmp_path / "m", device="cpu")
    back = again.apply(ak.zip({"truth_jets": events.truth_jets, "mu": events.mu}, depth_limit=1), seed=2)
    assert ak.all(back.jets.btag == out.jets.btag) and again.layout.tags == ("btag",)
    # the columnar path draws the tag from the event-keyed uniforms: the same events give the same tags
    nano = ak.zip(
        {
            "GenJet": events.truth_jets,
            "Pileup": ak.zip({"nTrueInt": events.mu}),
            "run": np.ones(len(events), np.int64),
            "luminosityBlock": np.ones(len(events), np.int64),
            "event": np.arange(len(events), dtype=np.int64),
        },
        depth_limit=1,
    )
    a = add_surrogate_objects(nano, again, truth="GenJet", out="Jet", seed=3)
    b = add_surrogate_objects(nano[::-1], again, truth="GenJet", out="Jet", seed=3)[::-1]
    assert ak.all(a.Jet.btag == b.Jet.btag) and 0.1 < float(ak.mean(ak.flatten(a.Jet.btag))) < 0.5
    dak = pytest.importorskip("dask_awkward")  # lazily, partition by partition: the same tags
    lazy = add_surrogate_objects(dak.from_awkward(nano, npartitions=3), again, truth="GenJet", out="Jet", seed=3)
    assert ak.all(lazy.Jet.btag.compute() == a.Jet.btag)
    # bad input: a tag the reco objects lack, a tag input the truth lacks, a tag that is not 0/1
    with pytest.raises(InputError, match="has no field 'ctag'"):
        ObjectResponse.fit(events, dataclasses.replace(layout, tags=("ctag",)), preset="demo")
    with pytest.raises(InputError, match="no field 'flavour'"):
        again.apply(
            ak.zip({"truth_jets": events.truth_jets[["pt", "eta", "phi", "mass"]], "mu": events.mu}, depth_limit=1)
        )
    scaled = ak.with_field(events, ak.with_field(events.jets, events.jets.btag * 2, "btag"), "jets")
    with pytest.raises(InputError, match="0/1"):
        ObjectResponse.fit(scaled, layout, preset="demo")
    always = ak.with_field(events, ak.with_field(events.jets, events.jets.btag * 0 + 1, "btag"), "jets")
    with pytest.raises(InputError, match="the same for every matched object"):
        ObjectResponse.fit(always, layout, preset="demo")
    with pytest.raises(InputError, match="other than pt, eta, phi, mass"):
        ObjectLayout(tags=("pt",))
    with pytest.raises(InputError, match="has no tags"):
        ObjectLayout(tag_inputs=("flavour",))
    (tmp_path / "m" / "tag_btag" / "efficiency.json").unlink()
    with pytest.raises(ModelDirectoryError, match=r"no efficiency\.json"):
        ObjectResponse.load(tmp_path / "m")


def test_the_efficiency_can_train_on_more_detector_passes_than_the_flow() -> None:
    truth = jagged_truth(1500, 21)
    detector = PhotonDetector()
    events = reconstruct_photons(truth, detector, seed=1)
    more = ak.concatenate([reconstruct_photons(truth, detector, seed=s) for s in (1, 2, 3)])
    model = ObjectResponse.fit(
        events,
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency={"epochs": 2, "device": "cpu"},
        efficiency_events=more,
        efficiency_features=("pt", "eta", "mu", "dr_nearest"),
        scale_events=more,
        scale_bins=(8, 4, 4),
    )
    assert model.efficiency.features == ["pt", "eta", "mu", "dr_nearest"]
    # the pull scale is fitted on the scale events' matched pairs, in their bins
    from mcsurrogate.response.objects import training_pairs

    t, found, delta, _ = training_pairs(more, model.layout)
    expected = PullScale.fit(t.kin["pt"][found], t.kin["eta"][found], t.mu[found], delta[found], bins=(8, 4, 4))
    assert model.scale.knots == expected.knots and model.scale.log_widths == expected.log_widths
    with pytest.raises(InputError, match="scale_events"):
        ObjectResponse.fit(events, preset="demo", scale_events=[1, 2])
    assert len(model.apply(ak.zip({"truth_photons": truth.photons, "mu": truth.mu}, depth_limit=1))) == len(truth)
    n_objects = int(ak.sum(ak.num(events.truth_photons)))
    assert model.metrics["efficiency_training_objects"] == 3 * n_objects
    assert model.efficiency.metrics["n_train"] + model.efficiency.metrics["n_validation"] == 3 * n_objects
    with pytest.raises(InputError, match="efficiency_features"):
        ObjectResponse.fit(events, preset="demo", efficiency_features=("pt", "isolation"))
    with pytest.raises(InputError, match="efficiency_events"):
        ObjectResponse.fit(events, preset="demo", efficiency_events=[1, 2])
    # a trained efficiency is used as it is (one detector's efficiency for responses of several smearings)
    again = ObjectResponse.fit(
        events, preset="demo", training={"epochs": 1, "device": "cpu"}, efficiency=model.efficiency, seed=5
    )
    assert again.efficiency is model.efficiency and again.metrics["efficiency_given"]
    assert again.metrics["efficiency_training_objects"] == 3 * n_objects
    with pytest.raises(InputError, match="not been trained"):
        ObjectResponse.fit(events, preset="demo", efficiency=EfficiencyModel(["pt"], ["log"]))
    with pytest.raises(InputError, match="efficiency_events"):
        ObjectResponse.fit(events, preset="demo", efficiency=model.efficiency, efficiency_events=more)


def test_efficiency_generalisation_scores_seeds_feature_sets_and_the_floor() -> None:
    from mcsurrogate.response.object_study import efficiency_generalisation

    a, b = jagged_truth(2000, 31), jagged_truth(800, 32, max_objects=8)
    truth = ak.zip({"all_photons": a.photons, "mu": a.mu}, depth_limit=1)
    other = ak.zip({"all_photons": b.photons, "mu": b.mu}, depth_limit=1)
    out = efficiency_generalisation(
        truth, other, PhotonDetector(), passes=2, test_passes=2, seeds=(1,), efficiency={"epochs": 2, "device": "cpu"}
    )
    assert set(out["mlp"]) == {"all", "without n_objects"} and set(out["mlp"]["all"]) == {"seed 1"}
    assert out["reference_epsilon"]["rms_p_minus_reference_epsilon"] == 0.0
    assert out["reference_epsilon"]["chi2_per_bin"] < 3 and out["hist_gradient_boosting"]["mean_p"] > 0.5
    cov = out["coverage"]
    assert all(v in (0.0, None) for v in out["reference_epsilon"]["mean_p_minus_reference_epsilon_by_dr"])
    assert sum(cov["fraction_train_by_dr"]) == pytest.approx(1) and sum(cov["fraction_other_by_dr"]) == pytest.approx(1)
    assert len(cov["n_objects_fraction_other"]) > len(cov["n_objects_fraction_train"])  # up to 8 objects, not 5
    assert len(out["mlp"]["all"]["seed 1"]["mean_p_minus_reference_epsilon_by_dr"]) == len(cov["dr_edges"]) - 1
    json.dumps(out, allow_nan=False)
    two = efficiency_generalisation(
        truth,
        other,
        PhotonDetector(),
        passes=2,
        test_passes=2,
        seeds=(1, 2),
        feature_sets={"pt": ("pt",)},
        efficiency={"epochs": 1, "device": "cpu"},
    )
    per_seed = [two["mlp"]["pt"][f"seed {s}"]["mean_p"] for s in (1, 2)]
    assert two["mlp"]["pt"]["mean of the seeds"]["mean_p"] == pytest.approx(np.mean(per_seed))


def test_companions_add_close_objects_beside_a_fraction_of_the_truth() -> None:
    from mcsurrogate.response.matching import nearest_other
    from mcsurrogate.response.object_study import add_companions

    base = jagged_truth(3000, 41, max_objects=3)
    flags = ak.unflatten(np.ones(int(ak.sum(ak.num(base.photons))), bool), ak.num(base.photons))
    truth = ak.with_field(base, ak.with_field(base.photons, flags, "from_higgs"), "photons")
    out = add_companions(truth, 0.5, collection="photons", seed=3, dr_range=(0.05, 0.5), pt_min=10.0)
    assert out.fields == truth.fields and len(out) == len(truth)
    np.testing.assert_array_equal(ak.to_numpy(out.mu), ak.to_numpy(truth.mu))
    n_old, n_new = int(ak.sum(ak.num(truth.photons))), int(ak.sum(ak.num(out.photons)))
    added = n_new - n_old
    assert 0.25 * n_old < added < 0.5 * n_old  # half get one, minus those below 10 GeV or beyond |eta| 2.5
    assert int(ak.sum(out.photons.from_higgs)) == n_old  # companions are not from the Higgs
    pt = ak.to_numpy(ak.flatten(out.photons.pt))
    assert (pt > 10).all() and (np.abs(ak.to_numpy(ak.flatten(out.photons.eta))) < 2.5).all()
    near_old = np.mean(ak.to_numpy(ak.flatten(nearest_other(truth.photons))) < 0.5)
    near_new = np.mean(ak.to_numpy(ak.flatten(nearest_other(out.photons))) < 0.5)
    assert near_old < 0.05 and near_new > 0.3
    again = add_companions(truth, 0.5, collection="photons", seed=3, dr_range=(0.05, 0.5))
    assert ak.all(again.photons.pt == out.photons.pt)
    assert int(ak.sum(ak.num(add_companions(truth, 0.0, collection="photons").photons))) == n_old
    # more rounds: companions get companions too, so crowded events (many objects, as t t̄ H's) become common
    crowded = add_companions(truth, 0.5, collection="photons", seed=3, dr_range=(0.05, 0.5), rounds=3)
    assert np.mean(ak.to_numpy(ak.num(crowded.photons)) >= 5) > 3 * np.mean(ak.to_numpy(ak.num(out.photons)) >= 5)
    with pytest.raises(InputError, match="fraction"):
        add_companions(truth, 1.5, collection="photons")
    with pytest.raises(InputError, match="rounds"):
        add_companions(truth, 0.1, collection="photons", rounds=0)
    with pytest.raises(InputError, match="'nope'"):
        add_companions(truth, 0.1, collection="nope")


# -- command line: train-response / apply --truth COLLECTION --reco COLLECTION ----------------------------------
@pytest.fixture(scope="module")
def fullsim_file(tmp_path_factory):
    """A 'full simulation' file with other names than the defaults: GenPhoton (truth), RecoPhoton (reco, from the
    reference detector: efficiency and any multiplicity), PV_mu, and an event number."""
    root = tmp_path_factory.mktemp("fullsim")
    sim = reconstruct_photons(jagged_truth(300, 5, max_objects=4), PhotonDetector(), seed=2)
    events = ak.zip(
        {
            "event": np.arange(len(sim), dtype=np.int64),
            "GenPhoton": sim.truth_photons,
            "RecoPhoton": sim.photons,
            "PV_mu": sim.mu,
        },
        depth_limit=1,
    )
    from mcsurrogate.io import write_events

    return write_events(events, root / "fullsim.parquet"), events


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from mcsurrogate.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_and_applies_an_object_response_of_any_collection(fullsim_file, tmp_path, capsys) -> None:
    from mcsurrogate.io import read_events

    path, events = fullsim_file
    n_truth = int(ak.sum(ak.num(events.GenPhoton)))
    assert 300 < n_truth < 1500  # a few hundred objects, any multiplicity
    model_dir = tmp_path / "model"
    train = ["train-response", path, "--truth", "GenPhoton", "--reco", "RecoPhoton", "--pileup", "PV_mu"]
    code, out, err = _cli(
        [*train, "--preset", "demo", "--epochs", "1", "--efficiency-epochs", "2", "--out", model_dir], capsys
    )
    assert code == 0, err
    assert "GenPhoton -> RecoPhoton" in out and (model_dir / "object_response.json").is_file()
    trained = ObjectResponse.load(model_dir, device="cpu")
    layout = trained.layout
    assert (layout.truth, layout.reco, layout.pileup) == ("GenPhoton", "RecoPhoton", "PV_mu")
    assert trained.width_calibration is not None
    code, _, err = _cli(
        [*train, "--preset", "demo", "--epochs", "1", "--no-width-calibration", "--out", tmp_path / "raw"], capsys
    )
    assert code == 0, err
    assert ObjectResponse.load(tmp_path / "raw", device="cpu").width_calibration is None

    truth_only = tmp_path / "truth.root"  # ROOT in and out: jagged collections as counter + jagged branches
    from mcsurrogate.io import write_events

    write_events(events[["event", "GenPhoton", "PV_mu"]], truth_only)
    code, out, err = _cli(
        ["apply", model_dir, truth_only, "--reco", "FastPhoton", "--seed", "3", "-o", tmp_path / "a.root"], capsys
    )
    assert code == 0, err
    result = read_events(tmp_path / "a.root")
    assert set(result.fields) == {"event", "GenPhoton", "PV_mu", "FastPhoton"}
    np.testing.assert_array_equal(ak.to_numpy(result.event), ak.to_numpy(events.event))
    n_truth_ev, n_reco_ev = ak.to_numpy(ak.num(result.GenPhoton)), ak.to_numpy(ak.num(result.FastPhoton))
    assert (n_reco_ev <= n_truth_ev).all() and 0.4 < n_reco_ev.sum() / n_truth_ev.sum() < 0.98  # objects are lost
    assert len(np.unique(n_reco_ev)) >= 4  # any multiplicity
    assert set(result.FastPhoton.fields) >= {"pt", "eta", "phi"}
    reco_pt = ak.to_numpy(ak.flatten(result.FastPhoton.pt))
    assert np.isfinite(reco_pt).all() and (reco_pt > 0).all()
    assert f"{int(n_reco_ev.sum())} of {n_truth}" in out
    # the same seed gives the same objects; the default names are the trained ones
    code, _, err = _cli(["apply", model_dir, path, "--seed", "3", "-o", tmp_path / "b.parquet"], capsys)
    assert code == 2 and "RecoPhoton" in err and "already" in err  # the default output name exists in that file
    code, _, err = _cli(["apply", model_dir, truth_only, "--seed", "3", "-o", tmp_path / "b.parquet"], capsys)
    assert code == 0, err
    again = read_events(tmp_path / "b.parquet")
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(again.RecoPhoton.pt)), reco_pt)


def test_cli_learns_and_draws_a_jet_b_tag(tmp_path, capsys) -> None:
    from mcsurrogate.io import read_events, write_events
    from mcsurrogate.response.reference_detector import reconstruct_jets

    truth = jagged_jets(3000, 9, eta_max=2.4, max_objects=5)
    path = write_events(reconstruct_jets(truth, seed=1), tmp_path / "jets.parquet")
    argv = ["train-response", path, "--truth", "truth_jets", "--reco", "jets", "--max-dr", "0.2", "--fields", "pt"]
    argv += ["--tags", "btag", "--tag-inputs", "flavour", "--preset", "demo", "--epochs", "1"]
    code, out, err = _cli([*argv, "--efficiency-epochs", "2", "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "tag btag:" in out and "ECE" in out
    assert ObjectResponse.load(tmp_path / "m", device="cpu").layout.tag_inputs == ("flavour",)
    write_events(truth, tmp_path / "truth.parquet")
    code, _, err = _cli(
        [
            "apply",
            tmp_path / "m",
            tmp_path / "truth.parquet",
            "--truth",
            "jets",
            "--reco",
            "fast_jets",
            "-o",
            tmp_path / "a.parquet",
        ],
        capsys,
    )
    assert code == 0, err
    tags = ak.to_numpy(ak.flatten(read_events(tmp_path / "a.parquet").fast_jets.btag))
    assert set(np.unique(tags)) == {0.0, 1.0}


def test_cli_object_level_bad_collections_exit_2_naming_them(fullsim_file, tmp_path, capsys) -> None:
    path, _ = fullsim_file
    base = ["train-response", path, "--preset", "demo", "--epochs", "1", "--out", tmp_path / "m"]
    cases = {
        "GenPhotn": [*base, "--truth", "GenPhotn", "--reco", "RecoPhoton"],
        "RecoPhotn": [*base, "--truth", "GenPhoton", "--reco", "RecoPhotn"],
        "'mu'": [*base, "--truth", "GenPhoton", "--reco", "RecoPhoton"],  # the default pile-up field is absent
        "--truth needs --reco": [*base, "--truth", "GenPhoton"],
        "--pileup apply to the object-level path": [*base, "--pileup", "PV_mu"],
        "--no-width-calibration apply to the object-level path": [*base, "--no-width-calibration"],
        "two-photon preset": [
            *base,
            "--truth",
            "GenPhoton",
            "--reco",
            "RecoPhoton",
            "--pileup",
            "PV_mu",
            "--preset",
            "paper-a",
        ],
        "event weights are not supported": [
            *base,
            "--truth",
            "GenPhoton",
            "--reco",
            "RecoPhoton",
            "--pileup",
            "PV_mu",
            "--weights",
            "event",
        ],
        "'event'": [*base, "--truth", "event", "--reco", "RecoPhoton", "--pileup", "PV_mu"],  # not a collection
        "--tags apply to the object-level path": [*base, "--tags", "btag"],
        "has no field 'btag'": [
            *base,
            "--truth",
            "GenPhoton",
            "--reco",
            "RecoPhoton",
            "--pileup",
            "PV_mu",
            "--tags",
            "btag",
        ],
    }
    # apply: a two-photon model takes no collections (its preset reads photons and mu)
    from mcsurrogate.response.smearing import smear_photons
    from mcsurrogate.response.surrogate import train_response

    two = jagged_truth(400, 6)
    two = two[ak.num(two.photons) >= 2]
    train_response(smear_photons(two, seed=1), "demo", training={"epochs": 1, "device": "cpu"}).save(tmp_path / "two")
    cases["is a two-photon response"] = ["apply", tmp_path / "two", path, "--truth", "GenPhoton", "-o", tmp_path / "m"]
    for expected, argv in cases.items():
        code, _, err = _cli(argv, capsys)
        assert code == 2 and expected in err and "Traceback" not in err, (expected, err)
        assert not (tmp_path / "m").exists()
