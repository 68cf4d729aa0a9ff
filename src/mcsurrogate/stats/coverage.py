"""Coverage by toys: do the intervals on μ cover when the background template is generated?

At every luminosity L of a scan, toy data are drawn from the MC's shape (Poisson counts of L × (μ_true·s + b_MC)) and
fitted with the generated template, without and with the surrogate's own uncertainty
(:class:`~.surrogate_uncertainty.SurrogateUncertainty`), and, for reference, with the templates of the two floors
that :func:`~.scan.spurious_signal_toys` defines:

* ``perfect``: a *perfect generator*, N_gen events drawn from the MC's shape itself (a new template for every toy);
* ``learner``: a *memorising learner*, N_gen events drawn from a training sample of ``n_training`` events of that
  shape (it reproduces its finite training sample exactly).

Per toy and template: μ̂ (μ may go negative), the profile-likelihood ratio t = −2 ln λ(μ_true), the pull
sign(μ̂ − μ_true)·√t and the signed discovery Z = sign(μ̂)·√(−2 ln λ(0)) (σ from the Hessian with ``mu_sigma=True``). The interval {μ : t(μ) ≤ 1} (68.27 %) or ≤ 3.84 (95 %) covers μ_true
when t(μ_true) is below that (Wilks). Per luminosity, with the Asimov data of the MC (μ = 0), the median expected
CLs limit of each template against the MC template's (the reference): the expected-limit shift in half-bands of the
reference's ±1σ band, as :func:`~.scan.scan` reports it (``ul_shift``); the floors' shifts over ``n_limit_toys`` of
their templates.

The auxiliary data (the modifiers' global observables) stay at their nominal values in every toy: the coverage is
that of the analysis as it is done, conditional on the one template it has (a bias the modifier does not cover shows
up as undercoverage, however the toys are drawn).

:class:`CoverageResult` holds one :class:`TemplateCoverage` per (luminosity, template) and the per-toy rows
(:class:`CoverageToy`, :class:`CoverageLimit`); ``to_dict()`` is strict JSON; :func:`~.plots.plot_coverage` draws it.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import hist
import numpy as np
from scipy.stats import chi2

from ..errors import FitError, InputError
from .inference import Inference
from .jsonable import from_strict, strict
from .scan import (
    DEFAULT_LUMINOSITIES,
    Status,
    at_luminosity,
    checked_luminosities,
    counts_template,
    half_band,
    map_tasks,
)
from .surrogate_uncertainty import SurrogateUncertainty
from .templates import check_binning, scale_template, template_arrays
from .workspace import SystematicKind, asimov_counts, fast_model, surrogate_uncertainties, workspace_spec

__all__ = [
    "COVERAGE_LEVELS",
    "TEMPLATES",
    "CoverageLimit",
    "CoverageResult",
    "CoverageToy",
    "TemplateCoverage",
    "coverage_study",
    "toy_row_from_dict",
]

#: the confidence levels whose coverage is measured, and the thresholds of t(μ_true) = −2 ln λ(μ_true) (Wilks, 1 dof)
COVERAGE_LEVELS: dict[str, float] = {"68": float(chi2.cdf(1.0, 1)), "95": 0.95}
_THRESHOLDS = {"68": 1.0, "95": float(chi2.ppf(0.95, 1))}
#: the templates a coverage study fits, in table order
TEMPLATES: tuple[str, ...] = ("generated", "generated+modifier", "perfect", "learner")


@dataclass(frozen=True)
class TemplateCoverage:
    """One template at one luminosity, over the toys.

    ``coverage_68`` / ``coverage_95``: the fraction of toys whose 68.27 % / 95 % profile-likelihood interval holds
    μ_true (``*_error``: its binomial standard error); ``mu_bias_median``: median of μ̂ − μ_true; ``pull_mean``,
    ``pull_width``: mean and standard deviation of the likelihood pull sign(μ̂ − μ_true)·√t(μ_true) (≈ (μ̂ − μ_true)/σ;
    standard normal where the intervals cover); ``sigma_median``: median Hessian σ(μ̂) (``mu_sigma=True`` only);
    ``z_abs_median``, ``z_abs_68``, ``z_abs_95``: quantiles of the spurious |Z₀| over the toys; ``z_percentile``: where
    ``z_abs_median`` lies in the perfect generator's |Z₀| over its toys (percent; 50 for the perfect generator itself);
    ``ul_median``: median expected CLs limit on μ (Asimov MC data); ``ul_shift``: its shift from the MC template's, in
    half-bands of the MC's ±1σ band (floors: the median over their limit toys, ``ul_shift_16``/``ul_shift_84`` their
    68 % band); ``ul_shift_percentile``: where ``ul_shift`` lies in the perfect generator's shifts (percent).
    NaN (``null`` in JSON) where a number is undefined (no toy fitted, no limit toys).
    """

    template: str
    luminosity: float
    background_yield: float
    signal_yield: float
    n_toys: int
    n_failed: int
    coverage_68: float
    coverage_68_error: float
    coverage_95: float
    coverage_95_error: float
    mu_bias_median: float
    pull_mean: float
    pull_width: float
    sigma_median: float
    z_abs_median: float
    z_abs_68: float
    z_abs_95: float
    z_percentile: float = math.nan
    ul_median: float = math.nan
    ul_shift: float = math.nan
    ul_shift_16: float = math.nan
    ul_shift_84: float = math.nan
    ul_shift_percentile: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (NaN → None)."""
        return strict(dict(self.__dict__))


@dataclass(frozen=True)
class CoverageToy:
    """One toy's fit with one template at one luminosity (:func:`coverage_study`): ``toy``, ``luminosity``,
    ``template``, μ̂ (``mu_hat``; ``mu_sigma``, its Hessian σ, NaN without ``mu_sigma=True``), ``t_true`` =
    −2 ln λ(μ_true), the likelihood ``pull`` sign(μ̂ − μ_true)·√t and the signed discovery ``z_signed``; ``status``
    (``"ok"`` / ``"failed"``) and ``reason`` (``None``, or why the fit failed: its figures are then NaN)."""

    toy: int
    luminosity: float
    template: str
    mu_hat: float = math.nan
    mu_sigma: float = math.nan
    t_true: float = math.nan
    pull: float = math.nan
    z_signed: float = math.nan
    status: Status = "ok"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (NaN → ``None``), in field order."""
        return strict({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoverageToy:
        """A toy back from its :meth:`to_dict`; a missing or unknown key raises :class:`~mcsurrogate.errors.InputError`."""
        return from_strict(cls, data)


@dataclass(frozen=True)
class CoverageLimit:
    """One expected CLs limit of :func:`coverage_study` on the Asimov data of the MC at one luminosity: of the MC
    template (``template="mc"``, the reference: no toy, no shift), of a generated template (``toy=None``) or of a
    floor's template of limit toy ``toy``. ``ul_median``: the median expected limit on μ; ``ul_shift``: its shift from
    the reference's in half-bands of the reference's ±1σ band; ``status``, ``reason`` (``None`` when fitted)."""

    luminosity: float
    template: str
    toy: int | None = None
    ul_median: float = math.nan
    ul_shift: float = math.nan
    status: Status = "ok"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (NaN → ``None``): the MC reference's has no ``toy`` and no ``ul_shift``, a fitted
        limit no ``reason``."""
        reference = self.template == "mc"
        out: dict[str, Any] = {"luminosity": self.luminosity, "template": self.template}
        if not reference:
            out["toy"] = self.toy
        out["ul_median"] = self.ul_median
        if not reference:
            out["ul_shift"] = self.ul_shift
        out["status"] = self.status
        if self.reason is not None:
            out["reason"] = self.reason
        return strict(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoverageLimit:
        """A limit back from its :meth:`to_dict`; a missing or unknown key raises
        :class:`~mcsurrogate.errors.InputError`."""
        return from_strict(cls, data)


def toy_row_from_dict(data: Mapping[str, Any]) -> CoverageToy | CoverageLimit:
    """A row of ``toys.json`` (:meth:`CoverageResult.to_dict` with ``toys=True``) back as the :class:`CoverageToy`
    (it has ``t_true``) or the :class:`CoverageLimit` it was written from."""
    return CoverageToy.from_dict(data) if "t_true" in data else CoverageLimit.from_dict(data)


@dataclass
class CoverageResult:
    """The coverage study: one :class:`TemplateCoverage` per (luminosity, template), the per-toy rows (a
    :class:`CoverageToy` per toy fit, a :class:`CoverageLimit` per expected limit), the settings."""

    points: list[TemplateCoverage]
    toys: list[CoverageToy | CoverageLimit] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = math.nan

    def point(self, luminosity: float, template: str) -> TemplateCoverage:
        """The point of ``template`` at ``luminosity`` (nearest luminosity, relative 10⁻⁹)."""
        for p in self.points:
            if p.template == template and math.isclose(p.luminosity, luminosity, rel_tol=1e-9):
                return p
        raise InputError(
            f"no point for template {template!r} at luminosity {luminosity:g}; templates "
            f"{sorted({p.template for p in self.points})}, luminosities {sorted({p.luminosity for p in self.points})}"
        )

    @property
    def templates(self) -> list[str]:
        """The templates fitted, in table order."""
        present = {p.template for p in self.points}
        return [t for t in TEMPLATES if t in present]

    @property
    def luminosities(self) -> list[float]:
        """The luminosities, ascending."""
        return sorted({p.luminosity for p in self.points})

    def within(self, template: str, *, tolerance_68: float = 0.03, tolerance_95: float = 0.02) -> bool:
        """Whether ``template``'s coverage is within 68.27 % ± ``tolerance_68`` and 95 % ± ``tolerance_95`` at every
        luminosity (the issue's goal for the generated template with the modifier)."""
        pts = [p for p in self.points if p.template == template]
        if not pts:
            raise InputError(f"no template {template!r} in this result; it has {self.templates}")
        return all(
            abs(p.coverage_68 - COVERAGE_LEVELS["68"]) <= tolerance_68
            and abs(p.coverage_95 - COVERAGE_LEVELS["95"]) <= tolerance_95
            for p in pts
        )

    def table(self) -> str:
        """The coverage table in Markdown: one line per (luminosity, template)."""
        head = (
            "| L | background | template | cov. 68 % | cov. 95 % | pull mean ± width | median abs(Z0) "
            "(pct. of perfect) | limit shift (pct. of perfect) | failed |\n"
            "|---|---|---|---|---|---|---|---|---|"
        )
        lines = [head]
        for lumi in self.luminosities:
            for name in self.templates:
                p = self.point(lumi, name)
                lines.append(
                    f"| {lumi:.3g} | {p.background_yield:.3g} | {name} | {_pct(p.coverage_68)} ± "
                    f"{_pct(p.coverage_68_error)} | {_pct(p.coverage_95)} ± {_pct(p.coverage_95_error)} | "
                    f"{p.pull_mean:+.2f} ± {p.pull_width:.2f} | {p.z_abs_median:.2f} ({_num(p.z_percentile, '.0f')}) | "
                    f"{_num(p.ul_shift, '+.2f')} ({_num(p.ul_shift_percentile, '.0f')}) | {p.n_failed}/{p.n_toys} |"
                )
        return "\n".join(lines)

    def to_dict(self, *, toys: bool = False) -> dict[str, Any]:
        """Strict-JSON-ready dict: settings, seconds, points (and, with ``toys``, every toy's row)."""
        out: dict[str, Any] = {
            "settings": self.settings,
            "seconds": self.seconds,
            "coverage_levels": COVERAGE_LEVELS,
            "points": [p.to_dict() for p in self.points],
        }
        if toys:
            out["toys"] = [t.to_dict() for t in self.toys]
        return strict(out)


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f} %"


def _num(x: float, fmt: str) -> str:
    return "n/a" if not math.isfinite(x) else format(x, fmt)


# ------------------------------------------------------------------------------------------------- the toys
def _fit_toy(inf: Inference, mu_true: float, sigma: bool) -> dict[str, Any]:
    """μ̂ (± σ with ``sigma``), t(μ_true), the likelihood pull sign(μ̂ − μ_true)·√t and the signed Z of one toy, the
    figures of a :class:`CoverageToy` (raises FitError)."""
    fit = inf.mu_hat(sigma=sigma)
    if not math.isfinite(fit.twice_nll):
        raise FitError("the toy data have zero likelihood under every μ (events where the model expects none)")
    z_signed = inf.discovery().z_signed
    if mu_true == 0.0:
        t = z_signed**2
    else:
        t = max(inf.fit(poi_value=mu_true).twice_nll - fit.twice_nll, 0.0)
    pull = math.copysign(math.sqrt(t), fit.mu - mu_true)
    return {
        "mu_hat": float(fit.mu),
        "mu_sigma": float(fit.sigma),
        "t_true": float(t),
        "pull": pull,
        "z_signed": float(z_signed),
    }


def _model_inference(spec_args: dict[str, Any], observed: np.ndarray) -> Inference:
    spec = workspace_spec(**spec_args, observed=observed)
    model = fast_model(spec)
    return Inference(model, np.concatenate([observed, np.asarray(model.config.auxdata, dtype=float)]))


def _padded(h: hist.Hist) -> np.ndarray:
    """Σw per bin with an empty bin on either side (the layout :func:`_draw_template` draws from)."""
    return np.concatenate([[0.0], template_arrays(h)[0], [0.0]])


def _draw_template(rng: np.random.Generator, shape: np.ndarray, n: int, axis: Any) -> hist.Hist:
    """A template of ``n`` events drawn from ``shape`` (multinomial; ``shape`` padded as :func:`_padded`)."""
    counts = rng.multinomial(n, shape / shape.sum())[1:-1].astype(float)
    return counts_template(axis, counts)


def _floor_templates(task: dict[str, Any], toy: int) -> dict[str, hist.Hist]:
    """The perfect generator's and the memorising learner's templates of toy ``toy`` (the same at every luminosity)."""
    rng = np.random.default_rng([task["seed"], toy, 3])
    parent, axis, n_gen = task["parent"], task["axis"], task["n_generated"]
    out = {}
    if task["floors"]:
        out["perfect"] = _draw_template(rng, parent, n_gen, axis)
        if task["n_training"] is not None:
            learned = rng.multinomial(task["n_training"], parent / parent.sum()).astype(float)
            out["learner"] = _draw_template(rng, learned, n_gen, axis)
    return out


def _generated_template(task: dict[str, Any], toy: int | None) -> hist.Hist:
    """The generated template of toy ``toy``: with ``redraw``, ``n_generated`` events drawn from the generated shape
    (a new generated sample per toy; ``toy=None``: the expected one, Σw² of ``n_generated`` unweighted events);
    else the given template itself."""
    if not task["redraw"]:
        return task["generated"]
    shape = task["generated_shape"]
    if toy is None:
        counts = task["n_generated"] * shape[1:-1] / shape.sum()
        return counts_template(task["axis"], counts)
    return _draw_template(np.random.default_rng([task["seed"], toy, 2]), shape, task["n_generated"], task["axis"])


def _toy_chunk(task: dict[str, Any]) -> list[CoverageToy]:
    """Fit toys ``task["toys"]`` at one luminosity with every template."""
    s, b, b_yield = task["signal"], task["background"], task["background_yield"]
    expected = asimov_counts(s, b, task["mu_true"])
    common = task["spec"] | {"signal": s}
    fixed: dict[str, Inference] = {}
    if not task["redraw"]:  # one model per generated variant; each toy swaps its data in
        for name, unc in task["generated_variants"].items():
            args = common | {
                "background": scale_template(task["generated"], total=b_yield),
                "surrogate_uncertainty": unc,
            }
            fixed[name] = _model_inference(args, expected)
    rows: list[CoverageToy] = []
    previous: dict[str, Inference] = {}  # each template's last toy: its Hessian starts the next toy's first fit
    for toy in task["toys"]:
        data = np.random.default_rng([task["seed"], toy, task["lumi_index"], 1]).poisson(expected).astype(float)
        generated = _generated_template(task, toy)
        templates = {name: (generated, unc) for name, unc in task["generated_variants"].items()}
        templates |= {name: (floor, None) for name, floor in _floor_templates(task, toy).items()}
        for name, (template, unc) in templates.items():
            meta = {"toy": toy, "luminosity": task["luminosity"], "template": name}
            try:
                if name in fixed:
                    inf = fixed[name].with_data(data)
                else:  # this toy's template: a model of its own
                    args = common | {
                        "background": scale_template(template, total=b_yield),
                        "surrogate_uncertainty": unc,
                    }
                    inf = _model_inference(args, data)
                    if name in previous:
                        inf.warm_start(previous[name])
                previous[name] = inf
                rows.append(CoverageToy(**meta, **_fit_toy(inf, task["mu_true"], task["sigma"])))
            except (FitError, InputError) as exc:
                rows.append(CoverageToy(**meta, status="failed", reason=str(exc)))
    return rows


def _median_limit(spec_args: dict[str, Any], observed: np.ndarray, level: float) -> tuple[float, float]:
    """(median expected limit, half its ±1σ band) of one template on the Asimov data ``observed``."""
    limit = _model_inference(spec_args, observed).upper_limit(level)
    return float(limit.median), half_band(limit.expected[1], limit.expected[3])


def _limits(task: dict[str, Any]) -> list[CoverageLimit]:
    """Expected-limit shifts at one luminosity: generated variants once, floors over the limit toys."""
    s, b, b_yield = task["signal"], task["background"], task["background_yield"]
    observed = asimov_counts(s, b, 0.0)
    common = task["spec"] | {"signal": s}
    lumi = task["luminosity"]
    rows: list[CoverageLimit] = []

    def shift(name: str, background: hist.Hist, unc: Any, toy: int | None, ref: tuple[float, float]) -> None:
        try:
            median, _ = _median_limit(
                common | {"background": background, "surrogate_uncertainty": unc}, observed, task["level"]
            )
            rows.append(CoverageLimit(lumi, name, toy, ul_median=median, ul_shift=(median - ref[0]) / ref[1]))
        except (FitError, InputError) as exc:
            rows.append(CoverageLimit(lumi, name, toy, status="failed", reason=str(exc)))

    try:
        reference = _median_limit(common | {"background": b, "surrogate_uncertainty": None}, observed, task["level"])
    except (FitError, InputError) as exc:
        return [CoverageLimit(lumi, "mc", status="failed", reason=str(exc))]
    rows.append(CoverageLimit(lumi, "mc", ul_median=reference[0]))
    generated = scale_template(_generated_template(task, None), total=b_yield)
    for name, unc in task["generated_variants"].items():
        shift(name, generated, unc, None, reference)
    for toy in builtins.range(task["n_limit_toys"]):
        for name, template in _floor_templates(task, toy).items():
            shift(name, scale_template(template, total=b_yield), None, toy, reference)
    return rows


def _run(task: dict[str, Any]) -> list[CoverageToy] | list[CoverageLimit]:
    return _toy_chunk(task) if task["kind"] == "toys" else _limits(task)


# ------------------------------------------------------------------------------------------------- the study
def _percentile(value: float, sample: np.ndarray) -> float:
    """Where ``value`` lies in ``sample``, in percent (mid-rank for ties); NaN without a sample or a value."""
    sample = sample[np.isfinite(sample)]
    if not math.isfinite(value) or sample.size == 0:
        return math.nan
    return float(100.0 * (np.sum(sample < value) + 0.5 * np.sum(sample == value)) / sample.size)


def _summarise(
    name: str,
    lumi: float,
    meta: dict[str, float],
    toys: list[CoverageToy],
    limits: list[CoverageLimit],
    mu_true: float,
    perfect_z: np.ndarray,
    perfect_shifts: np.ndarray,
) -> TemplateCoverage:
    ok = [r for r in toys if r.status == "ok"]
    n = len(ok)
    t = np.array([r.t_true for r in ok])
    mu = np.array([r.mu_hat for r in ok])
    sigma = np.array([r.mu_sigma for r in ok])
    z = np.abs(np.array([r.z_signed for r in ok]))
    pulls = np.array([r.pull for r in ok])
    cov = {k: float(np.mean(t <= thr)) if n else math.nan for k, thr in _THRESHOLDS.items()}
    err = {k: math.sqrt(c * (1 - c) / n) if n else math.nan for k, c in cov.items()}
    shifts = np.array([r.ul_shift for r in limits if r.status == "ok"])
    medians = np.array([r.ul_median for r in limits if r.status == "ok"])
    ul_shift = float(np.median(shifts)) if shifts.size else math.nan
    z_median = float(np.median(z)) if n else math.nan
    return TemplateCoverage(
        template=name,
        luminosity=lumi,
        background_yield=meta["background_yield"],
        signal_yield=meta["signal_yield"],
        n_toys=len(toys),
        n_failed=len(toys) - n,
        coverage_68=cov["68"],
        coverage_68_error=err["68"],
        coverage_95=cov["95"],
        coverage_95_error=err["95"],
        mu_bias_median=float(np.median(mu - mu_true)) if n else math.nan,
        pull_mean=float(np.mean(pulls)) if pulls.size else math.nan,
        pull_width=float(np.std(pulls, ddof=1)) if pulls.size > 1 else math.nan,
        sigma_median=float(np.nanmedian(sigma)) if n and np.isfinite(sigma).any() else math.nan,
        z_abs_median=z_median,
        z_abs_68=float(np.quantile(z, 0.68)) if n else math.nan,
        z_abs_95=float(np.quantile(z, 0.95)) if n else math.nan,
        z_percentile=_percentile(z_median, perfect_z),
        ul_median=float(np.median(medians)) if medians.size else math.nan,
        ul_shift=ul_shift,
        ul_shift_16=float(np.quantile(shifts, 0.16)) if shifts.size > 1 else math.nan,
        ul_shift_84=float(np.quantile(shifts, 0.84)) if shifts.size > 1 else math.nan,
        ul_shift_percentile=_percentile(ul_shift, perfect_shifts),
    )


def coverage_study(
    signal: hist.Hist,
    background_mc: hist.Hist,
    generated: hist.Hist,
    *,
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None,
    luminosities: Sequence[float] | np.ndarray = DEFAULT_LUMINOSITIES,
    mu_true: float = 0.0,
    n_toys: int = 200,
    n_generated: int | None = None,
    redraw_generated: bool = True,
    n_training: int | None = None,
    floors: bool = True,
    limits: bool = True,
    n_limit_toys: int = 20,
    mu_sigma: bool = False,
    signal_fraction: float | None = 0.05,
    systematic: float = 0.10,
    systematic_kind: SystematicKind = "normsys",
    staterror: bool = True,
    signal_staterror: bool = False,
    level: float = 0.05,
    empty_bins: Literal["error", "floor"] = "floor",
    seed: int = 0,
    processes: int = 1,
    progress: bool = True,
) -> CoverageResult:
    """Coverage of the intervals on μ by toys, with the generated template without and with the surrogate modifier.

    Parameters
    ----------
    signal, background_mc, generated
        Weighted templates on one binning: the MC signal, the MC background (its shape is the truth the toys are
        drawn from; its Σw² the reference's staterror) and the generated background (any normalisation: it is scaled
        to the MC's yield at each luminosity). Weights are expected events per unit luminosity, as in
        :func:`~.scan.scan`: luminosity L multiplies the MC (L = 1: data as large as an unweighted MC sample).
    surrogate_uncertainty
        The modifier(s) of the ``generated+modifier`` fits (:class:`~.surrogate_uncertainty.SurrogateUncertainty`);
        ``None``: only the generated template without it.
    mu_true
        The signal strength of the toys (units of the normalised signal; 0 = background only).
    n_toys
        Toys per luminosity; toy k at luminosity i draws its data with ``default_rng([seed, k, i, 1])``.
    n_generated, redraw_generated
        Events of a generated template (default: the generated histogram's Kish effective count (Σw)²/Σw²). With
        ``redraw_generated`` (default) every toy fits a new generated template of ``n_generated`` events drawn from
        the shape of ``generated`` (``default_rng([seed, k, 2])``), as a new generated sample would be: the
        template's own statistical fluctuation is then random, as its staterror says, and what stays fixed across
        toys is the flow's mismodelling. Give ``generated`` as the flow's *shape*, a histogram of many more generated
        events than ``n_generated`` (its own fluctuations are then negligible). ``redraw_generated=False`` fits the
        given template in every toy: coverage conditional on its fluctuation, which undercovers once the data are
        more precise than the template however good the flow is.
    n_training, floors
        The memorising learner's training sample (``None``: no learner floor). Toy k's floor templates (``n_generated``
        events each) are drawn with ``default_rng([seed, k, 3])``, the same at every luminosity. ``floors=False`` fits
        neither floor.
    limits, n_limit_toys
        Compute the expected-limit shifts (CLs at ``level``): the generated templates once per luminosity, the floors
        over their first ``n_limit_toys`` toys (≈ 0.2 s a limit).
    mu_sigma
        Also compute every toy's Hessian σ(μ̂) (about 1.5× slower; the coverage and the pulls use likelihood ratios).
    signal_fraction, systematic, systematic_kind, staterror, empty_bins
        As in :func:`~.scan.scan` and :func:`~.workspace.build_workspace`.
    signal_staterror
        Whether the signal shares the staterror γ (default: no). pyhf's staterror constrains each bin's γ by
        √(Σ σ²) / Σ ν over the samples that carry it, with the signal's ν at μ = 1: in the signal's bins that
        *dilutes* the background template's relative uncertainty by b/(b + s), and where the template's statistics
        dominate (data ≫ template) the intervals then undercover by that much (σ(μ̂) 17 % too small, 60 % coverage for
        a perfect generator with s/b ≈ 25 % under the peak). A signal template of negligible statistical uncertainty
        should not carry it.
    processes, progress
        Worker processes and a progress bar.
    """
    started = time.perf_counter()
    check_binning({"signal": signal, "MC background": background_mc, "generated background": generated})
    uncertainties = surrogate_uncertainties(surrogate_uncertainty)
    lumis = checked_luminosities(luminosities)
    for name, value, minimum in (("n_toys", n_toys, 1), ("n_limit_toys", n_limit_toys, 0), ("processes", processes, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    if not math.isfinite(mu_true):
        raise InputError(f"mu_true must be a finite signal strength; got {mu_true!r}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1); got {level!r}")
    gen_values, gen_variances = template_arrays(generated)
    if not gen_values.sum() > 0:
        raise InputError("the generated template has no yield in the fit range")
    kish = float(gen_values.sum() ** 2 / gen_variances.sum()) if gen_variances.sum() > 0 else math.nan
    if n_generated is None and not math.isfinite(kish):
        raise InputError("the generated template has no Σw²: pass n_generated (its number of events)")
    n_gen = max(round(kish), 1) if n_generated is None else n_generated
    for name, count in (("n_generated", n_generated), ("n_training", n_training)):
        if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1):
            raise InputError(f"{name} must be a positive number of events; got {count!r}")
    parent = _padded(background_mc)
    if not parent.sum() > 0 or np.any(parent < 0):
        raise InputError("the MC background must have a positive yield and no negative bin in the fit range")
    if redraw_generated and np.any(gen_values < 0):
        raise InputError(
            "the generated template has a negative bin: it cannot be the shape new templates are drawn from"
        )
    spec = {
        "systematic": systematic,
        "systematic_kind": systematic_kind,
        "staterror": staterror,
        "signal_staterror": staterror and signal_staterror,
        "empty_bins": empty_bins,
    }
    variants: dict[str, Any] = {"generated": None}
    if uncertainties:
        variants["generated+modifier"] = uncertainties
    base = {
        "seed": int(seed),
        "parent": parent,
        "axis": background_mc.axes[0],
        "n_generated": int(n_gen),
        "n_training": None if n_training is None else int(n_training),
        "floors": bool(floors),
        "generated": generated,
        "generated_shape": _padded(generated),
        "redraw": bool(redraw_generated),
        "generated_variants": variants,
        "mu_true": float(mu_true),
        "sigma": bool(mu_sigma),
        "spec": spec,
        "level": level,
    }
    tasks: list[dict[str, Any]] = []
    meta: dict[float, dict[str, float]] = {}
    chunk = max(1, -(-int(n_toys) // max(1, 2 * int(processes))))
    for i, lumi in enumerate(lumis):
        s, b, b_yield = at_luminosity(signal, background_mc, lumi, signal_fraction)
        meta[lumi] = {"background_yield": b_yield, "signal_yield": float(template_arrays(s)[0].sum())}
        point = base | {"luminosity": lumi, "lumi_index": i, "signal": s, "background": b, "background_yield": b_yield}
        if limits:
            tasks.append(point | {"kind": "limits", "n_limit_toys": int(n_limit_toys) if floors else 0})
        for start in builtins.range(0, int(n_toys), chunk):
            tasks.append(point | {"kind": "toys", "toys": list(builtins.range(start, min(int(n_toys), start + chunk)))})
    toy_rows: list[CoverageToy] = []
    limit_rows: list[CoverageLimit] = []
    for out in map_tasks(_run, tasks, processes, progress, "coverage toys"):
        for row in out:
            if isinstance(row, CoverageToy):
                toy_rows.append(row)
            else:
                limit_rows.append(row)
    names = [n for n in TEMPLATES if n in variants or (floors and (n == "perfect" or (n == "learner" and n_training)))]
    points = []
    for lumi in lumis:
        at = [r for r in toy_rows if r.luminosity == lumi]
        lim = [r for r in limit_rows if r.luminosity == lumi]
        perfect_z = np.abs([r.z_signed for r in at if r.template == "perfect" and r.status == "ok"])
        perfect_shifts = np.array([r.ul_shift for r in lim if r.template == "perfect" and r.status == "ok"])
        for name in names:
            points.append(
                _summarise(
                    name,
                    lumi,
                    meta[lumi],
                    [r for r in at if r.template == name],
                    [r for r in lim if r.template == name],
                    float(mu_true),
                    np.asarray(perfect_z, dtype=float),
                    perfect_shifts,
                )
            )
    settings = {
        "luminosities": lumis,
        "mu_true": float(mu_true),
        "n_toys": int(n_toys),
        "n_generated": int(n_gen),
        "redraw_generated": bool(redraw_generated),
        "n_training": n_training,
        "floors": bool(floors),
        "limits": bool(limits),
        "n_limit_toys": int(n_limit_toys),
        "signal_fraction": signal_fraction,
        "systematic": systematic,
        "systematic_kind": systematic_kind,
        "staterror": staterror,
        "signal_staterror": staterror and signal_staterror,
        "level": level,
        "seed": int(seed),
        "processes": int(processes),
        "surrogate_uncertainty": [u.to_dict() for u in uncertainties],
        "generated_kish_events": kish,
    }
    rows: list[CoverageToy | CoverageLimit] = [*toy_rows, *limit_rows]
    return CoverageResult(points, rows, settings, time.perf_counter() - started)
