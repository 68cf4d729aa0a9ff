"""Conditional flow matching: a continuous normalizing flow whose velocity field is trained by regression.

The model is the ODE ``dx/dt = v(x, t; c)`` from noise at ``t = 0`` (``x₀ ~ N(0, I)``) to data at ``t = 1``.
Training follows Lipman et al. (2023, "Flow Matching for Generative Modeling") with the optimal-transport
conditional paths (straight lines; with ``sigma_min = 0`` the rectified flow of Liu et al. 2023):
``x_t = (1 − (1 − σ_min) t) x₀ + t x₁`` has the velocity ``u = x₁ − (1 − σ_min) x₀``, and the network regresses it,
``E ‖v(x_t, t; c) − u‖²`` over ``t ~ U(0, 1)``, ``x₀ ~ N(0, I)`` and the training events ``(x₁, c)`` — no ODE is
solved while training.

Sampling integrates the ODE from the noise with a fixed-step solver (:class:`OdeSolver`: Euler, midpoint or RK4);
the same noise gives the same sample, whatever the batch. The log-likelihood integrates the divergence along the
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
from ..errors import InputError, refuse_unknown_fields
from .made import ACTIVATIONS
from .model import FlowModel, StandardNormal

if TYPE_CHECKING:
    from .registry import FlowConfig

__all__ = [
    "METHODS",
    "TRACES",
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
        check_choice(self.method, "ODE solver 'method'", tuple(METHODS))
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


@dataclass(frozen=True)
class LikelihoodSettings:
    """How ``log_prob`` integrates the divergence: the ``solver``; ``trace`` ``exact`` (one extra network pass per
    feature), ``hutchinson`` (``probes`` Rademacher vectors per event, unbiased; two passes per probe) or ``auto``
    (exact up to :data:`AUTO_EXACT_FEATURES` features); ``seed`` of the probes, drawn anew for every call from a
    generator with this seed (so the same call gives the same numbers)."""

    solver: OdeSolver = OdeSolver("rk4", 8)
    trace: Literal["auto", "exact", "hutchinson"] = "auto"
    probes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.solver, OdeSolver):
            raise InputError(f"likelihood 'solver' must be an OdeSolver, got {type(self.solver).__name__}")
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
    sampling: OdeSolver = OdeSolver()
    likelihood: LikelihoodSettings = LikelihoodSettings()

    def __post_init__(self) -> None:
        sigma_min = check_float(self.sigma_min, "flow-matching 'sigma_min'", minimum=0.0, below=1.0)
        object.__setattr__(self, "sigma_min", sigma_min)
        for name, cls in (("sampling", OdeSolver), ("likelihood", LikelihoodSettings)):
            if not isinstance(getattr(self, name), cls):
                raise InputError(
                    f"flow-matching {name!r} must be a {cls.__name__} (or, through from_dict, a dict of its fields), "
                    f"got {describe(getattr(self, name))}"
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
            nested["sampling"] = _build(OdeSolver, nested["sampling"], f"{name}.sampling")
        if "likelihood" in nested:
            likelihood = dict(_check_fields(LikelihoodSettings, nested["likelihood"], f"{name}.likelihood"))
            if "solver" in likelihood:
                likelihood["solver"] = _build(OdeSolver, likelihood["solver"], f"{name}.likelihood.solver")
            nested["likelihood"] = _build(LikelihoodSettings, likelihood, f"{name}.likelihood")
        return _build(cls, nested, name)


_Settings = TypeVar("_Settings", OdeSolver, LikelihoodSettings, FlowMatchingSettings)


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
        x = inputs
        n, d = x.shape
        probes = None
        if not self.likelihood.exact(d):  # drawn for the whole batch: the numbers do not depend on the slicing
            gen = torch.Generator(device=x.device).manual_seed(self.likelihood.seed)
            signs = torch.randint(0, 2, (n, self.likelihood.probes, d), generator=gen, device=x.device)
            probes = signs.to(x.dtype) * 2 - 1
        parts = [
            self._to_noise(
                x[i : i + CHUNK],
                None if context is None else context[i : i + CHUNK],
                None if probes is None else probes[i : i + CHUNK],
            )
            for i in range(0, n, CHUNK)
        ]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([z for z, _ in parts]), torch.cat([ld for _, ld in parts])

    def _to_noise(
        self, x: torch.Tensor, context: torch.Tensor | None, probes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = x.shape
        solver = self.likelihood.solver
        if probes is None:
            # state: y and the d tangent rows ∂y/∂xⱼ, flattened into one (batch, d + d²) tensor
            def fun(state: torch.Tensor, t: float) -> torch.Tensor:
                v, jt = self.velocity.jvp(state[:, :d], t, context, state[:, d:].view(n, d, d))
                assert jt is not None
                return torch.cat([v, jt.reshape(n, d * d)], dim=-1)

            eye = torch.eye(d, dtype=x.dtype, device=x.device).reshape(1, d * d).expand(n, d * d)
            state = solver.integrate(fun, torch.cat([x, eye], dim=-1), 1.0, 0.0)
            return state[:, :d], torch.linalg.slogdet(state[:, d:].reshape(n, d, d)).logabsdet
        eps = probes

        def fun_hutchinson(state: torch.Tensor, t: float) -> torch.Tensor:
            v, jt = self.velocity.jvp(state[:, :d], t, context, eps)
            assert jt is not None
            return torch.cat([v, (jt * eps).sum(-1).mean(-1, keepdim=True)], dim=-1)

        # d(log det)/dt = ∇·v; integrated from t = 1 down to 0 it is log|det ∂z/∂x| directly
        state = solver.integrate(fun_hutchinson, torch.cat([x, x.new_zeros(n, 1)], dim=-1), 1.0, 0.0)
        return state[:, :d], state[:, d]

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise → data, the exact inverse of :meth:`forward` (each step inverted by fixed-point iteration), and
        ``log|det ∂x/∂z|``."""
        solver = self.likelihood.solver
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
        sampling: OdeSolver | None = None,
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
    def sampling(self) -> OdeSolver:
        """The solver of :meth:`sample_from_noise`."""
        return self._sampling

    @sampling.setter
    def sampling(self, value: OdeSolver) -> None:
        if not isinstance(value, OdeSolver):
            raise InputError(f"sampling must be an OdeSolver, got {describe(value)}")
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

            def fun(y: torch.Tensor, t: float, c: torch.Tensor | None = c) -> torch.Tensor:
                return self.velocity(y, t, c)

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
