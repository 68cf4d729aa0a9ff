"""Figures of an object-level response evaluation (matplotlib, imported when called)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .object_study import ObjectEvaluation

__all__ = ["plot_object_evaluation"]

_LABELS = {"pt": r"truth $E_T$ [GeV]", "eta": r"truth $\eta$", "mu": r"$\mu$"}


def _steps(ax: Any, edges: list[float], values: list[Any], errors: list[Any], label: str, color: str) -> None:
    e = np.asarray(edges, dtype=np.float64)
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    err = np.asarray([np.nan if x is None else x for x in errors], dtype=np.float64)
    centres = 0.5 * (e[1:] + e[:-1])
    ax.errorbar(centres, v, yerr=err, xerr=0.5 * np.diff(e), fmt="o", ms=3, color=color, label=label)


def plot_object_evaluation(evaluation: ObjectEvaluation, path: str | Path, title: str = "") -> Path:
    """One PNG: efficiency vs E_T, η, μ (reference and surrogate, binomial errors); the reco multiplicity; m_γγ of the
    two leading reco photons; the surrogate/reference core-width ratio of the three responses vs E_T."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, var in zip(axes[0], ("pt", "eta", "mu"), strict=True):
        eff = evaluation.efficiency[var]
        _steps(ax, eff.edges, eff.reference, eff.reference_err, "reference detector", "black")
        _steps(ax, eff.edges, eff.generated, eff.generated_err, "surrogate", "tab:red")
        ax.set_xlabel(_LABELS[var])
        ax.set_ylabel("efficiency")
        if var == "pt":
            ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax = axes[1, 0]
    r = np.asarray(evaluation.multiplicity_reference, dtype=np.float64)
    g = np.asarray(evaluation.multiplicity_generated, dtype=np.float64)
    k = np.arange(len(r))
    ax.errorbar(k, r / r.sum(), yerr=np.sqrt(r) / r.sum(), fmt="o", color="black", label="reference detector")
    ax.step(k, g / g.sum(), where="mid", color="tab:red", label="surrogate")
    ax.set_yscale("log")
    ax.set_xlabel("reco photons per event")
    ax.set_ylabel("fraction of events")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    bins = np.linspace(110, 140, 61)
    for name, color in (("reference", "black"), ("generated", "tab:red")):
        m = evaluation.masses.get(name, np.zeros(0))
        ax.hist(
            m,
            bins=bins,
            histtype="step",
            density=True,
            color=color,
            label="surrogate" if name == "generated" else "reference detector",
        )
    ax.set_xlabel(r"$m_{\gamma\gamma}$ of the two leading reco photons [GeV]")
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    for name, color in (("pt", "tab:blue"), ("eta", "tab:green"), ("phi", "tab:orange")):
        w = evaluation.widths[name]["pt"]
        e = np.asarray(w.edges)
        centres = 0.5 * (e[1:] + e[:-1])
        ax.errorbar(centres, w.ratio, yerr=w.ratio_err, fmt="o", ms=3, color=color, label=rf"$\Delta${name}")
    ax.axhspan(0.98, 1.02, color="0.9")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0.85, 1.15)
    ax.set_xlabel(_LABELS["pt"])
    ax.set_ylabel("core width: surrogate / reference")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
