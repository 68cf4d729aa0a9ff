"""mcsurrogate: generative surrogates for LHC Monte Carlo.

Train normalizing flows (nflows) on the Monte Carlo you have, sample them as awkward event records
with vector four-momenta, validate them against MC with divergences and classifier two-sample tests,
and use them in pyhf HistFactory fits.

The public names below are imported lazily, so ``import mcsurrogate`` stays light and never pulls in
optional extras (Pythia 8, FastJet, coffea, dask).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("mcsurrogate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

_LAZY = {
    "Surrogate": "mcsurrogate.surrogate",
    "FlowConfig": "mcsurrogate.flows",
    "TrainConfig": "mcsurrogate.training",
    "FeatureSpec": "mcsurrogate.records",
    "ObjectSlots": "mcsurrogate.records",
    "DerivedObservable": "mcsurrogate.records",
    "Preprocessor": "mcsurrogate.preprocessing",
    "read_events": "mcsurrogate.io",
    "write_events": "mcsurrogate.io",
}

__all__ = [
    "DerivedObservable",
    "FeatureSpec",
    "FlowConfig",
    "ObjectSlots",
    "Preprocessor",
    "Surrogate",
    "TrainConfig",
    "__version__",
    "read_events",
    "write_events",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mcsurrogate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
