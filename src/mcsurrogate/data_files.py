"""Data shipped inside the package: a Pythia 8 gg → H → γγ truth sample (so the demo and tests need no Pythia)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import awkward as ak

__all__ = ["default_truth_metadata", "default_truth_path", "load_default_truth"]

_NAME = "higgs_diphoton_truth.parquet"


def default_truth_path() -> Path:
    """Path of the packaged truth sample (Parquet: ``photons`` with pt [GeV], eta, phi [rad], mass; ``mu``)."""
    return Path(str(resources.files("mcsurrogate") / "data" / _NAME))


def default_truth_metadata() -> dict[str, Any]:
    """How the packaged sample was made: command, seed, Pythia settings and version, counts."""
    return json.loads(default_truth_path().with_suffix(".json").read_text())


def load_default_truth() -> ak.Array:
    """The packaged truth sample as awkward records with vector ``Momentum4D`` photons (behaviours registered)."""
    from . import records  # noqa: F401  (registers vector's awkward behaviours)
    from .io import read_events

    return read_events(default_truth_path())
