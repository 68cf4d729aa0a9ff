from __future__ import annotations

import itertools
import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.response.matching import match_objects, nearest_other
from mcsurrogate.response.reference_detector import (
    PHOTON_EFFICIENCY,
    ParametricEfficiency,
    PhotonDetector,
    merge_close,
    reconstruct_jets,
    reconstruct_photons,
)
from mcsurrogate.response.resolution import core_width
from mcsurrogate.response.smearing import (
    POLYNOMIALS,
    PolynomialMapping,
    SmearingConfig,
    factor,
    object_responses,
    resolution,
    smear_photons,
    smear_responses,
)

N = 200_000
RNG = np.random.default_rng(0)
PT = RNG.uniform(20, 200, (N, 2))
ETA = RNG.uniform(-2.5, 2.5, (N, 2))
MU = RNG.uniform(0, 40, N)


def truth_records(n: int = 1000, seed: int = 1) -> ak.Array:
    rng = np.random.default_rng(seed)
    ph = ak.zip(
        {
            "pt": rng.uniform(20, 150, (n, 2)),
            "eta": rng.uniform(-2.4, 2.4, (n, 2)),
            "phi": rng.uniform(-np.pi, np.pi, (n, 2)),
        }
    )
    return ak.zip({"photons": ph, "mu": rng.uniform(0, 40, n)}, depth_limit=1)


def test_all_polynomials_positive_with_factors_in_the_documented_range() -> None:
    grids = {"pt": np.linspace(0, 400, 401), "eta": np.linspace(-3, 3, 301), "mu": np.linspace(-5, 60, 301)}
    for response, variable in POLYNOMIALS:
        f = factor(response, variable, grids[variable])
        assert f.min() > 0.5 and f.max() < 2.7, (response, variable, f.min(), f.max())


@pytest.mark.parametrize("j,kind", [(0, "pt"), (1, "eta"), (2, "phi")])
def test_baseline_widths_match_sigma_in_bins(j: int, kind: str) -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("baseline"), seed=1)
    sigma = resolution(kind, PT, ETA, MU[:, None])
    pulls = d[:, :, j] / sigma
    assert pulls.mean() == pytest.approx(0.0, abs=0.01)
    # in bins of E_T, |η| and μ: the sample width over the expected one (rms of σ in the bin) is 1 within 4 stat. SDs
    mu2 = np.broadcast_to(MU[:, None], PT.shape)
    for values, edges in ((PT, (20, 50, 100, 200)), (abs(ETA), (0, 0.8, 1.6, 2.5)), (mu2, (0, 13, 26, 40))):
        for lo, hi in itertools.pairwise(edges):
            sel = (values >= lo) & (values < hi)
            ratio = d[:, :, j][sel].std() / np.sqrt((sigma[sel] ** 2).mean())
            assert ratio == pytest.approx(1.0, abs=4 / np.sqrt(2 * sel.sum())), (kind, lo, hi)
    # and the raw width follows sigma: wide vs narrow halves
    wide = sigma > np.median(sigma)
    assert d[:, :, j][wide].std() / d[:, :, j][~wide].std() == pytest.approx(
        np.sqrt((sigma[wide] ** 2).mean() / (sigma[~wide] ** 2).mean()), rel=0.02
    )


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_correlation_scenario(rho: float) -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("correlation", rho=rho), seed=2)
    sigma = np.stack([resolution(k, PT, ETA, MU[:, None]) for k in ("pt", "eta", "phi")], axis=-1)
    z = (d / sigma).reshape(N, 6)
    c = np.corrcoef(z, rowvar=False)
    for j in range(3):
        assert c[j, 3 + j] == pytest.approx(rho, abs=0.01)
    off = [c[a, b] for a in range(6) for b in range(a + 1, 6) if b != a + 3]
    assert max(abs(x) for x in off) < 0.01


def test_asymmetric_scenario_mean_and_tail_fraction() -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("asymmetric"), seed=3)
    z = d[:, :, 0] / resolution("pt", PT, ETA, MU[:, None])
    assert z.mean() == pytest.approx(0.16 * -3.0, abs=0.01)
    from scipy.stats import norm

    expected = 0.84 * norm.cdf(-2) + 0.16 * norm.cdf((-2 + 3) / 3)
    assert np.mean(z < -2) == pytest.approx(expected, abs=0.003)
    _mean, width = core_width(z.ravel())
    assert width == pytest.approx(1.0, abs=0.08)


def test_smear_photons_records_seed_and_phi_wrapping() -> None:
    truth = truth_records()
    a = smear_photons(truth, SmearingConfig(), seed=4)
    b = smear_photons(truth, SmearingConfig(), seed=4)
    assert a.fields == ["photons", "truth_photons", "mu"]
    assert ak.all(a.photons.pt == b.photons.pt)
    assert not ak.any(smear_photons(truth, SmearingConfig(), seed=5).photons.pt == a.photons.pt)
    assert ak.all(abs(a.photons.phi) <= np.pi)
    assert ak.all(a.truth_photons.pt == truth.photons.pt)
    m = (a.photons[:, 0] + a.photons[:, 1]).mass
    assert ak.all(m > 0)
    near = ak.zip(
        {
            "photons": ak.zip(
                {"pt": np.full((5, 2), 50.0), "eta": np.zeros((5, 2)), "phi": np.full((5, 2), np.pi - 1e-7)}
            ),
            "mu": np.zeros(5),
        },
        depth_limit=1,
    )
    assert ak.all(abs(smear_photons(near, seed=0).photons.phi) <= np.pi)


def test_bad_truth_input() -> None:
    one = ak.zip({"photons": ak.Array([[{"pt": 30.0, "eta": 0.1, "phi": 0.2}]]), "mu": np.array([3.0])}, depth_limit=1)
    with pytest.raises(InputError, match="1 truth events have fewer than two photons"):
        smear_photons(one)
    t = truth_records(10)
    bad = ak.with_field(t, np.r_[np.nan, np.ones(9)], "mu")
    with pytest.raises(InputError, match=r"NaN.*mu"):
        smear_photons(bad)
    with pytest.raises(InputError, match="scenario"):
        SmearingConfig("gaussian")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="rho"):
        SmearingConfig("correlation", rho=1.5)
    with pytest.raises(InputError, match="shape"):
        smear_responses(PT[:10, 0], ETA[:10], MU[:10], SmearingConfig())
    config = SmearingConfig("asymmetric", core_fraction=0.9, mapping=PolynomialMapping(pt_range=(25.0, 250.0)))
    assert SmearingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PolynomialMapping.from_dict(PolynomialMapping().to_dict()) == PolynomialMapping()


def test_smear_cli(tmp_path) -> None:
    from mcsurrogate.io import read_events, write_events

    write_events(truth_records(200), tmp_path / "t.parquet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "smear",
            str(tmp_path / "t.parquet"),
            "--scenario",
            "correlation",
            "--rho",
            "1.0",
            "-o",
            str(tmp_path / "r.root"),
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    reco = read_events(tmp_path / "r.root")
    assert len(reco) == 200 and {"photons", "truth_photons", "mu"} <= set(reco.fields)


# -- any multiplicity, efficiency (the reference detector of issue 31) ---------------------------------------------
def jagged_truth(n_events: int, seed: int, max_objects: int = 6, spread: float = 2.4) -> ak.Array:
    """Events with 0 … max_objects photons (E_T 10–150 GeV, |η| < spread), unordered, and μ."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_objects + 1, n_events)
    n = int(counts.sum())
    photons = ak.unflatten(
        ak.zip(
            {
                "pt": rng.uniform(10, 150, n),
                "eta": rng.uniform(-spread, spread, n),
                "phi": rng.uniform(-np.pi, np.pi, n),
            }
        ),
        counts,
    )
    return ak.zip({"photons": photons, "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)


def pair_pulls(truth: ak.Array, delta: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """The pulls Δ/σ of response ``j`` of every ordered pair (a, b), a < b, of objects of one event."""
    counts = ak.to_numpy(ak.num(truth.photons))
    pt, eta = ak.to_numpy(ak.flatten(truth.photons.pt)), ak.to_numpy(ak.flatten(truth.photons.eta))
    mu = np.repeat(truth.mu.to_numpy(), counts)
    z = delta[:, j] / resolution(("pt", "eta", "phi")[j], pt, eta, mu)  # type: ignore[arg-type]
    pairs = ak.argcombinations(ak.unflatten(z, counts), 2)
    start = np.repeat(np.r_[0, np.cumsum(counts)[:-1]], ak.to_numpy(ak.num(pairs)))
    a = ak.to_numpy(ak.flatten(pairs["0"])) + start
    b = ak.to_numpy(ak.flatten(pairs["1"])) + start
    return z[a], z[b]


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_object_responses_correlate_every_two_objects_of_an_event_by_rho(rho: float) -> None:
    truth = jagged_truth(60_000, seed=7)
    counts = ak.to_numpy(ak.num(truth.photons))
    pt, eta = ak.to_numpy(ak.flatten(truth.photons.pt)), ak.to_numpy(ak.flatten(truth.photons.eta))
    mu = np.repeat(truth.mu.to_numpy(), counts)
    scenario = "baseline" if rho == 0 else "correlation"
    delta = object_responses(pt, eta, mu, counts, SmearingConfig(scenario, rho=rho), seed=1)
    for j in range(3):
        a, b = pair_pulls(truth, delta, j)
        assert len(a) > 100_000
        assert np.corrcoef(a, b)[0, 1] == pytest.approx(rho, abs=0.01)
        if rho == 1.0:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    z = delta[:, 0] / resolution("pt", pt, eta, mu)
    assert z.std() == pytest.approx(1.0, abs=0.01)  # each object's marginal stays paper A's N(0, σ)
    with pytest.raises(InputError, match="rho ≥ 0"):
        object_responses(pt, eta, mu, counts, SmearingConfig("correlation", rho=-0.3))
    with pytest.raises(InputError, match="sum of the non-negative counts"):
        object_responses(pt[:-1], eta[:-1], mu[:-1], counts, SmearingConfig())


def test_two_objects_per_event_give_paper_a_joint_distribution() -> None:
    # the shared-component construction and paper A's Δ₂ ← ρΔ₁ + √(1−ρ²)Δ₂ have the same covariance for n = 2
    config = SmearingConfig("correlation", rho=0.5)
    d_paper = smear_responses(PT, ETA, MU, config, seed=11)
    d_obj = object_responses(PT.ravel(), ETA.ravel(), np.repeat(MU, 2), np.full(N, 2), config, seed=12).reshape(N, 2, 3)
    for d in (d_paper, d_obj):
        sigma = np.stack([resolution(k, PT, ETA, MU[:, None]) for k in ("pt", "eta", "phi")], axis=-1)
        c = np.cov((d / sigma).reshape(N, 6), rowvar=False)
        np.testing.assert_allclose(c, np.kron([[1, 0.5], [0.5, 1]], np.eye(3)), atol=0.012)


def test_parametric_efficiency_range_and_shape() -> None:
    eff = PHOTON_EFFICIENCY
    pt, eta, mu = np.meshgrid(np.linspace(10, 500, 50), np.linspace(-2.5, 2.5, 41), np.linspace(0, 40, 21))
    e = eff(pt, eta, mu)  # isolated photons
    assert e.min() == pytest.approx(0.60, abs=1e-9) and e.max() == pytest.approx(0.95, abs=1e-3)
    assert eff(np.array(100.0), 0.0, 0.0) > eff(np.array(15.0), 0.0, 0.0)  # turn-on in E_T
    assert eff(np.array(50.0), 0.0, 0.0) > eff(np.array(50.0), 2.0, 0.0) > eff(np.array(50.0), 2.0, 40.0)
    assert eff(np.array(50.0), 0.0, 0.0, 0.05) < 0.75 * eff(np.array(50.0), 0.0, 0.0)  # a close neighbour
    assert ParametricEfficiency.from_dict(json.loads(json.dumps(eff.to_dict()))) == eff
    with pytest.raises(InputError, match="plateau"):
        ParametricEfficiency(plateau=1.2)
    with pytest.raises(InputError, match="pt_scale"):
        ParametricEfficiency(pt_scale=0.0)


def test_reference_photon_detector_efficiency_in_bins_matches_the_parametrisation() -> None:
    truth = jagged_truth(80_000, seed=3, max_objects=4)
    detector = PhotonDetector(SmearingConfig("baseline"))
    out = reconstruct_photons(truth, detector, seed=5)
    assert out.fields == ["photons", "truth_photons", "mu"]
    # reco lists are ordered by reco E_T and hold no more objects than the truth
    assert ak.all(out.photons.pt[:, :-1] >= out.photons.pt[:, 1:])
    assert ak.all(ak.num(out.photons) <= ak.num(out.truth_photons))
    assert ak.all(out.truth_photons.pt[:, :-1] >= out.truth_photons.pt[:, 1:])
    m = match_objects(out.truth_photons, out.photons, max_dr=0.05)
    assert int(ak.sum(m.reco_matched)) == int(ak.sum(ak.num(out.photons)))  # every reco photon has its truth photon
    found = ak.to_numpy(ak.flatten(m.truth_matched))
    tp = out.truth_photons
    counts = ak.to_numpy(ak.num(tp))
    expected = detector.efficiency(
        ak.to_numpy(ak.flatten(tp.pt)),
        ak.to_numpy(ak.flatten(tp.eta)),
        np.repeat(out.mu.to_numpy(), counts),
        ak.to_numpy(ak.flatten(nearest_other(tp))),
    )
    pt = ak.to_numpy(ak.flatten(tp.pt))
    for lo, hi in ((10, 15), (15, 25), (25, 50), (50, 150)):
        sel = (pt >= lo) & (pt < hi)
        p = expected[sel].mean()
        err = np.sqrt(p * (1 - p) / sel.sum())
        assert abs(found[sel].mean() - p) < 4 * err, (lo, hi)
    assert 0.6 < found.mean() < 0.95
    # the matched responses are paper A's
    t, r = m.pairs(tp, out.photons)
    d = ak.to_numpy(ak.flatten(r.pt - t.pt))
    mu = np.repeat(out.mu.to_numpy(), ak.to_numpy(ak.num(t)))
    z = d / resolution("pt", ak.to_numpy(ak.flatten(t.pt)), ak.to_numpy(ak.flatten(t.eta)), mu)
    assert z.std() == pytest.approx(1.0, abs=0.01)


def test_reference_photon_detector_is_seeded_and_keeps_truth_fields() -> None:
    truth = jagged_truth(500, seed=4)
    truth = ak.with_field(
        truth,
        ak.zip({"from_higgs": truth.photons.pt > 100} | {f: truth.photons[f] for f in ("pt", "eta", "phi")}),
        "photons",
    )
    unmerged = PhotonDetector(merge_dr=0.0)
    a = reconstruct_photons(truth, unmerged, seed=1, truth_collection="gen")
    b = reconstruct_photons(truth, unmerged, seed=1, truth_collection="gen")
    c = reconstruct_photons(truth, unmerged, seed=2, truth_collection="gen")
    assert ak.all(ak.flatten(a.photons.pt) == ak.flatten(b.photons.pt))
    assert not ak.all(ak.num(a.photons) == ak.num(c.photons))
    assert "from_higgs" in a.gen.fields and ak.all((a.gen.pt > 100) == a.gen.from_higgs)
    assert ak.all(abs(a.photons.phi) <= np.pi) and ak.all(a.photons.pt > 0)
    lossless = PhotonDetector(
        efficiency=ParametricEfficiency(plateau=1.0, pt_drop=0, eta_drop=0, mu_drop=0, iso_drop=0), merge_dr=0.0
    )
    assert ak.all(ak.num(reconstruct_photons(truth, lossless).photons) == ak.num(truth.photons))
    assert PhotonDetector.from_dict(json.loads(json.dumps(lossless.to_dict()))) == lossless
    with pytest.raises(InputError, match="no field 'gen_photons'"):
        reconstruct_photons(truth, collection="gen_photons")
    with pytest.raises(InputError, match="PhotonDetector"):
        reconstruct_photons(truth, SmearingConfig())  # type: ignore[arg-type]


def test_reference_jet_detector() -> None:
    from mcsurrogate.generators.higgs_benchmark import DetectorModel

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 7, 40_000)
    n = int(counts.sum())
    jets = ak.unflatten(
        ak.zip(
            {
                "pt": rng.uniform(20, 200, n),
                "eta": rng.uniform(-2.5, 2.5, n),
                "phi": rng.uniform(-np.pi, np.pi, n),
                "mass": rng.uniform(0, 10, n),
                "flavour": rng.choice([0, 4, 5], n),
            }
        ),
        counts,
    )
    truth = ak.zip({"jets": jets, "mu": rng.uniform(0, 40, len(counts))}, depth_limit=1)
    det = DetectorModel()
    out = reconstruct_jets(truth, det, seed=3)
    assert out.fields == ["jets", "truth_jets", "mu"]
    m = match_objects(out.truth_jets, out.jets, max_dr=1e-9 + 1e-12)
    t, r = m.pairs(out.truth_jets, out.jets)
    assert ak.all(t.eta == r.eta) and ak.all(t.phi == r.phi)  # the benchmark's detector scales the four-momentum
    ratio = ak.to_numpy(ak.flatten(r.pt / t.pt))
    energy = ak.to_numpy(ak.flatten(t.pt * np.cosh(t.eta)))
    pull = (ratio - 1) / det.jet_resolution(energy, ak.to_numpy(ak.flatten(t.eta)))
    assert pull.std() == pytest.approx(1.0, abs=0.02)
    flav, tag = ak.to_numpy(ak.flatten(t.flavour)), ak.to_numpy(ak.flatten(r.btag))
    for label, p in ((5, det.btag_efficiency), (4, det.c_mistag), (0, det.light_mistag)):
        assert tag[flav == label].mean() == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / (flav == label).sum()))
    frac = float(ak.sum(m.truth_matched) / ak.sum(ak.num(out.truth_jets)))
    assert 0.75 < frac < 0.97
    with pytest.raises(InputError, match=r"lack field\(s\) \['flavour'\]"):
        reconstruct_jets(ak.zip({"jets": jets[["pt", "eta", "phi", "mass"]], "mu": truth.mu}, depth_limit=1))


def test_close_truth_photons_are_merged_before_the_detector() -> None:
    # a π⁰-like pair (ΔR 0.01) with a third photon 0.03 from the second (a chain), and a far photon
    photons = ak.Array(
        [
            [
                {"pt": 30.0, "eta": 0.50, "phi": 0.0, "tag": 1},
                {"pt": 10.0, "eta": 0.51, "phi": 0.0, "tag": 2},
                {"pt": 5.0, "eta": 0.54, "phi": 0.0, "tag": 3},
                {"pt": 40.0, "eta": -1.0, "phi": 2.0, "tag": 4},
            ],
            [],
        ]
    )
    merged = merge_close(photons, 0.05)
    assert ak.num(merged).tolist() == [2, 0]
    assert merged.tag.tolist() == [[1, 4], []] and merged.n_merged.tolist() == [[3, 1], []]  # 45 GeV, then 40
    lead = ak.zip({f: photons[f] for f in ("pt", "eta", "phi")} | {"mass": photons.pt * 0.0}, with_name="Momentum4D")
    total = lead[0, 0] + lead[0, 1] + lead[0, 2]
    assert float(merged[0, 0].pt) == pytest.approx(float(total.pt)) and float(merged[0, 0].mass) == pytest.approx(
        float(total.mass)
    )
    assert merge_close(photons, 0.005).n_merged.tolist() == [[1, 1, 1, 1], []]
    truth = ak.zip({"photons": photons[["pt", "eta", "phi"]], "mu": np.array([10.0, 0.0])}, depth_limit=1)
    out = reconstruct_photons(truth, PhotonDetector(merge_dr=0.05), seed=0)
    assert ak.num(out.truth_photons).tolist() == [2, 0] and "n_merged" in out.truth_photons.fields
    assert ak.num(reconstruct_photons(truth, PhotonDetector(merge_dr=0.0)).truth_photons).tolist() == [4, 0]


def test_designed_correlation_of_each_scenario() -> None:
    assert SmearingConfig("correlation", rho=0.5).designed_rho == 0.5
    assert SmearingConfig("baseline").designed_rho == 0.0 and SmearingConfig("asymmetric").designed_rho == 0.0
