"""Scans of μ̂, spurious-signal Z₀ and CLs limits versus luminosity, generated statistics and systematic.

Paper B §5: the data are the Asimov counts of the *MC* (signal injected at μ_inj, default 0 for a
spurious-signal test); the model's background template comes either from the MC itself (the reference)
or from ``n_generated`` events of the generative surrogate, normalised to the same expected yield. Each
template's staterror comes from its own events, so a larger generated sample is a better-known template;
whether it is also a *correct* one is what μ̂ − μ_inj, Z₀ and the limit shift measure.

Units: a luminosity L multiplies the sample weights (weights are expected events per unit luminosity; with
unit weights, L = 1 means data as large as the MC sample). The signal is normalised either by its weights
or, with ``signal_fraction``, to that fraction of the MC background yield (paper B: 5 %).
"""

from __future__ import annotations

import builtins
import csv
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

import hist
import numpy as np
from tqdm.auto import tqdm

from ..errors import FitError, InputError
from .inference import TEST_STATISTICS, Inference, TestStatistic
from .jsonable import from_strict, strict
from .surrogate_uncertainty import SurrogateUncertainty
from .templates import fill_template, scale_template, template_arrays
from .workspace import SystematicKind, asimov_counts, build_workspace, model_and_data, surrogate_uncertainties

__all__ = [
    "PointResult",
    "Sample",
    "ScanPoint",
    "SpuriousSignalToy",
    "evaluate_point",
    "rows_to_csv",
    "scan",
    "scan_summary",
    "spurious_signal_toys",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """Values of the fit variable for one sample (GeV for masses) and optional per-event weights."""

    values: np.ndarray
    weights: np.ndarray | None = None

    def checked(self, name: str) -> Sample:
        v = np.asarray(self.values, dtype=float).ravel()
        if v.size == 0:
            raise InputError(f"the {name} sample is empty")
        if not np.all(np.isfinite(v)):
            raise InputError(f"the {name} sample has {int((~np.isfinite(v)).sum())} non-finite values")
        w = None
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=float).ravel()
            if w.shape != v.shape:
                raise InputError(f"the {name} weights have {w.size} entries for {v.size} events")
            if not np.all(np.isfinite(w)):
                raise InputError(f"the {name} weights contain NaN or inf")
        return Sample(v, w)


Template = Literal["mc", "generated"]
Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class PointResult:
    """The figures of one fit point (:func:`evaluate_point`): μ̂ ± σ (``mu_hat``, ``mu_sigma``), the discovery
    significance (``z0``, ``z_signed`` = sign(μ̂)·Z₀, ``p0``), the observed CLs limit on μ and the expected one with its
    bands (``ul_expected_{m2,m1,median,p1,p2}``), how many fits it took (``n_fits``), ``mu_at_bound`` (μ̂ on a bound of
    its range with the likelihood still rising beyond: capped) and ``fit_steps`` (how many fits each step of
    :data:`~.inference.FIT_LADDER` settled, e.g. ``"warm 31, fresh 1"``). A failed point (:meth:`failed`) has NaN
    figures and ``None`` for the rest."""

    mu_hat: float = math.nan
    mu_sigma: float = math.nan
    z0: float = math.nan
    z_signed: float = math.nan
    p0: float = math.nan
    ul_observed: float = math.nan
    n_fits: int | None = None
    ul_expected_m2: float = math.nan
    ul_expected_m1: float = math.nan
    ul_expected_median: float = math.nan
    ul_expected_p1: float = math.nan
    ul_expected_p2: float = math.nan
    mu_at_bound: bool | None = None
    fit_steps: str | None = None

    @classmethod
    def failed(cls) -> PointResult:
        """The figures of a point that could not be fitted: NaN each."""
        return PointResult()

    @property
    def half_band(self) -> float:
        """Half the ±1σ band of the expected limit (NaN for a failed point or a zero-width band)."""
        return half_band(self.ul_expected_m1, self.ul_expected_p1)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (NaN → ``None``), in field order."""
        return strict({f.name: getattr(self, f.name) for f in fields(PointResult)})


#: the figures of one scan point, in the order :class:`PointResult` holds them
RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PointResult))


@dataclass(frozen=True, kw_only=True)
class ScanPoint(PointResult):
    """One row of :func:`scan`: a (systematic, luminosity, template) point.

    The settings: ``systematic`` (relative), ``luminosity`` (× the MC), ``background_yield`` and ``signal_yield``
    (expected events), ``mu_injected``, ``template`` (``"mc"``, the reference, or ``"generated"``), ``n_generated``
    (``None`` for the MC template) and ``surrogate_modifiers`` (the generated template's own-uncertainty modifiers,
    ``None`` without). The figures of :class:`PointResult`; ``status`` (``"ok"`` / ``"failed"``) and ``reason``
    (``None``, or why the point failed: its figures are then NaN; :attr:`error` is its older name). And the comparison
    with the MC reference at the same point: ``mu_bias`` = μ̂ − μ_inj, ``delta_mu_hat``, ``delta_ul_observed``,
    ``delta_ul_median`` and ``ul_shift`` (``delta_ul_median`` in half-bands of the reference's ±1σ band).

    ``to_dict()`` is the row of ``scan.json`` (strict JSON; ``surrogate_modifiers`` only where there are modifiers),
    :meth:`from_dict` reads it back.
    """

    systematic: float
    luminosity: float
    background_yield: float
    signal_yield: float
    mu_injected: float
    template: Template
    n_generated: int | None = None
    surrogate_modifiers: str | None = None
    status: Status = "ok"
    reason: str | None = None
    mu_bias: float = math.nan
    delta_mu_hat: float = math.nan
    delta_ul_observed: float = math.nan
    delta_ul_median: float = math.nan
    ul_shift: float = math.nan

    @property
    def error(self) -> str | None:
        """Why the point failed (``None`` when fitted): the older name of :attr:`reason`."""
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        """The row as ``scan.json`` and ``scan.csv`` hold it (strict JSON: NaN → ``None``)."""
        return strict(self._row())

    def _row(self) -> dict[str, Any]:
        """The row's keys in file order, with the raw values (NaN kept)."""
        settings = ("systematic", "luminosity", "background_yield", "signal_yield", "mu_injected", "template")
        row = {k: getattr(self, k) for k in (*settings, "n_generated")}
        if self.surrogate_modifiers is not None:
            row["surrogate_modifiers"] = self.surrogate_modifiers
        row |= {k: getattr(self, k) for k in RESULT_FIELDS}
        if self.n_fits is None:  # a failed point: NaN, as its other figures
            row["n_fits"] = math.nan
        row |= {"status": self.status, "reason": self.reason, "error": self.error}
        comparison = ("mu_bias", "delta_mu_hat", "delta_ul_observed", "delta_ul_median", "ul_shift")
        return row | {k: getattr(self, k) for k in comparison}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanPoint:
        """A row back from its :meth:`to_dict` (e.g. a row of ``scan.json``); a missing or unknown key raises
        :class:`~mcsurrogate.errors.InputError`."""
        return from_strict(cls, data, derived=("error",))


@dataclass(frozen=True)
class SpuriousSignalToy:
    """One row of :func:`spurious_signal_toys`: a (toy, luminosity) point of a perfect generator (or, with
    ``n_training``, a memorising learner) against toy MC.

    ``toy``, ``luminosity``, ``background_yield``, ``signal_yield`` (expected events), ``n_training`` (``None``: the
    perfect generator), the fit ``mu_hat``, ``mu_sigma``, ``z_signed``; with ``limits=True`` also ``ul_observed`` and
    ``ul_expected_median`` (the perfect template), ``ul_expected_median_mc``, ``ul_half_band_mc`` and ``ul_shift``
    (``None`` each without limits: not computed); ``status``, ``reason`` (:attr:`error`, its older name). A failed
    point's figures are NaN. ``to_dict()`` leaves out the keys that were not computed; :meth:`from_dict` reads it back.
    """

    toy: int
    luminosity: float
    background_yield: float
    signal_yield: float
    n_training: int | None = None
    mu_hat: float = math.nan
    mu_sigma: float = math.nan
    z_signed: float = math.nan
    ul_observed: float | None = None
    ul_expected_median: float | None = None
    ul_expected_median_mc: float | None = None
    ul_half_band_mc: float | None = None
    ul_shift: float | None = None
    status: Status = "ok"
    reason: str | None = None

    @property
    def error(self) -> str | None:
        """Why the point failed (``None`` when fitted): the older name of :attr:`reason`."""
        return self.reason

    @property
    def has_limits(self) -> bool:
        """Whether the toy's limits were computed (``limits=True``)."""
        return self.ul_shift is not None

    def to_dict(self) -> dict[str, Any]:
        """The row as the toys' JSON holds it (strict JSON: NaN → ``None``; ``n_training`` and the limit keys only
        where computed)."""
        row: dict[str, Any] = {
            "toy": self.toy,
            "luminosity": self.luminosity,
            "background_yield": self.background_yield,
            "signal_yield": self.signal_yield,
        }
        if self.n_training is not None:
            row["n_training"] = self.n_training
        row |= {"mu_hat": self.mu_hat, "mu_sigma": self.mu_sigma, "z_signed": self.z_signed}
        if self.has_limits:
            row |= {k: getattr(self, k) for k in TOY_LIMIT_FIELDS}
        return strict(row | {"status": self.status, "reason": self.reason, "error": self.error})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpuriousSignalToy:
        """A row back from its :meth:`to_dict`; a missing or unknown key raises
        :class:`~mcsurrogate.errors.InputError`."""
        return from_strict(cls, data, derived=("error",))


#: the limit columns :func:`spurious_signal_toys` adds with ``limits=True``
TOY_LIMIT_FIELDS = ("ul_observed", "ul_expected_median", "ul_expected_median_mc", "ul_half_band_mc", "ul_shift")


def half_band(m1: float, p1: float) -> float:
    """Half the ±1σ band [``m1``, ``p1``] of an expected limit (NaN for a failed or zero-width band)."""
    width = p1 - m1
    return 0.5 * width if width > 0 else math.nan


def evaluate_point(
    signal: Any,
    background: Any,
    observed: np.ndarray,
    *,
    systematic: float,
    systematic_kind: SystematicKind,
    level: float = 0.05,
    empty_bins: Literal["error", "floor"] = "error",
    test_stat: TestStatistic = "qtilde",
    label: str = "",
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None,
) -> PointResult:
    """μ̂ ± σ, discovery Z₀ and the CLs limit with bands for one set of templates and one observation
    (``surrogate_uncertainty``: the background template's own uncertainty, see :func:`~.workspace.build_workspace`),
    as a :class:`PointResult`. Raises :class:`~mcsurrogate.errors.InputError` or :class:`~mcsurrogate.errors.FitError`
    with ``label`` in the message.
    """
    try:
        ws = build_workspace(
            signal,
            background,
            observed,
            systematic=systematic,
            systematic_kind=systematic_kind,
            empty_bins=empty_bins,
            surrogate_uncertainty=surrogate_uncertainty,
        )
    except InputError as exc:
        raise InputError(f"scan point {label}: {exc}") from exc
    model, data = model_and_data(ws)
    inf = Inference(model, data, test_stat=test_stat)
    try:
        fit = inf.mu_hat()
        disc = inf.discovery()
        limit = inf.upper_limit(level)
    except FitError as exc:
        raise FitError(f"scan point {label}: {exc}") from exc
    m2, m1, median, p1, p2 = (float(v) for v in limit.expected)
    return PointResult(
        mu_hat=float(fit.mu),
        mu_sigma=float(fit.sigma),
        z0=float(disc.z0),
        z_signed=float(disc.z_signed),
        p0=float(disc.p0),
        ul_observed=float(limit.observed),
        n_fits=int(inf.n_fits),
        ul_expected_m2=m2,
        ul_expected_m1=m1,
        ul_expected_median=median,
        ul_expected_p1=p1,
        ul_expected_p2=p2,
        mu_at_bound=bool(fit.at_bound),
        fit_steps=", ".join(f"{step} {count}" for step, count in inf.fit_steps.most_common()),
    )


def _run(task: dict[str, Any]) -> ScanPoint:
    try:
        result = evaluate_point(**task["args"])
    except (FitError, InputError) as exc:  # a point's own templates (empty bins) or fits
        if task["on_error"] == "raise":
            raise
        return ScanPoint(**task["meta"], **_figures(PointResult.failed()), status="failed", reason=str(exc))
    return ScanPoint(**task["meta"], **_figures(result))


def _figures(result: PointResult) -> dict[str, Any]:
    """The fields of ``result``, to build a :class:`ScanPoint` from."""
    return {name: getattr(result, name) for name in RESULT_FIELDS}


def scan_summary(rows: Sequence[ScanPoint], *, listed: int = 10) -> str:
    """One line with how many scan points were fitted and how many failed, then the failed points (up to
    ``listed``) with the reason each failed."""
    failed = [r for r in rows if r.status != "ok"]
    lines = [f"{len(rows)} scan points: {len(rows) - len(failed)} fitted, {len(failed)} failed"]
    lines += [f"  failed: {r.reason}" for r in failed[:listed]]
    if len(failed) > listed:
        lines.append(f"  … and {len(failed) - listed} more (their rows' 'reason' says why)")
    return "\n".join(lines)


DEFAULT_LUMINOSITIES: tuple[float, ...] = tuple(float(x) for x in np.logspace(0, 3, 10))
"""The luminosity factors a scan uses by default: 1 to 1000 × the MC's, ten log-spaced points."""


def checked_luminosities(luminosities: Sequence[float] | np.ndarray) -> list[float]:
    """The luminosity factors as floats; :class:`~mcsurrogate.errors.InputError` unless all are positive and finite."""
    lumis = [float(x) for x in luminosities]
    if not lumis or min(lumis) <= 0 or not all(math.isfinite(x) for x in lumis):
        raise InputError(f"luminosities must be positive and finite; got {lumis}")
    return lumis


def at_luminosity(
    signal: hist.Hist, background: hist.Hist, lumi: float, signal_fraction: float | None
) -> tuple[hist.Hist, hist.Hist, float]:
    """The MC background scaled by ``lumi``, the signal normalised to ``signal_fraction`` of its yield (or scaled
    by ``lumi`` when None), and the background yield."""
    b = scale_template(background, factor=lumi)
    b_yield = float(template_arrays(b)[0].sum())
    s = (
        scale_template(signal, total=signal_fraction * b_yield)
        if signal_fraction is not None
        else scale_template(signal, factor=lumi)
    )
    return s, b, b_yield


def scan(
    signal: Sample,
    background_mc: Sample,
    generated: Sample,
    *,
    bins: int | Sequence[float],
    range: tuple[float, float] | None = None,
    luminosities: Sequence[float] | np.ndarray = DEFAULT_LUMINOSITIES,
    n_generated: Sequence[int] | np.ndarray = (1000, 10_000, 100_000),
    systematics: Sequence[float] = (0.05, 0.10, 0.20),
    systematic_kind: SystematicKind = "normsys",
    mu_injected: float = 0.0,
    signal_fraction: float | None = 0.05,
    level: float = 0.05,
    test_stat: TestStatistic = "qtilde",
    empty_bins: Literal["error", "floor"] = "error",
    on_error: Literal["raise", "record"] = "record",
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None,
    seed: int = 0,
    processes: int = 1,
    progress: bool = True,
) -> list[ScanPoint]:
    """The full scan: one :class:`ScanPoint` per (systematic, luminosity, template), template = MC reference or N_gen.

    ``surrogate_uncertainty``: the generated templates' own uncertainty
    (:class:`~.surrogate_uncertainty.SurrogateUncertainty`, e.g. an ensemble's spread; relative, so one applies at
    every N_gen and luminosity), added to every generated row's workspace; the MC reference rows do not get it. The
    rows then name its modifiers in ``surrogate_modifiers``.

    Each row (a :class:`ScanPoint`; ``to_dict()`` gives the strict-JSON row) holds the settings (``systematic``, ``luminosity``, ``background_yield``, ``signal_yield``,
    ``template`` = ``"mc"`` or ``"generated"``, ``n_generated``), the results (``mu_hat``, ``mu_sigma``,
    ``mu_bias`` = μ̂ − μ_inj, ``z0``, ``z_signed``, ``p0``, ``ul_observed``, ``ul_expected_{m2,m1,median,p1,p2}``)
    and, for generated templates, the differences to the MC reference at the same point (``delta_mu_hat``,
    ``delta_ul_observed``, ``delta_ul_median``, and ``ul_shift``: ``delta_ul_median`` in units of half the MC
    reference's ±1σ expected band). The generated events used for N_gen are the first N_gen of one
    seeded permutation, so the samples are nested. Runs in ``processes`` worker processes.

    Every row also says ``status`` (``"ok"`` or ``"failed"``), ``reason`` (``None``, or why the point failed; also in
    ``error``, the older name), ``mu_at_bound`` and ``fit_steps`` (see :class:`PointResult`). A point whose workspace
    cannot be built (e.g. empty template bins) or whose fit fails after every fallback is recorded that way, with NaN
    results, and the scan carries on (default ``on_error="record"``; a warning says how many failed, and
    :func:`scan_summary` lists them); ``on_error="raise"`` stops at the first. ``test_stat``: ``"qtilde"`` or ``"q"``
    (see :class:`~.inference.Inference`).
    """
    if on_error not in ("raise", "record"):
        raise InputError(f"on_error must be 'raise' or 'record'; got {on_error!r}")
    if test_stat not in TEST_STATISTICS:
        raise InputError(f"test_stat must be one of {', '.join(TEST_STATISTICS)}; got {test_stat!r}")
    signal = signal.checked("signal")
    background_mc = background_mc.checked("MC background")
    generated = generated.checked("generated background")
    uncertainties = surrogate_uncertainties(surrogate_uncertainty)
    modifier_names = ", ".join(n for u in uncertainties for n in u.modifier_names()) or None
    lumis = checked_luminosities(luminosities)
    ngens = [int(n) for n in n_generated]
    if any(n <= 0 for n in ngens):
        raise InputError(f"every n_generated must be positive; got {ngens}")
    if ngens and max(ngens) > generated.values.size:
        raise InputError(
            f"n_generated asks for up to {max(ngens):,} events but the generated sample has "
            f"{generated.values.size:,}; generate more or lower the scan's maximum"
        )
    if any(not 0 <= s < 1 for s in systematics):
        raise InputError(f"systematics are relative uncertainties in [0, 1); got {list(systematics)}")

    sig_h = fill_template(signal.values, bins=bins, range=range, weights=signal.weights, name="signal")
    axis = sig_h.axes[0]
    bkg_h = fill_template(background_mc.values, bins=axis, weights=background_mc.weights, name="background")
    order = np.random.default_rng(seed).permutation(generated.values.size)
    gen_h = {}
    for n in ngens:
        idx = order[:n]
        w = None if generated.weights is None else generated.weights[idx]
        gen_h[n] = fill_template(generated.values[idx], bins=axis, weights=w, name="generated")
        if not template_arrays(gen_h[n])[0].sum() > 0:
            raise InputError(f"the first {n} generated events put no yield in the fit range")

    tasks: list[dict[str, Any]] = []
    for syst in systematics:
        for lumi in lumis:
            s, b, b_yield = at_luminosity(sig_h, bkg_h, lumi, signal_fraction)
            observed = asimov_counts(s, b, mu_injected)
            base = {
                "systematic": syst,
                "luminosity": lumi,
                "background_yield": b_yield,
                "signal_yield": float(template_arrays(s)[0].sum()),
                "mu_injected": mu_injected,
            }
            common = {
                "systematic": syst,
                "systematic_kind": systematic_kind,
                "level": level,
                "empty_bins": empty_bins,
                "test_stat": test_stat,
            }
            tasks.append(
                {
                    "on_error": on_error,
                    "meta": {**base, "template": "mc", "n_generated": None},
                    "args": {
                        "signal": s,
                        "background": b,
                        "observed": observed,
                        **common,
                        "label": f"(systematic {syst}, luminosity {lumi:g}, MC template)",
                    },
                }
            )
            for n in ngens:
                g = scale_template(gen_h[n], total=b_yield)
                tasks.append(
                    {
                        "on_error": on_error,
                        "meta": {
                            **base,
                            "template": "generated",
                            "n_generated": n,
                            **({"surrogate_modifiers": modifier_names} if uncertainties else {}),
                        },
                        "args": {
                            "signal": s,
                            "background": g,
                            "observed": observed,
                            **common,
                            "surrogate_uncertainty": uncertainties or None,
                            "label": f"(systematic {syst}, luminosity {lumi:g}, N_gen {n})",
                        },
                    }
                )
    rows = list(map_tasks(_run, tasks, processes, progress))
    reference = {(r.systematic, r.luminosity): r for r in rows if r.template == "mc"}
    rows = [_compared(r, reference[(r.systematic, r.luminosity)], mu_injected) for r in rows]
    n_failed = sum(r.status != "ok" for r in rows)
    if n_failed:
        log.warning("%s", scan_summary(rows, listed=3))
    return rows


def _compared(row: ScanPoint, ref: ScanPoint, mu_injected: float) -> ScanPoint:
    """``row`` with its comparison to the MC reference ``ref`` at the same point."""
    delta_ul_median = row.ul_expected_median - ref.ul_expected_median
    return replace(
        row,
        mu_bias=row.mu_hat - mu_injected,
        delta_mu_hat=row.mu_hat - ref.mu_hat,
        delta_ul_observed=row.ul_observed - ref.ul_observed,
        delta_ul_median=delta_ul_median,
        ul_shift=delta_ul_median / ref.half_band,
    )


def _spurious_point(task: dict[str, Any]) -> SpuriousSignalToy:
    limits = task["mc_background"] is not None
    try:
        if limits:  # the full point (μ̂, Z₀, limits) for the generated template and the toy MC's own
            gen = evaluate_point(**task["args"], label=task["label"])
            mc = evaluate_point(**{**task["args"], "background": task["mc_background"]}, label=task["label"])
            fit_mu, fit_sigma, z_signed = gen.mu_hat, gen.mu_sigma, gen.z_signed
        else:
            ws = build_workspace(**task["args"])
            inf = Inference(*model_and_data(ws))
            fit, disc = inf.mu_hat(), inf.discovery()
            fit_mu, fit_sigma, z_signed = fit.mu, fit.sigma, disc.z_signed
    except (FitError, InputError) as exc:
        failed: dict[str, Any] = dict.fromkeys(TOY_LIMIT_FIELDS, math.nan) if limits else {}
        return SpuriousSignalToy(**task["meta"], **failed, status="failed", reason=str(exc))
    figures: dict[str, Any] = {"mu_hat": float(fit_mu), "mu_sigma": float(fit_sigma), "z_signed": float(z_signed)}
    if limits:
        band = mc.half_band
        figures |= {
            "ul_observed": gen.ul_observed,
            "ul_expected_median": gen.ul_expected_median,
            "ul_expected_median_mc": mc.ul_expected_median,
            "ul_half_band_mc": band,
            "ul_shift": (gen.ul_expected_median - mc.ul_expected_median) / band,
        }
    return SpuriousSignalToy(**task["meta"], **figures)


def counts_template(axis: Any, counts: np.ndarray) -> hist.Hist:
    """A template on ``axis`` of event ``counts`` per bin (unweighted: variance = count)."""
    h = hist.Hist(axis, storage=hist.storage.Weight())
    view: Any = h.view()
    view.value = counts
    view.variance = counts
    return h


def spurious_signal_toys(
    signal: Sample,
    background_mc: Sample,
    n_generated: int,
    *,
    bins: int | Sequence[float],
    range: tuple[float, float] | None = None,
    luminosities: Sequence[float] | np.ndarray = DEFAULT_LUMINOSITIES,
    systematic: float = 0.10,
    systematic_kind: SystematicKind = "normsys",
    signal_fraction: float | None = 0.05,
    n_toys: int = 20,
    n_training: int | None = None,
    limits: bool = False,
    level: float = 0.05,
    empty_bins: Literal["error", "floor"] = "floor",
    seed: int = 0,
    processes: int = 1,
    progress: bool = True,
) -> list[SpuriousSignalToy]:
    """The spurious signal a *perfect* generator would show in :func:`scan`: its floor set by finite MC.

    In :func:`scan` the data are the Asimov counts of a finite MC sample, so their statistical fluctuations are
    frozen in and grow in significance with the luminosity; a template of ``n_generated`` events drawn from the
    true distribution would still fit a spurious signal to them. Each toy draws both, the MC (as many events as
    ``background_mc`` has) and the template (``n_generated``), as independent multinomial samples of one parent
    shape, the MC's own histogram, and fits them as :func:`scan` does at every luminosity (μ̂ ± σ and signed Z₀). One
    :class:`SpuriousSignalToy` per (toy, luminosity): ``toy``, ``luminosity``, ``background_yield``, ``signal_yield``,
    ``mu_hat``, ``mu_sigma``, ``z_signed``, ``status`` (``"ok"`` / ``"failed"``) and ``reason`` (``None``, or why the
    point failed: its numbers are NaN).
    The spread of ``z_signed`` across toys is the |Z₀| that the finite MC alone explains. Unweighted samples
    only (the toys count events). Seeded: toy ``k`` uses ``numpy.random.default_rng([seed, k])``.

    ``limits=True`` also computes the CLs limits (at ``level``; ≈ 5× slower) with the perfect template and with
    the toy MC's own template, as :func:`scan` does for its MC reference, and adds ``ul_observed`` and
    ``ul_expected_median`` (perfect template), ``ul_expected_median_mc``, ``ul_half_band_mc`` (half the MC
    template's ±1σ band) and ``ul_shift`` (the difference of the expected medians in units of that half band, as
    in :func:`scan`): the limit shift a perfect generator shows, set mostly by the smaller staterror of its larger
    template where the MC's own statistics limit the MC reference.

    ``n_training``: a generator learns from finite training MC, so even one that reproduces its training sample
    exactly (a memorising learner) carries that sample's fluctuations into every template it generates. With
    ``n_training`` (the training-MC events in the selection), each toy first draws a training sample of that many
    events from the parent shape and draws the template from the training sample's shape: the floor of a generator
    limited by its training statistics. A flow that smooths can do better where the parent is smooth, one with a
    bias does worse. Rows then carry ``n_training``.
    """
    signal = signal.checked("signal")
    background_mc = background_mc.checked("MC background")
    if background_mc.weights is not None:
        raise InputError("spurious_signal_toys draws event counts: the MC background must be unweighted")
    if isinstance(n_generated, bool) or int(n_generated) != n_generated or n_generated <= 0:
        raise InputError(f"n_generated must be a positive number of events; got {n_generated!r}")
    if isinstance(n_toys, bool) or int(n_toys) != n_toys or n_toys < 1:
        raise InputError(f"n_toys must be a positive integer; got {n_toys!r}")
    if n_training is not None and (isinstance(n_training, bool) or int(n_training) != n_training or n_training <= 0):
        raise InputError(f"n_training must be a positive number of events or None; got {n_training!r}")
    lumis = checked_luminosities(luminosities)
    sig_h = fill_template(signal.values, bins=bins, range=range, weights=signal.weights, name="signal")
    axis = sig_h.axes[0]
    parent = np.asarray(fill_template(background_mc.values, bins=axis, name="background").values(flow=True))
    n_mc = background_mc.values.size
    tasks: list[dict[str, Any]] = []
    for toy in builtins.range(int(n_toys)):
        rng = np.random.default_rng([seed, toy])
        mc = counts_template(axis, rng.multinomial(n_mc, parent / parent.sum())[1:-1].astype(float))
        learned = parent if n_training is None else rng.multinomial(int(n_training), parent / parent.sum())
        gen = counts_template(axis, rng.multinomial(int(n_generated), learned / learned.sum())[1:-1].astype(float))
        if not template_arrays(mc)[0].sum() > 0:
            raise InputError("the MC background has no events in the fit range")
        for lumi in lumis:
            s, b, b_yield = at_luminosity(sig_h, mc, lumi, signal_fraction)
            meta = {
                "toy": toy,
                "luminosity": lumi,
                "background_yield": b_yield,
                "signal_yield": float(template_arrays(s)[0].sum()),
            }
            if n_training is not None:
                meta["n_training"] = int(n_training)
            args = {
                "signal": s,
                "background": scale_template(gen, total=b_yield),
                "observed": asimov_counts(s, b, 0.0),
                "systematic": systematic,
                "systematic_kind": systematic_kind,
                "empty_bins": empty_bins,
            }
            if limits:
                args["level"] = level
            label = f"(toy {toy}, luminosity {lumi:g})"
            tasks.append({"meta": meta, "args": args, "mc_background": b if limits else None, "label": label})
    return list(map_tasks(_spurious_point, tasks, processes, progress, "spurious-signal toys"))


R = TypeVar("R")


def map_tasks(
    fn: Callable[[dict[str, Any]], R],
    tasks: list[dict[str, Any]],
    processes: int,
    progress: bool,
    desc: str = "scan points",
) -> Iterable[R]:
    """``fn`` over ``tasks`` in order, in this process (``processes`` ≤ 1) or in a pool of ``processes`` worker
    processes (``fn`` and the tasks must pickle), with a progress bar ``desc`` unless ``progress`` is false."""
    bar = tqdm(total=len(tasks), desc=desc, unit="pt", disable=not progress)
    try:
        if processes <= 1:
            for t in tasks:
                yield fn(t)
                bar.update()
        else:
            with ProcessPoolExecutor(processes) as pool:
                for row in pool.map(fn, tasks, chunksize=max(1, len(tasks) // (4 * processes))):
                    yield row
                    bar.update()
    finally:
        bar.close()


def rows_to_csv(rows: Sequence[ScanPoint]) -> str:
    """The scan table as CSV text (one header line, one line per row; empty cells for missing values, ``nan`` for a
    figure a failed point lacks)."""
    if not rows:
        return ""
    table = [r._row() for r in rows]
    columns = list(dict.fromkeys(k for r in table for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()
