"""The samples a validation compares: (n, d) feature arrays and their event weights.

Every number of :mod:`mcsurrogate.validation` takes event weights on both sides. This module checks them once and
gives the weighted building blocks the rest uses:

* :func:`check_sample` / :func:`check_weights`: non-empty finite float64 arrays; weights one per event, finite,
  non-negative and not all zero, else an :class:`~mcsurrogate.errors.InputError` that names the parameter.
* :func:`kish_size`: Kish's effective sample size (Σw)²/Σw², the size an unweighted sample with the same
  statistical power would have; it sizes the MC-vs-MC baselines and the weighted KS p-value.
* :func:`weighted_quantile`: quantiles of the weighted empirical distribution.
* :func:`resample`: indices drawn with replacement with probability ∝ weight (a *weighted resample*, used by
  FPD and KPD, whose subsets are unweighted by construction).
"""

from __future__ import annotations

import numpy as np

from ..arguments import check_numeric_array
from ..errors import InputError

__all__ = ["check_sample", "check_weights", "kish_size", "resample", "weighted_quantile"]


def check_sample(x: np.ndarray, name: str, d: int | None = None) -> np.ndarray:
    """``x`` as a non-empty finite (n, d) float64 array (a 1-D array is one feature); ``d``: the expected number
    of features. ``name`` is the parameter named in the error (strings, also numeric ones, are refused)."""
    x = check_numeric_array(x, name)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise InputError(f"{name} must be a non-empty (n, d) array, got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise InputError(f"{name} has {x.shape[1]} features, the reference has {d}")
    bad = ~np.isfinite(x)
    if bad.any():
        raise InputError(f"{name} has {int(bad.any(axis=1).sum())} events with NaN/inf; remove them first")
    return x


def check_weights(w: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """Event weights ``w`` for ``n`` events as float64, or None (unweighted). Refused, naming ``name``: a shape
    other than (n,), NaN or inf, negative weights, and weights that sum to zero."""
    if w is None:
        return None
    w = check_numeric_array(w, name)
    if w.shape != (n,):
        raise InputError(f"{name} has shape {w.shape}, expected ({n},): one weight per event")
    bad = int((~np.isfinite(w)).sum())
    if bad:
        raise InputError(f"{name} holds {bad} NaN or infinite weights; every weight must be finite")
    negative = int((w < 0).sum())
    if negative:
        raise InputError(
            f"{name} holds {negative} negative weights; the distances and classifier tests need non-negative "
            "weights: remove them or absorb them into positive weights (e.g. by cell resampling) first"
        )
    if not w.sum() > 0:
        raise InputError(f"{name} are all zero: no event carries weight")
    return w


def ones_if_none(w: np.ndarray | None, n: int) -> np.ndarray:
    """``w``, or unit weights for ``n`` events."""
    return np.ones(n) if w is None else w


def kish_size(w: np.ndarray | None, n: int) -> float:
    """Kish's effective sample size (Σw)²/Σw² of ``n`` events with weights ``w`` (``n`` when unweighted)."""
    if w is None:
        return float(n)
    return float(w.sum() ** 2 / np.sum(w**2))


def weighted_quantile(x: np.ndarray, q: np.ndarray | list[float], w: np.ndarray | None = None) -> np.ndarray:
    """Quantiles ``q`` (in [0, 1]) of ``x`` weighted by ``w``: the smallest value whose weighted empirical CDF
    reaches q (``numpy.quantile``'s ``"inverted_cdf"``, which integer weights reproduce as repeated events)."""
    x = np.asarray(x, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if w is None:
        return np.quantile(x, q, method="inverted_cdf")
    keep = w > 0
    order = np.argsort(x[keep], kind="stable")
    xs, ws = x[keep][order], w[keep][order]
    cdf = np.cumsum(ws) / ws.sum()
    return xs[np.minimum(np.searchsorted(cdf, q, side="left"), len(xs) - 1)]


def resample(rng: np.random.Generator, n: int, size: int, cdf: np.ndarray | None = None) -> np.ndarray:
    """``size`` indices into ``n`` events drawn with replacement: uniformly (``cdf`` None: ``rng.choice``, the
    draw jetnet makes), or with probability ∝ weight (``cdf``: the normalised cumulative weights)."""
    if cdf is None:
        return rng.choice(n, size=size)
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)


def weight_cdf(w: np.ndarray | None) -> np.ndarray | None:
    """Normalised cumulative weights for :func:`resample` (None when unweighted)."""
    if w is None:
        return None
    c = np.cumsum(w)
    return c / c[-1]
