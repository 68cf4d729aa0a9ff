"""One call that validates a generated sample against MC, and the report folder it writes.

:func:`validate` runs the whole suite on two (n, d) arrays with feature names, each section timed
(``timings_s``: wall-clock seconds; ``cpu_s``: CPU seconds of this process, all threads — on a machine shared with
other jobs the CPU time shows what a section costs, the wall time what it took): per-feature divergences with bootstrap uncertainties and MC-vs-MC baselines at the comparison's
sizes (``features``), the C2ST over repeated classifiers (``c2st``), the classifier density ratio with its
calibration and the events in its tails (``density_ratio``), the C2ST of the reweighted candidate, ELSA's first step
(``reweighted_c2st``), FPD and KPD with baselines (``physics_distances``), and weighted Pearson/Spearman
correlation comparisons (``correlations``). :func:`write_report` writes ``report.json`` (every number, strict
JSON: a number that does not exist is null), the PNG figures and ``index.html``.

Weights: non-negative event weights on either side enter every number (histograms, W1, KS, classifiers,
correlations, tails; FPD and KPD through a weighted resample). NaN, infinite, negative or all-zero weights are
refused with an error naming the parameter. Very unequal sample sizes are subsampled to the smaller one in the
classifier tests, with a note in the report.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..files import atomic_write_text
from .c2st import C2STResult, c2st
from .correlations import CorrelationComparison, compare_correlations
from .density_ratio import fit_density_ratio, tail_summary
from .divergences import FeatureDivergence, compare_features
from .physics_distances import Scaling
from .physics_distances import physics_distances as compute_physics_distances
from .samples import check_sample, check_weights

__all__ = ["ValidationReport", "validate", "write_report"]


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class ValidationReport:
    """Every number of one validation; ``to_dict()`` is ``report.json``."""

    names: list[str]
    features: dict[str, FeatureDivergence]
    c2st: C2STResult
    correlations: CorrelationComparison
    density_ratio: dict[str, Any] = field(default_factory=dict)
    reweighted_c2st: C2STResult | None = None
    physics_distances: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    _weights_ref: np.ndarray | None = field(default=None, repr=False)
    _weights_can: np.ndarray | None = field(default=None, repr=False)
    _ratio_values: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def flagged_features(self) -> list[str]:
        """Features whose W1 lies above the MC-vs-MC baseline mean + 3 SD."""
        return [n for n, f in self.features.items() if f.flagged]

    def to_dict(self) -> dict[str, Any]:
        return _strict(
            {
                "features": {n: f.to_dict() for n, f in self.features.items()},
                "flagged_features": self.flagged_features,
                "c2st": self.c2st.to_dict(),
                "reweighted_c2st": self.reweighted_c2st.to_dict() if self.reweighted_c2st else None,
                "density_ratio": self.density_ratio,
                "physics_distances": self.physics_distances,
                "correlations": self.correlations.to_dict(),
                "notes": self.notes,
                "timings_s": self.timings,
                "cpu_s": self.cpu_timings,
            }
        )

    def verdict(self) -> str:
        """A short human summary."""
        flagged = self.flagged_features
        return (
            f"C2ST {self.c2st.summary()}; {len(flagged)} of {len(self.names)} features outside the MC-vs-MC W1 "
            "band at the comparison's sizes" + (f": {', '.join(flagged)}" if flagged else "")
        )


def validate(
    reference: np.ndarray,
    candidate: np.ndarray,
    names: Sequence[str],
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    bins: int = 50,
    n_resamples: int = 20,
    classifier: Literal["hgb", "mlp"] = "hgb",
    n_permutations: int = 200,
    n_bootstrap: int = 200,
    n_repeats: int = 5,
    level: float = 0.05,
    max_events: int | None = 1_000_000,
    density_ratio: bool = True,
    physics_distances: bool = True,
    physics_scaling: Scaling = "max_abs",
    kpd_degree: int = 4,
    physics_options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> ValidationReport:
    """Validate ``candidate`` (generated, (n, d)) against ``reference`` (MC, (m, d)); see the module docstring.

    ``n_resamples``: bootstrap and baseline replicates of the 1-D divergences; ``n_permutations``,
    ``n_bootstrap``, ``n_repeats``, ``level``, ``max_events``: the C2ST's (:func:`~mcsurrogate.validation.c2st`);
    ``physics_scaling``, ``kpd_degree``: the FPD/KPD conventions, ``physics_options``: any other keyword of
    :func:`~mcsurrogate.validation.physics_distances` (subset sizes and counts).
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise InputError(f"feature names must be unique; got {names}")
    ref = check_sample(reference, "reference")
    can = check_sample(candidate, "candidate", ref.shape[1])
    if ref.shape[1] != len(names):
        raise InputError(f"{len(names)} feature names for {ref.shape[1]} columns")
    wr = check_weights(weights_reference, len(ref), "weights_reference")
    wc = check_weights(weights_candidate, len(can), "weights_candidate")
    c2st_kw: dict[str, Any] = {
        "classifier": classifier,
        "n_permutations": n_permutations,
        "n_bootstrap": n_bootstrap,
        "n_repeats": n_repeats,
        "level": level,
        "max_events": max_events,
    }
    notes: list[str] = []
    if max(len(ref), len(can)) > 10 * min(len(ref), len(can)):
        notes.append(
            f"very unequal sizes ({len(ref)} reference, {len(can)} candidate): the classifier tests use "
            f"{min(len(ref), len(can), max_events or len(ref))} events of each"
        )
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def lap(section: str) -> None:
        nonlocal clock, cpu_clock
        now, cpu_now = time.perf_counter(), time.process_time()
        timings[section], cpu_timings[section] = now - clock, cpu_now - cpu_clock
        clock, cpu_clock = now, cpu_now

    # the C2ST first: it checks its options (permutations against the level) before anything slow runs
    test = c2st(ref, can, weights_reference=wr, weights_candidate=wc, seed=seed, **c2st_kw)
    notes += test.notes
    lap("c2st")
    feats = compare_features(
        ref,
        can,
        names,
        weights_reference=wr,
        weights_candidate=wc,
        bins=bins,
        n_resamples=n_resamples,
        n_bootstrap=n_resamples,
        seed=seed,
    )
    lap("features")
    report = ValidationReport(
        names,
        feats,
        test,
        compare_correlations(ref, can, names, weights_reference=wr, weights_candidate=wc),
        notes=notes,
        timings=timings,
        cpu_timings=cpu_timings,
        _weights_ref=wr,
        _weights_can=wc,
    )
    lap("correlations")
    if density_ratio:
        ratio = fit_density_ratio(ref, can, weights_reference=wr, weights_candidate=wc, seed=seed)
        w_can = ratio.weights(can)
        w_ref = ratio.weights(ref)
        summary = tail_summary(can, w_can, names, weights=wc)
        quantiles = summary.pop("quantiles_generated")
        report.density_ratio = {**ratio.to_dict(), "tails": summary, "quantiles_generated": quantiles}
        report._ratio_values = (w_ref, w_can)
        lap("density_ratio")
        report.reweighted_c2st = c2st(
            ref,
            can,
            weights_reference=wr,
            weights_candidate=w_can if wc is None else w_can * wc,
            seed=seed + 1,
            **c2st_kw,
        )
        lap("reweighted_c2st")
    if physics_distances:
        report.physics_distances = compute_physics_distances(
            ref,
            can,
            weights_reference=wr,
            weights_candidate=wc,
            scaling=physics_scaling,
            degree=kpd_degree,
            seed=seed,
            **dict(physics_options or {}),
        ).to_dict()
        lap("physics_distances")
    return report


def write_report(
    report: ValidationReport,
    reference: np.ndarray,
    candidate: np.ndarray,
    out_dir: str | Path,
    *,
    corner_features: Sequence[str] | None = None,
    max_plot_events: int = 200_000,
) -> list[str]:
    """Write ``report.json``, the PNG figures and ``index.html`` into ``out_dir``; returns the figure names.
    The time the figures took is added to ``report.timings`` and ``report.cpu_timings`` (``figures``)."""
    from .plots import plot_corner, plot_correlation_difference, plot_density_ratio, plot_feature, plot_roc

    start, cpu_start = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = np.asarray(reference, dtype=float)
    can = np.asarray(candidate, dtype=float)
    rng = np.random.default_rng(0)
    ir = rng.permutation(len(ref))[:max_plot_events]
    ic = rng.permutation(len(can))[:max_plot_events]
    wr = None if report._weights_ref is None else report._weights_ref[ir]
    wc = None if report._weights_can is None else report._weights_can[ic]
    figures = {}
    for j, name in enumerate(report.names):
        figures[f"feature_{j:02d}_{_safe(name)}.png"] = plot_feature(
            name, ref[ir, j], can[ic, j], weights_reference=wr, weights_candidate=wc
        )
    figures["correlation_difference.png"] = plot_correlation_difference(report.correlations)
    figures["c2st_roc.png"] = plot_roc(report.c2st)
    if report._ratio_values is not None:
        w_ref, w_can = report._ratio_values
        figures["density_ratio.png"] = plot_density_ratio(
            w_ref, w_can, weights_reference=report._weights_ref, weights_candidate=report._weights_can
        )
    chosen = list(corner_features) if corner_features else report.names[: min(5, len(report.names))]
    missing = [c for c in chosen if c not in report.names]
    if missing:
        raise InputError(f"corner features {missing} are not among the validated features {report.names}")
    idx = [report.names.index(c) for c in chosen]
    figures["corner.png"] = plot_corner(ref[ir][:, idx][:20_000], can[ic][:, idx][:20_000], chosen)
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=80, bbox_inches="tight")
    report.timings["figures"] = time.perf_counter() - start
    report.cpu_timings["figures"] = time.process_time() - cpu_start
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=1, allow_nan=False))
    atomic_write_text(out / "index.html", _index(report, sorted(figures)))
    return sorted(figures)


_FLAG = ' style="background:#fdd"'


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def _index(report: ValidationReport, figures: list[str]) -> str:
    rows = "".join(
        f"<tr{_FLAG if f.flagged else ''}><td>{html.escape(n)}</td>"
        f"<td>{_num(f.values['wasserstein'], '.4g')} ± {_num(f.bootstrap_sd.get('wasserstein'), '.2g')}</td>"
        f"<td>{_num(f.baseline_mean['wasserstein'], '.4g')} ± {_num(f.baseline_sd['wasserstein'], '.2g')}</td>"
        f"<td>{_num(f.values['ks_statistic'], '.4g')}</td><td>{_num(f.values['ks_pvalue'], '.3g')}</td>"
        f"<td>{_num(f.values['chi2_pvalue'], '.3g')}</td><td>{_num(f.values['hellinger'], '.4g')}</td></tr>"
        for n, f in report.features.items()
    )
    pd = report.physics_distances
    extra = (
        (
            f"<p>FPD {_num(pd['fpd'], '.4g')} ± {_num(pd['fpd_error'], '.2g')} "
            f"(MC vs MC {_num(pd['fpd_baseline'], '.4g')} ± {_num(pd['fpd_baseline_error'], '.2g')}); "
            f"KPD {_num(pd['kpd'], '.4g')} ± {_num(pd['kpd_error'], '.2g')} "
            f"(MC vs MC {_num(pd['kpd_baseline'], '.4g')} ± {_num(pd['kpd_baseline_error'], '.2g')}); "
            f"conventions {html.escape(json.dumps(pd['conventions']))}</p>"
        )
        if pd
        else ""
    )
    extra += f"<p>C2ST interval covers: {html.escape(report.c2st.ci_covers)}</p>"
    rw = report.reweighted_c2st
    if rw is not None:
        extra += f"<p>C2ST after density-ratio reweighting: {html.escape(rw.summary())}</p>"
    if report.timings:
        extra += "<p>time per section (wall / CPU): " + ", ".join(
            f"{k} {v:.1f} / {report.cpu_timings.get(k, float('nan')):.1f} s" for k, v in report.timings.items()
        )
        extra += "</p>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    imgs = "".join(
        f'<figure><img src="{f}" style="max-width:32%"><figcaption>{f}</figcaption></figure>' for f in figures
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>mcsurrogate validation</title></head><body>"
        f"<h1>Validation: generated vs MC</h1><p><b>{html.escape(report.verdict())}</b></p>{extra}"
        f"<ul>{notes}</ul><table border=1 cellpadding=3><tr><th>feature</th><th>W1 ± bootstrap SD</th>"
        f"<th>W1 MC-vs-MC at these sizes (mean ± SD)</th><th>KS D</th><th>KS p</th><th>χ² p</th><th>Hellinger</th>"
        f"</tr>{rows}</table>{imgs}</body></html>"
    )
