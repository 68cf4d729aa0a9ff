"""1-D divergences per feature, each next to its MC-vs-MC baseline.

For every feature: Wasserstein-1 on the samples themselves (``scipy.stats.wasserstein_distance``, weighted),
the two-sample KS test (``scipy.stats.ks_2samp``; unweighted), and on a common binning (quantiles of the
reference, ``bins`` bins, filled with ``hist`` weighted storage): χ² for two weighted histograms with its p-value,
KL divergence and Hellinger distance of the normalised histograms (bins empty in both are dropped; KL adds
1e-12 to each probability).

Baseline: the reference is split in two halves of the compared size (capped at half of the reference) and the
same numbers are computed between the halves, ``n_resamples`` times with fresh random splits (default 5); a
feature is flagged when its W1 lies above the baseline mean + 3 SD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = ["FeatureDivergence", "binned_divergences", "compare_features"]


def binned_divergences(
    a: np.ndarray, b: np.ndarray, edges: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None
) -> dict[str, float]:
    """χ² (statistic, ndf, p-value), KL(a‖b) and Hellinger between two weighted samples on ``edges``."""
    axis = hist.axis.Variable(edges, underflow=True, overflow=True)
    ha = hist.Hist(axis, storage=hist.storage.Weight()).fill(a, weight=wa)
    hb = hist.Hist(axis, storage=hist.storage.Weight()).fill(b, weight=wb)
    sa, va = ha.values(flow=True), ha.variances(flow=True)
    sb, vb = hb.values(flow=True), hb.variances(flow=True)
    na, nb = sa.sum(), sb.sum()
    keep = (sa > 0) | (sb > 0)
    sa, va, sb, vb = sa[keep], va[keep], sb[keep], vb[keep]
    # weighted two-sample χ² (Gagunashvili): compare normalised contents with their variances
    diff = sa / na - sb / nb
    var = va / na**2 + vb / nb**2
    ok = var > 0
    chi2 = float(np.sum(diff[ok] ** 2 / var[ok]))
    ndf = max(int(ok.sum()) - 1, 1)
    pa, pb = sa / na, sb / nb
    return {
        "chi2": chi2,
        "chi2_ndf": ndf,
        "chi2_pvalue": float(stats.chi2.sf(chi2, ndf)),
        "kl": float(np.sum((pa + 1e-12) * np.log((pa + 1e-12) / (pb + 1e-12)))),
        "hellinger": float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(pa * pb))))),
    }


def _one(
    a: np.ndarray, b: np.ndarray, wa: np.ndarray | None, wb: np.ndarray | None, edges: np.ndarray
) -> dict[str, float]:
    return {
        "wasserstein": float(stats.wasserstein_distance(a, b, wa, wb)),
        "ks_pvalue": float(stats.ks_2samp(a, b).pvalue),
        **binned_divergences(a, b, edges, wa, wb),
    }


@dataclass
class FeatureDivergence:
    """One feature's divergences (candidate vs reference) and the MC-vs-MC baseline mean and SD of each."""

    name: str
    values: dict[str, float]
    baseline_mean: dict[str, float]
    baseline_sd: dict[str, float]

    @property
    def flagged(self) -> bool:
        """W1 above the baseline mean + 3 SD."""
        return self.values["wasserstein"] > self.baseline_mean["wasserstein"] + 3 * self.baseline_sd["wasserstein"]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.values,
            "wasserstein_baseline": self.baseline_mean["wasserstein"],
            "wasserstein_baseline_sd": self.baseline_sd["wasserstein"],
            "baseline_mean": self.baseline_mean,
            "baseline_sd": self.baseline_sd,
            "flagged": self.flagged,
        }


def compare_features(
    reference: np.ndarray,
    candidate: np.ndarray,
    names: Sequence[str],
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    bins: int = 50,
    n_resamples: int = 5,
    seed: int = 0,
) -> dict[str, FeatureDivergence]:
    """Per-feature divergences of ``candidate`` against ``reference`` (both (n, d)) with MC-vs-MC baselines."""
    ref = np.asarray(reference, dtype=np.float64)
    can = np.asarray(candidate, dtype=np.float64)
    if ref.ndim != 2 or can.ndim != 2 or ref.shape[1] != can.shape[1] or ref.shape[1] != len(names):
        raise InputError(
            f"reference {ref.shape} and candidate {can.shape} must be (n, {len(names)}) for features {list(names)}"
        )
    if len(ref) < 4 or len(can) < 2:
        raise InputError(f"too few events: reference {len(ref)}, candidate {len(can)}")
    for label, arr in (("reference", ref), ("candidate", can)):
        bad = ~np.isfinite(arr)
        if bad.any():
            counts = {n: int(k) for n, k in zip(names, bad.sum(axis=0), strict=False) if k}
            raise InputError(f"{label} has NaN/inf values, counts per feature {counts}")
    rng = np.random.default_rng(seed)
    wr = np.ones(len(ref)) if weights_reference is None else np.asarray(weights_reference, dtype=np.float64)
    wc = np.ones(len(can)) if weights_candidate is None else np.asarray(weights_candidate, dtype=np.float64)
    half = min(len(ref) // 2, len(can))
    out = {}
    for j, name in enumerate(names):
        edges = np.unique(np.quantile(ref[:, j], np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([ref[0, j] - 0.5, ref[0, j] + 0.5])
        values = _one(ref[:, j], can[:, j], wr, wc, edges)
        base = []
        for _ in range(n_resamples):
            perm = rng.permutation(len(ref))
            i1, i2 = perm[:half], perm[half : 2 * half]
            base.append(_one(ref[i1, j], ref[i2, j], wr[i1], wr[i2], edges))
        keys = base[0].keys()
        out[name] = FeatureDivergence(
            name,
            values,
            {k: float(np.mean([b[k] for b in base])) for k in keys},
            {k: float(np.std([b[k] for b in base], ddof=1)) if n_resamples > 1 else 0.0 for k in keys},
        )
    return out
