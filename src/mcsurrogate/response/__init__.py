"""Detector response (paper A): reference smearing, a conditional-flow response surrogate, and its validation; the
object-level response (issue 31): matching, a reference detector with efficiency, ObjectResponse."""

from __future__ import annotations

from .efficiency import EfficiencyConfig, EfficiencyModel
from .matching import Matching, match_objects, nearest_other
from .objects import ObjectLayout, ObjectResponse
from .reference_detector import (
    JET_EFFICIENCY,
    PHOTON_EFFICIENCY,
    ParametricEfficiency,
    PhotonDetector,
    merge_close,
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
    "EfficiencyConfig",
    "EfficiencyModel",
    "Matching",
    "ObjectLayout",
    "ObjectResponse",
    "ParametricEfficiency",
    "PhotonDetector",
    "PolynomialMapping",
    "ResponseLayout",
    "SmearingConfig",
    "apply_response",
    "distill_response",
    "match_objects",
    "merge_close",
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
