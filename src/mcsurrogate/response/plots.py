"""mplhep figures of a :class:`~mcsurrogate.response.evaluation.ResponseEvaluation` (paper A's Figures 1–6)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import mplhep
import numpy as np
from matplotlib.figure import Figure

from .evaluation import ResponseEvaluation

__all__ = ["plot_correlations", "plot_diphoton", "plot_responses", "plot_widths", "save_all"]

_UNITS = {"pt": "GeV", "eta": "", "phi": "rad"}
_LABEL = {"pt": r"$E_T$", "eta": r"$\eta$", "phi": r"$\phi$", "mu": r"$\mu$"}


def plot_widths(ev: ResponseEvaluation, variable: str) -> Figure:
    """Core width of every response versus the truth ``variable``, target vs generated, with the ratio."""
    n = len(ev.responses)
    fig = Figure(figsize=(4.2 * 3, 4.6 * ((n + 2) // 3)))
    grid = fig.add_gridspec(2 * ((n + 2) // 3), 3, height_ratios=[3, 1] * ((n + 2) // 3), hspace=0.05, wspace=0.35)
    for j, col in enumerate(ev.responses):
        w = ev.widths[col][variable]
        r, c = divmod(j, 3)
        ax, rax = fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c])
        edges = np.asarray(w.edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, w.target, yerr=w.target_err, fmt="o", ms=3, color="k", label="reference smearing")
        ax.errorbar(centres, w.generated, yerr=w.generated_err, fmt="s", ms=3, color="tab:red", label="surrogate")
        ax.set_ylabel(f"core σ({col})")
        ax.tick_params(labelbottom=False)
        rax.errorbar(centres, w.ratio, yerr=w.ratio_err, fmt="s", ms=3, color="tab:red")
        rax.axhline(1, color="k", lw=0.8)
        rax.axhspan(0.95, 1.05, color="0.85", zorder=0)
        rax.set_ylim(0.85, 1.15)
        rax.set_xlabel(f"truth {_LABEL.get(variable, variable)}")
        rax.set_ylabel("gen/ref")
        if j == 0:
            ax.legend(fontsize="small")
    return fig


def plot_correlations(ev: ResponseEvaluation) -> Figure:
    """Correlation matrices of the responses: reference, surrogate and their difference."""
    fig = Figure(figsize=(16, 5))
    axes = fig.subplots(1, 3)
    labels = [c.replace("d_photon", "Δγ") for c in ev.responses]
    for ax, mat, title, lim in zip(
        axes,
        (ev.correlation_target, ev.correlation_generated, ev.correlation_generated - ev.correlation_target),
        ("reference smearing", "surrogate", "surrogate − reference"),
        (1.0, 1.0, 0.1),
        strict=False,
    ):
        im = ax.imshow(mat, vmin=-lim, vmax=lim, cmap="RdBu_r")
        for (i, k), v in np.ndenumerate(mat):
            ax.text(k, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_responses(ev: ResponseEvaluation) -> Figure:
    """Distributions of every response on a log scale (tails visible)."""
    n = len(ev.responses)
    fig = Figure(figsize=(13, 4 * ((n + 2) // 3)))
    axes = fig.subplots((n + 2) // 3, 3).ravel()
    for j, col in enumerate(ev.responses):
        t, g = ev.target_responses[:, j], ev.generated_responses[:, j]
        lo, hi = np.quantile(t, [0.0005, 0.9995])
        edges = np.linspace(lo, hi, 81)
        ht, _ = np.histogram(t, edges)
        hg, _ = np.histogram(g, edges)
        mplhep.histplot(
            ht, edges, ax=axes[j], yerr=np.sqrt(ht), label="reference", color="k", histtype="errorbar", markersize=2
        )
        # the surrogate may smear every truth event several times: scale to the reference's event count
        mplhep.histplot(hg * (len(t) / len(g)), edges, ax=axes[j], label="surrogate", color="tab:red")
        axes[j].set_yscale("log")
        unit = _UNITS.get(col.rsplit("_", 1)[1], "")
        axes[j].set_xlabel(f"{col} {f'[{unit}]' if unit else ''}")
        axes[j].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_diphoton(target: ak.Array, generated: ak.Array, collection: str = "photons") -> Figure:
    """m_γγ and p_T^γγ of the reference and surrogate reco photons, with ratio panels."""
    fig = Figure(figsize=(11, 5))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1], hspace=0.05)
    for k, (quantity, edges, label) in enumerate(
        (
            ("mass", np.linspace(115, 135, 81), r"$m_{\gamma\gamma}$ [GeV]"),
            ("pt", np.linspace(0, 300, 61), r"$p_T^{\gamma\gamma}$ [GeV]"),
        )
    ):
        ax, rax = fig.add_subplot(grid[0, k]), fig.add_subplot(grid[1, k])
        vals = []
        for sample in (target, generated):
            pair = sample[collection][:, 0] + sample[collection][:, 1]
            vals.append(np.histogram(ak.to_numpy(getattr(pair, quantity)), edges)[0].astype(float))
        raw_generated = vals[1]
        vals[1] = raw_generated * (len(target) / len(generated))  # several smearings per truth event: per event
        mplhep.histplot(
            vals[0],
            edges,
            ax=ax,
            yerr=np.sqrt(vals[0]),
            histtype="errorbar",
            color="k",
            label="reference",
            markersize=2,
        )
        mplhep.histplot(vals[1], edges, ax=ax, color="tab:red", label="surrogate")
        ax.legend(fontsize="small")
        ax.tick_params(labelbottom=False)
        filled = (vals[0] > 0) & (raw_generated > 0)  # the ratio and its error exist where both have events
        ratio = vals[1][filled] / vals[0][filled]
        err = ratio * np.sqrt(1 / vals[0][filled] + 1 / raw_generated[filled])
        centres = 0.5 * (edges[1:] + edges[:-1])
        rax.errorbar(centres[filled], ratio, yerr=err, fmt="o", ms=2, color="tab:red")
        rax.axhline(1, color="k", lw=0.8)
        rax.set_ylim(0.8, 1.2)
        rax.set_xlabel(label)
        rax.set_ylabel("sur/ref")
    return fig


def save_all(
    ev: ResponseEvaluation, target: ak.Array, generated: ak.Array, out_dir: str | Path, prefix: str = ""
) -> list[str]:
    """Write every figure as PNG into ``out_dir``; returns the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        f"{prefix}width_vs_pt.png": plot_widths(ev, "pt"),
        f"{prefix}width_vs_eta.png": plot_widths(ev, "eta"),
        f"{prefix}width_vs_mu.png": plot_widths(ev, "mu"),
        f"{prefix}correlations.png": plot_correlations(ev),
        f"{prefix}responses.png": plot_responses(ev),
        f"{prefix}diphoton.png": plot_diphoton(target, generated),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=90, bbox_inches="tight")
    return list(figures)
