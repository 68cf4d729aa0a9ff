"""Real Pythia 8 runs, small."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("pythia8mc")

from mcsurrogate.data_files import default_truth_metadata, load_default_truth
from mcsurrogate.errors import InputError
from mcsurrogate.generators import (
    generate_higgs_diphoton,
    higgs_diphoton_settings,
    iterate_final_state,
    read_settings,
    run_pythia,
)
from mcsurrogate.generators.higgs_diphoton import higgs_photons

Z_MUMU = [
    "Beams:eCM = 13000",
    "WeakSingleBoson:ffbar2gmZ = on",
    "23:onMode = off",
    "23:onIfAny = 13",
    "PhaseSpace:mHatMin = 60",
    "PartonLevel:MPI = off",
    "HadronLevel:all = off",
]


def count_higgs_photons(event) -> dict:  # a top-level selection: it could be sent to worker processes
    products = higgs_photons(event)
    return {"n": len(products), "final_photons": sum(p.id() == 22 and p.isFinal() for p in products)}


@pytest.fixture(scope="module")
def events() -> ak.Array:
    ev, stats = generate_higgs_diphoton(300, seed=5, chunk_size=150, progress=False)
    assert stats.accepted == 300 and stats.tried >= 300
    return ev


def test_selected_photons_are_the_higgs_decay_products(events: ak.Array) -> None:
    assert ak.all(ak.num(events.photons, axis=1) == 2)
    assert ak.all(events.photons.pt > 20) and ak.all(abs(events.photons.eta) < 2.5)
    assert ak.all(events.photons.pt[:, 0] >= events.photons.pt[:, 1])
    mass = (events.photons[:, 0] + events.photons[:, 1]).mass
    m = ak.to_numpy(mass)  # the SM Higgs width is 4 MeV: a narrow Breit-Wigner
    assert abs(np.median(m) - 125.0) < 0.01 and np.mean(abs(m - 125.0) < 0.1) > 0.95
    pt = ak.to_numpy((events.photons[:, 0] + events.photons[:, 1]).pt)
    assert pt.mean() > 10  # ISR gives the Higgs transverse momentum
    mu = events.mu.to_numpy()
    assert mu.min() >= 0 and mu.max() <= 40


def test_same_seed_same_events_whatever_the_workers(events: ak.Array) -> None:
    again, _ = generate_higgs_diphoton(300, seed=5, chunk_size=150, n_workers=2, progress=False)
    assert ak.all(again.photons.pt == events.photons.pt) and ak.all(again.mu == events.mu)
    other, _ = generate_higgs_diphoton(150, seed=6, chunk_size=150, progress=False)
    assert not ak.all(other.photons.pt == events.photons.pt[:150])


def test_no_event_loses_a_higgs_photon() -> None:
    # before any cut, every event holds both decay photons in the final state (no shower branching γ → ff̄)
    counts, stats = run_pythia(
        higgs_diphoton_settings(hadronization=True), 60, seed=8, select=count_higgs_photons, progress=False
    )
    assert stats.accepted == stats.tried == 60 and stats.failed == 0
    assert ak.all(counts.n == 2) and ak.all(counts.final_photons == 2)


def test_any_settings_final_state_particles(tmp_path) -> None:
    events = ak.concatenate(
        list(
            iterate_final_state(Z_MUMU, 40, seed=2, pdg_ids=[13], pt_min=5, min_count=2, chunk_size=20, progress=False)
        )
    )
    assert len(events) == 40 and ak.all(ak.num(events.particles) >= 2)
    particles = events.particles
    assert ak.all(abs(particles.pdg_id) == 13) and ak.all(particles.pt > 5)
    assert ak.all(particles.pt[:, :-1] >= particles.pt[:, 1:])
    mass = ak.to_numpy((particles[:, 0] + particles[:, 1]).mass)
    assert 80 < np.median(mass) < 100  # the Z peak
    cmnd = tmp_path / "z.cmnd"
    cmnd.write_text("! Drell-Yan\n\n" + "\n".join(Z_MUMU) + "\n")
    assert read_settings(cmnd) == Z_MUMU
    cmnd.write_text("Beams:eCM = 13000\nRandom:seed = 4\n")
    with pytest.raises(InputError, match="sets the random seed"):
        read_settings(cmnd)
    with pytest.raises(InputError, match="does not exist"):
        read_settings(tmp_path / "missing.cmnd")


def test_settings_and_errors() -> None:
    assert "HiggsSM:gg2Httbar = on" in higgs_diphoton_settings("ttH")
    assert "PartonLevel:MPI = on" in higgs_diphoton_settings(mpi=True)
    with pytest.raises(InputError, match="unknown Higgs production"):
        higgs_diphoton_settings("VBF")  # type: ignore[arg-type]
    from mcsurrogate.generators.higgs_diphoton import select_higgs_photons

    with pytest.raises(InputError, match="rejected the setting"):
        run_pythia(["Beams:eCM = 13000", "NoSuch:thing = on"], 10, seed=1, select=select_higgs_photons, progress=False)
    with pytest.raises(InputError, match="alternate must be a sequence of settings lists"):
        run_pythia(["Beams:eCM = 13000"], 10, seed=1, select=select_higgs_photons, alternate=["24:onMode = off"])
    with pytest.raises(InputError, match="rejected the setting"):  # a variant's lines are checked like the rest
        run_pythia(higgs_diphoton_settings(), 4, seed=1, select=select_higgs_photons, alternate=[[], ["NoSuch:x = 1"]])


def test_packaged_sample_matches_its_metadata() -> None:
    meta = default_truth_metadata()
    code = (
        "from mcsurrogate.data_files import load_default_truth as load; t = load(); "
        "print((t.photons[:, 0] + t.photons[:, 1]).mass[0])"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False, text=True, timeout=120)
    assert fresh.returncode == 0 and abs(float(fresh.stdout) - 125.0) < 0.3, fresh.stderr  # vector registered by itself
    truth = load_default_truth()
    assert len(truth) == meta["n_events"] == meta["stats"]["accepted"] >= 100_000
    assert meta["settings"] == higgs_diphoton_settings(meta["process"])  # made by this code's settings
    assert f"--seed {meta['seed']}" in meta["command"] and meta["command"].startswith("mcsurrogate generate higgs-")
    assert ak.all(truth.photons.pt > 20) and ak.all(abs(truth.photons.eta) < 2.5)
    mass = (truth.photons[:, 0] + truth.photons[:, 1]).mass
    assert abs(float(np.median(ak.to_numpy(mass))) - 125.0) < 0.05


def test_generate_cli(tmp_path) -> None:
    out = tmp_path / "h.root"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "generate",
            "higgs-diphoton",
            "-n",
            "100",
            "--seed",
            "3",
            "--chunk-size",
            "100",
            "-o",
            str(out),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    from mcsurrogate.io import read_events

    assert len(read_events(out)) == 100 and (tmp_path / "h.json").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "mcsurrogate", "generate", "higgs-diphoton", "-n", "100", "--seed", "3", "-o", str(out)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "exists" in again.stderr
    (tmp_path / "z.cmnd").write_text("\n".join(Z_MUMU))
    z = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "generate",
            "pythia",
            "--settings",
            str(tmp_path / "z.cmnd"),
            "-n",
            "20",
            "--seed",
            "1",
            "--pdg-ids",
            "13",
            "--min-count",
            "2",
            "-o",
            str(tmp_path / "z.parquet"),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert z.returncode == 0, z.stderr
    import json

    meta = json.loads((tmp_path / "z.json").read_text())
    assert meta["settings"] == Z_MUMU and meta["n_events"] == len(read_events(tmp_path / "z.parquet")) == 20


def test_all_final_state_photons_with_hadronisation() -> None:
    ev, _ = generate_higgs_diphoton(
        120, seed=9, chunk_size=120, hadronization=True, all_photons_pt_min=5.0, progress=False
    )
    allp = ev.all_photons
    assert allp.fields == ["pt", "eta", "phi", "mass", "from_higgs"]
    assert ak.all(allp.pt > 5.0) and ak.all(abs(allp.eta) < 2.5)
    assert ak.all(allp.pt[:, :-1] >= allp.pt[:, 1:])
    # the two Higgs photons are among them, marked, and the same as the paper-A collection
    assert ak.all(ak.sum(allp.from_higgs, axis=1) == 2)
    higgs = allp[allp.from_higgs]
    assert ak.all(higgs.pt == ev.photons.pt) and ak.all(higgs.eta == ev.photons.eta)
    assert ak.any(ak.num(allp) > 2)  # π⁰ photons: real multiplicity
    # without the option, no extra collection and the same events (the selection is unchanged)
    plain, _ = generate_higgs_diphoton(120, seed=9, chunk_size=120, hadronization=True, progress=False)
    assert plain.fields == ["photons", "mu"] and ak.all(plain.photons.pt == ev.photons.pt)
    with pytest.raises(InputError, match="all_photons_pt_min"):
        generate_higgs_diphoton(10, seed=1, all_photons_pt_min=-1.0, progress=False)


def test_truth_jets_for_the_reference_jet_detector() -> None:
    pytest.importorskip("fastjet")
    from mcsurrogate.generators.higgs_benchmark import TruthJetSelector, iterate_truth_jets
    from mcsurrogate.response.reference_detector import reconstruct_jets

    chunks = list(iterate_truth_jets("ttbar", 40, seed=3, chunk_size=20, progress=False))
    ev = ak.concatenate(chunks)
    assert len(ev) == 40 and ev.fields == ["jets", "mu"]
    jets = ev.jets
    assert ak.all(jets.pt > 20) and ak.all(abs(jets.eta) < 2.5) and ak.all(jets.pt[:, :-1] >= jets.pt[:, 1:])
    assert ak.sum(jets.flavour == 5) >= 40  # t t̄: two b jets in most events
    assert 0 <= ak.min(ev.mu) and ak.max(ev.mu) <= 40
    again = ak.concatenate(list(iterate_truth_jets("ttbar", 40, seed=3, chunk_size=20, progress=False)))
    assert ak.all(ak.flatten(again.jets.pt) == ak.flatten(jets.pt))
    reco = reconstruct_jets(ev, seed=1)
    assert ak.all(ak.num(reco.jets) <= ak.num(reco.truth_jets)) and set(reco.jets.fields) >= {"pt", "btag"}
    with pytest.raises(InputError, match="unknown process"):
        iterate_truth_jets("wjets", 10, seed=1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="TruthJetSelector"):
        iterate_truth_jets("ttbar", 10, seed=1, selector=TruthJetSelector)  # type: ignore[arg-type]
