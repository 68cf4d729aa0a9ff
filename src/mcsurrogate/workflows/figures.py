"""Figures of paper B's amplifier studies: the model comparison (C2ST AUC and W1 per candidate), the training
curves, and the learning curve with its power law. Each returns a :class:`matplotlib.figure.Figure` (not attached
to pyplot); matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..amplification import AucPowerLaw, ComparisonRow

__all__ = ["plot_comparison", "plot_learning_curve", "plot_training", "plot_w1_matrix"]


def plot_comparison(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """C2ST AUC (with its 95 % CI) and the largest and median W1 / MC-vs-MC baseline per candidate (rows of
    :meth:`~mcsurrogate.amplification.ComparisonRow.to_dict`), Gauss-rank candidates in blue, others in orange."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.8))
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    names = [r["name"] for r in rows]
    y = np.arange(len(rows))
    colors = ["tab:blue" if r["preprocessing"] == "gauss-rank" else "tab:orange" for r in rows]
    auc = np.array([r["auc"] for r in rows])
    err = np.array([[r["auc"] - r["auc_ci"][0], r["auc_ci"][1] - r["auc"]] for r in rows]).T
    ax1.errorbar(auc, y, xerr=err, fmt="none", ecolor="black")
    ax1.scatter(auc, y, c=colors, zorder=3)
    ax1.axvline(0.5, color="grey", ls="--")
    ax1.set_yticks(y, names)
    ax1.set_xlabel("C2ST AUC (selection split)")
    ax2.scatter([r["w1_ratio_max"] for r in rows], y, c=colors, marker="s", label="max over features")
    ax2.scatter(
        [r["w1_ratio_median"] for r in rows], y, edgecolors=colors, marker="o", facecolors="none", label="median"
    )
    ax2.axvline(3.0, color="grey", ls="--")
    ax2.set_xscale("log")
    ax2.set_xlabel("W1 / MC-vs-MC baseline")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_w1_matrix(rows: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Figure:
    """W1 / MC-vs-MC baseline for every candidate (rows) and feature (columns), log colour scale; a candidate that
    failed to train reads "failed"."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    m = np.array([[r["w1_ratio_by_feature"][f] for f in features] for r in rows])
    fig = Figure(figsize=(12, 0.45 * len(rows) + 2.5))
    ax = fig.add_subplot()
    vmax = max(30.0, float(np.nanmax(m))) if np.isfinite(m).any() else 30.0
    im = ax.imshow(np.clip(m, 0.1, None), norm=LogNorm(vmin=0.3, vmax=vmax), cmap="RdYlGn_r")
    ax.set_xticks(np.arange(len(features)), list(features), rotation=60, ha="right")
    ax.set_yticks(np.arange(len(rows)), [r["name"] for r in rows])
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.1f}" if np.isfinite(m[i, j]) else "failed", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="W1 / MC-vs-MC baseline")
    fig.tight_layout()
    return fig


def plot_training(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Validation NLL (preprocessed space, per event) per epoch for every candidate (``{name: history}``, the
    ``history`` of a surrogate's ``metrics["training"]``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.8))
    ax = fig.add_subplot()
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h["val_nll"] for h in history], label=name, lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NLL (preprocessed units)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def plot_learning_curve(rows: Sequence[ComparisonRow], law: AucPowerLaw | None, target: float) -> Figure:
    """Held-out C2ST AUC (95 % CI) and NLL per event against the training events (rows of
    :func:`~mcsurrogate.amplification.learning_curve`; open markers: still improving at the last epoch), with the
    power-law fit carried to the ``target`` AUC."""
    from matplotlib.figure import Figure

    n = np.array([r.extra["n_train"] for r in rows], dtype=float)
    auc = np.array([r.auc for r in rows])
    err = np.array([[r.auc - r.auc_ci[0], r.auc_ci[1] - r.auc] for r in rows]).T
    done = np.array([r.converged for r in rows], dtype=bool)
    fig = Figure(figsize=(11, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.errorbar(n, auc, yerr=err, fmt="none", ecolor="black")
    ax1.plot(n[done], auc[done], "o", color="black", label="held-out C2ST AUC (95 % CI)")
    ax1.plot(n[~done], auc[~done], "o", mfc="white", color="black", label="… still improving at the last epoch")
    ax1.axhline(target, color="tab:red", ls=":", label=f"bar: AUC ≤ {target}")
    ax1.axhline(0.5, color="grey", ls="--")
    if law is not None:
        reach = law.n_for(target)
        x_max = n[-1] * 3 if not np.isfinite(reach) else max(n[-1] * 1.5, min(reach * 1.5, n[-1] * 1e3))
        x = np.geomspace(n[0], x_max, 200)
        label = rf"$0.5 + {law.amplitude:.3f}\,(n/10^4)^{{-{law.exponent:.2f} \pm {law.exponent_error:.2f}}}$"
        ax1.plot(x, law.auc(x), color="tab:blue", label=label)
        if np.isfinite(reach) and reach <= x_max:
            ax1.axvline(reach, color="tab:blue", ls=":", label=f"reaches {target} at n ≈ {reach:.2g}")
    ax1.set_xscale("log")
    ax1.set_xlabel("training events $n$")
    ax1.set_ylabel("C2ST AUC")
    ax1.legend(fontsize="small")
    ax2.plot(n, [r.nll for r in rows], "o-", color="black")
    ax2.set_xscale("log")
    ax2.set_xlabel("training events $n$")
    ax2.set_ylabel("held-out NLL per event")
    fig.tight_layout()
    return fig
