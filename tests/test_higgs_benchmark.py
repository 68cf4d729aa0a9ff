"""The HIGGS-like benchmark: detector model on synthetic input, and small real Pythia 8 + FastJet runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.generators.higgs_benchmark import (
    FEATURES,
    HIGH_LEVEL_FEATURES,
    JET_ETA_MAX,
    JET_PT_MIN,
    LEPTON_ETA_MAX,
    LEPTON_PT_MIN,
    LOW_LEVEL_FEATURES,
    M_W,
    ONE_LEPTONIC_W,
    DetectorModel,
    exact_w_mass,
    generate_higgs_benchmark,
    high_level_features,
    iterate_higgs_benchmark,
    leptonic_w_count,
    neutrino_pz,
    signal_settings,
    ttbar_settings,
)
from mcsurrogate.generators.pythia import GenerationStats, run_pythia
from mcsurrogate.io import read_events, write_events

needs_pythia = pytest.mark.skipif(
    importlib.util.find_spec("pythia8mc") is None or importlib.util.find_spec("fastjet") is None,
    reason="needs the extra 'generate' (pythia8mc, fastjet)",
)


# -- detector model and reconstruction, no Pythia ---------------------------------------------------------
def test_jet_energy_resolution_as_configured() -> None:
    det = DetectorModel()
    rng = np.random.default_rng(1)
    n = 40_000
    for pt, eta in ((100.0, 0.0), (40.0, 2.0), (30.0, 4.0)):
        scale = det.smear_jets(np.full(n, pt), np.full(n, eta), rng)
        energy = pt * np.cosh(eta)
        a, c, noise = {0.0: (0.5205, 0.0302, 1.59), 2.0: (0.706, 0.05, 0.0), 4.0: (1.0, 0.0942, 0.0)}[eta]
        expected = np.sqrt((c * energy) ** 2 + a**2 * energy + noise**2) / energy
        assert det.jet_resolution(np.array([energy]), np.array([eta]))[0] == pytest.approx(expected)
        assert np.mean(scale) == pytest.approx(1.0, abs=4 * expected / np.sqrt(n) + 1e-3)
        assert np.std(scale) == pytest.approx(expected, rel=0.03)
    wider = DetectorModel(jet_energy_resolution=((5.0, 1.0, 0.10, 0.0),))
    assert np.std(wider.smear_jets(np.full(n, 100.0), np.zeros(n), rng)) == pytest.approx(np.hypot(0.1, 0.1), rel=0.03)
    assert np.all(wider.smear_jets(np.full(1000, 1.0), np.zeros(1000), rng) >= 0.0)  # clipped, never negative


def test_btag_rates_as_configured() -> None:
    det = DetectorModel(btag_efficiency=0.7, c_mistag=0.2, light_mistag=0.01)
    rng = np.random.default_rng(2)
    n = 50_000
    for flavour, rate in ((5, 0.7), (4, 0.2), (0, 0.01), (21, 0.01)):
        tagged = det.btag(np.full(n, flavour), rng.uniform(-2.4, 2.4, n), rng)
        assert tagged.dtype == bool
        assert tagged.mean() == pytest.approx(rate, abs=4 * np.sqrt(rate * (1 - rate) / n))
    assert not det.btag(np.full(n, 5), np.full(n, 2.6), rng).any()  # outside the tracker
    tight = DetectorModel(btag_efficiency=0.5, c_mistag=0.0, light_mistag=0.0)
    assert tight.btag(np.full(n, 5), np.zeros(n), rng).mean() == pytest.approx(0.5, abs=0.01)
    assert not tight.btag(np.full(n, 4), np.zeros(n), rng).any()


def test_lepton_efficiency_and_resolution() -> None:
    det = DetectorModel()
    rng = np.random.default_rng(3)
    n = 40_000
    pid = np.where(np.arange(n) % 2 == 0, 11, -13)
    scale, identified = det.smear_leptons(pid, np.full(n, 50.0), np.full(n, 0.3), rng)
    assert identified.mean() == pytest.approx(0.95, abs=0.006)
    electron = np.hypot(0.101 / np.sqrt(50 * np.cosh(0.3)), 0.0017)
    assert np.std(scale[pid == 11]) == pytest.approx(electron, rel=0.04)
    assert np.std(scale[pid == -13]) == pytest.approx(np.hypot(0.010, 50 * 1.0e-4), rel=0.04)
    assert det.lepton_efficiency(np.array([11, 13, 11]), np.array([2.0, 2.0, 2.6])).tolist() == [0.85, 0.85, 0.0]


def test_detector_model_validation_and_dict() -> None:
    with pytest.raises(InputError):
        DetectorModel(btag_efficiency=1.5)
    with pytest.raises(InputError):
        DetectorModel(jet_energy_resolution=((3.0, 0.5, 0.03, 0.0), (1.0, 0.5, 0.03, 0.0)))
    d = DetectorModel().to_dict()
    assert d["jet_r"] == 0.4 and d["jet_energy_resolution"][0] == [1.7, 0.5205, 0.0302, 1.59]


def test_neutrino_pz_and_masses_on_a_synthetic_event() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    # a W at rest-ish boosted along z: lepton and neutrino back to back in the W frame, then boosted
    lep_pt, lep_eta, lep_phi = rng.uniform(30, 80, n), rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n)
    met, met_phi = rng.uniform(20, 80, n), rng.uniform(-np.pi, np.pi, n)
    lpx, lpy, lpz = lep_pt * np.cos(lep_phi), lep_pt * np.sin(lep_phi), lep_pt * np.sinh(lep_eta)
    mx, my = met * np.cos(met_phi), met * np.sin(met_phi)
    pz = neutrino_pz(lpx, lpy, lpz, mx, my)
    el, en = np.sqrt(lpx**2 + lpy**2 + lpz**2), np.sqrt(mx**2 + my**2 + pz**2)
    m = np.sqrt(np.maximum((el + en) ** 2 - (lpx + mx) ** 2 - (lpy + my) ** 2 - (lpz + pz) ** 2, 0))
    real = (0.5 * M_W**2 + lpx * mx + lpy * my) ** 2 >= lep_pt**2 * met**2
    assert real.any() and (~real).any()
    assert np.allclose(m[real], M_W, atol=1e-6) and np.all(m[~real] > M_W - 1e-6)
    events = {"lepton_pt": lep_pt, "lepton_eta": lep_eta, "lepton_phi": lep_phi, "met": met, "met_phi": met_phi}
    for i in range(1, 5):
        events |= {f"jet{i}_pt": rng.uniform(30, 100, n), f"jet{i}_eta": rng.uniform(-2, 2, n)}
        events |= {f"jet{i}_phi": rng.uniform(-np.pi, np.pi, n), f"jet{i}_mass": rng.uniform(0, 10, n)}
        events[f"jet{i}_btag"] = (rng.random(n) < 0.5).astype(float)
    high = high_level_features(events)
    assert list(high) == list(HIGH_LEVEL_FEATURES)
    assert all(np.isfinite(v).all() and (v >= 0).all() for v in high.values())
    assert np.allclose(high["m_lv"], m)
    # the constraint is an exact atom, not m_W plus float rounding; the complex solutions keep their mass
    assert np.all(high["m_lv"][real] == M_W) and np.all(high["m_lv"][~real] > M_W)
    assert np.array_equal(exact_w_mass(high["m_lv"]), high["m_lv"])  # idempotent
    # b candidates: jets 3 and 4 tagged, 1 and 2 not → m_bb = m(j3, j4), m_jj = m(j1, j2)
    for i, tag in zip(range(1, 5), (0.0, 0.0, 1.0, 1.0), strict=True):
        events[f"jet{i}_btag"] = np.full(n, tag)
    high = high_level_features(events)

    def pair_mass(a: int, b: int) -> np.ndarray:
        pt = [events[f"jet{k}_pt"] for k in (a, b)]
        eta = [events[f"jet{k}_eta"] for k in (a, b)]
        phi = [events[f"jet{k}_phi"] for k in (a, b)]
        mass = [events[f"jet{k}_mass"] for k in (a, b)]
        e = [np.sqrt((p * np.cosh(h)) ** 2 + q**2) for p, h, q in zip(pt, eta, mass, strict=True)]
        px = sum(p * np.cos(f) for p, f in zip(pt, phi, strict=True))
        py = sum(p * np.sin(f) for p, f in zip(pt, phi, strict=True))
        pz = sum(p * np.sinh(h) for p, h in zip(pt, eta, strict=True))
        return np.sqrt(np.maximum(sum(e) ** 2 - px**2 - py**2 - pz**2, 0))

    assert np.allclose(high["m_bb"], pair_mass(3, 4)) and np.allclose(high["m_jj"], pair_mass(1, 2))
    assert np.all(high["m_wwbb"] >= high["m_wbb"] - 1e-9)


# -- real events -----------------------------------------------------------------------------------------
def _run(process: str, n: int, seed: int, chunk_size: int, **kw: object) -> tuple[ak.Array, GenerationStats]:
    stats = GenerationStats()
    chunks = iterate_higgs_benchmark(process, n, seed=seed, chunk_size=chunk_size, progress=False, stats=stats, **kw)
    return ak.concatenate(list(chunks)), stats


@pytest.fixture(scope="module")
def ttbar() -> ak.Array:
    events, stats = _run("ttbar", 400, seed=7, chunk_size=200)
    # the W pair is generated semileptonic (ONE_LEPTONIC_W), so only the reconstruction-level selection rejects
    assert stats.accepted == 400 and 0.15 < stats.accepted / stats.tried < 0.5
    assert stats.events_per_second > 0
    return events


@pytest.fixture(scope="module")
def signal() -> ak.Array:
    events, stats = _run("signal", 300, seed=7, chunk_size=300)
    assert stats.accepted == 300 and 0.15 < stats.accepted / stats.tried < 0.5
    return events


def _decay_chain(event: object) -> dict[str, object]:
    """Generator-level products of the H⁰, H± and h of a signal event (bottom copies)."""
    found: dict[str, object] = {}
    for p in event:  # type: ignore[attr-defined]
        if p.idAbs() in (35, 37, 25) and p.statusAbs() == 22:
            last = event[p.iBotCopyId()]  # type: ignore[index]
            found[str(p.idAbs())] = sorted(event[d].idAbs() for d in last.daughterList())  # type: ignore[index]
    found["w"] = list(leptonic_w_count(event))
    return found


@needs_pythia
def test_signal_decay_chain() -> None:
    chains, _ = run_pythia(signal_settings(), 40, seed=3, select=_decay_chain, progress=False)
    assert all(c == [24, 37] for c in chains["35"].tolist())
    assert all(c == [24, 25] for c in chains["37"].tolist())
    assert all(c == [5, 5] for c in chains["25"].tolist())
    assert all(c[1] == 2 for c in chains["w"].tolist())
    n_leptonic = np.array([c[0] for c in chains["w"].tolist()])
    assert 0 < np.mean(n_leptonic == 1) < 0.7  # both W's decay freely to e ν, μ ν, q q̄'
    assert "MPI = off" in " ".join(signal_settings()) and "PartonLevel:MPI = on" in ttbar_settings(mpi=True)


def _leptonic_w_charge(event: object) -> dict[str, int]:
    """(n_leptonic, n_w) of the hard process and the charge of the W that decays to e ν or μ ν (0: none)."""
    n_leptonic, n_w = leptonic_w_count(event)
    charge = 0
    for p in event:  # type: ignore[attr-defined]
        if p.idAbs() == 24 and p.statusAbs() == 22:
            last = event[p.iBotCopyId()]  # type: ignore[index]
            if any(event[d].idAbs() in (11, 13) for d in last.daughterList()):  # type: ignore[index]
                charge = 1 if p.id() > 0 else -1
    return {"n_leptonic": n_leptonic, "n_w": n_w, "charge": charge}


@needs_pythia
@pytest.mark.parametrize("settings", [signal_settings, ttbar_settings])
def test_one_leptonic_w_alternates_the_charges(settings) -> None:
    # the two variants of ONE_LEPTONIC_W are generated in turn: W+ -> l nu first, then W- -> l nu, ...
    events, stats = run_pythia(
        settings(), 12, seed=3, select=_leptonic_w_charge, alternate=ONE_LEPTONIC_W, chunk_size=6, progress=False
    )
    assert stats.tried == 12 and events.n_w.tolist() == [2] * 12 and events.n_leptonic.tolist() == [1] * 12
    assert events.charge.tolist() == [1, -1] * 6


@needs_pythia
@pytest.mark.parametrize("name", ["ttbar", "signal"])
def test_columns_finite_and_selection(name: str, request: pytest.FixtureRequest) -> None:
    events = request.getfixturevalue(name)
    assert events.fields == list(FEATURES) and len(FEATURES) == 28 and len(LOW_LEVEL_FEATURES) == 21
    for f in FEATURES:
        x = events[f].to_numpy()
        assert x.dtype == np.float64 and np.isfinite(x).all(), f
    assert np.all(events.lepton_pt > LEPTON_PT_MIN) and np.all(abs(events.lepton_eta) < LEPTON_ETA_MAX)
    for i in range(1, 5):
        assert np.all(events[f"jet{i}_pt"] > JET_PT_MIN) and np.all(abs(events[f"jet{i}_eta"]) < JET_ETA_MAX)
        assert set(np.unique(events[f"jet{i}_btag"].to_numpy())) <= {0.0, 1.0}
        assert np.all(abs(events[f"jet{i}_phi"]) <= np.pi)
        if i > 1:
            assert np.all(events[f"jet{i - 1}_pt"] >= events[f"jet{i}_pt"])
    assert np.all(events.met >= 0) and np.all(abs(events.met_phi) <= np.pi)
    assert np.median(events.m_lv.to_numpy()) == pytest.approx(M_W)  # the W constraint mostly has a real solution
    n_tags = sum(events[f"jet{i}_btag"].to_numpy() for i in range(1, 5))
    assert 0.15 < np.mean(n_tags >= 2) < 0.6


@needs_pythia
def test_same_seed_same_events(ttbar: ak.Array) -> None:
    again, _ = _run("ttbar", 400, seed=7, chunk_size=200, n_workers=2)
    for f in FEATURES:
        assert np.array_equal(again[f].to_numpy(), ttbar[f].to_numpy()), f
    other, _ = _run("ttbar", 100, seed=8, chunk_size=200)
    assert not np.array_equal(other.lepton_pt.to_numpy(), ttbar.lepton_pt.to_numpy()[:100])


@needs_pythia
def test_continuing_a_file_gives_the_events_of_one_longer_run(ttbar: ak.Array, tmp_path: Path) -> None:
    # the fixture is chunks 0 and 1 (200 events each) of seed 7: a file of chunk 0, continued, must equal it
    first = write_events(ttbar[:200], tmp_path / "first.parquet")
    with pytest.raises(InputError, match="whole chunks"):
        generate_higgs_benchmark("ttbar", 400, tmp_path / "x.parquet", seed=7, chunk_size=150, continue_from=first)
    path, stats = generate_higgs_benchmark(
        "ttbar", 400, first, seed=7, chunk_size=200, continue_from=first, overwrite=True, progress=False
    )
    assert stats.accepted == 200  # only chunk 1 was generated
    longer = read_events(path)
    for f in FEATURES:
        assert np.array_equal(longer[f].to_numpy(), ttbar[f].to_numpy()), f
    with pytest.raises(InputError, match="first_chunk"):
        next(iter(iterate_higgs_benchmark("ttbar", 10, seed=7, first_chunk=-1)))


@needs_pythia
def test_ttbar_masses(ttbar: ak.Array) -> None:
    assert 60 < np.median(ttbar.m_jj.to_numpy()) < 110  # W → q q̄'
    assert 120 < np.median(ttbar.m_jjj.to_numpy()) < 220  # t → b q q̄'
    assert 130 < np.median(ttbar.m_jlv.to_numpy()) < 220  # t → b ℓ ν


@needs_pythia
def test_signal_mbb_near_higgs(signal: ak.Array, ttbar: ak.Array) -> None:
    # with two b-tags among the leading four jets, the signal's m_bb peaks near m_h (a little below: b-jet response
    # < 1, neutrinos of semileptonic b decays), the background's is broad
    def two_tag_mbb(events: ak.Array) -> np.ndarray:
        n_tags = sum(events[f"jet{i}_btag"].to_numpy() for i in range(1, 5))
        return events.m_bb.to_numpy()[n_tags >= 2]

    sig, bkg = two_tag_mbb(signal), two_tag_mbb(ttbar)
    assert len(sig) > 50 and len(bkg) > 50
    assert 95 < np.median(sig) < 135
    assert np.median(abs(sig - 125)) < np.median(abs(bkg - 125))
    in_window = [np.mean((m > 90) & (m < 140)) for m in (sig, bkg)]
    assert in_window[0] > 1.4 * in_window[1]


@needs_pythia
def test_generate_to_parquet_and_root(tmp_path) -> None:
    path, stats = generate_higgs_benchmark(
        "signal", 30, tmp_path / "sig.parquet", seed=1, chunk_size=30, progress=False
    )
    back = read_events(path)
    assert back.fields == list(FEATURES) and len(back) == 30 == stats.accepted
    path, _ = generate_higgs_benchmark("ttbar", 20, tmp_path / "tt.root", seed=1, chunk_size=20, progress=False)
    assert read_events(f"{path}:events").fields == list(FEATURES)
    with pytest.raises(InputError):
        next(iterate_higgs_benchmark("zz", 10, seed=1))  # type: ignore[arg-type]


@needs_pythia
def test_generate_cli_writes_events_and_metadata(tmp_path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "tt.parquet"
    cmd = [sys.executable, "-m", "mcsurrogate", "generate", "higgs-benchmark", "--process", "ttbar", "-n", "25"]
    cmd += ["--seed", "4", "--chunk-size", "25", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert read_events(out).fields == list(FEATURES) and len(read_events(out)) == 25
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["n_events"] == 25 and meta["seed"] == 4 and "Top:gg2ttbar = on" in meta["settings"]
    assert meta["alternating_settings"] == [list(v) for v in ONE_LEPTONIC_W]
    assert meta["command"].startswith("mcsurrogate generate higgs-benchmark --process ttbar -n 25 --seed 4")
    again = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=180)
    assert again.returncode != 0 and "exists" in again.stderr  # nothing overwritten without --overwrite
