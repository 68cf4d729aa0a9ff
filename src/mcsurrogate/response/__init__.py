"""Detector response (paper A): reference smearing, a conditional-flow response surrogate, and its validation."""

from __future__ import annotations

from .matching import Matching, match_objects, nearest_other
from .reference_detector import (
    JET_EFFICIENCY,
    PHOTON_EFFICIENCY,
    ParametricEfficiency,
    PhotonDetector,
    reconstruct_jets,
    reconstruct_photons,
)
from .smearing import (
    PolynomialMapping,
    SmearingConfig,
    object_responses,
    resolution,
    smear_photons,
    smear_responses,
)
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
    "JET_EFFICIENCY",
    "PHOTON_EFFICIENCY",
    "PRESETS",
    "Matching",
    "ParametricEfficiency",
    "PhotonDetector",
    "PolynomialMapping",
    "ResponseLayout",
    "SmearingConfig",
    "apply_response",
    "distill_response",
    "match_objects",
    "nearest_other",
    "object_responses",
    "reconstruct_jets",
    "reconstruct_photons",
    "resolution",
    "response_surrogate",
    "response_table",
    "smear_photons",
    "smear_responses",
    "train_response",
]
