"""Statistical validation of generated samples against Monte Carlo: 1-D divergences with MC-vs-MC baselines and
classifier two-sample tests."""

from __future__ import annotations

from .c2st import C2STResult, c2st
from .divergences import FeatureDivergence, binned_divergences, compare_features

__all__ = ["C2STResult", "FeatureDivergence", "binned_divergences", "c2st", "compare_features"]
