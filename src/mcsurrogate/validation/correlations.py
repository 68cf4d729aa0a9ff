"""Pearson and Spearman correlation matrices of the features, reference vs candidate, and their difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

__all__ = ["CorrelationComparison", "compare_correlations"]


@dataclass
class CorrelationComparison:
    names: list[str]
    pearson_reference: np.ndarray
    pearson_candidate: np.ndarray
    spearman_reference: np.ndarray
    spearman_candidate: np.ndarray

    @property
    def max_abs_difference(self) -> dict[str, float]:
        return {
            "pearson": float(np.max(np.abs(self.pearson_candidate - self.pearson_reference))),
            "spearman": float(np.max(np.abs(self.spearman_candidate - self.spearman_reference))),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "pearson_reference": self.pearson_reference.tolist(),
            "pearson_candidate": self.pearson_candidate.tolist(),
            "spearman_reference": self.spearman_reference.tolist(),
            "spearman_candidate": self.spearman_candidate.tolist(),
            "max_abs_difference": self.max_abs_difference,
        }


def _spearman(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(spearmanr(x).statistic) if x.shape[1] > 1 else np.ones((1, 1))


def compare_correlations(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str]) -> CorrelationComparison:
    """Correlation matrices (features in columns) of both samples."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    return CorrelationComparison(
        list(names),
        np.atleast_2d(np.corrcoef(a, rowvar=False)),
        np.atleast_2d(np.corrcoef(b, rowvar=False)),
        _spearman(a),
        _spearman(b),
    )
