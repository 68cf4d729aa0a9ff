"""Detector response (paper A): reference smearing, a conditional-flow response surrogate, and its validation."""

from __future__ import annotations

from .matching import Matching, match_objects, nearest_other
from .smearing import PolynomialMapping, SmearingConfig, resolution, smear_photons, smear_responses
from .surrogate import (
    PRESETS,
    ResponseLayout,
    apply_response,
    distill_response,
    response_surrogate,
    response_table,
    train_response,
)

__all__ = [
    "PRESETS",
    "Matching",
    "PolynomialMapping",
    "ResponseLayout",
    "SmearingConfig",
    "apply_response",
    "distill_response",
    "match_objects",
    "nearest_other",
    "resolution",
    "response_surrogate",
    "response_table",
    "smear_photons",
    "smear_responses",
    "train_response",
]
