"""Truth-level event generation with Pythia 8 (optional extra ``generate``; imported lazily when run)."""

from __future__ import annotations

from .higgs_diphoton import generate_higgs_diphoton, higgs_diphoton_settings, iterate_higgs_diphoton
from .pythia import GenerationStats, iterate_final_state, iterate_pythia, read_settings, run_pythia, select_final_state

__all__ = [
    "GenerationStats",
    "generate_higgs_diphoton",
    "higgs_diphoton_settings",
    "iterate_final_state",
    "iterate_higgs_diphoton",
    "iterate_pythia",
    "read_settings",
    "run_pythia",
    "select_final_state",
]
