"""Figures of an object-level response evaluation (matplotlib, imported when called)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .object_study import ObjectEvaluation

if TYPE_CHECKING:
    from .jet_study import JetEvaluation

__all__ = ["plot_jet_evaluation", "plot_object_evaluation"]

_LABELS = {"pt": r"truth $E_T$ [GeV]", "eta": r"truth $\eta$", "mu": r"$\mu$"}


def _floats(values: list[Any]) -> np.ndarray:
    """A report's list of numbers with ``None`` (an empty bin) as NaN."""
    return np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)


def _steps(ax: Any, edges: list[float], values: list[Any], errors: list[Any], label: str, color: str) -> None:
    e = np.asarray(edges, dtype=np.float64)
    v, err = _floats(values), _floats(errors)
    centres = 0.5 * (e[1:] + e[:-1])
    ax.errorbar(centres, v, yerr=err, xerr=0.5 * np.diff(e), fmt="o", ms=3, color=color, label=label)


def _efficiency_panels(axes: Any, efficiency: dict[str, Any], labels: dict[str, str]) -> None:
    """Efficiency vs truth E_T (log axis), η, μ: the reference's and the surrogate's, binomial errors."""
    for ax, var in zip(axes, ("pt", "eta", "mu"), strict=True):
        eff = efficiency[var]
        _steps(ax, eff.edges, eff.reference, eff.reference_err, "reference detector", "black")
        _steps(ax, eff.edges, eff.generated, eff.generated_err, "surrogate", "tab:red")
        ax.set_xlabel(labels[var])
        ax.set_ylabel("efficiency")
        if var == "pt":
            ax.set_xscale("log")
        ax.legend(fontsize=8)


def _multiplicity_panel(ax: Any, reference: list[int], generated: list[int], xlabel: str) -> None:
    """Fractions of events with 0, 1, … reco objects (log axis); Poisson errors on the reference's."""
    r = np.asarray(reference, dtype=np.float64)
    g = np.asarray(generated, dtype=np.float64)
    ax.errorbar(
        np.arange(len(r)), r / r.sum(), yerr=np.sqrt(r) / r.sum(), fmt="o", color="black", label="reference detector"
    )
    ax.step(np.arange(len(g)), g / g.sum(), where="mid", color="tab:red", label="surrogate")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of events")
    ax.legend(fontsize=8)


def _width_ratio_axes(ax: Any, xlabel: str) -> None:
    """Axes of core-width ratios vs truth E_T (log axis): the ±2 % band, 0.85–1.15, legend."""
    import matplotlib.ticker

    ax.axhspan(0.98, 1.02, color="0.9")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0.85, 1.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("core width: surrogate / reference")
    ax.legend(fontsize=8)


def plot_object_evaluation(evaluation: ObjectEvaluation, path: str | Path, title: str = "") -> Path:
    """One PNG: efficiency vs E_T, η, μ (reference and surrogate, binomial errors); the reco multiplicity; m_γγ of the
    two leading reco photons; the surrogate/reference core-width ratio of the three responses vs E_T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    _efficiency_panels(axes[0], evaluation.efficiency, _LABELS)
    _multiplicity_panel(
        axes[1, 0], evaluation.multiplicity_reference, evaluation.multiplicity_generated, "reco photons per event"
    )
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
    _width_ratio_axes(ax, _LABELS["pt"])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _histogram_panel(ax: Any, observable: dict[str, Any], label: str) -> None:
    e = np.asarray(observable["edges"], dtype=np.float64)
    ref = np.asarray(observable["reference"], dtype=np.float64)
    gen = np.asarray(observable["generated"], dtype=np.float64)
    ax.errorbar(
        0.5 * (e[1:] + e[:-1]), ref, yerr=np.sqrt(ref), fmt="o", ms=3, color="black", label="reference detector"
    )
    ax.step(e, np.append(gen, gen[-1]), where="post", color="tab:red", label="surrogate")
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("events")
    ax.legend(fontsize=8)


def plot_jet_evaluation(evaluation: JetEvaluation, path: str | Path, title: str = "") -> Path:
    """One PNG: jet efficiency vs p_T, η, μ (reference and surrogate, binomial errors); the reco jet multiplicity;
    m_jj of the two leading reco jets; H_T; the surrogate/reference core-width ratio of the p_T response vs p_T; the
    b-tag rate of the matched jets vs p_T per truth flavour (where the evaluation has one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    labels = _LABELS | {"pt": r"truth jet $p_T$ [GeV]"}
    _efficiency_panels(axes[0, :3], evaluation.efficiency, labels)
    _multiplicity_panel(
        axes[0, 3], evaluation.multiplicity_reference, evaluation.multiplicity_generated, "reco jets per event"
    )
    _histogram_panel(axes[1, 0], evaluation.observables["m_jj"], r"$m_{jj}$ of the two leading reco jets [GeV]")
    _histogram_panel(axes[1, 1], evaluation.observables["h_t"], r"$H_T$ of the reco jets [GeV]")
    ax = axes[1, 2]
    w = evaluation.widths["pt"]
    e = np.asarray(w.edges)
    ax.errorbar(
        0.5 * (e[1:] + e[:-1]), w.ratio, yerr=w.ratio_err, fmt="o", ms=3, color="tab:blue", label=r"$\Delta p_T$"
    )
    _width_ratio_axes(ax, labels["pt"])
    ax = axes[1, 3]
    if evaluation.tags:  # b-tag rate vs p_T per truth flavour: reference points, surrogate steps
        for label, colour in (("b", "tab:red"), ("c", "tab:green"), ("light", "tab:blue")):
            rate = evaluation.tags[f"{label}_pt"]
            e = np.asarray(rate.edges)
            ax.errorbar(
                0.5 * (e[1:] + e[:-1]),
                _floats(rate.reference),
                yerr=_floats(rate.reference_err),
                fmt="o",
                ms=3,
                color=colour,
                label=f"{label} jets: reference",
            )
            ax.stairs(np.nan_to_num(_floats(rate.generated)), e, color=colour, label="surrogate")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(labels["pt"])
        ax.set_ylabel("b-tag rate of matched jets")
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
