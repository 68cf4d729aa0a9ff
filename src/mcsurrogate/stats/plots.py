"""Paper B's statistics figures from a scan table (rows of :func:`mcsurrogate.stats.scan.scan`).

* μ̂ − μ_inj with its ±σ band versus background yield (luminosity), MC reference and generated templates;
* signed discovery significance Z₀ (spurious signal when μ_inj = 0) versus luminosity and versus N_gen;
* CLs upper limit with the expected ±1σ/±2σ bands of the MC reference versus luminosity and versus N_gen;
* ΔUL (generated − MC) of the median expected limit versus N_gen, one line per systematic;
* the measured spurious signal against the band a perfect generator would give (:func:`~.scan.spurious_signal_toys`);
* the post-cut fit-variable shapes of generated and held-out MC background and their ratio per bin
  (:func:`~.classifier_cut.cut_crosscheck`);
* the coverage study (:func:`~.coverage.coverage_study`): coverage of the 68 % / 95 % intervals, the spurious |Z₀|
  and the expected-limit shift of each template versus background yield;
* fit diagnostics (:func:`~.diagnostics.fit_diagnostics`): nuisance-parameter pulls and constraints, the ranking by
  impact on μ̂, pre- and post-fit yields per channel.

matplotlib and mplhep are imported when a figure is drawn, not with :mod:`mcsurrogate.stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .coverage import CoverageResult
    from .diagnostics import FitDiagnostics
    from .scan import ScanPoint, SpuriousSignalToy

__all__ = [
    "plot_coverage",
    "plot_delta_ul_vs_ngen",
    "plot_mu_bias_vs_lumi",
    "plot_post_cut_shapes",
    "plot_prefit_postfit",
    "plot_pulls",
    "plot_ranking",
    "plot_spurious_signal_floor",
    "plot_ul_vs",
    "plot_z0_vs",
    "save_scan_plots",
]

_BAND_1 = "#00cc00"
_BAND_2 = "#ffcc00"


def _select(rows: Sequence[ScanPoint], **match: Any) -> list[ScanPoint]:
    return [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]


def _figure(title: str) -> tuple[Figure, Any]:
    import mplhep
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel=title, ax=ax, loc=0)
    return fig, ax


def _ngens(rows: Sequence[ScanPoint]) -> list[int]:
    return sorted({r.n_generated for r in rows if r.template == "generated" and r.n_generated is not None})


def plot_mu_bias_vs_lumi(rows: Sequence[ScanPoint], systematic: float, n_generated: int | None = None) -> Figure:
    """μ̂ − μ_inj ± σ versus background yield for the MC template and the generated one (largest N_gen)."""
    n_generated = n_generated or max(_ngens(rows), default=None)
    fig, ax = _figure(f"μ̂ bias, {systematic:.0%} bkg. systematic")
    for template, n, colour in (("mc", None, "black"), ("generated", n_generated, "tab:red")):
        sel = sorted(
            _select(rows, systematic=systematic, template=template, n_generated=n), key=lambda r: r.background_yield
        )
        if not sel:
            continue
        x = np.array([r.background_yield for r in sel])
        y = np.array([r.mu_bias for r in sel])
        e = np.array([r.mu_sigma for r in sel])
        label = "MC template" if template == "mc" else f"generated, N_gen = {n:,}"
        ax.plot(x, y, marker="o", color=colour, label=label)
        ax.fill_between(x, y - e, y + e, color=colour, alpha=0.2)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("expected background events")
    ax.set_ylabel(r"$\hat\mu - \mu_\mathrm{inj}$")
    ax.legend()
    return fig


def plot_z0_vs(rows: Sequence[ScanPoint], axis: str, systematic: float, *, fixed: float | None = None) -> Figure:
    """Signed Z₀ versus ``axis`` = ``"luminosity"`` (one line per N_gen) or ``"n_generated"`` (one per luminosity)."""
    fig, ax = _figure(f"Z₀, {systematic:.0%} bkg. systematic")
    _lines(ax, rows, axis, systematic, "z_signed", fixed)
    for z in (-1, 1):
        ax.axhline(z, color="grey", ls="--", lw=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(r"signed $Z_0$ ($\sigma$)")
    return fig


def plot_spurious_signal_floor(
    rows: Sequence[ScanPoint],
    toys: Sequence[SpuriousSignalToy],
    systematic: float,
    n_generated: int | None = None,
    quantity: Literal["z_signed", "ul_shift"] = "z_signed",
    learner_toys: Sequence[SpuriousSignalToy] | None = None,
) -> Figure:
    """Signed Z₀ (or, with ``quantity="ul_shift"``, the expected-limit shift in units of the MC template's ±1σ
    half band) of the generated template (largest N_gen, or ``n_generated``) versus background yield, over the
    central 68 % and 95 % of the perfect-generator toys (rows of :func:`~.scan.spurious_signal_toys` run with the
    same luminosities, systematic and N_gen; ``limits=True`` for the limit shift): what finite MC alone explains.
    ``learner_toys`` (the same toys run with ``n_training``) adds the central 68 % of a generator that reproduces
    its finite training MC exactly, as dashed lines."""
    if quantity not in _FLOOR_LABELS:
        raise InputError(f"quantity must be one of {sorted(_FLOOR_LABELS)}; got {quantity!r}")
    if any(getattr(t, quantity) is None for t in [*toys, *(learner_toys or [])]):
        raise InputError(f"the toys have no {quantity!r}: run spurious_signal_toys with limits=True")
    n_generated = n_generated or max(_ngens(rows), default=None)
    title = "spurious signal" if quantity == "z_signed" else "expected-limit shift"
    fig, ax = _figure(f"{title}, {systematic:.0%} bkg. systematic")
    bands = _toy_quantiles(toys, quantity, (0.025, 0.16, 0.5, 0.84, 0.975))
    if bands is not None:
        x, q, n_toys = bands
        ax.fill_between(x, q[:, 0], q[:, 4], color=_BAND_2, label=f"perfect generator, 95 % ({n_toys} toys)")
        ax.fill_between(x, q[:, 1], q[:, 3], color=_BAND_1, label="perfect generator, 68 %")
        ax.plot(x, q[:, 2], color="black", ls=":", lw=1)
    learner = _toy_quantiles(learner_toys, quantity, (0.16, 0.84)) if learner_toys else None
    if learner_toys and learner is not None:
        x, q, _ = learner
        n_train = learner_toys[0].n_training
        label = "memorising learner" + (f" ({n_train:,} training events)" if n_train else "") + ", 68 %"
        ax.plot(x, q[:, 0], color="tab:blue", ls="--", lw=1.2, label=label)
        ax.plot(x, q[:, 1], color="tab:blue", ls="--", lw=1.2)
    sel = sorted(
        _select(rows, systematic=systematic, template="generated", n_generated=n_generated),
        key=lambda r: r.background_yield,
    )
    if sel:
        ax.plot(
            [r.background_yield for r in sel],
            [getattr(r, quantity) for r in sel],
            marker="o",
            color="tab:red",
            label=f"generated, N_gen = {n_generated:,}",
        )
    for level in (-1, 1):
        ax.axhline(level, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("expected background events")
    ax.set_ylabel(_FLOOR_LABELS[quantity])
    ax.legend(fontsize="small")
    return fig


def _toy_quantiles(
    toys: Sequence[SpuriousSignalToy], quantity: str, quantiles: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Per luminosity of the toys: the median background yield, the ``quantiles`` of the finite ``quantity`` values
    (one row per luminosity) and the fewest toys behind a row; ``None`` without toys or with a luminosity that has
    no finite value."""
    lumis = sorted({t.luminosity for t in toys})
    x = np.array([np.median([t.background_yield for t in toys if t.luminosity == lumi]) for lumi in lumis])
    z = [np.array([getattr(t, quantity) for t in toys if t.luminosity == lumi], dtype=float) for lumi in lumis]
    z = [v[np.isfinite(v)] for v in z]
    if not lumis or not all(v.size for v in z):
        return None
    return x, np.array([np.quantile(v, quantiles) for v in z]), min(v.size for v in z)


_FLOOR_LABELS = {
    "z_signed": r"signed $Z_0$ ($\sigma$)",
    "ul_shift": r"$\Delta$ expected limit / MC half $\pm1\sigma$ band",
}


_TEMPLATE_STYLES = {
    "generated": {"color": "tab:red", "marker": "o", "label": "generated"},
    "generated+modifier": {"color": "tab:purple", "marker": "s", "label": "generated + surrogate modifier"},
    "perfect": {"color": "black", "marker": "", "ls": ":", "label": "perfect generator"},
    "learner": {"color": "tab:blue", "marker": "", "ls": "--", "label": "memorising learner"},
}


def plot_coverage(result: CoverageResult) -> Figure:
    """The coverage study (:func:`~.coverage.coverage_study`) in three panels versus expected background events:
    the coverage of the 68.27 % and 95 % intervals on μ (binomial errors; grey bands: the goals 68 ± 3 % and
    95 ± 2 %), the median spurious |Z₀| over the toys (error bars to its 68 % quantile), and the expected-limit shift
    in half-bands of the MC template's ±1σ band (the floors: a band over their limit toys)."""
    import mplhep
    from matplotlib.figure import Figure

    from .coverage import COVERAGE_LEVELS

    fig = Figure(figsize=(6.4, 10.0))
    axes = fig.subplots(3, 1, sharex=True)
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel="coverage by toys", ax=axes[0], loc=0)
    for target, tol in ((COVERAGE_LEVELS["68"], 0.03), (COVERAGE_LEVELS["95"], 0.02)):
        axes[0].axhspan(target - tol, target + tol, color="grey", alpha=0.25, lw=0)
    for name in result.templates:
        pts = sorted((p for p in result.points if p.template == name), key=lambda p: p.background_yield)
        x = np.array([p.background_yield for p in pts])
        style = dict(_TEMPLATE_STYLES.get(name, {"label": name}))
        label = style.pop("label")
        for key, alpha in (("68", 1.0), ("95", 0.55)):
            axes[0].errorbar(
                x,
                [getattr(p, f"coverage_{key}") for p in pts],
                yerr=[getattr(p, f"coverage_{key}_error") for p in pts],
                alpha=alpha,
                capsize=2,
                label=label if key == "68" else None,
                **style,
            )
        z = np.array([p.z_abs_median for p in pts])
        axes[1].errorbar(
            x, z, yerr=[np.zeros_like(z), np.array([p.z_abs_68 for p in pts]) - z], capsize=2, label=label, **style
        )
        shift = np.array([p.ul_shift for p in pts])
        if np.isfinite(shift).any():
            if name in ("perfect", "learner"):
                lo, hi = np.array([p.ul_shift_16 for p in pts]), np.array([p.ul_shift_84 for p in pts])
                axes[2].fill_between(x, lo, hi, color=style["color"], alpha=0.2, lw=0)
            axes[2].plot(x, shift, label=label, **style)
    axes[0].set_ylabel("coverage of the 68 % / 95 % interval")
    axes[0].set_ylim(0.0, 1.02)
    axes[1].set_ylabel(r"median spurious $|Z_0|$ (to its 68 % quantile)")
    axes[2].set_ylabel(r"$\Delta$ expected limit / MC half $\pm1\sigma$ band")
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].set_xlabel("expected background events")
    axes[2].set_xscale("log")
    axes[0].legend(fontsize="small")
    return fig


def plot_pulls(diagnostics: FitDiagnostics, *, per_bin: bool = False) -> Figure:
    """Pulls (θ̂ − θ₀)/σ₀ of the constrained nuisance parameters with their constraints σ̂/σ₀ as error bars, over the
    ±1σ / ±2σ bands; ``per_bin`` also draws the per-bin γ of staterror and shapesys modifiers."""
    import mplhep
    from matplotlib.figure import Figure

    pulls = [
        p for p in diagnostics.pulls if p.prefit_width > 0 and (per_bin or p.kind not in ("staterror", "shapesys"))
    ]
    fig = Figure(figsize=(6.4, max(2.5, 0.32 * len(pulls) + 1.2)))
    ax = fig.add_subplot()
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel="pulls", ax=ax, loc=0)
    y = np.arange(len(pulls))[::-1]
    ax.axvspan(-2, 2, color=_BAND_2, lw=0)
    ax.axvspan(-1, 1, color=_BAND_1, lw=0)
    ax.errorbar([p.pull for p in pulls], y, xerr=[p.constraint for p in pulls], fmt="o", color="black", capsize=2)
    ax.set_yticks(y, [p.name for p in pulls], fontsize="small")
    ax.set_xlabel(r"$(\hat\theta - \theta_0)/\Delta\theta$")
    ax.set_xlim(-3, 3)
    return fig


def plot_ranking(diagnostics: FitDiagnostics, *, top: int = 15) -> Figure:
    """The ``top`` nuisance parameters by impact on μ̂: post-fit Δμ̂ (filled) and pre-fit Δμ̂ (open) for θ̂ ± σ."""
    import mplhep
    from matplotlib.figure import Figure

    ranked = diagnostics.impacts[:top]
    fig = Figure(figsize=(6.4, max(2.5, 0.32 * len(ranked) + 1.2)))
    ax = fig.add_subplot()
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel=r"impact on $\hat\mu$", ax=ax, loc=0)
    y = np.arange(len(ranked))[::-1]
    for attr, colour, fill in (("prefit", "tab:blue", False), ("postfit", "tab:blue", True)):
        for side, alpha in (("up", 1.0), ("down", 0.5)):
            ax.barh(
                y,
                [getattr(r, f"{attr}_{side}") for r in ranked],
                height=0.6,
                color=colour if fill else "none",
                edgecolor=colour,
                alpha=alpha,
                label=f"{attr} θ̂ {'+' if side == 'up' else '−'} σ",
            )
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [r.name for r in ranked], fontsize="small")
    ax.set_xlabel(r"$\Delta\hat\mu$")
    ax.legend(fontsize="x-small")
    return fig


def plot_prefit_postfit(diagnostics: FitDiagnostics, channel: str, *, variable: str = "fit variable") -> Figure:
    """Pre-fit (left) and post-fit (right) stacked sample yields of ``channel`` with the observed counts."""
    import mplhep
    from matplotlib.figure import Figure

    if channel not in diagnostics.yields:
        raise InputError(f"no channel {channel!r}; the channels are {sorted(diagnostics.yields)}")
    info = diagnostics.yields[channel]
    edges = np.asarray(info["edges"], dtype=float)
    observed = np.asarray(info["observed"], dtype=float)
    fig = Figure(figsize=(11.0, 4.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, stage in zip(axes, ("prefit", "postfit"), strict=True):
        samples = info[stage]
        names = sorted(samples, key=lambda n: (n == "signal", sum(samples[n])))
        mplhep.histplot(
            [np.asarray(samples[n], dtype=float) for n in names], edges, stack=True, histtype="fill", label=names, ax=ax
        )
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, observed, yerr=np.sqrt(observed), fmt="o", color="black", label="observed")
        mplhep.label.exp_label(
            exp="mcsurrogate", llabel="", rlabel=f"{channel}, {stage.replace('fit', '-fit')}", ax=ax, loc=0
        )
        ax.set_xlabel(variable)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("events per bin")
    return fig


def plot_post_cut_shapes(
    crosscheck: dict[str, Any], *, signal_counts: np.ndarray | None = None, variable: str = "fit variable"
) -> Figure:
    """Normalised post-cut shapes of held-out MC and generated background (``cut_crosscheck``'s histograms) and,
    below, generated / MC per bin with the statistical error of both; ``signal_counts`` on the same edges adds the
    signal template's shape, to show which bins a spurious signal is fitted from."""
    edges = np.asarray(crosscheck["edges"], dtype=float)
    mc = np.asarray(crosscheck["counts_mc"], dtype=float)
    gen = np.asarray(crosscheck["counts_generated"], dtype=float)
    import mplhep
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 6.4))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1], "hspace": 0.05})
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel="after the cut", ax=top, loc=0)
    mplhep.histplot(mc / mc.sum(), edges, yerr=np.sqrt(mc) / mc.sum(), ax=top, color="black", label="held-out MC")
    mplhep.histplot(gen / gen.sum(), edges, ax=top, color="tab:red", label="generated")
    if signal_counts is not None:
        sig = np.asarray(signal_counts, dtype=float)
        mplhep.histplot(sig / sig.sum(), edges, ax=top, color="tab:blue", ls="--", label="signal")
    top.set_ylabel("fraction of events")
    top.legend(fontsize="small")
    filled = (mc > 0) & (gen > 0)  # a bin empty on either side has no ratio: left out
    ratio = np.full(mc.shape, np.nan)
    err = np.full(mc.shape, np.nan)
    ratio[filled] = (gen[filled] / gen.sum()) / (mc[filled] / mc.sum())
    err[filled] = ratio[filled] * np.sqrt(1 / mc[filled] + 1 / gen[filled])
    centres = 0.5 * (edges[1:] + edges[:-1])
    bottom.errorbar(centres, ratio, yerr=err, xerr=0.5 * np.diff(edges), fmt="o", ms=3, color="tab:red")
    bottom.axhline(1, color="grey", lw=0.8)
    bottom.set_ylim(0.8, 1.2)
    bottom.set_ylabel("generated / MC")
    bottom.set_xlabel(variable)
    return fig


def _lines(ax: Any, rows: Sequence[ScanPoint], axis: str, systematic: float, key: str, fixed: Any) -> None:
    if axis == "luminosity":
        groups = [("mc", None)] + [("generated", n) for n in (_ngens(rows) if fixed is None else [fixed])]
        for template, n in groups:
            sel = sorted(
                _select(rows, systematic=systematic, template=template, n_generated=n),
                key=lambda r: r.background_yield,
            )
            if sel:
                ax.plot(
                    [r.background_yield for r in sel],
                    [getattr(r, key) for r in sel],
                    marker=".",
                    color="black" if template == "mc" else None,
                    label="MC template" if template == "mc" else f"N_gen = {n:,}",
                )
        ax.set_xlabel("expected background events")
    elif axis == "n_generated":
        lumis = sorted({r.luminosity for r in rows}) if fixed is None else [fixed]
        for lumi in lumis:
            sel = sorted(
                _select(rows, systematic=systematic, template="generated", luminosity=lumi),
                key=lambda r: r.n_generated or 0,
            )
            if sel:
                ax.plot(
                    [r.n_generated for r in sel],
                    [getattr(r, key) for r in sel],
                    marker=".",
                    label=f"B = {sel[0].background_yield:.3g}",
                )
        ax.set_xlabel(r"generated events $N_\mathrm{gen}$")
    else:
        raise ValueError(f"axis must be 'luminosity' or 'n_generated'; got {axis!r}")
    ax.set_xscale("log")
    ax.legend(fontsize="small", ncol=2)


def plot_ul_vs(rows: Sequence[ScanPoint], axis: str, systematic: float, *, fixed: float | None = None) -> Figure:
    """Upper limit on μ: MC-reference expected bands (green ±1σ, yellow ±2σ) and generated-template limits.

    ``axis = "luminosity"``: versus background yield, generated at N_gen = ``fixed`` (default: largest).
    ``axis = "n_generated"``: versus N_gen at luminosity ``fixed`` (default: largest), the MC band constant.
    """
    fig, ax = _figure(f"{systematic:.0%} bkg. systematic")
    if axis == "luminosity":
        n = fixed or max(_ngens(rows), default=None)
        ref = sorted(_select(rows, systematic=systematic, template="mc"), key=lambda r: r.background_yield)
        gen = sorted(
            _select(rows, systematic=systematic, template="generated", n_generated=n),
            key=lambda r: r.background_yield,
        )
        x_ref = np.array([r.background_yield for r in ref])
        x_gen = np.array([r.background_yield for r in gen])
        ax.set_xlabel("expected background events")
        label = f"generated, N_gen = {n:,}" if n else "generated"
    else:
        lumi = fixed or max(r.luminosity for r in rows)
        gen = sorted(
            _select(rows, systematic=systematic, template="generated", luminosity=lumi),
            key=lambda r: r.n_generated or 0,
        )
        one = _select(rows, systematic=systematic, template="mc", luminosity=lumi)
        x_gen = np.array([r.n_generated for r in gen])
        ref = one * len(gen)
        x_ref = x_gen
        ax.set_xlabel(r"generated events $N_\mathrm{gen}$")
        label = f"generated, B = {one[0].background_yield:.3g}" if one else "generated"
    if ref:
        band = {k: np.array([getattr(r, f"ul_expected_{k}") for r in ref]) for k in ("m2", "m1", "median", "p1", "p2")}
        ax.fill_between(x_ref, band["m2"], band["p2"], color=_BAND_2, label=r"MC expected $\pm2\sigma$")
        ax.fill_between(x_ref, band["m1"], band["p1"], color=_BAND_1, label=r"MC expected $\pm1\sigma$")
        ax.plot(x_ref, band["median"], color="black", ls="--", label="MC expected median")
    if gen:
        ax.plot(x_gen, [r.ul_expected_median for r in gen], color="tab:red", marker=".", label=label + " (median)")
        ax.plot(x_gen, [r.ul_observed for r in gen], color="tab:blue", marker=".", label=label + " (obs.)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(r"95% CL$_s$ upper limit on $\mu$")
    ax.legend(fontsize="small")
    return fig


def plot_delta_ul_vs_ngen(rows: Sequence[ScanPoint], *, luminosity: float | None = None) -> Figure:
    """ΔUL = median expected limit (generated) − (MC) versus N_gen, one line per systematic, with the MC
    reference's ±1σ half-width for scale."""
    lumi = luminosity or max(r.luminosity for r in rows)
    fig, ax = _figure("median-limit shift (band: MC ±1σ half-width)")
    for syst in sorted({r.systematic for r in rows}):
        sel = sorted(
            _select(rows, systematic=syst, template="generated", luminosity=lumi), key=lambda r: r.n_generated or 0
        )
        ref = _select(rows, systematic=syst, template="mc", luminosity=lumi)
        if not sel:
            continue
        line = ax.plot(
            [r.n_generated for r in sel],
            [r.delta_ul_median for r in sel],
            marker=".",
            label=f"{syst:.0%} systematic",
        )[0]
        if ref:
            half = 0.5 * (ref[0].ul_expected_p1 - ref[0].ul_expected_m1)
            ax.axhspan(-half, half, color=line.get_color(), alpha=0.1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(r"generated events $N_\mathrm{gen}$")
    ax.set_ylabel(r"$\Delta$UL (generated $-$ MC)")
    ax.legend(fontsize="small")
    return fig


def save_scan_plots(rows: Sequence[ScanPoint], out_dir: str | Path) -> list[str]:
    """Write every scan figure as PNG into ``out_dir``; returns the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Figure] = {}
    for syst in sorted({r.systematic for r in rows}):
        tag = f"syst{round(syst * 100):02d}"
        figures[f"mu_bias_vs_lumi_{tag}.png"] = plot_mu_bias_vs_lumi(rows, syst)
        figures[f"z0_vs_lumi_{tag}.png"] = plot_z0_vs(rows, "luminosity", syst)
        figures[f"z0_vs_ngen_{tag}.png"] = plot_z0_vs(rows, "n_generated", syst)
        figures[f"ul_vs_lumi_{tag}.png"] = plot_ul_vs(rows, "luminosity", syst)
        figures[f"ul_vs_ngen_{tag}.png"] = plot_ul_vs(rows, "n_generated", syst)
    figures["delta_ul_vs_ngen.png"] = plot_delta_ul_vs_ngen(rows)
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=90, bbox_inches="tight")
    return sorted(figures)
