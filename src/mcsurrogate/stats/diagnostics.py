"""Standard fit diagnostics of a pyhf workspace: nuisance-parameter pulls and constraints, the ranking of nuisance
parameters by their impact on μ̂, and pre- and post-fit yields per channel and sample.

* **Pull** of a constrained parameter: (θ̂ − θ₀)/σ₀, with θ₀ and σ₀ the centre and width of its constraint (0 and 1
  for a normsys / histosys α; 1 and the relative uncertainty for a staterror / shapesys γ); **constraint**: σ̂/σ₀,
  with σ̂ from the Hessian of −2 ln L at the best fit (below 1 when the data measure the parameter better than its
  prior). A free parameter (a normfactor) has no pull; its θ̂ ± σ̂ is listed.
* **Impact** on μ̂ (the ATLAS/CMS ranking): the fit is repeated with one parameter fixed at θ̂ ± σ̂ (post-fit impact)
  and at θ̂ ± σ₀ (pre-fit impact), every other parameter (μ included) free; Δμ̂ is the change of μ̂. The parameters
  are ranked by the larger |Δμ̂| of the post-fit pair.
* **Yields**: the expected counts of every sample in every channel at the suggested initial parameters (μ = 1,
  pre-fit) and at the best fit (post-fit), with the observed counts.

Every fit is :class:`~.inference.Inference`'s (μ may go negative); :func:`~.plots.plot_pulls`,
:func:`~.plots.plot_ranking` and :func:`~.plots.plot_prefit_postfit` draw the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf

from ..errors import FitError, InputError
from .inference import Inference
from .jsonable import strict

__all__ = ["FitDiagnostics", "NuisanceImpact", "NuisancePull", "fit_diagnostics"]


@dataclass(frozen=True)
class NuisancePull:
    """One parameter's pre-fit centre and width (NaN width: unconstrained), post-fit value and Hessian σ̂, its pull
    (θ̂ − θ₀)/σ₀ and constraint σ̂/σ₀ (NaN for unconstrained parameters)."""

    name: str
    modifier: str
    kind: str
    prefit_value: float
    prefit_width: float
    postfit_value: float
    postfit_width: float

    @property
    def pull(self) -> float:
        """(θ̂ − θ₀)/σ₀; NaN for an unconstrained parameter."""
        return (self.postfit_value - self.prefit_value) / self.prefit_width if self.prefit_width > 0 else math.nan

    @property
    def constraint(self) -> float:
        """σ̂/σ₀; NaN for an unconstrained parameter."""
        return self.postfit_width / self.prefit_width if self.prefit_width > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (with ``pull`` and ``constraint``)."""
        return strict(dict(self.__dict__) | {"pull": self.pull, "constraint": self.constraint})


@dataclass(frozen=True)
class NuisanceImpact:
    """Δμ̂ when one parameter is fixed at θ̂ + σ̂ / θ̂ − σ̂ (post-fit) and θ̂ ± σ₀ (pre-fit; NaN if unconstrained)."""

    name: str
    postfit_up: float
    postfit_down: float
    prefit_up: float = math.nan
    prefit_down: float = math.nan

    @property
    def magnitude(self) -> float:
        """The larger |Δμ̂| of the post-fit pair (the ranking key)."""
        values = [abs(v) for v in (self.postfit_up, self.postfit_down) if math.isfinite(v)]
        return max(values) if values else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (with ``magnitude``)."""
        return strict(dict(self.__dict__) | {"magnitude": self.magnitude})


@dataclass
class FitDiagnostics:
    """The best fit (``mu_hat`` ± ``mu_sigma``), every parameter's pull, the impacts ranked by magnitude (largest
    first) and, per channel, ``{"edges", "observed", "prefit": {sample: yields}, "postfit": {sample: yields}}``."""

    mu_hat: float
    mu_sigma: float
    pulls: list[NuisancePull]
    impacts: list[NuisanceImpact] = field(default_factory=list)
    yields: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pull(self, name: str) -> NuisancePull:
        """The pull of parameter ``name`` (``staterror_SR[3]`` for a bin of a per-bin modifier)."""
        for p in self.pulls:
            if p.name == name:
                return p
        raise InputError(f"no parameter {name!r}; the parameters are {[p.name for p in self.pulls]}")

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict."""
        return strict(
            {
                "mu_hat": self.mu_hat,
                "mu_sigma": self.mu_sigma,
                "pulls": [p.to_dict() for p in self.pulls],
                "impacts": [i.to_dict() for i in self.impacts],
                "yields": self.yields,
            }
        )


def _parameter_table(model: Any) -> list[tuple[str, str, str, float, float]]:
    """(name, modifier, kind, prefit centre, prefit width) per parameter, in pyhf order."""
    cfg = model.config
    kinds = {name: kind for name, kind in cfg.modifiers}
    init = np.asarray(cfg.suggested_init(), dtype=float)
    rows: list[tuple[str, str, str, float, float]] = [("", "", "", math.nan, math.nan)] * cfg.npars
    for name in cfg.par_order:
        ps = cfg.param_set(name)
        sl = cfg.par_slice(name)
        n = sl.stop - sl.start
        widths = np.full(n, math.nan)
        if getattr(ps, "constrained", False):
            try:
                widths = np.asarray(ps.width(), dtype=float).ravel()
            except (RuntimeError, TypeError, ValueError, ZeroDivisionError):
                pass
        for j, i in enumerate(range(sl.start, sl.stop)):
            label = name if n == 1 else f"{name}[{j}]"
            width = float(widths[j]) if widths.size == n else math.nan
            rows[i] = (label, name, kinds.get(name, "normfactor"), float(init[i]), width)
    return rows


def _yields(model: Any, pars: np.ndarray) -> dict[str, dict[str, list[float]]]:
    by_sample = np.asarray(model.main_model.expected_data(pars, return_by_sample=True), dtype=float)
    out: dict[str, dict[str, list[float]]] = {}
    present = {ch["name"]: {s["name"] for s in ch["samples"]} for ch in model.spec["channels"]}
    for channel in model.config.channels:
        sl = model.config.channel_slices[channel]
        out[channel] = {
            sample: by_sample[k, sl].tolist()
            for k, sample in enumerate(model.config.samples)
            if sample in present[channel]
        }
    return out


def fit_diagnostics(
    workspace: pyhf.Workspace | tuple[Any, np.ndarray],
    *,
    impacts: bool = True,
    prefit_impacts: bool = True,
    parameters: Sequence[str] | None = None,
    edges: Mapping[str, Sequence[float] | np.ndarray] | None = None,
) -> FitDiagnostics:
    """Pulls, constraints, impacts on μ̂ and pre-/post-fit yields of a workspace (or a ``(model, data)`` pair).

    ``impacts``: rank the parameters by their impact on μ̂ (two fits per parameter, four with ``prefit_impacts``);
    ``parameters``: only these modifiers (by modifier name, e.g. ``["bkg_norm", "staterror_SR"]``; default: every
    parameter except the POI and fixed ones); ``edges``: bin edges per channel for the yields and figures (default:
    bin numbers). Raises :class:`~mcsurrogate.errors.FitError` if the best fit fails.
    """
    if isinstance(workspace, pyhf.Workspace):
        model = workspace.model()
        data = np.asarray(workspace.data(model), dtype=float)
    else:
        model, data = workspace
    inf = Inference(model, data)
    best = inf.mu_hat()
    pars = np.asarray(best.parameters, dtype=float)
    fixed = inf.fixed.copy()
    free = np.flatnonzero(~fixed)
    cov = np.full((inf.n, inf.n), np.nan)
    try:
        hess = inf.hessian(pars, inf._observed.data)
        cov[np.ix_(free, free)] = 2.0 * np.linalg.inv(hess[np.ix_(free, free)])
    except np.linalg.LinAlgError:
        pass
    table = _parameter_table(model)
    pulls = []
    for i, (name, modifier, kind, centre, width) in enumerate(table):
        if i == inf.poi:
            continue
        sigma = math.sqrt(cov[i, i]) if np.isfinite(cov[i, i]) and cov[i, i] > 0 else math.nan
        pulls.append(NuisancePull(name, modifier, kind, centre, width, float(pars[i]), sigma if not fixed[i] else 0.0))
    if parameters is not None:
        known = {m for _, m, _, _, _ in table}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; the model has {sorted(known)}")
    ranked = []
    if impacts:
        for i, (name, modifier, _, _, width) in enumerate(table):
            if i == inf.poi or fixed[i] or (parameters is not None and modifier not in parameters):
                continue
            sigma = math.sqrt(cov[i, i]) if np.isfinite(cov[i, i]) and cov[i, i] > 0 else math.nan
            shifts = {"postfit_up": sigma, "postfit_down": -sigma}
            if prefit_impacts and width > 0:
                shifts |= {"prefit_up": width, "prefit_down": -width}
            deltas = {k: _impact(model, data, inf, pars, i, v) - best.mu for k, v in shifts.items()}
            ranked.append(NuisanceImpact(name, **deltas))
        ranked.sort(key=lambda r: -r.magnitude if math.isfinite(r.magnitude) else math.inf)
    prefit = _yields(model, np.asarray(model.config.suggested_init(), dtype=float))
    postfit = _yields(model, pars)
    yields = {}
    main = data[: model.config.nmaindata]
    for channel in model.config.channels:
        sl = model.config.channel_slices[channel]
        nbins = sl.stop - sl.start
        e = np.arange(nbins + 1, dtype=float) if edges is None or channel not in edges else np.asarray(edges[channel])
        if e.shape != (nbins + 1,):
            raise InputError(f"edges of channel {channel!r} must have {nbins + 1} entries; got {e.size}")
        yields[channel] = {
            "edges": e.tolist(),
            "observed": main[sl].tolist(),
            "prefit": prefit[channel],
            "postfit": postfit[channel],
        }
    return FitDiagnostics(best.mu, best.sigma, pulls, ranked, yields)


def _impact(model: Any, data: np.ndarray, inf: Inference, pars: np.ndarray, i: int, shift: float) -> float:
    """μ̂ with parameter ``i`` fixed at its best-fit value + ``shift`` (clipped to its bounds); NaN if that fit fails."""
    if not math.isfinite(shift):
        return math.nan
    init = pars.copy()
    init[i] = float(np.clip(pars[i] + shift, inf.bounds[i, 0], inf.bounds[i, 1]))
    fixed = inf.fixed.copy()
    fixed[i] = True
    try:
        return Inference(model, data, init_pars=init, fixed_params=fixed).mu_hat(sigma=False).mu
    except FitError:
        return math.nan
