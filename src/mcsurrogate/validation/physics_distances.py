"""Fréchet and kernel physics distances (FPD, KPD; Kansal et al., arXiv 2211.10295) on standardised features.

Both are computed on features standardised with the reference's mean and SD, so that GeV and radians weigh
alike.

* **FPD**: the Fréchet distance between Gaussians fitted to the two samples,
  ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½), is biased upwards at finite N by a term ∝ 1/N. Following
  Kansal et al. it is computed on subsets of sizes N between ``n_min`` and ``n_max`` and extrapolated linearly in
  1/N to N → ∞; the error is the standard error of the intercept.
* **KPD**: the unbiased estimator of the squared maximum mean discrepancy with the cubic polynomial kernel
  k(x, y) = (x·y / d + 1)³, computed on ``n_subsets`` random subsets of ``subset_size`` events; the median and
  half the interquartile range are reported.

Each comes with its MC-vs-MC baseline: the same number between two halves of the reference.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..errors import InputError

__all__ = ["fpd", "frechet_distance", "kpd"]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to samples ``a`` and ``b`` (both (n, d))."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))


def _standardise(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    can = np.asarray(candidate, dtype=np.float64)
    if ref.ndim != 2 or can.ndim != 2 or ref.shape[1] != can.shape[1]:
        raise InputError(f"reference {ref.shape} and candidate {can.shape} must be (n, d) with the same d")
    if len(ref) < 10 or len(can) < 10:
        raise InputError(f"FPD/KPD need at least 10 events per sample; got {len(ref)} and {len(can)}")
    mean, sd = ref.mean(axis=0), ref.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (ref - mean) / sd, (can - mean) / sd


def fpd(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    n_min: int = 5_000,
    n_max: int = 50_000,
    n_points: int = 10,
    seed: int = 0,
) -> tuple[float, float]:
    """FPD extrapolated to infinite sample size, and its error (see the module docstring)."""
    a, b = _standardise(reference, candidate)
    rng = np.random.default_rng(seed)
    top = min(n_max, len(a), len(b))
    low = min(n_min, max(top // 2, 10))
    sizes = np.unique(np.linspace(low, top, n_points).astype(int))
    values = []
    for n in sizes:
        values.append(
            frechet_distance(a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)])
        )
    if len(sizes) < 3:
        return float(values[-1]), float("nan")
    x = 1.0 / sizes
    coef, cov = np.polyfit(x, np.array(values), 1, cov=True)
    return float(coef[1]), float(np.sqrt(cov[1, 1]))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean()
    )


def kpd(
    reference: np.ndarray, candidate: np.ndarray, *, subset_size: int = 2_000, n_subsets: int = 10, seed: int = 0
) -> tuple[float, float]:
    """KPD (unbiased MMD², cubic polynomial kernel): median over subsets and half the interquartile range."""
    a, b = _standardise(reference, candidate)
    rng = np.random.default_rng(seed)
    n = min(subset_size, len(a), len(b))
    vals = [
        _mmd2_unbiased(a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)])
        for _ in range(n_subsets)
    ]
    q1, med, q3 = np.quantile(vals, [0.25, 0.5, 0.75])
    return float(med), float((q3 - q1) / 2)
