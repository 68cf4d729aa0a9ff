"""Validation of a response surrogate against the reference smearing on the same truth events (paper A's figures).

Both samples are smeared versions of the *same* truth events, so every comparison is per event class:
core resolution of each response in bins of truth E_T, η and μ (with the ratio generated/target), the
correlation matrix of the responses, the fraction of responses in the low tail, and the diphoton
observables m_γγ and p_T^γγ computed with vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from .resolution import BinnedWidths, binned_core_widths, tail_cut
from .surrogate import DEFAULT_LAYOUT, ResponseLayout, response_table

__all__ = [
    "DiphotonSummary",
    "ResponseEvaluation",
    "diphoton_summary",
    "evaluate_response",
    "width_ratio_consistency",
]

#: default binning of the truth variables (GeV for E_T; μ is the mean number of pile-up interactions)
DEFAULT_BINS = {
    "pt": np.array([20, 30, 40, 50, 60, 80, 100, 150, 250.0]),
    "eta": np.linspace(-2.5, 2.5, 11),
    "mu": np.linspace(0, 40, 9),
}


@dataclass
class DiphotonSummary:
    """m_γγ (GeV) in a window and p_T^γγ (GeV) of one sample."""

    window: tuple[float, float]
    fraction_in_window: float
    mass_mean: float
    mass_sd: float
    mass_mean_err: float
    pt_mean: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, window=list(self.window))


def diphoton_summary(
    events: ak.Array, collection: str = "photons", window: tuple[float, float] = (120.0, 130.0)
) -> DiphotonSummary:
    """Mean and SD of m_γγ in ``window`` (GeV), the fraction of events there, and the mean p_T^γγ."""
    pair = events[collection][:, 0] + events[collection][:, 1]
    m = ak.to_numpy(pair.mass).astype(np.float64)
    pt = ak.to_numpy(pair.pt).astype(np.float64)
    sel = (m > window[0]) & (m < window[1])
    mw = m[sel]
    return DiphotonSummary(
        window,
        float(sel.mean()),
        float(mw.mean()),
        float(mw.std()),
        float(mw.std() / np.sqrt(max(len(mw), 1))),
        float(pt.mean()),
        len(m),
    )


@dataclass
class ResponseEvaluation:
    """Everything compared between target (reference smearing) and generated (surrogate) responses."""

    responses: list[str]
    widths: dict[str, dict[str, BinnedWidths]]  # response → truth variable → binned widths
    correlation_target: np.ndarray
    correlation_generated: np.ndarray
    tail_fraction_target: dict[str, float]  # fraction of responses below −2 σ_core (σ_core of the target)
    tail_fraction_generated: dict[str, float]
    diphoton_target: DiphotonSummary
    diphoton_generated: DiphotonSummary
    target_responses: np.ndarray = field(repr=False)
    generated_responses: np.ndarray = field(repr=False)

    def worst_width_ratio(self) -> tuple[float, float]:
        """Smallest and largest generated/target core-width ratio over all responses and bins."""
        ratios = np.concatenate([w.ratio for per in self.widths.values() for w in per.values()])
        ratios = ratios[np.isfinite(ratios)]
        return float(ratios.min()), float(ratios.max())

    def width_ratio_consistency(self, precise: float = 0.02) -> dict[str, float]:
        """Agreement of the core widths beyond statistics (:func:`width_ratio_consistency`)."""
        return width_ratio_consistency(self.widths, precise)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.worst_width_ratio()
        return {
            "responses": self.responses,
            "width_ratio_range": [lo, hi],
            "width_ratio_consistency": self.width_ratio_consistency(),
            "widths": {r: {v: w.to_dict() for v, w in per.items()} for r, per in self.widths.items()},
            "correlation_target": self.correlation_target.tolist(),
            "correlation_generated": self.correlation_generated.tolist(),
            "max_abs_correlation_difference": float(
                np.max(np.abs(self.correlation_target - self.correlation_generated))
            ),
            "tail_fraction_target": self.tail_fraction_target,
            "tail_fraction_generated": self.tail_fraction_generated,
            "diphoton_target": self.diphoton_target.to_dict(),
            "diphoton_generated": self.diphoton_generated.to_dict(),
            "mass_mean_difference_gev": self.diphoton_generated.mass_mean - self.diphoton_target.mass_mean,
            "mass_sd_ratio": self.diphoton_generated.mass_sd / self.diphoton_target.mass_sd,
        }


def _truth_variable(table: ak.Array, layout: ResponseLayout, response: str, variable: str) -> np.ndarray:
    if variable == layout.pileup:
        return table[layout.pileup].to_numpy()
    slot = response[len("d_") :].rsplit("_", 1)[0]  # e.g. photon1
    return table[f"{slot}_{variable}"].to_numpy()


def evaluate_response(
    target: ak.Array,
    generated: ak.Array,
    *,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    bins: dict[str, np.ndarray] | None = None,
    n_boot: int = 20,
    seed: int = 0,
) -> ResponseEvaluation:
    """Compare two smeared samples of the same truth events (reference ``target``, surrogate ``generated``).

    ``generated`` may hold k surrogate smearings of every truth event, as the target's events repeated k times in
    blocks (``run_scenario(oversample=k)``): the surrogate side is then measured k times more precisely.
    """
    bins = DEFAULT_BINS | (bins or {})
    tt, tg = response_table(target, layout), response_table(generated, layout)
    if len(tt) == 0 or len(tg) % len(tt):
        raise ValueError(
            f"target and generated must smear the same truth events (generated: k times each, in blocks): "
            f"{len(tt)} vs {len(tg)} events"
        )
    k = len(tg) // len(tt)
    truth_cols = [f"{layout.prefix}{i}_{f}" for i in range(1, layout.n + 1) for f in layout.fields] + [layout.pileup]
    for col in truth_cols:
        if not np.array_equal(np.tile(tt[col].to_numpy(), k), tg[col].to_numpy()):
            raise ValueError(f"generated events do not smear the target's truth events (column {col!r} differs)")
    cols = layout.response_columns
    rt = np.stack([tt[c].to_numpy() for c in cols], axis=1)
    rg = np.stack([tg[c].to_numpy() for c in cols], axis=1)
    widths: dict[str, dict[str, BinnedWidths]] = {}
    tails_t, tails_g = {}, {}
    for j, col in enumerate(cols):
        widths[col] = {}
        for var in ("pt", "eta", layout.pileup):
            x = _truth_variable(tt, layout, col, var)
            edges = bins["mu" if var == layout.pileup else var]
            widths[col][var] = binned_core_widths(
                x, rt[:, j], rg[:, j], edges, name=var, n_boot=n_boot, seed=seed + j, generated_variable=np.tile(x, k)
            )
        cut = tail_cut(rt[:, j])
        tails_t[col] = float(np.mean(rt[:, j] < cut))
        tails_g[col] = float(np.mean(rg[:, j] < cut))
    return ResponseEvaluation(
        responses=cols,
        widths=widths,
        correlation_target=np.corrcoef(rt, rowvar=False),
        correlation_generated=np.corrcoef(rg, rowvar=False),
        tail_fraction_target=tails_t,
        tail_fraction_generated=tails_g,
        diphoton_target=diphoton_summary(target, layout.collection),
        diphoton_generated=diphoton_summary(generated, layout.collection),
        target_responses=rt,
        generated_responses=rg,
    )


def width_ratio_consistency(
    widths: Mapping[str, Mapping[str, BinnedWidths]], precise: float = 0.02
) -> dict[str, float]:
    """Agreement of core widths beyond statistics, over every binned width of ``widths`` (by response, then by
    variable; each with ``ratio`` and ``ratio_err`` per bin): χ²/bins of (ratio − 1)/σ_ratio over all bins with a
    finite ratio and error, and the ratio range over the bins measured to better than ``precise`` (relative)."""
    r = np.concatenate([w.ratio for per in widths.values() for w in per.values()])
    e = np.concatenate([w.ratio_err for per in widths.values() for w in per.values()])
    ok = np.isfinite(r) & np.isfinite(e) & (e > 0)
    good = ok & (e < precise)
    return {
        "chi2_per_bin": float(np.mean(((r[ok] - 1) / e[ok]) ** 2)) if ok.any() else float("nan"),
        "n_bins": int(ok.sum()),
        "precise_bins": int(good.sum()),
        "precise_ratio_min": float(r[good].min()) if good.any() else float("nan"),
        "precise_ratio_max": float(r[good].max()) if good.any() else float("nan"),
    }
