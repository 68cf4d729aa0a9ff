"""How many MC events is a generated sample worth? Effective statistics of binned templates.

A template built from ``n`` MC events estimates each bin's fraction p with variance p(1 − p)/n. A template built
from ``n`` *generated* events has the same statistical variance plus the model's bias b²: its mean squared error
is p(1 − p)/n + b². The MC sample size with the same mean squared error,

    N_eff = p(1 − p) / MSE_generated,

is what the generated template is worth in that bin: ≈ n while the statistical term dominates, and saturating at
p(1 − p)/b² once more generated events no longer help. That saturation is the number to quote next to an
amplification factor.

Measured, not assumed: for each size ``n`` the reference MC is cut into disjoint subsamples of ``n`` events (their
spread per bin is the MC spread σ_MC(n)), the generated pool into disjoint subsamples of ``n`` events, and the
generated fractions are compared with the fractions of the *whole* reference. The reference's own variance
p(1 − p)/M (M = reference size) is subtracted from the generated mean squared error, so a reference of finite size
does not pass for a model bias. The reference is unweighted; generated events may carry non-negative weights
(a reweighted generator, :mod:`mcsurrogate.refinement`): a subsample's fractions are then its weight per bin over
its total weight, so the weights' extra variance is measured with the rest. Bins are [e_i, e_i+1) as in
:mod:`hist`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .samples import kish_size

__all__ = ["EffectiveStatistics", "effective_statistics"]


@dataclass
class EffectiveStatistics:
    """Per bin (rows: sizes, columns: bins) and summarised over bins.

    ``sizes``: the subsample sizes n; ``edges``: bin edges (units of the variable); ``p``: reference fractions;
    ``sigma_mc``: spread of the fraction across disjoint MC subsamples of n events (NaN with fewer than two);
    ``sigma_expected``: √(p(1 − p)/n); ``rms_generated``: RMS deviation of generated fractions from ``p``, corrected
    for the reference's own variance; ``n_eff``: MC-equivalent events per bin (``inf`` where the generated and MC
    fractions agree within the reference's precision); ``n_eff_max``: the saturation p(1 − p)/b² from the whole
    generated pool; ``n_mc_subsamples``/``n_generated_subsamples``: how many subsamples each row used. Per-bin
    arrays have one column per bin of ``edges`` and a last column for the events outside them.
    """

    sizes: np.ndarray
    edges: np.ndarray
    p: np.ndarray
    sigma_mc: np.ndarray
    sigma_expected: np.ndarray
    rms_generated: np.ndarray
    n_eff: np.ndarray
    n_eff_max: np.ndarray
    n_mc_subsamples: np.ndarray
    n_generated_subsamples: np.ndarray
    min_fraction: float = 0.005
    notes: list[str] = field(default_factory=list)

    @property
    def used_bins(self) -> np.ndarray:
        """Bins whose reference fraction is at least ``min_fraction`` (the summaries use only these)."""
        return self.p >= self.min_fraction

    def median_n_eff(self) -> np.ndarray:
        """Median over the used bins of N_eff for each size (finite values; ``inf`` where every bin is)."""
        out = []
        for row in self.n_eff[:, self.used_bins]:
            out.append(float(np.median(row)) if row.size else float("nan"))
        return np.asarray(out)

    def worth(self) -> float:
        """The saturation: median over the used bins of ``n_eff_max`` (MC events the generated model is worth)."""
        values = self.n_eff_max[self.used_bins]
        return float(np.median(values)) if values.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> Any:
            return (
                [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]
                if a.ndim == 1
                else [clean(r) for r in a]
            )

        median = self.median_n_eff()
        worth = self.worth()
        return {
            "sizes": [int(n) for n in self.sizes],
            "edges": [float(e) for e in self.edges],
            "p": clean(self.p),
            "sigma_mc": clean(self.sigma_mc),
            "sigma_expected": clean(self.sigma_expected),
            "rms_generated": clean(self.rms_generated),
            "n_eff": clean(self.n_eff),
            "n_eff_max": clean(self.n_eff_max),
            "n_mc_subsamples": [int(k) for k in self.n_mc_subsamples],
            "n_generated_subsamples": [int(k) for k in self.n_generated_subsamples],
            "min_fraction": self.min_fraction,
            "median_n_eff": clean(median),
            "median_n_eff_over_n": clean(median / self.sizes),
            "worth": None if not np.isfinite(worth) else worth,
            "notes": list(self.notes),
        }


def _values(x: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float).ravel()
    if v.size == 0:
        raise InputError(f"the {name} sample is empty")
    bad = int((~np.isfinite(v)).sum())
    if bad:
        raise InputError(f"the {name} sample has {bad} NaN or inf values")
    return v


def _fractions(index: np.ndarray, n_bins: int, k: int, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Fractions per bin of ``k`` disjoint consecutive subsamples of ``n`` events of ``index`` (already shuffled),
    weighted by ``weights`` (in the same order) when given."""
    groups = index[: k * n].reshape(k, n)
    offsets = np.arange(k)[:, None] * n_bins
    w = None if weights is None else weights[: k * n]
    counts = np.bincount((groups + offsets).ravel(), weights=w, minlength=k * n_bins).reshape(k, n_bins)
    return counts / (n if weights is None else counts.sum(axis=1, keepdims=True))


def effective_statistics(
    reference: np.ndarray,
    generated: np.ndarray,
    edges: Sequence[float] | np.ndarray,
    sizes: Sequence[int] | np.ndarray,
    *,
    n_subsamples: int = 20,
    weights_generated: np.ndarray | None = None,
    min_fraction: float = 0.005,
    seed: int = 0,
) -> EffectiveStatistics:
    """Effective MC statistics of generated templates of the given ``sizes`` (events) on ``edges``.

    ``reference``: MC values of the variable (held out from training); ``generated``: a pool of generated values,
    ideally much larger than the largest size, with optional ``weights_generated`` (then N_eff includes what the
    weights cost). Events outside ``edges`` count in an overflow bin, so fractions are of all events. Each size uses
    up to ``n_subsamples`` disjoint subsamples of each sample.
    """
    ref = _values(reference, "reference")
    gen = _values(generated, "generated")
    edges_arr = np.asarray(edges, dtype=float)
    if edges_arr.ndim != 1 or edges_arr.size < 2 or np.any(np.diff(edges_arr) <= 0):
        raise InputError(f"edges must be increasing and hold at least two values; got {edges_arr.tolist()}")
    size_arr = np.asarray(sorted({int(n) for n in sizes}), dtype=np.int64)
    if size_arr.size == 0 or size_arr[0] < 1:
        raise InputError(f"sizes must be positive event counts; got {list(sizes)}")
    if size_arr[-1] > gen.size:
        raise InputError(f"the largest size ({size_arr[-1]:,}) exceeds the generated pool ({gen.size:,} events)")
    w_gen = None
    if weights_generated is not None:
        w_gen = np.asarray(weights_generated, dtype=float).ravel()
        if w_gen.shape != gen.shape or not np.all(np.isfinite(w_gen)) or np.any(w_gen < 0) or not w_gen.sum() > 0:
            raise InputError(
                f"weights_generated must hold one finite non-negative weight per generated value ({gen.size}), "
                f"not all zero; got {w_gen.size} values"
            )
    if n_subsamples < 1:
        raise InputError(f"n_subsamples must be at least 1; got {n_subsamples}")

    n_edges = edges_arr.size
    n_bins = n_edges  # n_edges − 1 bins [e_i, e_i+1) and, last, the events outside the edges

    def bin_index(v: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(edges_arr, v, side="right") - 1
        idx[(idx < 0) | (idx >= n_edges - 1)] = n_edges - 1
        return idx

    rng = np.random.default_rng(seed)
    ref_idx = bin_index(ref)[rng.permutation(ref.size)]
    gen_order = rng.permutation(gen.size)
    gen_idx = bin_index(gen)[gen_order]
    gen_w = None if w_gen is None else w_gen[gen_order]
    m = ref.size
    p = np.bincount(ref_idx, minlength=n_bins) / m
    q = np.bincount(gen_idx, weights=gen_w, minlength=n_bins)
    q = q / q.sum()
    n_gen_eff = kish_size(w_gen, gen.size)
    var_p = p * (1 - p)
    notes: list[str] = []

    rows = len(size_arr)
    sigma_mc = np.full((rows, n_bins), np.nan)
    rms_gen = np.full((rows, n_bins), np.nan)
    n_eff = np.full((rows, n_bins), np.nan)
    k_mc = np.zeros(rows, dtype=int)
    k_gen = np.zeros(rows, dtype=int)
    for i, n in enumerate(size_arr):
        k_mc[i] = min(n_subsamples, m // n)
        if k_mc[i] >= 2:
            sigma_mc[i] = _fractions(ref_idx, n_bins, int(k_mc[i]), int(n)).std(axis=0, ddof=1)
        k_gen[i] = min(n_subsamples, gen.size // n)
        f = _fractions(gen_idx, n_bins, int(k_gen[i]), int(n), gen_w)
        mse = np.mean((f - p) ** 2, axis=0) - var_p / m
        rms_gen[i] = np.sqrt(np.clip(mse, 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff[i] = np.where(mse > 0, var_p / mse, np.inf)
    if np.any(k_mc < 2):
        small = [int(n) for n, k in zip(size_arr, k_mc, strict=True) if k < 2]
        notes.append(f"sizes {small} leave fewer than two disjoint MC subsamples: σ_MC is not measured there")
    bias2 = (q - p) ** 2 - var_p / m - q * (1 - q) / n_gen_eff
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff_max = np.where(bias2 > 0, var_p / bias2, np.inf)
    return EffectiveStatistics(
        sizes=size_arr,
        edges=edges_arr,
        p=p,
        sigma_mc=sigma_mc,
        sigma_expected=np.sqrt(var_p[None, :] / size_arr[:, None]),
        rms_generated=rms_gen,
        n_eff=n_eff,
        n_eff_max=n_eff_max,
        n_mc_subsamples=k_mc,
        n_generated_subsamples=k_gen,
        min_fraction=min_fraction,
        notes=notes,
    )
