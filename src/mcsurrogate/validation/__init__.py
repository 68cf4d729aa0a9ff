"""Statistical validation of generated samples against Monte Carlo: 1-D divergences with MC-vs-MC baselines and
classifier two-sample tests, density ratios, Fréchet/kernel physics distances, correlations, plots and reports."""

from __future__ import annotations

from .c2st import C2STResult, c2st
from .correlations import CorrelationComparison, compare_correlations
from .density_ratio import DensityRatio, fit_density_ratio, reweighted_c2st, tail_summary
from .divergences import FeatureDivergence, binned_divergences, compare_features
from .effective_statistics import EffectiveStatistics, effective_statistics
from .physics_distances import PhysicsDistances, fpd, frechet_distance, kpd, physics_distances
from .report import ValidationReport, validate, write_report

__all__ = [
    "C2STResult",
    "CorrelationComparison",
    "DensityRatio",
    "EffectiveStatistics",
    "FeatureDivergence",
    "PhysicsDistances",
    "ValidationReport",
    "binned_divergences",
    "c2st",
    "compare_correlations",
    "compare_features",
    "effective_statistics",
    "fit_density_ratio",
    "fpd",
    "frechet_distance",
    "kpd",
    "physics_distances",
    "reweighted_c2st",
    "tail_summary",
    "validate",
    "write_report",
]
