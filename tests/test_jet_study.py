"""The jet object-response study: evaluation against known answers, the study end to end on a tiny sample, the truth
cache."""

from __future__ import annotations

import dataclasses
import json

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.generators.higgs_benchmark import DEFAULT_DETECTOR
from mcsurrogate.response.jet_study import (
    JetDetector,
    evaluate_jets,
    load_or_generate_truth_jets,
    run_jet_study,
    write_jet_report,
)
from mcsurrogate.response.reference_detector import JET_EFFICIENCY


def truth_jets(n_events: int, seed: int) -> ak.Array:
    """Jets as iterate_truth_jets writes them (p_T > 20 GeV, |η| < 2.5, mass, flavour) with a μ per event."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 8, n_events)
    n = int(counts.sum())
    jets = ak.zip(
        {
            "pt": 20 + rng.exponential(50, n),
            "eta": rng.uniform(-2.5, 2.5, n),
            "phi": rng.uniform(-np.pi, np.pi, n),
            "mass": rng.uniform(0, 15, n),
            "flavour": rng.choice([0, 4, 5], n),
        },
        with_name="Momentum4D",
    )
    return ak.zip({"jets": ak.unflatten(jets, counts), "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)


def test_evaluate_jets_passes_a_twin_of_the_detector_and_fails_a_wrong_one() -> None:
    truth = truth_jets(3000, 1)
    detector = JetDetector()
    reference = detector.passes(truth, 2, 10)
    twin = detector.passes(truth, 2, 20)
    ok = evaluate_jets(reference, twin, seed=1).headline()
    assert ok["efficiency_chi2_per_bin"] < 2.0 and ok["width_chi2_per_bin"] < 2.0
    assert ok["m_jj_chi2_per_bin"] < 2.0 and ok["h_t_chi2_per_bin"] < 2.0 and ok["btag_chi2_per_bin"] < 2.0
    assert abs(ok["h_t_mean_difference_gev"]) < 5.0
    # 30 % worse resolution and a 10-point lower efficiency plateau: both must show
    # and a b-tag working point of 60 % instead of 70 %
    worse = [(edge, a * 1.3, c * 1.3, n * 1.3) for edge, a, c, n in DEFAULT_DETECTOR.jet_energy_resolution]
    wrong = JetDetector(
        dataclasses.replace(DEFAULT_DETECTOR, jet_energy_resolution=tuple(worse), btag_efficiency=0.6),
        dataclasses.replace(JET_EFFICIENCY, plateau=JET_EFFICIENCY.plateau - 0.1),
    )
    bad = evaluate_jets(reference, wrong.passes(truth, 2, 30), seed=1).headline()
    assert bad["width_chi2_per_bin"] > 10 and not bad["met"]["widths"]
    assert bad["efficiency_chi2_per_bin"] > 10 and not bad["met"]["efficiency"]
    assert bad["btag_chi2_per_bin"] > 3 and not bad["met"]["btag"]  # the c and light bins do not move
    assert bad["h_t_mean_difference_gev"] < -5.0  # fewer jets: less H_T
    assert bad["met"]["multiplicity"] is False


def test_jet_study_end_to_end_on_a_tiny_sample(tmp_path) -> None:
    result = run_jet_study(
        truth_jets(1500, 2),
        {"other": truth_jets(400, 3)},
        train_passes=2,
        oversample=2,
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency={"epochs": 2, "device": "cpu"},
        efficiency_draws=3,
        seed=1,
    )
    assert result.model.layout.fields == ("pt",) and result.sizes["train_passes"] == 2
    assert len(result.evaluation.efficiency_draws) == 3 and len(result.evaluation.multiplicity_draws) == 3
    assert result.floor.keys() == {"test", "other"}
    report = write_jet_report(result, tmp_path, {"command": "test", "wall_seconds": 1.0})
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["test"]["headline"] == report["test"]["headline"]
    assert set(saved["test"]["headline"]["met"]) == {"efficiency", "multiplicity", "widths", "m_jj", "h_t", "btag"}
    # the b-tag: learned per flavour, its rates over draws of the tag decisions, and the floor's from the detector's
    assert result.model.layout.tags == ("btag",) and len(result.evaluation.tag_draws) == 3
    assert len(result.floor["test"].tag_draws) == 3 and set(result.evaluation.tags) >= {"b_pt", "light_abs_eta"}
    assert saved["test"]["btag"]["b_pt"]["n_reference"] and "b-tag χ²/bin" in (tmp_path / "README.md").read_text()
    readme = (tmp_path / "README.md").read_text()
    assert "| other |" in readme and "| other floor |" in readme
    assert (tmp_path / "jets_test.png").is_file() and (tmp_path / "jets_other.png").is_file()


def test_jet_study_refuses_what_it_cannot_use() -> None:
    with pytest.raises(InputError, match="'jets'"):
        run_jet_study(ak.zip({"photons": truth_jets(10, 1).jets, "mu": np.zeros(10)}, depth_limit=1))
    with pytest.raises(InputError, match="JetDetector"):
        run_jet_study(truth_jets(10, 1), detector="delphes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'test'"):
        run_jet_study(truth_jets(10, 1), {"test": truth_jets(10, 2)})


def test_truth_jets_are_generated_once_and_read_back(tmp_path) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    path = tmp_path / "ttbar.parquet"
    events, info = load_or_generate_truth_jets(path, 20, seed=3, process="ttbar")
    assert "generated" in info and len(events) == 20 and path.is_file()
    assert ak.all(ak.num(events.jets) >= 1) and ak.all(events.jets.pt > 20)
    again, info2 = load_or_generate_truth_jets(path, 20, seed=3, process="ttbar")
    assert info2 == {"cached": str(path), "n_events": 20}
    assert ak.to_list(again.jets.pt) == ak.to_list(events.jets.pt)
    assert not list(tmp_path.glob("*.tmp.parquet"))
