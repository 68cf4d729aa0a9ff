"""Normalizing-flow families on nflows, behind one registry (:func:`build_flow`)."""

from __future__ import annotations

from .made import ConditionalMADE
from .made_mog import MADEMoG
from .model import FlowModel, StandardNormal
from .registry import FLOW_FAMILIES, FlowConfig, build_flow

__all__ = ["FLOW_FAMILIES", "ConditionalMADE", "FlowConfig", "FlowModel", "MADEMoG", "StandardNormal", "build_flow"]
