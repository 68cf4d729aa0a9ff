"""Truth-level event generation with Pythia 8 (optional extra ``generate``; imported lazily when run)."""

from __future__ import annotations

from .higgs_benchmark import (
    DetectorModel,
    TruthJetSelector,
    generate_higgs_benchmark,
    iterate_higgs_benchmark,
    iterate_truth_jets,
    signal_settings,
    ttbar_settings,
)
from .higgs_diphoton import generate_higgs_diphoton, higgs_diphoton_settings, iterate_higgs_diphoton
from .pythia import GenerationStats, iterate_final_state, iterate_pythia, read_settings, run_pythia, select_final_state

__all__ = [
    "DetectorModel",
    "GenerationStats",
    "TruthJetSelector",
    "generate_higgs_benchmark",
    "generate_higgs_diphoton",
    "higgs_diphoton_settings",
    "iterate_final_state",
    "iterate_higgs_benchmark",
    "iterate_higgs_diphoton",
    "iterate_pythia",
    "iterate_truth_jets",
    "read_settings",
    "run_pythia",
    "select_final_state",
    "signal_settings",
    "ttbar_settings",
]
