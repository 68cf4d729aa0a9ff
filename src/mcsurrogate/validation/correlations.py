"""Pearson and Spearman correlation matrices of the features, reference vs candidate, and their difference.

Both are weighted by the event weights of each sample. Pearson: the weighted covariance (``numpy.cov`` with
``aweights``) normalised to unit diagonal. Spearman: the weighted Pearson correlation of each feature's weighted
mid-ranks, rank(x) = W(< x) + ½ W(= x) with W the summed weight; unweighted this is ``scipy.stats.spearmanr``
(average ranks for ties), and integer weights give the numbers of the sample with each event repeated (tested).
A feature that is constant in a sample has no correlation: its row and column are NaN in the arrays and null in
``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .samples import check_sample, check_weights

__all__ = ["CorrelationComparison", "compare_correlations"]


@dataclass
class CorrelationComparison:
    """Weighted Pearson and Spearman matrices (features × features) of the reference and the candidate."""

    names: list[str]
    pearson_reference: np.ndarray
    pearson_candidate: np.ndarray
    spearman_reference: np.ndarray
    spearman_candidate: np.ndarray

    @property
    def max_abs_difference(self) -> dict[str, float]:
        """Largest |ρ(candidate) − ρ(reference)| over feature pairs (NaN entries ignored; NaN if all are)."""

        def worst(a: np.ndarray, b: np.ndarray) -> float:
            d = np.abs(a - b)
            return float(np.nanmax(d)) if np.isfinite(d).any() else float("nan")

        return {
            "pearson": worst(self.pearson_candidate, self.pearson_reference),
            "spearman": worst(self.spearman_candidate, self.spearman_reference),
        }

    def to_dict(self) -> dict[str, Any]:
        def clean(m: np.ndarray) -> list[list[float | None]]:
            return [[float(v) if np.isfinite(v) else None for v in row] for row in m]

        worst = self.max_abs_difference
        return {
            "names": self.names,
            "pearson_reference": clean(self.pearson_reference),
            "pearson_candidate": clean(self.pearson_candidate),
            "spearman_reference": clean(self.spearman_reference),
            "spearman_candidate": clean(self.spearman_candidate),
            "max_abs_difference": {k: v if np.isfinite(v) else None for k, v in worst.items()},
        }


def weighted_pearson(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Correlation matrix of the columns of ``x`` (n, d) with event weights ``w``."""
    cov = np.atleast_2d(np.cov(x, rowvar=False, aweights=w))
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, np.where(sd > 0, 1.0, np.nan))
    return corr


def weighted_midranks(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted mid-rank W(< x_i) + ½ W(= x_i) of every value of the 1-D array ``x``."""
    w = np.ones(len(x)) if w is None else w
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    group_weight = np.add.reduceat(ws, starts)
    below = np.cumsum(group_weight) - group_weight
    group = np.cumsum(np.r_[True, np.diff(xs) != 0]) - 1
    ranks = np.empty(len(x))
    ranks[order] = (below + 0.5 * group_weight)[group]
    return ranks


def weighted_spearman(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Spearman correlation matrix of the columns of ``x`` (n, d): weighted Pearson of weighted mid-ranks."""
    ranks = np.column_stack([weighted_midranks(x[:, j], w) for j in range(x.shape[1])])
    return weighted_pearson(ranks, w)


def compare_correlations(
    reference: np.ndarray,
    candidate: np.ndarray,
    names: Sequence[str],
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
) -> CorrelationComparison:
    """Weighted Pearson and Spearman matrices (features in columns) of both samples."""
    a = check_sample(reference, "reference")
    b = check_sample(candidate, "candidate", a.shape[1])
    wa = check_weights(weights_reference, len(a), "weights_reference")
    wb = check_weights(weights_candidate, len(b), "weights_candidate")
    return CorrelationComparison(
        list(names),
        weighted_pearson(a, wa),
        weighted_pearson(b, wb),
        weighted_spearman(a, wa),
        weighted_spearman(b, wb),
    )
