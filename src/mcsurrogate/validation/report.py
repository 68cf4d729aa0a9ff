"""One call that validates a generated sample against MC, and the report folder it writes.

:func:`validate` runs the whole suite on two (n, d) arrays with feature names: per-feature divergences with
MC-vs-MC baselines, the C2ST (AUC, CI, accuracy, permutation p-value), the classifier density ratio with its
calibration, the events in its tails, the C2ST of the reweighted candidate (ELSA's first step), FPD and KPD with
baselines, and Pearson/Spearman correlation comparisons. :func:`write_report` writes ``report.json`` (every number),
the PNG figures and ``index.html``.

Weights: non-negative event weights are used everywhere (histograms, W1, classifiers). Negative weights are
refused with an error, because W1 and the classifier tests have no meaning for them; remove them or absorb them
into positive weights (e.g. by cell resampling) first. Very unequal sample sizes are subsampled to the smaller
one in the classifier tests, with a note in the report.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..files import atomic_write_text
from .c2st import C2STResult, _check, _weights, c2st
from .correlations import CorrelationComparison, compare_correlations
from .density_ratio import fit_density_ratio
from .divergences import FeatureDivergence, compare_features
from .physics_distances import fpd, kpd

__all__ = ["ValidationReport", "validate", "write_report"]


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
    _weights_ref: np.ndarray | None = field(default=None, repr=False)
    _weights_can: np.ndarray | None = field(default=None, repr=False)

    @property
    def flagged_features(self) -> list[str]:
        """Features whose W1 lies above the MC-vs-MC baseline mean + 3 SD."""
        return [n for n, f in self.features.items() if f.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": {n: f.to_dict() for n, f in self.features.items()},
            "flagged_features": self.flagged_features,
            "c2st": self.c2st.to_dict(),
            "reweighted_c2st": self.reweighted_c2st.to_dict() if self.reweighted_c2st else None,
            "density_ratio": self.density_ratio,
            "physics_distances": self.physics_distances,
            "correlations": self.correlations.to_dict(),
            "notes": self.notes,
        }

    def verdict(self) -> str:
        """A short human summary."""
        c = self.c2st
        flagged = self.flagged_features
        return (
            f"C2ST AUC {c.auc:.4f} [{c.auc_ci[0]:.4f}, {c.auc_ci[1]:.4f}], p = {c.p_value:.3g} "
            f"({'consistent with 0.5' if c.p_value > 0.05 else 'distinguishable'}); "
            f"{len(flagged)} of {len(self.names)} features outside the MC-vs-MC W1 band"
            + (f": {', '.join(flagged)}" if flagged else "")
        )


def validate(
    reference: np.ndarray,
    candidate: np.ndarray,
    names: Sequence[str],
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    bins: int = 50,
    n_resamples: int = 5,
    classifier: Literal["hgb", "mlp"] = "hgb",
    n_permutations: int = 200,
    n_bootstrap: int = 200,
    max_events: int | None = 1_000_000,
    density_ratio: bool = True,
    physics_distances: bool = True,
    seed: int = 0,
) -> ValidationReport:
    """Validate ``candidate`` (generated, (n, d)) against ``reference`` (MC, (m, d)); see the module docstring."""
    names = list(names)
    if len(set(names)) != len(names):
        raise InputError(f"feature names must be unique; got {names}")
    ref = _check(reference, "reference")
    can = _check(candidate, "candidate", ref.shape[1])
    if ref.shape[1] != len(names):
        raise InputError(f"{len(names)} feature names for {ref.shape[1]} columns")
    wr = _weights(weights_reference, len(ref), "reference")
    wc = _weights(weights_candidate, len(can), "candidate")
    notes: list[str] = []
    if max(len(ref), len(can)) > 10 * min(len(ref), len(can)):
        notes.append(
            f"very unequal sizes ({len(ref)} reference, {len(can)} candidate): the classifier tests use "
            f"{min(len(ref), len(can), max_events or len(ref))} events of each"
        )
    uw_r = None if weights_reference is None else wr
    uw_c = None if weights_candidate is None else wc
    feats = compare_features(
        ref, can, names, weights_reference=uw_r, weights_candidate=uw_c, bins=bins, n_resamples=n_resamples, seed=seed
    )
    test = c2st(
        ref,
        can,
        weights_reference=uw_r,
        weights_candidate=uw_c,
        classifier=classifier,  # type: ignore[arg-type]
        n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
        max_events=max_events,
        seed=seed,
    )
    notes += test.notes
    report = ValidationReport(
        names, feats, test, compare_correlations(ref, can, names), notes=notes, _weights_ref=uw_r, _weights_can=uw_c
    )
    if density_ratio:
        ratio = fit_density_ratio(ref, can, weights_reference=uw_r, weights_candidate=uw_c, seed=seed)
        w_can = ratio.weights(can)
        w_ref = ratio.weights(ref)
        tails = {}
        for label, cut in (("overpopulated_w_below_0.5", w_can < 0.5), ("underpopulated_w_above_2", w_can > 2.0)):
            sel = can[cut]
            tails[label] = {
                "fraction_of_generated": float(cut.mean()),
                "mean_of_features": dict(zip(names, sel.mean(axis=0).tolist(), strict=False)) if len(sel) else {},
                "mean_of_features_all_generated": dict(zip(names, can.mean(axis=0).tolist(), strict=False)),
            }
        report.density_ratio = {
            **ratio.to_dict(),
            "tails": tails,
            "quantiles_generated": dict(
                zip(("1%", "50%", "99%"), np.quantile(w_can, [0.01, 0.5, 0.99]).tolist(), strict=False)
            ),
        }
        report._ratio_values = (w_ref, w_can)  # type: ignore[attr-defined]
        report.reweighted_c2st = c2st(
            ref,
            can,
            weights_reference=uw_r,
            weights_candidate=w_can * wc,
            classifier=classifier,
            n_permutations=n_permutations,  # type: ignore[arg-type]
            n_bootstrap=n_bootstrap,
            max_events=max_events,
            seed=seed + 1,
        )
    if physics_distances:
        half = len(ref) // 2
        perm = np.random.default_rng(seed).permutation(len(ref))
        r1, r2 = ref[perm[:half]], ref[perm[half : 2 * half]]
        f, fe = fpd(ref, can, seed=seed)
        fb, fbe = fpd(r1, r2, seed=seed)
        k, ke = kpd(ref, can, seed=seed)
        kb, kbe = kpd(r1, r2, seed=seed)
        report.physics_distances = {
            "fpd": f,
            "fpd_error": fe,
            "fpd_baseline": fb,
            "fpd_baseline_error": fbe,
            "kpd": k,
            "kpd_error": ke,
            "kpd_baseline": kb,
            "kpd_baseline_error": kbe,
        }
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
    """Write ``report.json``, the PNG figures and ``index.html`` into ``out_dir``; returns the figure names."""
    from .plots import plot_corner, plot_correlation_difference, plot_density_ratio, plot_feature, plot_roc

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
    if getattr(report, "_ratio_values", None) is not None:
        w_ref, w_can = report._ratio_values  # type: ignore[attr-defined]
        figures["density_ratio.png"] = plot_density_ratio(w_ref, w_can)
    chosen = list(corner_features) if corner_features else report.names[: min(5, len(report.names))]
    missing = [c for c in chosen if c not in report.names]
    if missing:
        raise InputError(f"corner features {missing} are not among the validated features {report.names}")
    idx = [report.names.index(c) for c in chosen]
    figures["corner.png"] = plot_corner(ref[ir][:, idx][:20_000], can[ic][:, idx][:20_000], chosen)
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=80, bbox_inches="tight")
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=1))
    atomic_write_text(out / "index.html", _index(report, sorted(figures)))
    return sorted(figures)


_FLAG = ' style="background:#fdd"'


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _index(report: ValidationReport, figures: list[str]) -> str:
    rows = "".join(
        f"<tr{_FLAG if f.flagged else ''}><td>{html.escape(n)}</td>"
        f"<td>{f.values['wasserstein']:.4g}</td><td>{f.baseline_mean['wasserstein']:.4g} ± "
        f"{f.baseline_sd['wasserstein']:.2g}</td><td>{f.values['chi2_pvalue']:.3g}</td>"
        f"<td>{f.values['ks_pvalue']:.3g}</td><td>{f.values['hellinger']:.4g}</td></tr>"
        for n, f in report.features.items()
    )
    pd = report.physics_distances
    extra = (
        (
            f"<p>FPD {pd['fpd']:.4g} ± {pd['fpd_error']:.2g} (MC vs MC {pd['fpd_baseline']:.4g}); "
            f"KPD {pd['kpd']:.4g} ± {pd['kpd_error']:.2g} (MC vs MC {pd['kpd_baseline']:.4g})</p>"
        )
        if pd
        else ""
    )
    rw = report.reweighted_c2st
    if rw is not None:
        extra += f"<p>C2ST after density-ratio reweighting: AUC {rw.auc:.4f}, p = {rw.p_value:.3g}</p>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    imgs = "".join(
        f'<figure><img src="{f}" style="max-width:32%"><figcaption>{f}</figcaption></figure>' for f in figures
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>mcsurrogate validation</title></head><body>"
        f"<h1>Validation: generated vs MC</h1><p><b>{html.escape(report.verdict())}</b></p>{extra}"
        f"<ul>{notes}</ul><table border=1 cellpadding=3><tr><th>feature</th><th>W1</th><th>W1 MC-vs-MC</th>"
        f"<th>χ² p</th><th>KS p</th><th>Hellinger</th></tr>{rows}</table>{imgs}</body></html>"
    )
