"""Real Pythia 8 runs, small."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("pythia8mc")

from mcsurrogate.data_files import default_truth_metadata, load_default_truth  # noqa: E402
from mcsurrogate.errors import InputError  # noqa: E402
from mcsurrogate.generators import generate_higgs_diphoton, higgs_diphoton_settings  # noqa: E402


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


def test_settings_and_errors() -> None:
    assert "HiggsSM:gg2Httbar = on" in higgs_diphoton_settings("ttH")
    assert "PartonLevel:MPI = on" in higgs_diphoton_settings(mpi=True)
    with pytest.raises(InputError, match="unknown Higgs production"):
        higgs_diphoton_settings("VBF")  # type: ignore[arg-type]
    from mcsurrogate.generators import run_pythia
    from mcsurrogate.generators.higgs_diphoton import select_higgs_photons

    with pytest.raises(InputError, match="rejected the setting"):
        run_pythia(["Beams:eCM = 13000", "NoSuch:thing = on"], 10, seed=1, select=select_higgs_photons, progress=False)


def test_packaged_sample_matches_its_metadata() -> None:
    meta = default_truth_metadata()
    truth = load_default_truth()
    assert len(truth) == meta["n_events"] >= 100_000
    assert meta["seed"] and meta["settings"] and "mcsurrogate generate higgs-diphoton" in meta["command"]
    mass = (truth.photons[:, 0] + truth.photons[:, 1]).mass
    assert abs(float(np.median(ak.to_numpy(mass))) - 125.0) < 0.05


def test_generate_cli(tmp_path) -> None:
    out = tmp_path / "h.root"
    proc = subprocess.run([sys.executable, "-m", "mcsurrogate", "generate", "higgs-diphoton", "-n", "100", "--seed", "3",
                           "--chunk-size", "100", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from mcsurrogate.io import read_events

    assert len(read_events(out)) == 100 and (tmp_path / "h.json").is_file()
