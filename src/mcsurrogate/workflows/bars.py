"""Paper B's four quality bars for an amplifier, and the MC-statistics floors of the two that a perfect generator
can fail too.

1. C2ST AUC ≤ 0.52 against the held-out MC, with at least 10⁵ events per class;
2. every feature's 1-D Wasserstein distance within 3 × its MC-vs-MC baseline;
3. spurious signal |Z₀| < 1 at 10 % systematic, at the largest generated template, at every luminosity scanned;
4. the expected upper limit within the MC template's ±1σ half band (every systematic and luminosity).

A bar measured on finite held-out MC has a floor: :func:`toy_floor` summarises toys of a perfect generator (or of
one that reproduces its training MC exactly) into the quantiles of their worst value over the luminosity scan, which
:func:`quality_bars` puts beside bars 3 and 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..stats import ScanPoint, SpuriousSignalToy
from ..validation import ValidationReport

__all__ = ["QualityBar", "QualityBars", "ToyFloor", "quality_bars", "toy_floor"]

#: the C2ST bar: AUC at most this, with at least :data:`C2ST_MIN_EVENTS` per class
C2ST_MAX_AUC = 0.52
C2ST_MIN_EVENTS = 100_000
#: the W1 bar: W1 / MC-vs-MC baseline at most this for every feature
W1_MAX_RATIO = 3.0
#: the systematic (relative) at which the spurious-signal bar is judged and the toys run
TOY_SYSTEMATIC = 0.10


@dataclass(frozen=True)
class ToyFloor:
    """Over toys: the median, 84 % and 95 % quantiles of a toy's largest |Z₀| (or |limit shift|, in half bands)
    over its luminosity scan, and the fraction of toys whose largest is below 1 (that pass the bar).
    ``failed_points``: toy fits that failed and were left out. With no toy fitted the quantiles are ``None``."""

    n_toys: int
    failed_points: int
    max_abs_median: float | None = None
    max_abs_q84: float | None = None
    max_abs_q95: float | None = None
    fraction_below_1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n_toys": self.n_toys, "failed_points": self.failed_points}
        if self.n_toys:
            d |= {
                "max_abs_median": self.max_abs_median,
                "max_abs_q84": self.max_abs_q84,
                "max_abs_q95": self.max_abs_q95,
                "fraction_below_1": self.fraction_below_1,
            }
        return d


def toy_floor(toys: Sequence[SpuriousSignalToy], quantity: str) -> ToyFloor:
    """:class:`ToyFloor` of ``quantity`` (``"z_signed"`` or ``"ul_shift"``) over the rows of
    :func:`~mcsurrogate.stats.spurious_signal_toys` (one per toy and luminosity; failed rows are counted as
    failed)."""
    if quantity not in ("z_signed", "ul_shift"):
        raise InputError(f"quantity must be 'z_signed' or 'ul_shift', got {quantity!r}")
    per_toy: dict[int, list[float]] = {}
    failed = 0
    for t in toys:
        value = getattr(t, quantity)
        if value is None:
            raise InputError(f"the toys have no {quantity!r}: run spurious_signal_toys with limits=True")
        if t.status != "ok":
            failed += 1
            continue
        per_toy.setdefault(t.toy, []).append(abs(value))
    worst = np.array([max(v) for v in per_toy.values()])
    if worst.size == 0:
        return ToyFloor(n_toys=0, failed_points=failed)
    return ToyFloor(
        n_toys=int(worst.size),
        failed_points=failed,
        max_abs_median=float(np.median(worst)),
        max_abs_q84=float(np.quantile(worst, 0.84)),
        max_abs_q95=float(np.quantile(worst, 0.95)),
        fraction_below_1=float(np.mean(worst < 1.0)),
    )


@dataclass(frozen=True)
class QualityBar:
    """One bar: its number, whether it holds, what the number was measured on (``details``: events, the worst
    feature, the failed fits) and the toy floors beside it (``floors``)."""

    value: float
    holds: bool
    details: dict[str, Any] = field(default_factory=dict)
    floors: dict[str, ToyFloor] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return (
            {"value": self.value}
            | self.details
            | {"holds": self.holds}
            | {name: floor.to_dict() for name, floor in self.floors.items()}
        )


@dataclass(frozen=True)
class QualityBars:
    """The four bars; ``to_dict()`` names them as ``report.json`` does."""

    c2st: QualityBar
    w1: QualityBar
    spurious_z0: QualityBar
    ul_shift: QualityBar

    def to_dict(self) -> dict[str, Any]:
        return {
            "c2st_auc_at_most_0.52": self.c2st.to_dict(),
            "w1_within_3x_baseline": self.w1.to_dict(),
            "spurious_z0_below_1_at_10pct": self.spurious_z0.to_dict(),
            "ul_shift_within_mc_1sigma": self.ul_shift.to_dict(),
        }


def quality_bars(
    validation: ValidationReport,
    scan_rows: Sequence[ScanPoint],
    n_per_class: int,
    toys: Sequence[SpuriousSignalToy],
    learner_toys: Sequence[SpuriousSignalToy],
) -> QualityBars:
    """The four bars of an amplifier from its validation against the held-out MC (``n_per_class`` events per
    class in the C2ST) and the rows of its :func:`~mcsurrogate.stats.scan`, judged at the largest generated
    template. ``toys`` (rows of :func:`~mcsurrogate.stats.spurious_signal_toys` with limits, at 10 % systematic)
    give what a perfect generator would show with this much held-out MC, ``learner_toys`` (the same with
    ``n_training``) what one that reproduces its training MC exactly would show. A scan point whose fit failed
    cannot vouch for a bar: bars 3 and 4 hold only when every point was fitted."""
    ratios = {name: fd.w1_ratio for name, fd in validation.features.items() if fd.baseline_mean["wasserstein"] > 0}
    if not ratios:
        raise InputError("no feature of the validation has a positive MC-vs-MC W1 baseline")
    generated = [r for r in scan_rows if r.template == "generated" and r.n_generated is not None]
    if not generated:
        raise InputError("the scan rows hold no generated-template point")
    n_max = max(r.n_generated or 0 for r in generated)
    gen_max = [r for r in generated if r.n_generated == n_max]
    gen10 = [r for r in gen_max if r.systematic == TOY_SYSTEMATIC]
    failed_z0 = sum(r.status != "ok" for r in gen10)
    z0 = [abs(r.z_signed) for r in gen10 if r.status == "ok"]
    failed_ul = sum(not np.isfinite(r.ul_shift) for r in gen_max)
    shifts = [abs(r.ul_shift) for r in gen_max if np.isfinite(r.ul_shift)]
    z0_max = max(z0, default=float("nan"))
    shift_max = max(shifts, default=float("nan"))
    auc = validation.c2st.auc
    worst = max(ratios, key=lambda name: ratios[name])
    return QualityBars(
        c2st=QualityBar(auc, auc <= C2ST_MAX_AUC and n_per_class >= C2ST_MIN_EVENTS, {"events_per_class": n_per_class}),
        w1=QualityBar(ratios[worst], ratios[worst] <= W1_MAX_RATIO, {"worst": worst}),
        spurious_z0=QualityBar(
            z0_max,
            failed_z0 == 0 and z0_max < 1.0,
            {"n_generated": n_max, "failed_points": failed_z0},
            {
                "perfect_generator": toy_floor(toys, "z_signed"),
                "memorising_learner": toy_floor(learner_toys, "z_signed"),
            },
        ),
        # the toys run at 10 % systematic only (the bar takes the worst over every systematic scanned)
        ul_shift=QualityBar(
            shift_max,
            failed_ul == 0 and shift_max <= 1.0,
            {"n_generated": n_max, "failed_points": failed_ul},
            {
                "perfect_generator_at_10pct": toy_floor(toys, "ul_shift"),
                "memorising_learner_at_10pct": toy_floor(learner_toys, "ul_shift"),
            },
        ),
    )
