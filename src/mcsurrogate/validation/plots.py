"""mplhep figures of a validation: per-feature histograms with ratio panels, the correlation-difference map, the
C2ST ROC curve, density-ratio distributions, a corner plot and effective statistics versus template size."""

from __future__ import annotations

from collections.abc import Sequence

import hist
import mplhep
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from .c2st import C2STResult
from .correlations import CorrelationComparison
from .effective_statistics import EffectiveStatistics

__all__ = [
    "plot_corner",
    "plot_correlation_difference",
    "plot_density_ratio",
    "plot_effective_statistics",
    "plot_feature",
    "plot_roc",
]


def _density(x: np.ndarray, w: np.ndarray | None, edges: np.ndarray) -> tuple[hist.Hist, np.ndarray, np.ndarray]:
    h = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight()).fill(x, weight=w)
    widths = np.diff(edges)
    norm = h.values().sum()
    if norm <= 0:
        return h, np.zeros(len(widths)), np.zeros(len(widths))
    return h, h.values() / norm / widths, np.sqrt(h.variances()) / norm / widths


def plot_feature(
    name: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    bins: int = 50,
    labels: tuple[str, str] = ("MC", "generated"),
) -> Figure:
    """Normalised histograms of one feature with statistical errors, and the ratio candidate/reference with the
    reference's uncertainty as a band. Binning: the central 99.8 % of the reference."""
    lo, hi = np.quantile(reference, [0.001, 0.999])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    _, dr, er = _density(reference, weights_reference, edges)
    _, dc, ec = _density(candidate, weights_candidate, edges)
    fig = Figure(figsize=(6.4, 5.6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    mplhep.histplot(dr, edges, yerr=er, ax=top, label=labels[0], color="black", histtype="errorbar")
    mplhep.histplot(dc, edges, yerr=ec, ax=top, label=labels[1], color="tab:red")
    top.set_ylabel("normalised density")
    top.legend()
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel=name, ax=top, loc=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dr > 0, dc / dr, np.nan)
        ratio_err = np.where(dr > 0, ec / dr, np.nan)
        band = np.where(dr > 0, er / dr, np.nan)
    bottom.fill_between(
        edges,
        np.r_[1 - band, 1 - band[-1]],
        np.r_[1 + band, 1 + band[-1]],
        step="post",
        color="grey",
        alpha=0.3,
        label="MC stat.",
    )
    mplhep.histplot(ratio, edges, yerr=ratio_err, ax=bottom, color="tab:red", histtype="errorbar")
    bottom.axhline(1, color="black", lw=0.8)
    bottom.set_ylim(0.8, 1.2)
    bottom.set_ylabel("gen./MC")
    bottom.set_xlabel(name)
    return fig


def plot_correlation_difference(comparison: CorrelationComparison, kind: str = "pearson") -> Figure:
    """Map of candidate − reference correlation coefficients (Pearson or Spearman)."""
    diff = getattr(comparison, f"{kind}_candidate") - getattr(comparison, f"{kind}_reference")
    names = comparison.names
    fig = Figure(figsize=(1.0 + 0.45 * len(names), 0.6 + 0.45 * len(names)))
    ax = fig.add_subplot()
    lim = max(0.05, float(np.nanmax(np.abs(diff))))
    im = ax.imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize="small")
    ax.set_yticks(range(len(names)), names, fontsize="small")
    fig.colorbar(im, ax=ax, label=f"{kind} ρ(generated) − ρ(MC)")
    return fig


def plot_roc(result: C2STResult) -> Figure:
    """ROC curve of the C2ST classifier on its held-out half; the diagonal is indistinguishable samples."""
    fpr, tpr, _ = roc_curve(result.labels, result.scores)
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    ax.plot(
        fpr,
        tpr,
        color="tab:red",
        label=f"AUC {result.auc:.4f} [{result.auc_ci[0]:.4f}, {result.auc_ci[1]:.4f}], p = {result.p_value:.3g}",
    )
    ax.plot([0, 1], [0, 1], color="grey", ls="--")
    ax.set_xlabel("false-positive rate (MC called generated)")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", fontsize="small")
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel="C2ST", ax=ax, loc=0)
    return fig


def plot_density_ratio(
    w_reference: np.ndarray,
    w_candidate: np.ndarray,
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
) -> Figure:
    """Distributions of log₁₀ w(x) = log₁₀ p_MC/p_gen for MC and generated events, each filled with its event
    weights (summed weight per bin); tails = failure regions."""
    lw_r, lw_c = np.log10(w_reference), np.log10(w_candidate)
    lo, hi = np.quantile(np.r_[lw_r, lw_c], [0.0005, 0.9995])
    edges = np.linspace(min(lo, -0.1), max(hi, 0.1), 61)
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    mplhep.histplot(np.histogram(lw_r, edges, weights=weights_reference)[0], edges, ax=ax, label="MC", color="black")
    mplhep.histplot(
        np.histogram(lw_c, edges, weights=weights_candidate)[0], edges, ax=ax, label="generated", color="tab:red"
    )
    ax.set_yscale("log")
    ax.set_xlabel(r"$\log_{10} w(x)$,  $w = p_\mathrm{MC}/p_\mathrm{gen}$")
    ax.set_ylabel("events (summed weight)")
    ax.legend()
    return fig


def plot_corner(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str], *, bins: int = 40) -> Figure:
    """Corner plot: 1-D normalised histograms on the diagonal, 2-D density contours (MC black, generated red)
    below it. ``reference`` and ``candidate`` are (n, k) with k = len(names) ≤ 6 recommended."""
    k = len(names)
    fig = Figure(figsize=(2.2 * k, 2.2 * k))
    axes = fig.subplots(k, k, squeeze=False)
    ranges = [np.quantile(reference[:, j], [0.005, 0.995]) for j in range(k)]
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                edges = np.linspace(ranges[j][0], ranges[j][1], bins + 1)
                ax.hist(reference[:, j], edges, density=True, histtype="step", color="black")
                ax.hist(candidate[:, j], edges, density=True, histtype="step", color="tab:red")
                ax.set_yticks([])
            else:
                ex = np.linspace(ranges[j][0], ranges[j][1], bins + 1)
                ey = np.linspace(ranges[i][0], ranges[i][1], bins + 1)
                for data, colour in ((reference, "black"), (candidate, "tab:red")):
                    h, _, _ = np.histogram2d(data[:, j], data[:, i], [ex, ey], density=True)
                    levels = np.quantile(h[h > 0], [0.5, 0.9, 0.99]) if (h > 0).sum() > 3 else None
                    if levels is not None and np.all(np.diff(levels) > 0):
                        ax.contour(
                            0.5 * (ex[1:] + ex[:-1]),
                            0.5 * (ey[1:] + ey[:-1]),
                            h.T,
                            levels=levels,
                            colors=colour,
                            linewidths=0.8,
                        )
            if i == k - 1:
                ax.set_xlabel(names[j], fontsize="small")
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize="small")
            elif j > 0:
                ax.set_yticklabels([])
    return fig


def plot_effective_statistics(result: EffectiveStatistics, *, variable: str = "") -> Figure:
    """MC-equivalent events N_eff of generated templates versus their size n: the median over bins with the
    16–84 % band across bins, the line N_eff = n (a perfect generator) and the saturation from the whole pool."""
    used = result.used_bins
    n = result.sizes.astype(float)
    ratio = np.minimum(result.n_eff[:, used], 1e12)
    lo, med, hi = np.quantile(ratio, [0.16, 0.5, 0.84], axis=1)
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    ax.fill_between(n, lo, hi, color="tab:red", alpha=0.25, label="16–84 % of bins")
    ax.plot(n, med, "o-", color="tab:red", label="median over bins")
    ax.plot(n, n, color="grey", ls="--", label=r"$N_\mathrm{eff} = n$ (perfect generator)")
    worth = result.worth()
    if np.isfinite(worth):
        ax.axhline(worth, color="black", ls=":", label=f"saturation ≈ {worth:,.0f} MC events")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(n[0], np.nanmin(lo)) / 2, max(n[-1], np.nanmax(med)) * 3)
    ax.set_xlabel("generated events in the template, $n$")
    ax.set_ylabel(r"MC-equivalent events $N_\mathrm{eff}$")
    ax.legend(fontsize="small")
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel=variable, ax=ax, loc=0)
    return fig
