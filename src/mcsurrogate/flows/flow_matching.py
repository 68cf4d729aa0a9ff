"""Conditional flow matching: a continuous normalizing flow whose velocity field is trained by regression.

The model is the ODE ``dx/dt = v(x, t; c)`` from noise at ``t = 0`` (``x₀ ~ N(0, I)``) to data at ``t = 1``.
Training follows Lipman et al. (2023, "Flow Matching for Generative Modeling") with the optimal-transport
conditional paths (straight lines; with ``sigma_min = 0`` the rectified flow of Liu et al. 2023):
``x_t = (1 − (1 − σ_min) t) x₀ + t x₁`` has the velocity ``u = x₁ − (1 − σ_min) x₀``, and the network regresses it,
``E ‖v(x_t, t; c) − u‖²`` over ``t ~ U(0, 1)``, ``x₀ ~ N(0, I)`` and the training events ``(x₁, c)`` — no ODE is
solved while training.

Sampling integrates the ODE from the noise with a fixed-step solver (:class:`OdeSolver`: Euler, midpoint or RK4) or
the adaptive Dormand–Prince 5(4) (:class:`AdaptiveSolver`: ``rtol``, ``atol``, a step size per event); the same noise
gives the same sample, whatever the batch. The log-likelihood integrates the divergence along the
path back from the data, ``log p(x) = log N(x₀) − ∫₀¹ ∇·v(x_t, t; c) dt``, with the divergence exact (the trace of
the Jacobian, forward-mode through the network: one extra pass per feature) or Hutchinson's estimate ``εᵀ J ε``
(Rademacher probes, fixed along the path, drawn from a seeded generator: two passes whatever the dimension), so
that validation, model selection and every ``log_prob`` user work as for the discrete flows.

The model is a :class:`~mcsurrogate.flows.FlowModel`: ``transform`` maps data to noise (``log_prob``),
``sample_from_noise`` maps noise to data, and ``training_loss`` is the regression (the discrete flows' is −log p).
The solver settings and ``sigma_min`` (:class:`FlowMatchingSettings`) are part of the configuration,
``FlowConfig.flow_matching``, saved in a model directory's ``config.json``; they are also attributes of the model
(:attr:`FlowMatchingModel.sampling`, :attr:`FlowMatchingModel.likelihood`), which can be set on a trained or loaded
model to trade speed for accuracy — for that model only: a saved model keeps its configuration's settings.

>>> import torch
>>> from mcsurrogate.flows import FlowConfig, build_flow
>>> cfg = FlowConfig(model="flow-matching", blocks=2, hidden=16, flow_matching={"sampling": {"steps": 4}})
>>> flow = build_flow(cfg, features=2, context_features=1)
>>> flow.sampling
OdeSolver(method='rk4', steps=4)
>>> flow.sampling = OdeSolver("midpoint", 8)  # this model only; cfg (and so a saved model) keeps RK4 × 4
>>> flow.sample_from_noise(torch.zeros(3, 2), torch.ones(3, 1)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import torch
from nflows.transforms.base import Transform
from torch import nn
from torch.nn import functional as F

from ..arguments import check_choice, check_float, check_int, describe
from ..errors import FitError, InputError, refuse_unknown_fields
from .made import ACTIVATIONS
from .model import FlowModel, StandardNormal

if TYPE_CHECKING:
    from .registry import FlowConfig

__all__ = [
    "ADAPTIVE_METHODS",
    "METHODS",
    "TRACES",
    "AdaptiveSolver",
    "ContinuousFlow",
    "FlowMatchingModel",
    "FlowMatchingSettings",
    "LikelihoodSettings",
    "OdeSolver",
    "VelocityField",
    "build_flow_matching",
]

#: fixed-step solvers by name, with their velocity evaluations per step
METHODS: dict[str, int] = {"euler": 1, "midpoint": 2, "rk4": 4}
#: divergence estimators: ``exact`` (Jacobian trace), ``hutchinson`` (seeded Rademacher probes), ``auto``
TRACES = ("auto", "exact", "hutchinson")
#: events per slice of sampling and ``log_prob``: the hidden activations of a slice stay in the CPU cache (measured 2.1×
#: faster sampling and 2.6× faster ``log_prob`` than one pass over 2 × 10⁴ events, width 128, 6 features, 1 core)
CHUNK = 1024
#: ``auto`` takes the exact trace up to this many features, Hutchinson's estimate above: the exact one costs one more
#: network pass per feature (measured 3.7× Hutchinson's time for 6 features), and the validation NLL of every epoch
#: goes through it
AUTO_EXACT_FEATURES = 3

Method = Literal["euler", "midpoint", "rk4"]


@dataclass(frozen=True)
class OdeSolver:
    """A fixed-step ODE solver over ``t ∈ [0, 1]``: ``method`` (``euler``, ``midpoint``, ``rk4``) and ``steps``.

    A run costs ``steps × METHODS[method]`` velocity evaluations; the error falls as ``steps⁻¹``, ``steps⁻²`` and
    ``steps⁻⁴`` respectively."""

    method: Method = "rk4"
    steps: int = 8

    def __post_init__(self) -> None:
        if self.method in ADAPTIVE_METHODS:
            raise InputError(
                f"ODE solver 'method' {self.method!r} is adaptive: use AdaptiveSolver({self.method!r}, rtol=..., "
                f"atol=...) (in JSON: {{'method': {self.method!r}, 'rtol': ..., 'atol': ...}})"
            )
        check_choice(self.method, "ODE solver 'method'", (*METHODS, *ADAPTIVE_METHODS))
        # a plain int (a numpy integer would not be JSON in FlowConfig.to_dict)
        object.__setattr__(self, "steps", check_int(self.steps, "ODE solver 'steps'", minimum=1))

    @property
    def evaluations(self) -> int:
        """Velocity evaluations per integration."""
        return self.steps * METHODS[self.method]

    def step(
        self, fun: Callable[[torch.Tensor, float], torch.Tensor], y: torch.Tensor, t: float, h: float
    ) -> torch.Tensor:
        """One step of size ``h`` (negative: back in time) from ``y`` at ``t``."""
        if self.method == "euler":
            return y + h * fun(y, t)
        if self.method == "midpoint":
            return y + h * fun(y + 0.5 * h * fun(y, t), t + 0.5 * h)
        k1 = fun(y, t)
        k2 = fun(y + 0.5 * h * k1, t + 0.5 * h)
        k3 = fun(y + 0.5 * h * k2, t + 0.5 * h)
        k4 = fun(y + h * k3, t + h)
        return y + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)

    def times(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """``(t, h)`` of each step from ``t0`` to ``t1``."""
        h = (t1 - t0) / self.steps
        return [(t0 + i * h, h) for i in range(self.steps)]

    def integrate(
        self, fun: Callable[[torch.Tensor, float], torch.Tensor], y: torch.Tensor, t0: float, t1: float
    ) -> torch.Tensor:
        """``y(t1)`` of ``dy/dt = fun(y, t)`` from ``y(t0) = y``, in ``steps`` equal steps (``t1 < t0`` runs back)."""
        for t, h in self.times(t0, t1):
            y = self.step(fun, y, t, h)
        return y


#: adaptive solvers by name (:class:`AdaptiveSolver`)
ADAPTIVE_METHODS = ("dopri5",)
#: Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving ODEs I*, table 5.2): the stage
#: times, the stage coefficients, the fifth-order weights (the last stage is the next step's first: FSAL) and the
#: differences of the fifth- and fourth-order weights (the embedded error estimate)
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
_DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

#: ``fun(y, t, rows)`` of the adaptive solver: ``y`` (m, D) the states of the batch rows ``rows`` (a LongTensor, or
#: ``None`` for all rows in order), ``t`` (m,) their times; returns dy/dt (m, D)
AdaptiveFunction = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class AdaptiveSolver:
    """An adaptive ODE solver over ``t ∈ [0, 1]``: Dormand–Prince 5(4) (``method="dopri5"``) with the embedded error
    estimate and the standard step-size control (Hairer, Nørsett & Wanner, *Solving ODEs I*, II.4).

    A step of size ``h`` is accepted when ``‖err / (atol + rtol · max(|y|, |y_new|))‖ ≤ 1`` (RMS over the state's
    components); the next size is ``h · clip(safety · ‖·‖^(−1/5), min_factor, max_factor)`` (at most ``h`` after a
    rejection). The first size follows Hairer's estimate (two extra evaluations). Each accepted step costs 6 velocity
    evaluations (the 7th stage is the next step's first), each rejected one 6.

    ``step_size``: ``"event"`` (default) gives every event its own step sizes (the error norm is over that event's
    state; finished events drop out of the batch), so an event's result does not depend on its batch or slicing, as
    for the fixed-step solvers; ``"batch"`` takes one step size for the whole batch with the RMS of the error over all
    events (as torchdiffeq does): fewer, larger matrix products, but an event's result depends on its batch.
    ``max_steps``: attempted steps per event at most; more raise :class:`~mcsurrogate.errors.FitError` (as does a step
    size below 10⁻¹² of the interval). The step sequence is a function of the batch only: the same noise gives the
    same samples."""

    method: Literal["dopri5"] = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    max_steps: int = 1000
    step_size: Literal["event", "batch"] = "event"

    def __post_init__(self) -> None:
        check_choice(self.method, "ODE solver 'method'", ADAPTIVE_METHODS)
        for name in ("rtol", "atol"):
            object.__setattr__(self, name, check_float(getattr(self, name), f"ODE solver {name!r}", minimum=0.0))
        if self.rtol == 0.0 and self.atol == 0.0:
            raise InputError("ODE solver 'rtol' and 'atol' must not both be 0")
        safety = check_float(self.safety, "ODE solver 'safety'", above=0.0, maximum=1.0)
        min_factor = check_float(self.min_factor, "ODE solver 'min_factor'", above=0.0, below=1.0)
        max_factor = check_float(self.max_factor, "ODE solver 'max_factor'", above=1.0)
        object.__setattr__(self, "safety", safety)
        object.__setattr__(self, "min_factor", min_factor)
        object.__setattr__(self, "max_factor", max_factor)
        object.__setattr__(self, "max_steps", check_int(self.max_steps, "ODE solver 'max_steps'", minimum=1))
        check_choice(self.step_size, "ODE solver 'step_size'", ("event", "batch"))

    def _norm(self, ratio: torch.Tensor) -> torch.Tensor:
        """Per-event RMS over the components of ``ratio`` (m, D), float64; the batch's RMS for every event with
        ``step_size="batch"``; non-finite → inf (a rejected step)."""
        norm = ratio.double().pow(2).mean(-1)
        if self.step_size == "batch":
            norm = norm.mean().expand(len(norm))
        norm = norm.sqrt()
        return torch.where(torch.isfinite(norm), norm, torch.full_like(norm, math.inf))

    def integrate(self, fun: AdaptiveFunction, y: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        """``y(t1)`` of ``dy/dt = fun(y, t, rows)`` from ``y(t0) = y`` (batch, D); ``t1 < t0`` runs back in time."""
        n = len(y)
        span = abs(t1 - t0)
        if n == 0 or span == 0.0:
            return y
        sign = 1.0 if t1 > t0 else -1.0
        dtype, device = y.dtype, y.device

        def call(ys: torch.Tensor, s: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
            t = t0 + sign * s  # float64 progress → the time of each row
            return fun(ys, t.to(dtype), rows)

        # the first step size (Hairer's estimate), per event or for the batch
        progress = torch.zeros(n, dtype=torch.float64, device=device)
        k1 = call(y, progress, None)
        scale = self.atol + self.rtol * y.abs()
        d0, d1 = self._norm(y / scale), self._norm(k1 / scale)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1).clamp(max=span)
        f1 = call(y + (sign * h0).to(dtype)[:, None] * k1, h0, None)
        d2 = self._norm((f1 - k1) / scale) / h0
        dmax = torch.maximum(d1, d2)
        h1 = torch.where(dmax <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6), (0.01 / dmax) ** 0.2)
        h = torch.minimum(torch.minimum(100 * h0, h1), torch.full_like(h0, span))

        attempts = torch.zeros(n, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        while True:
            rows_all = (~done).nonzero().squeeze(-1)
            m = len(rows_all)
            if m == 0:
                return y
            rows = None if m == n else rows_all
            ya, ka, sa = (y, k1, progress) if rows is None else (y[rows_all], k1[rows_all], progress[rows_all])
            remaining = span - sa
            ha = torch.minimum(h[rows_all], remaining)
            last = ha >= remaining
            hs = (sign * ha).to(dtype)[:, None]
            ks = [ka]
            for c, a in zip(_DP_C[1:], _DP_A[1:], strict=True):
                yi = ya + hs * sum(coef * k for coef, k in zip(a, ks, strict=True) if coef != 0.0)
                ks.append(call(yi, sa + c * ha, rows))
            y5 = ya + hs * sum(b * k for b, k in zip(_DP_B, ks, strict=True) if b != 0.0)
            s_new = torch.where(last, torch.full_like(sa, span), sa + ha)
            k7 = call(y5, s_new, rows)
            err = hs * sum(e * k for e, k in zip(_DP_E, [*ks, k7], strict=True) if e != 0.0)
            norm = self._norm(err / (self.atol + self.rtol * torch.maximum(ya.abs(), y5.abs())))
            accept = norm <= 1.0
            factor = torch.where(
                norm == 0.0, torch.full_like(norm, self.max_factor), self.safety * norm.clamp(min=1e-300) ** -0.2
            )
            factor = torch.where(
                accept,
                factor.clamp(self.min_factor, self.max_factor),
                factor.clamp(self.min_factor, 1.0),
            )
            keep = accept[:, None]
            y = y.index_copy(0, rows_all, torch.where(keep, y5, ya))
            k1 = k1.index_copy(0, rows_all, torch.where(keep, k7, ka))
            progress = progress.index_copy(0, rows_all, torch.where(accept, s_new, sa))
            done = done.index_copy(0, rows_all, accept & last)
            h = h.index_copy(0, rows_all, ha * factor)
            attempts = attempts.index_copy(0, rows_all, attempts[rows_all] + 1)
            open_rows = ~done
            if bool((attempts[open_rows] >= self.max_steps).any()):
                raise FitError(
                    f"ODE solver dopri5 did not reach t = {t1} within 'max_steps' = {self.max_steps} steps of an event "
                    f"(rtol {self.rtol}, atol {self.atol}); raise max_steps or loosen rtol/atol "
                    "(an untrained or diverging velocity field can also cause this)"
                )
            if bool((h[open_rows] < 1e-12 * span).any()):
                raise FitError(
                    f"ODE solver dopri5: the step size fell below {1e-12 * span:g} (a non-finite or stiff velocity "
                    f"field; rtol {self.rtol}, atol {self.atol})"
                )


#: an ODE solver of the settings: fixed-step or adaptive
Solver = OdeSolver | AdaptiveSolver


@dataclass(frozen=True)
class LikelihoodSettings:
    """How ``log_prob`` integrates the divergence: the ``solver``; ``trace`` ``exact`` (one extra network pass per
    feature), ``hutchinson`` (``probes`` Rademacher vectors per event, unbiased; two passes per probe) or ``auto``
    (exact up to :data:`AUTO_EXACT_FEATURES` features); ``seed`` of the probes, drawn anew for every call from a
    generator with this seed (so the same call gives the same numbers)."""

    solver: Solver = OdeSolver("rk4", 8)
    trace: Literal["auto", "exact", "hutchinson"] = "auto"
    probes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.solver, (OdeSolver, AdaptiveSolver)):
            raise InputError(
                f"likelihood 'solver' must be an OdeSolver or AdaptiveSolver, got {type(self.solver).__name__}"
            )
        check_choice(self.trace, "likelihood 'trace'", TRACES)
        object.__setattr__(self, "probes", check_int(self.probes, "likelihood 'probes'", minimum=1))
        object.__setattr__(self, "seed", check_int(self.seed, "likelihood 'seed'", minimum=0))

    def exact(self, features: int) -> bool:
        """Whether the exact trace is taken for ``features`` dimensions."""
        return self.trace == "exact" or (self.trace == "auto" and features <= AUTO_EXACT_FEATURES)


#: sigma_min of the paths by default: the width of the conditional paths at the data end
SIGMA_MIN = 1e-4


@dataclass(frozen=True)
class FlowMatchingSettings:
    """The settings of a flow-matching model that are not weights: ``sigma_min`` (width of the conditional paths at
    the data end, ``0 ≤ sigma_min < 1``; 0: rectified flow), ``sampling`` (the solver of the sampler) and
    ``likelihood`` (how ``log_prob`` integrates the divergence). ``FlowConfig(model="flow-matching",
    flow_matching=...)`` carries them into the model and into ``config.json``.

    :meth:`from_dict` takes the JSON form, with any field left out at its default at every level:

    >>> FlowMatchingSettings.from_dict({"sampling": {"method": "midpoint", "steps": 16}}).sampling
    OdeSolver(method='midpoint', steps=16)
    """

    sigma_min: float = SIGMA_MIN
    sampling: Solver = OdeSolver()
    likelihood: LikelihoodSettings = LikelihoodSettings()

    def __post_init__(self) -> None:
        sigma_min = check_float(self.sigma_min, "flow-matching 'sigma_min'", minimum=0.0, below=1.0)
        object.__setattr__(self, "sigma_min", sigma_min)
        for name, cls in (("sampling", (OdeSolver, AdaptiveSolver)), ("likelihood", (LikelihoodSettings,))):
            if not isinstance(getattr(self, name), cls):
                raise InputError(
                    f"flow-matching {name!r} must be a {' or '.join(c.__name__ for c in cls)} (or, through "
                    f"from_dict, a dict of its fields), got {describe(getattr(self, name))}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (nested dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | FlowMatchingSettings, name: str = "flow_matching"
    ) -> FlowMatchingSettings:
        """Build from the JSON form (or return an instance as it is); an unknown key or a bad value raises
        :class:`InputError` naming it by its path from ``name`` (e.g. ``flow_matching.likelihood.solver``)."""
        if isinstance(data, cls):
            return data
        nested: dict[str, Any] = dict(_check_fields(cls, data, name))
        if "sampling" in nested:
            nested["sampling"] = _build_solver(nested["sampling"], f"{name}.sampling")
        if "likelihood" in nested:
            likelihood = dict(_check_fields(LikelihoodSettings, nested["likelihood"], f"{name}.likelihood"))
            if "solver" in likelihood:
                likelihood["solver"] = _build_solver(likelihood["solver"], f"{name}.likelihood.solver")
            nested["likelihood"] = _build(LikelihoodSettings, likelihood, f"{name}.likelihood")
        return _build(cls, nested, name)


_Settings = TypeVar("_Settings", OdeSolver, AdaptiveSolver, LikelihoodSettings, FlowMatchingSettings)


def _build_solver(data: Any, name: str) -> Solver:
    """An :class:`AdaptiveSolver` for a dict whose ``method`` is adaptive (``dopri5``), else an :class:`OdeSolver`
    (the JSON of a fixed-step solver has only ``method`` and ``steps``, as before the adaptive one existed)."""
    if isinstance(data, AdaptiveSolver) or (isinstance(data, Mapping) and data.get("method") in ADAPTIVE_METHODS):
        return _build(AdaptiveSolver, data, name)
    return _build(OdeSolver, data, name)


def _check_fields(cls: type[_Settings], data: Any, name: str) -> Mapping[str, Any]:
    """The fields of ``data`` (a ``cls`` or a dict of its fields, no others); errors name ``name``."""
    if isinstance(data, cls):
        return {f.name: getattr(data, f.name) for f in dataclasses.fields(cls)}
    if not isinstance(data, Mapping):
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise InputError(
            f"flow parameter {name!r} must be a dict of {cls.__name__} fields ({fields}), got {describe(data)}"
        )
    refuse_unknown_fields(cls, data, f"flow {name!r}")
    return data


def _build(cls: type[_Settings], data: Any, name: str) -> _Settings:
    """``cls`` from ``data`` (an instance or a dict of its fields); a bad value's error is prefixed with ``name``."""
    if isinstance(data, cls):
        return data
    fields = _check_fields(cls, data, name)
    try:
        return cls(**fields)
    except InputError as exc:
        raise InputError(f"flow parameter {name!r}: {exc}") from None


def _activation_with_derivative(name: str) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``a ↦ (σ(a), σ'(a))`` for the activations of :data:`~mcsurrogate.flows.made.ACTIVATIONS`."""

    def relu(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.relu(a), (a > 0).to(a.dtype)

    def gelu(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cdf = torch.special.ndtr(a)
        return a * cdf, cdf + a * torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)

    def elu(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.elu(a), torch.where(a > 0, torch.ones_like(a), torch.exp(torch.clamp(a, max=0.0)))

    def silu(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.sigmoid(a)
        return a * s, s * (1.0 + a * (1.0 - s))

    def tanh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tanh(a)
        return y, 1.0 - y * y

    table = {"relu": relu, "gelu": gelu, "elu": elu, "silu": silu, "tanh": tanh}
    if set(table) != set(ACTIVATIONS):  # pragma: no cover - a new activation needs its derivative here
        raise RuntimeError(f"activation derivatives {sorted(table)} differ from ACTIVATIONS {sorted(ACTIVATIONS)}")
    return table[check_choice(name, "activation", tuple(table))]


class VelocityField(nn.Module):
    """``v(x, t; c)``: a residual MLP of width ``hidden`` with ``blocks`` residual blocks of ``layers`` linear layers.

    The time enters through a sinusoidal embedding ``(t, sin(π k t), cos(π k t))``, ``k = 1 … frequencies``, which is
    concatenated with the context and mapped to an embedding of width ``hidden`` that is added to the input layer and
    to the first layer of every block. :meth:`jvp` returns the velocity and its Jacobian applied to tangent vectors,
    forward mode, without autograd (so it also runs under ``torch.inference_mode``)."""

    def __init__(
        self,
        features: int,
        context_features: int | None,
        hidden: int,
        blocks: int,
        layers: int = 2,
        activation: str = "silu",
        frequencies: int = 4,
    ) -> None:
        super().__init__()
        self.features = features
        self.context_features = context_features or 0
        self.frequencies = frequencies
        self._act = ACTIVATIONS[check_choice(activation, "activation", tuple(ACTIVATIONS))]
        self._act_d = _activation_with_derivative(activation)
        self.time_features = 1 + 2 * frequencies
        self.embed = nn.Linear(self.time_features + self.context_features, hidden)
        self.inp = nn.Linear(features, hidden)
        self.block_embed = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.block_layers = nn.ModuleList(
            nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers)) for _ in range(blocks)
        )
        self.out = nn.Linear(hidden, features)
        with torch.no_grad():  # a small initial velocity: the untrained flow starts near the identity
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def _embedding(self, t: torch.Tensor | float, context: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The time-and-context embedding, (batch, hidden), or (1, hidden) for one time and no context."""
        tt = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1, 1)
        angle = tt * (torch.arange(1, self.frequencies + 1, dtype=like.dtype, device=like.device) * math.pi)
        time = torch.cat([tt, torch.sin(angle), torch.cos(angle)], dim=-1)
        w = self.embed.weight
        a = F.linear(time, w[:, : self.time_features], self.embed.bias)  # one row per time: cheap for the ODE
        if context is not None:
            a = torch.addmm(a, context, w[:, self.time_features :].t())
        return self._act(a)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, context: torch.Tensor | None = None) -> torch.Tensor:
        """The velocity (batch, features) at ``x`` (batch, features), time ``t`` (a number, or one per event) and
        ``context``."""
        return self.jvp(x, t, context, None)[0]

    def jvp(
        self, x: torch.Tensor, t: torch.Tensor | float, context: torch.Tensor | None, tangents: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(v, J τ)``: the velocity and, for tangents ``τ`` of shape (batch, m, features) — or (m, features), the
        same for every event — the Jacobian ``∂v/∂x`` applied to each, shape (batch, m, features)."""
        e = self._embedding(t, context, x)
        h = self.inp(x) + e
        # tangents in (batch, m, width) layout: a linear layer acts on them as F.linear without the bias
        th = None if tangents is None else F.linear(tangents, self.inp.weight)
        for proj, layers in zip(cast("list[nn.Linear]", self.block_embed), self.block_layers, strict=True):
            u, tu = h, th
            for j, lin in enumerate(cast("list[nn.Linear]", layers)):
                if tu is None:
                    u = self._act(u)
                else:
                    u, du = self._act_d(u)
                    tu = F.linear(tu * du.unsqueeze(-2), lin.weight)
                if j == 0:  # the block's embedding, folded into the layer's bias: one matrix product
                    bias = F.linear(e, proj.weight, proj.bias + lin.bias)
                    u = (
                        torch.addmm(bias, u, lin.weight.t())
                        if bias.shape[0] == len(u)
                        else F.linear(u, lin.weight) + bias
                    )
                else:
                    u = lin(u)
            h = h + u
            if th is not None and tu is not None:
                th = th + tu
        if th is None:
            return self.out(self._act(h)), None
        a, da = self._act_d(h)
        return self.out(a), F.linear(th * da.unsqueeze(-2), self.out.weight)


class ContinuousFlow(Transform):
    """The flow's map from data (``t = 1``) to noise (``t = 0``) as an nflows transform, through the
    :attr:`likelihood` settings.

    With the exact trace the log-determinant is that of the solver's own map: the tangent vectors ``∂y/∂xⱼ`` are
    carried through every stage of the solver (the variational equation, which Runge–Kutta steps treat exactly as
    they treat the state), and ``log|det ∂z/∂x|`` is their final log-determinant — the change of variables of the
    discretised map itself, so the density integrates to one and matches the numerical Jacobian whatever the step
    count (it tends to the continuous flow's as the steps shrink). With Hutchinson's estimator it is
    ``−∫₀¹ εᵀ (∂v/∂x) ε dt`` along the same steps. :meth:`inverse` inverts the same map step by step (fixed-point
    iteration; for tests and exact inverses: :meth:`FlowMatchingModel.sample_from_noise` integrates forward in time
    instead, which is the same ODE to the solver's accuracy and needs no iteration)."""

    #: fixed-point iterations of one step's inverse at most, and the tolerance (relative to 1 + |y|) that ends them
    max_iterations: ClassVar[int] = 100
    tolerance: ClassVar[dict[torch.dtype, float]] = {torch.float64: 1e-12, torch.float32: 1e-6}

    def __init__(self, velocity: VelocityField, likelihood: LikelihoodSettings) -> None:
        super().__init__()
        self.velocity = velocity
        self.likelihood = likelihood

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Data (batch, features) → noise and ``log|det ∂z/∂x|`` (batch,), in slices of :data:`CHUNK` events."""
        return self._chunked(inputs, context, 1.0, 0.0)

    def _chunked(
        self, x: torch.Tensor, context: torch.Tensor | None, t0: float, t1: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The state at ``t1`` from ``x`` at ``t0`` and ``log|det ∂y(t1)/∂y(t0)|``, in slices of :data:`CHUNK`."""
        n, d = x.shape
        probes = None
        if not self.likelihood.exact(d):  # drawn for the whole batch: the numbers do not depend on the slicing
            gen = torch.Generator(device=x.device).manual_seed(self.likelihood.seed)
            signs = torch.randint(0, 2, (n, self.likelihood.probes, d), generator=gen, device=x.device)
            probes = signs.to(x.dtype) * 2 - 1
        parts = [
            self._integrate(
                x[i : i + CHUNK],
                None if context is None else context[i : i + CHUNK],
                None if probes is None else probes[i : i + CHUNK],
                t0,
                t1,
            )
            for i in range(0, n, CHUNK)
        ]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([z for z, _ in parts]), torch.cat([ld for _, ld in parts])

    def _integrate(
        self, x: torch.Tensor, context: torch.Tensor | None, probes: torch.Tensor | None, t0: float, t1: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = x.shape
        solver = self.likelihood.solver

        def rows_of(value: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor | None:
            return value if value is None or rows is None else value[rows]

        if probes is None:
            # state: y and the d tangent rows ∂y/∂xⱼ, flattened into one (batch, d + d²) tensor
            def fun(state: torch.Tensor, t: torch.Tensor | float, rows: torch.Tensor | None = None) -> torch.Tensor:
                m = len(state)
                v, jt = self.velocity.jvp(state[:, :d], t, rows_of(context, rows), state[:, d:].reshape(m, d, d))
                assert jt is not None
                return torch.cat([v, jt.reshape(m, d * d)], dim=-1)

            eye = torch.eye(d, dtype=x.dtype, device=x.device).reshape(1, d * d).expand(n, d * d)
            state = solver.integrate(fun, torch.cat([x, eye], dim=-1), t0, t1)
            return state[:, :d], torch.linalg.slogdet(state[:, d:].reshape(n, d, d)).logabsdet

        def fun_hutchinson(
            state: torch.Tensor, t: torch.Tensor | float, rows: torch.Tensor | None = None
        ) -> torch.Tensor:
            eps = rows_of(probes, rows)
            assert eps is not None
            v, jt = self.velocity.jvp(state[:, :d], t, rows_of(context, rows), eps)
            assert jt is not None
            return torch.cat([v, (jt * eps).sum(-1).mean(-1, keepdim=True)], dim=-1)

        # d(log det)/dt = ∇·v; integrated from t0 to t1 it is log|det ∂y(t1)/∂y(t0)| directly
        state = solver.integrate(fun_hutchinson, torch.cat([x, x.new_zeros(n, 1)], dim=-1), t0, t1)
        return state[:, :d], state[:, d]

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise → data and ``log|det ∂x/∂z|``.

        With a fixed-step :class:`OdeSolver` it is the exact inverse of :meth:`forward` (each step inverted by
        fixed-point iteration). With an :class:`AdaptiveSolver` the ODE (and the tangents or the divergence) is
        integrated from ``t = 0`` to ``t = 1`` instead, with its own step sequence: the inverse of :meth:`forward` to
        the solver's tolerance, not exactly (an adaptive map has no step-by-step inverse)."""
        solver = self.likelihood.solver
        if isinstance(solver, AdaptiveSolver):
            return self._chunked(inputs, context, 0.0, 1.0)
        tol = self.tolerance.get(inputs.dtype, 1e-6)

        def fun(y: torch.Tensor, t: float) -> torch.Tensor:
            return self.velocity(y, t, context)

        y = inputs
        for t, h in reversed(solver.times(1.0, 0.0)):
            # forward step: y_next = y + Δ(y); solve y = y_next − Δ(y), a contraction for steps with |h| L < 1
            target = y
            for _ in range(self.max_iterations):
                new = target - (solver.step(fun, y, t, h) - y)
                done = bool(((new - y).abs() <= tol * (1 + new.abs())).all())
                y = new
                if done:
                    break
        _, logdet = self.forward(y, context)
        return y, -logdet


class FlowMatchingModel(FlowModel):
    """A conditional flow-matching model behind the :class:`~mcsurrogate.flows.FlowModel` interface.

    ``sampling``: the solver of :meth:`sample_from_noise` (default RK4, 8 steps: 32 network passes);
    ``likelihood``: how :meth:`log_prob` integrates the divergence (:class:`LikelihoodSettings`); ``sigma_min``:
    the width of the conditional paths at the data end (0: rectified flow). :func:`build_flow_matching` takes them
    from ``FlowConfig.flow_matching``; they are attributes, not weights, and can be set on a trained or loaded model
    (e.g. ``model.sampling = OdeSolver("rk4", 4)``). Such a change applies to this model object only: the
    configuration wins when saved — ``Surrogate.save`` writes its ``flow_config``, so a saved and loaded model has the
    settings of the configuration it was built from. To keep a change, put it into the configuration too:
    ``s.flow_config = dataclasses.replace(s.flow_config, flow_matching=s.model.settings)``."""

    transform: ContinuousFlow

    def __init__(
        self,
        velocity: VelocityField,
        features: int,
        context_features: int | None,
        *,
        sigma_min: float = SIGMA_MIN,
        sampling: Solver | None = None,
        likelihood: LikelihoodSettings | None = None,
    ) -> None:
        super().__init__(
            ContinuousFlow(velocity, likelihood or LikelihoodSettings()),
            StandardNormal(features),
            features,
            context_features,
        )
        self.likelihood = likelihood or LikelihoodSettings()
        self.sigma_min = sigma_min
        self.sampling = sampling or OdeSolver()

    @property
    def velocity(self) -> VelocityField:
        return self.transform.velocity

    @property
    def sampling(self) -> Solver:
        """The solver of :meth:`sample_from_noise`."""
        return self._sampling

    @sampling.setter
    def sampling(self, value: Solver) -> None:
        if not isinstance(value, (OdeSolver, AdaptiveSolver)):
            raise InputError(f"sampling must be an OdeSolver or AdaptiveSolver, got {describe(value)}")
        self._sampling = value

    @property
    def likelihood(self) -> LikelihoodSettings:
        """How :meth:`log_prob` integrates the divergence."""
        return self.transform.likelihood

    @likelihood.setter
    def likelihood(self, value: LikelihoodSettings) -> None:
        if not isinstance(value, LikelihoodSettings):
            raise InputError(f"likelihood must be a LikelihoodSettings, got {describe(value)}")
        self.transform.likelihood = value

    @property
    def sigma_min(self) -> float:
        """Width of the conditional paths at the data end (used by :meth:`training_loss` only)."""
        return self._sigma_min

    @sigma_min.setter
    def sigma_min(self, value: float) -> None:
        self._sigma_min = check_float(value, "sigma_min", minimum=0.0, below=1.0)

    @property
    def settings(self) -> FlowMatchingSettings:
        """The model's current ``sigma_min``, ``sampling`` and ``likelihood`` as one :class:`FlowMatchingSettings`;
        setting it sets all three."""
        return FlowMatchingSettings(self.sigma_min, self.sampling, self.likelihood)

    @settings.setter
    def settings(self, value: FlowMatchingSettings) -> None:
        if not isinstance(value, FlowMatchingSettings):
            raise InputError(f"settings must be a FlowMatchingSettings, got {describe(value)}")
        self.sigma_min, self.sampling, self.likelihood = value.sigma_min, value.sampling, value.likelihood

    def training_loss(
        self, x: torch.Tensor, context: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-event flow-matching loss ``mean_features (v(x_t, t; c) − u)²`` (batch,), with ``t`` and ``x₀`` drawn
        from ``generator`` (torch's global one when ``None``)."""
        self.check_context(context)
        n = len(x)
        x0 = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        t = torch.rand((n,), generator=generator, dtype=x.dtype, device=x.device)
        s = 1.0 - self.sigma_min
        xt = (1.0 - s * t[:, None]) * x0 + t[:, None] * x
        target = x - s * x0
        return (self.velocity(xt, t, context) - target).pow(2).mean(-1)

    def sample_from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate the ODE from ``noise`` (batch, features) at ``t = 0`` to samples at ``t = 1`` with
        :attr:`sampling` (no divergence), in slices of :data:`CHUNK` events."""
        self.check_context(context)
        parts = []
        for i in range(0, len(noise), CHUNK):
            c = None if context is None else context[i : i + CHUNK]

            def fun(
                y: torch.Tensor, t: torch.Tensor | float, rows: torch.Tensor | None = None, c: torch.Tensor | None = c
            ) -> torch.Tensor:
                return self.velocity(y, t, c if c is None or rows is None else c[rows])

            parts.append(self.sampling.integrate(fun, noise[i : i + CHUNK], 0.0, 1.0))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def build_flow_matching(cfg: FlowConfig, d: int, c: int | None) -> FlowMatchingModel:
    """The ``flow-matching`` family: a :class:`VelocityField` of ``cfg.blocks`` residual blocks of ``cfg.layers``
    layers of width ``cfg.hidden`` with ``cfg.activation``, and the solver settings and ``sigma_min`` of
    ``cfg.flow_matching`` (the defaults of :class:`FlowMatchingSettings` when it is ``None``)."""
    velocity = VelocityField(d, c, cfg.hidden, cfg.blocks, cfg.layers, cfg.activation)
    model = FlowMatchingModel(velocity, d, c)
    model.settings = cfg.flow_matching or FlowMatchingSettings()
    return model
