"""A distilled sampler: one feed-forward network that learns a trained flow's noise → sample map.

A flow samples ``x = f⁻¹(z; c)``; the map is deterministic and smooth, so a plain network ``g(z, c)`` can be fitted
to it by regression on pairs ``(z, c) → f⁻¹(z; c)`` drawn from the flow itself (the teacher). Sampling then costs
one pass of a few dense layers — mostly matmul, whatever the flow's blocks, splines or autoregressive steps cost.
The flow keeps the density: :class:`DistilledFlow` takes ``log_prob`` from the teacher and samples with the student.
Distilling needs no data beyond the conditions to sample at (the training conditions): the teacher makes the pairs.

The student is only as good as the regression: validate its samples like the flow's (the response analysis does).
Flows whose base density is not N(0, I) (MADE-MoG draws a mixture component, a discontinuous choice) cannot be
distilled this way and are refused.

>>> import numpy as np, torch
>>> from mcsurrogate.flows import FlowConfig, build_flow
>>> from mcsurrogate.flows.distilled import DistillConfig, distill_flow
>>> teacher = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), features=2, context_features=1)
>>> flow, report = distill_flow(teacher, np.zeros((50, 1), np.float32), DistillConfig(pairs=2000, epochs=1, hidden=16))
>>> flow.sample_from_noise(torch.zeros(3, 2), torch.zeros(3, 1)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..arguments import check_choice, check_float, check_int, describe
from ..errors import InputError, TrainingError, refuse_unknown_fields
from ..optimisation import adam_fused_if_available, power_decay
from .frozen import IN_PLACE, FrozenMLP
from .made import ACTIVATIONS
from .model import FlowModel, StandardNormal

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "DistillConfig", "DistilledFlow", "MLPSampler", "distill_flow"]

#: held-out squared error, as a fraction of the teacher's variance, above which a distilled student is reported as not
#: reproducing its teacher (a warning): its rms error is then over a fifth of the samples' width. Good fits are at
#: 1–4 × 10⁻⁴ (the detector-response and object-response analyses); the broken object-response student was at 10³.
POOR_FIT_FRACTION = 0.05

#: sampling precisions of a distilled sampler, by name
PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class DistillConfig:
    """Size and training of a distilled sampler.

    Attributes
    ----------
    hidden, layers, activation: the student network, ``layers`` hidden layers of ``hidden`` units. ReLU by default:
        it fits the flow's map as well as SiLU (held-out error and every detector-response bar, four scenarios) and,
        without SiLU's exponential per unit, samples ~1.8× faster in bfloat16.
    pairs: (noise, condition) → teacher-sample pairs to fit; ``validation_fraction`` of them are held out.
    epochs, batch_size, lr: Adam, the rate decaying linearly to lr/100 over the epochs.
    seed: noise, condition draws and weight initialisation.
    precision: arithmetic of the student's networks when sampling: ``"float32"``, or ``"bfloat16"`` (weights and
        activations rounded to 8 significant bits, the location/scale assembly in float32) for CPUs with AMX or
        AVX512-BF16 and for GPUs, where it samples about 2× faster; elsewhere bfloat16 is emulated and slower. Fitting
        is always float32; the precision only changes how the fitted network is evaluated.
    """

    hidden: int = 256
    layers: int = 3
    activation: str = "relu"
    pairs: int = 2_000_000
    epochs: int = 20
    batch_size: int = 4096
    lr: float = 2e-3
    validation_fraction: float = 0.05
    seed: int = 0
    precision: str = "float32"

    def __post_init__(self) -> None:
        # plain Python numbers, so that to_dict() is JSON (a numpy integer would not be)
        for name in ("hidden", "layers", "pairs", "epochs", "batch_size"):
            value = check_int(getattr(self, name), f"distillation parameter {name!r}")
            if value < 1:
                raise InputError(f"distillation parameter {name!r} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "seed", check_int(self.seed, "distillation parameter 'seed'", minimum=0))
        check_choice(self.activation, "distillation parameter 'activation'", list(ACTIVATIONS))
        if not isinstance(self.precision, str):
            raise InputError(
                f"distillation parameter 'precision' must be one of {list(PRECISIONS)}, got {describe(self.precision)}"
            )
        _require_precision(self.precision)
        lr = check_float(self.lr, "distillation parameter 'lr'", above=0.0)
        fraction = check_float(
            self.validation_fraction, "distillation parameter 'validation_fraction'", above=0.0, below=0.5
        )
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "validation_fraction", fraction)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistillConfig:
        """Build from a dict, refusing unknown keys (listing the valid ones) and anything but a dict."""
        if not isinstance(data, Mapping):
            raise InputError(f"distillation must be a dict of DistillConfig fields, got {describe(data)}")
        refuse_unknown_fields(cls, data, "distillation")
        return cls(**data)


class _Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]
        self.fn_in_place = IN_PLACE.get(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is the preceding Linear's output, which nothing else holds: safe to overwrite when no graph records it
        if self.fn_in_place is not None and not torch.is_grad_enabled():
            return self.fn_in_place(x)
        return self.fn(x)


class MLPSampler(nn.Module):
    """``x = m(c) + exp(s(c)) ⊙ (z + g([z, c]))``: a dense network ``g`` on the noise and the (preprocessed)
    conditions, inside a location ``m`` and log-scale ``s`` of the conditions alone (a small network; constants
    for an unconditional flow). Identity at start.

    The scale lets the fit weigh each event's error relative to its local width (:meth:`distillation_loss`): where
    the responses are four times narrower (high E_T, say), an absolute error would be four times as harmful. The
    location and scale are fitted as a Gaussian's mean and width of the teacher's samples (the same loss), so that
    the weight is a property of the teacher, not a free parameter of the fit."""

    def __init__(
        self, features: int, context_features: int | None, hidden: int, layers: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.features = features
        self.context_features = context_features or None
        self.net = _mlp(features + (context_features or 0), hidden, layers, features, activation)
        if context_features:
            self.location_scale: nn.Module = _mlp(context_features, 64, 2, 2 * features, activation)
        else:
            self.location_scale = _Constant(2 * features)

    def _parts(
        self, noise: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        return _assemble(noise, context, self.net, self.location_scale, first.weight.dtype)

    def forward(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self._parts(noise, context)[0]

    def distillation_loss(
        self, noise: torch.Tensor, context: torch.Tensor | None, target: torch.Tensor
    ) -> torch.Tensor:
        """The loss of a batch of teacher pairs: the mean squared relative error (sample − target) / exp(s(c)), the
        scale held fixed in it (no gradient through the weight), plus the Gaussian negative log-likelihood of the
        targets under ``N(m(c), exp(s(c))²)``.

        The second term pins the weight exp(−s) to the teacher's local width. Without it the squared relative error
        has a degenerate minimum: s → ∞ with g → −z sends it to zero whatever the samples. Distilling the object
        response at contexts far out in E_T (60 standard deviations), the student walked into it: |s| reached 77,
        the loss overflowed, and the samples were 2–3× too wide (measured; the object-response analysis's
        ``distilled_bfloat16`` results)."""
        x, loc, log_scale = self._parts(noise, context)
        err = (x - target) * torch.exp(-log_scale.detach())
        nll = 0.5 * ((target - loc) * torch.exp(-log_scale)) ** 2 + log_scale
        return torch.mean(err**2) + torch.mean(nll)

    def sample_from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Same as calling the module (the interface the exporters trace)."""
        return self.forward(noise, context)

    def frozen(self, dtype: torch.dtype) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """The sampler for inference with its networks in ``dtype``: weights rounded once, here; on CPU each dense
        layer one oneDNN call with its bias and activation fused where oneDNN has them (:func:`~.frozen.dense`)."""
        net = FrozenMLP(self.net, dtype)
        location_scale: Callable[[torch.Tensor], torch.Tensor]
        if isinstance(self.location_scale, _Constant):
            location_scale = functools.partial(_expand, self.location_scale.value.detach().to(dtype))
        else:
            assert isinstance(self.location_scale, nn.Sequential)
            location_scale = FrozenMLP(self.location_scale, dtype)

        def run(noise: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
            return _assemble(noise, context, net, location_scale, dtype)[0]

        return run


def _assemble(
    noise: torch.Tensor,
    context: torch.Tensor | None,
    net: Callable[[torch.Tensor], torch.Tensor],
    location_scale: Callable[[torch.Tensor], torch.Tensor],
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m + exp(s) ⊙ (z + g), m, s)``: the networks run in ``dtype`` (bfloat16 under DistilledFlow's precision), the
    assembly in the noise's, so location + scale · (noise + correction) keeps float32 resolution on top of a rounded
    correction."""
    inputs = noise if context is None else torch.cat([noise, context], dim=1)
    ls = location_scale((noise if context is None else context).to(dtype)).to(noise.dtype)
    loc, log_scale = ls.chunk(2, dim=1)
    return loc + torch.exp(log_scale) * (noise + net(inputs.to(dtype)).to(noise.dtype)), loc, log_scale


def _mlp(inputs: int, hidden: int, layers: int, outputs: int, activation: str) -> nn.Sequential:
    """``layers`` hidden layers; the output layer starts at zero."""
    dims = [inputs] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        mods += [nn.Linear(a, b), _Activation(activation)]
    last = nn.Linear(hidden, outputs)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


def _expand(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.expand(len(like), -1)


class _Constant(nn.Module):
    """A learned vector, the same for every event (the location and log-scale of an unconditional sampler)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(n))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return _expand(self.value, like)


class DistilledFlow(nn.Module):
    """A trained flow (density: ``log_prob``) with a distilled sampler (``sample_from_noise``): the interface of
    :class:`~mcsurrogate.flows.FlowModel`, so a :class:`~mcsurrogate.Surrogate` uses it unchanged."""

    def __init__(self, teacher: FlowModel, sampler: MLPSampler, precision: str = "float32") -> None:
        super().__init__()
        _require_gaussian_base(teacher)
        _require_precision(precision)
        self.teacher = teacher
        self.sampler = sampler
        #: arithmetic of the student's networks when sampling without autograd (see DistillConfig.precision)
        self.precision = precision
        self.features = teacher.features
        self.context_features = teacher.context_features
        self.chunk = 4096

    @property
    def noise_features(self) -> int:
        return self.teacher.noise_features

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The teacher's log density (the student has none)."""
        return self.teacher.log_prob(x, context)

    def sample_from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """One pass of the student network: samples (batch, features) from standard-normal noise.

        Without autograd, large batches go through in slices of :attr:`chunk` events whose hidden activations stay
        in the CPU cache (measured 1.7× faster than one pass over 2 × 10⁴ events, 2-core Intel CPU; on a 2-core AMD
        EPYC, slices of 2048 ran the network alone 1.3× faster than of 4096 but the object response's sampling 3–5 %
        slower, interleaved in one process); same numbers. Without autograd the networks run in :attr:`precision`
        (weights rounded once per call); with it, in float32.

        ``torch.compile`` of the student (inductor, weights frozen) was measured and left out: 1.7× on the network
        alone, but 1.0–1.2× on the sampling paths (noise draw, slicing and preprocessing then weigh), for 10–40 s of
        compilation per process (2-core CPU)."""
        self.teacher.check_context(context)
        if torch.is_grad_enabled():
            return self.sampler(noise, context)
        run = self._runner(noise)
        n, size = len(noise), self.chunk
        if n <= size or noise.device.type != "cpu":
            return run(noise, context)
        out = noise.new_empty((n, self.features))
        for i in range(0, n, size):
            out[i : i + size] = run(noise[i : i + size], None if context is None else context[i : i + size])
        return out

    def _runner(self, like: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        dtype = PRECISIONS[self.precision]
        if dtype == like.dtype:  # float32: the module itself, the same numbers as with autograd
            return self.sampler
        return self.sampler.frozen(dtype)

    def draw_noise(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        return self.teacher.draw_noise(n, rng)


def _require_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def _require_gaussian_base(flow: FlowModel) -> None:
    if not isinstance(flow.base, StandardNormal):
        raise InputError(
            f"only flows with a standard-normal base can be distilled; this one has {type(flow.base).__name__} "
            "(a mixture draws a component: its noise → sample map is not continuous)"
        )


@torch.no_grad()  # not inference_mode: the pairs are used as training tensors afterwards
def _teacher_pairs(
    teacher: FlowModel, contexts: np.ndarray | None, n: int, rng: np.random.Generator, device: torch.device, bar: tqdm
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    zs, cs, xs = [], [], []
    chunk = 50_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = teacher.draw_noise(m, rng)
        c = None if contexts is None else torch.from_numpy(contexts[rng.integers(0, len(contexts), m)])
        x = teacher.sample_from_noise(z.to(device), None if c is None else c.to(device)).cpu()
        zs.append(z)
        xs.append(x)
        if c is not None:
            cs.append(c)
        bar.update(m)
    return torch.cat(zs), (torch.cat(cs) if cs else None), torch.cat(xs)


def distill_flow(
    teacher: FlowModel,
    contexts: np.ndarray | None,
    config: DistillConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    feature_names: Sequence[str] | None = None,
) -> tuple[DistilledFlow, dict[str, Any]]:
    """Fit a :class:`MLPSampler` to ``teacher``'s noise → sample map; returns the distilled flow and a report.

    ``contexts``: (n, context_features) preprocessed conditions to draw the pairs' conditions from (with
    replacement), e.g. the training conditions; ``None`` for an unconditional flow. The report has the held-out
    mean squared error per feature (flow space, where the samples have about unit width) and the teacher's width
    (standard deviation) per feature on the same pairs, so the error can be read relative to it; a
    ``UserWarning`` names the features (``feature_names``, default their indices) whose error exceeds
    :data:`POOR_FIT_FRACTION` of the teacher's variance.
    """
    cfg = config or DistillConfig()
    _require_gaussian_base(teacher)
    if (contexts is None) != (teacher.context_features is None):
        raise InputError(
            "this flow is conditional: pass the conditions to distil at"
            if contexts is None
            else "this flow is unconditional: pass contexts=None"
        )
    if contexts is not None:
        contexts = np.ascontiguousarray(contexts, dtype=np.float32)
        if contexts.ndim != 2 or contexts.shape[1] != teacher.context_features or len(contexts) == 0:
            raise InputError(
                f"contexts must be a non-empty (n, {teacher.context_features}) array, got shape {contexts.shape}"
            )
        if not np.isfinite(contexts).all():
            raise InputError(f"contexts have {int((~np.isfinite(contexts)).sum())} NaN/inf values")
    device = torch.device(device)
    rng = np.random.default_rng(cfg.seed)
    teacher = teacher.to(device).eval()
    disable = None if progress is None else not progress
    with tqdm(total=cfg.pairs, disable=disable, desc="teacher samples", unit="ev", unit_scale=True) as bar:
        z, c, x = _teacher_pairs(teacher, contexts, cfg.pairs, rng, device, bar)
    finite = torch.isfinite(x).all(dim=1)
    n_nonfinite = int((~finite).sum())
    if n_nonfinite:  # a flow can overflow far out in its tails; such pairs teach nothing
        z, x = z[finite], x[finite]
        c = None if c is None else c[finite]
        if len(x) < 2:
            raise InputError(f"the flow gave non-finite samples for {n_nonfinite} of {cfg.pairs} pairs")
    n_val = max(1, round(cfg.validation_fraction * len(x)))
    n_train = len(x) - n_val
    if n_train < 1:
        raise InputError(f"pairs={cfg.pairs} leaves no training pair after the validation fraction")

    torch.manual_seed(cfg.seed)
    student = MLPSampler(teacher.features, teacher.context_features, cfg.hidden, cfg.layers, cfg.activation).to(device)
    opt = adam_fused_if_available(torch.optim.Adam, student.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    step = skipped = in_a_row = 0
    history: list[float] = []
    mse = torch.zeros(0)
    with tqdm(total=cfg.epochs, disable=disable, desc="distilling", unit="epoch") as bar:
        for _ in range(cfg.epochs):
            student.train()
            order = torch.randperm(n_train, generator=gen)
            for i in range(0, n_train, cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                lr = power_decay(cfg.lr, cfg.lr / 100, step / total)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss = student.distillation_loss(
                    z[idx].to(device), None if c is None else c[idx].to(device), x[idx].to(device)
                )
                step += 1
                if not torch.isfinite(loss):  # a far-tail pair can overflow float32: skip the step, not the student
                    skipped, in_a_row = skipped + 1, in_a_row + 1
                    if in_a_row >= 10:
                        raise TrainingError(
                            f"distilling: the loss was not finite for 10 steps in a row (step {step} of {total}); "
                            "lower lr or check the teacher's samples"
                        )
                    continue
                in_a_row = 0
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            mse = _mse(student, z[n_train:], None if c is None else c[n_train:], x[n_train:], device)
            if not torch.isfinite(mse).all():
                raise TrainingError(
                    f"distilling: the student's held-out error is not finite after epoch {len(history) + 1} "
                    f"({[float(v) for v in mse]}); lower lr or check the teacher's samples"
                )
            history.append(float(mse.mean()))
            bar.set_postfix(val_mse=f"{history[-1]:.2e}")
            bar.update()
            if bar.disable:  # no bar (a batch log): one line per epoch instead
                log.info("distilling epoch %d/%d: validation error %.3g", len(history), cfg.epochs, history[-1])
    student.eval()  # `mse` is the last epoch's held-out error: the weights have not changed since
    teacher_std = x[n_train:].std(dim=0)
    _warn_if_poor(mse, teacher_std, feature_names)
    report = {
        "config": cfg.to_dict(),
        "validation_mse_per_feature": [float(v) for v in mse],
        "teacher_std_per_feature": [float(v) for v in teacher_std],
        "validation_mse_history": history,
        "n_parameters": int(sum(p.numel() for p in student.parameters())),
        "non_finite_teacher_samples_dropped": n_nonfinite,
        "skipped_steps": skipped,
    }
    return DistilledFlow(teacher, student, cfg.precision), report


def _warn_if_poor(mse: torch.Tensor, teacher_std: torch.Tensor, names: Sequence[str] | None) -> None:
    fraction = (mse / torch.clamp(teacher_std.double() ** 2, min=1e-12)).tolist()
    labels = list(names) if names is not None else [f"feature {j}" for j in range(len(fraction))]
    poor = [f"{label} ({f:.2g})" for label, f in zip(labels, fraction, strict=True) if f > POOR_FIT_FRACTION]
    if poor:
        warnings.warn(
            "the distilled student does not reproduce its teacher: held-out squared error, as a fraction of the "
            f"teacher's variance, above {POOR_FIT_FRACTION} for {', '.join(poor)}; validate its samples before use, "
            "or distil with more pairs or epochs",
            UserWarning,
            stacklevel=3,
        )


@torch.inference_mode()
def _mse(
    student: MLPSampler, z: torch.Tensor, c: torch.Tensor | None, x: torch.Tensor, device: torch.device
) -> torch.Tensor:
    student.eval()
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(z), 65536):
        pred = student(z[i : i + 65536].to(device), None if c is None else c[i : i + 65536].to(device)).cpu()
        total += ((pred - x[i : i + 65536]) ** 2).sum(dim=0).double()
    return total / max(len(z), 1)
