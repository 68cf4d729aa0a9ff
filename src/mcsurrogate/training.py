"""Training of flow models: splits, learning-rate schedules, early stopping, model selection, checkpoints, resume.

Everything random is derived from ``TrainConfig.seed``: the shuffling of epoch ``e`` uses
``numpy.random.default_rng([seed, e])`` and the selection sample of epoch ``e`` likewise, so a run
resumed from its last checkpoint ends with the same weights as an uninterrupted one (on CPU).

**Event weights.** With weights ``w`` the loss is the weighted negative log-likelihood −Σ wᵢ log p(xᵢ) / Σ wᵢ. A step
takes ``−mean_batch(wᵢ/w̄ · log p(xᵢ))`` with ``w̄`` the mean weight of the whole training split: an unbiased estimate
of the full-sample loss and its gradient (dividing by the batch's own Σw instead is a ratio of estimates, biased at
O(1/batch), and with signed weights unstable where a batch's sum comes near zero). Signed weights are trained as
they are: the objective stays consistent while the weighted density is positive; gradient clipping (on by
default) bounds the steps that a batch of mostly negative weights makes. The validation NLL and the Wasserstein
selection are weighted the same way.

Checkpoints are one safetensors file each (weights, optimiser moments and a JSON header), written
atomically: ``last.safetensors`` after every epoch and ``best.safetensors`` when the selection metric improves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .arguments import check_choice, check_float, check_int, describe
from .errors import InputError, TrainingError, refuse_unknown_fields
from .flows import FlowModel
from .optimisation import adam_fused_if_available, power_decay
from .persistence import load_tensors, save_tensors

log = logging.getLogger(__name__)

#: consecutive optimiser steps with a non-finite gradient after which training stops (each one is skipped)
MAX_SKIPPED_IN_A_ROW = 10

__all__ = [
    "EpochRecord",
    "Split",
    "TrainConfig",
    "TrainResult",
    "ema_with_warmup",
    "fingerprint",
    "learning_rate",
    "mean_wasserstein",
    "resolve_device",
    "split_indices",
    "train_flow",
    "wasserstein_1d",
    "weighted_nll",
]


@dataclass(frozen=True)
class TrainConfig:
    """How to train a flow.

    Attributes
    ----------
    epochs, batch_size: passes over the training split and events per step.
    optimizer: ``adam`` or ``adamw`` (with ``weight_decay``).
    lr, lr_final: initial and final learning rate.
    schedule: ``power`` (paper A: ``(lr − lr_final)(1 − t/T)^power + lr_final`` per step),
        ``cosine-restarts`` (paper B: cosine annealing to ``lr_final`` with warm restarts every
        ``restart_epochs`` epochs) or ``constant``.
    clip_grad_norm: gradient-norm clipping threshold, ``None`` for none. Either way a step whose loss or gradient is
        not finite (a float32 overflow) is skipped and counted in ``TrainResult.skipped_steps`` (a warning per epoch);
        :data:`MAX_SKIPPED_IN_A_ROW` in a row stop the training with a :class:`TrainingError`.
    selection: ``nll`` (validation negative log-likelihood), ``wasserstein`` (paper A: mean over targets of
        the 1-D Wasserstein distance, in the flow's preprocessed units, between the validation targets and a sample
        generated with the validation conditions; at most ``selection_events`` events) or ``last`` (the last epoch's
        weights — the averaged ones with ``ema_decay`` — for a schedule that ends where it should; early stopping
        then never triggers, and ``best_metric`` records that epoch's validation NLL).
    patience: stop when the selection metric has not improved for this many epochs (``None``: never).
    ema_decay: keep an exponential moving average of the weights with this decay per optimiser step (e.g. 0.999;
        ``None``: off); validation, selection and the saved model then use the averaged weights, which removes
        most of the step-to-step noise that SGD leaves in the learned density (biases of a few % of a width). The
        decay ramps up from 0.1 as ``(1 + t)/(10 + t)`` over the first steps (:func:`ema_with_warmup`).
    fractions: train/validation/test split fractions; seed: seed of the split, shuffling and selection samples.
    device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    epochs: int = 50
    batch_size: int = 512
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    lr_final: float = 1e-5
    schedule: Literal["power", "cosine-restarts", "constant"] = "power"
    power: float = 0.5
    restart_epochs: int = 10
    weight_decay: float = 0.0
    clip_grad_norm: float | None = 5.0
    selection: Literal["nll", "wasserstein", "last"] = "nll"
    selection_events: int = 20_000
    patience: int | None = 15
    ema_decay: float | None = None
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("adam", "adamw"),
            "schedule": ("power", "cosine-restarts", "constant"),
            "selection": ("nll", "wasserstein", "last"),
        }
        for name, valid in choices.items():
            check_choice(getattr(self, name), f"training parameter {name!r}", valid)
        # the checked values are stored as plain Python numbers (numpy ones would make to_dict() unwritable as JSON)
        plain: dict[str, Any] = {}
        for name in ("epochs", "batch_size", "restart_epochs", "selection_events"):
            plain[name] = check_int(getattr(self, name), f"training parameter {name!r}", minimum=1)
        if self.patience is not None:
            plain["patience"] = check_int(self.patience, "training parameter 'patience'", minimum=1)
        plain["seed"] = check_int(self.seed, "training parameter 'seed'", minimum=0)
        for name in ("lr", "lr_final"):
            plain[name] = check_float(getattr(self, name), f"training parameter {name!r}", above=0.0)
        plain["power"] = check_float(self.power, "training parameter 'power'", minimum=0.0)
        plain["weight_decay"] = check_float(self.weight_decay, "training parameter 'weight_decay'", minimum=0.0)
        if self.clip_grad_norm is not None:
            plain["clip_grad_norm"] = check_float(self.clip_grad_norm, "training parameter 'clip_grad_norm'", above=0.0)
        if self.ema_decay is not None:
            plain["ema_decay"] = check_float(self.ema_decay, "training parameter 'ema_decay'", above=0.0, below=1.0)
        for name, value in plain.items():
            object.__setattr__(self, name, value)
        if isinstance(self.device, torch.device):
            object.__setattr__(self, "device", str(self.device))
        if not isinstance(self.device, str):
            raise InputError(
                f"training parameter 'device' must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), "
                f"got {describe(self.device)}"
            )
        fractions = self.fractions
        if (
            isinstance(fractions, (str, bytes))
            or not isinstance(fractions, (Sequence, np.ndarray))
            or len(fractions) != 3
            or not all(isinstance(f, numbers.Real) and not isinstance(f, bool) for f in fractions)
        ):
            raise InputError(
                f"training parameter 'fractions': split fractions must be three numbers (train, validation, test), "
                f"got {describe(fractions)}"
            )
        fr = tuple(float(f) for f in fractions)
        if not all(math.isfinite(f) for f in fr) or min(fr) < 0 or fr[0] <= 0 or fr[1] <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise InputError(
                f"split fractions must be three non-negative numbers (train, validation, test) summing to 1 with "
                f"train and validation > 0, got {self.fractions!r}"
            )
        object.__setattr__(self, "fractions", fr)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fractions"] = list(self.fractions)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise InputError(f"training must be a dict of TrainConfig fields, got {describe(data)}")
        refuse_unknown_fields(cls, data, "training")
        data = dict(data)
        if "fractions" in data:
            data["fractions"] = tuple(data["fractions"])
        return cls(**data)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; other strings are passed to :class:`torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    return dev


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test splits (each sorted)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, min_events: int = 10) -> Split:
    """Deterministic random split of ``n`` rows into train/validation/test by ``fractions``.

    Raises :class:`InputError` when a non-empty split would get fewer than ``min_events`` rows.
    """
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    n_train = round(float(fractions[0]) * n)
    n_val = round(float(fractions[1]) * n)
    sizes = (n_train, n_val, n - n_train - n_val)
    need = max(math.ceil(min_events / f) if f > 0 else 0 for f in fractions)
    if any(s < min_events for s, f in zip(sizes, fractions, strict=False) if f > 0):
        raise InputError(
            f"too few events for the split {tuple(fractions)}: got {n}, need at least {need} "
            f"(at least {min_events} in each of train/validation/test)"
        )
    return Split(np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val]), np.sort(perm[n_train + n_val :]))


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate at optimiser step ``step`` (0-based), a pure function so that resuming needs no state."""
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "power":
        return power_decay(config.lr, config.lr_final, step / (config.epochs * steps_per_epoch), config.power)
    period = config.restart_epochs * steps_per_epoch
    t = (step % period) / period
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1.0 + math.cos(math.pi * t))


@dataclass
class EpochRecord:
    """Figures of one epoch; losses are mean negative log-likelihoods in the flow's (preprocessed) space."""

    epoch: int
    train_loss: float
    val_nll: float
    val_wasserstein: float | None
    lr: float
    seconds: float


@dataclass
class TrainResult:
    """What a training run did. ``best_epoch`` is 1-based; the flow holds that epoch's weights afterwards."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float = math.inf
    selection: str = "nll"
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    train_events_per_second: float = 0.0
    device: str = "cpu"
    #: trained on event weights (the losses are weighted NLLs)
    weighted: bool = False
    #: optimiser steps skipped because their loss or gradient was not finite (overflow); training stops with a
    #: :class:`TrainingError` after :data:`MAX_SKIPPED_IN_A_ROW` in a row
    skipped_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["history"] = [dataclasses.asdict(r) for r in self.history]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        data = dict(data)
        data["history"] = [EpochRecord(**r) for r in data.get("history", [])]
        return cls(**data)


def _batched_log_prob(flow: FlowModel, x: torch.Tensor, c: torch.Tensor | None, batch: int = 65536) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        out.append(flow.log_prob(x[i : i + batch], None if c is None else c[i : i + batch]))
    return torch.cat(out)


def weighted_nll(log_prob: torch.Tensor | np.ndarray, weights: torch.Tensor | np.ndarray | None = None) -> float:
    """−Σ wᵢ log pᵢ / Σ wᵢ (the mean −log p without weights)."""
    if weights is None:
        return float(-torch.as_tensor(log_prob).mean())
    lp = torch.as_tensor(log_prob, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64, device=lp.device)
    return float(-(w * lp).sum() / w.sum())


def wasserstein_1d(
    u: np.ndarray, v: np.ndarray, u_weights: np.ndarray | None = None, v_weights: np.ndarray | None = None
) -> float:
    """The 1-D Wasserstein distance ∫|F_u − F_v| dx of two weighted samples: :func:`scipy.stats.wasserstein_distance`
    for non-negative weights; with signed weights (which scipy refuses) the same integral of the signed weighted
    CDFs."""
    signed = any(w is not None and (w < 0).any() for w in (u_weights, v_weights))
    if not signed:
        return float(wasserstein_distance(u, v, u_weights, v_weights))
    wu = np.ones(len(u)) if u_weights is None else u_weights
    wv = np.ones(len(v)) if v_weights is None else v_weights
    values = np.concatenate([u, v])
    order = np.argsort(values, kind="stable")
    step = np.concatenate([wu / wu.sum(), -wv / wv.sum()])[order]
    return float(np.sum(np.abs(np.cumsum(step)[:-1]) * np.diff(values[order])))


@torch.inference_mode()
def mean_wasserstein(
    flow: FlowModel,
    x: torch.Tensor,
    c: torch.Tensor | None,
    rng: np.random.Generator,
    max_events: int = 20_000,
    weights: np.ndarray | None = None,
) -> float:
    """Mean over features of the 1-D Wasserstein distance between ``x`` and a sample drawn with the same conditions.

    ``weights``: event weights of ``x``; the generated events carry their condition's weight (unweighted for an
    unconditional flow, whose sample is drawn from the model itself)."""
    if len(x) > max_events:
        idx = np.sort(rng.choice(len(x), max_events, replace=False))
        x = x[idx]
        c = None if c is None else c[idx]
        weights = None if weights is None else weights[idx]
    noise = flow.draw_noise(len(x), rng).to(x.device)
    gen = flow.sample_from_noise(noise, c)
    a, b = x.double().cpu().numpy(), gen.double().cpu().numpy()
    finite = np.isfinite(b).all(axis=1)
    if not finite.all():
        return math.inf
    wb = weights if c is not None else None
    return float(np.mean([wasserstein_1d(a[:, j], b[:, j], weights, wb) for j in range(a.shape[1])]))


def _make_optimizer(flow: FlowModel, config: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return adam_fused_if_available(cls, flow.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"optim.{i}.{k}": v for i, st in opt.state_dict()["state"].items() for k, v in st.items()}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def _split_model(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


_Tensors = list[torch.Tensor] | tuple[torch.Tensor, ...]


def ema_with_warmup(decay: float) -> Callable[[_Tensors, _Tensors, torch.Tensor | int], None]:
    """The weight-averaging update of :class:`torch.optim.swa_utils.AveragedModel` for an exponential moving average
    whose decay ramps up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates (TensorFlow's
    ``ExponentialMovingAverage(num_updates=…)``). A fixed decay of 0.999 keeps the first weights — barely trained —
    in the average for thousands of steps; an average of weights that far apart can be worse than either, so the
    validation NLL rose for 15 epochs and stopped a training early."""

    def update(averaged: _Tensors, current: _Tensors, num_averaged: torch.Tensor | int) -> None:
        # on the parameters' device: AveragedModel passes the count as a device tensor, and reading it on the host
        # would wait for the GPU at every optimiser step
        t = torch.as_tensor(num_averaged, dtype=averaged[0].dtype, device=averaged[0].device)
        weight = 1.0 - torch.clamp((1.0 + t) / (10.0 + t), max=decay)
        with torch.no_grad():
            for a, c in zip(averaged, current, strict=True):
                a.lerp_(c, weight)

    return update


def _split_ema(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("ema.") :]: v for k, v in tensors.items() if k.startswith("ema.")}


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able parts and arrays, to tell whether a checkpoint belongs to this run."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, (np.ndarray, torch.Tensor)):
            arr = np.ascontiguousarray(p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p)
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def train_flow(
    flow: FlowModel,
    x_train: np.ndarray,
    c_train: np.ndarray | None,
    x_val: np.ndarray,
    c_val: np.ndarray | None,
    config: TrainConfig,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    run_id: str = "",
    progress: bool | None = None,
    w_train: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
) -> TrainResult:
    """Train ``flow`` by maximum likelihood on already-preprocessed arrays, keep the best epoch's weights.

    Parameters
    ----------
    x_train, c_train, x_val, c_val:
        Targets and conditions (``None`` for an unconditional flow), float arrays in the flow's space.
    w_train, w_val:
        Event weights of the training and validation events (``None``: unweighted; signed allowed, each summing to
        > 0): the weighted NLL of the module docstring.
    checkpoint_dir:
        Where ``last.safetensors`` and ``best.safetensors`` go; with ``resume=True`` a checkpoint there whose
        ``run_id`` matches is continued from its last epoch.
    run_id:
        Identifies the run (config and data fingerprint) so that a foreign checkpoint is never resumed.
    progress:
        tqdm progress bar; ``None`` shows it only on a terminal. Without a bar every epoch logs one line (loss,
        validation metric, learning rate, seconds) at INFO on the ``mcsurrogate.training`` logger, which the
        command line prints: batch logs show progress.
    """
    device = resolve_device(config.device)
    flow.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    ct = None if c_train is None else torch.as_tensor(c_train, dtype=torch.float32, device=device)
    cv = None if c_val is None else torch.as_tensor(c_val, dtype=torch.float32, device=device)
    n = len(xt)
    for what, w, size in (("training", w_train, n), ("validation", w_val, len(xv))):
        if w is not None and (np.shape(w) != (size,) or not np.isfinite(w).all() or not np.sum(w) > 0):
            raise InputError(f"{what} weights must be {size} finite numbers summing to > 0")
    # divided by the split's mean weight: each batch's mean is an unbiased estimate of the weighted NLL
    wt = None if w_train is None else torch.as_tensor(w_train / np.mean(w_train), dtype=torch.float32, device=device)
    wv = None if w_val is None else torch.as_tensor(w_val, dtype=torch.float64, device=device)
    batch = min(config.batch_size, n)
    steps_per_epoch = n // batch  # drop the ragged last batch: stable batch statistics, fixed step count
    skipped_in_a_row = 0
    opt = _make_optimizer(flow, config)
    params = list(flow.parameters())  # once: walking the modules for them costs ~0.5 ms per step
    ema = AveragedModel(flow, multi_avg_fn=ema_with_warmup(config.ema_decay)) if config.ema_decay is not None else None
    result = TrainResult(selection=config.selection, device=str(device), weighted=w_train is not None)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        last = ckpt / "last.safetensors"
        if resume and last.is_file():
            tensors, meta = load_tensors(last)
            if meta.get("run_id") == run_id:
                flow.load_state_dict(_split_model(tensors))
                _restore_optimizer(opt, tensors)
                if ema is not None:
                    ema.load_state_dict(_split_ema(tensors))
                result = TrainResult.from_dict(meta["result"])
                start_epoch = result.history[-1].epoch if result.history else 0
                result.resumed_from_epoch = start_epoch
                best_tensors, _ = load_tensors(ckpt / "best.safetensors")
                best_state = _split_model(best_tensors)
    epochs_since_best = (start_epoch - result.best_epoch) if result.history else 0
    bar = tqdm(
        total=config.epochs,
        initial=start_epoch,
        disable=(None if progress is None else not progress),
        desc="training",
        unit="epoch",
        dynamic_ncols=True,
    )
    train_time = 0.0
    trained_events = 0
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if result.stopped_early:
                break
            t0 = time.perf_counter()
            flow.train()
            order = torch.from_numpy(np.random.default_rng([config.seed, epoch]).permutation(n)).to(device)
            # the random numbers of a family's own loss (flow matching's times and noise), seeded per epoch
            generator = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + epoch)
            total, counted = 0.0, 0  # the epoch's summed finite losses and their steps
            skipped_in_epoch = 0
            for s in range(steps_per_epoch):
                lr = learning_rate(config, (epoch - 1) * steps_per_epoch + s, steps_per_epoch)
                for group in opt.param_groups:
                    group["lr"] = lr
                idx = order[s * batch : (s + 1) * batch]
                per_event = flow.training_loss(xt[idx], None if ct is None else ct[idx], generator)
                loss = (per_event if wt is None else wt[idx] * per_event).mean()
                finite = bool(torch.isfinite(loss))
                if finite:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    total += loss.item()
                    counted += 1
                    # the gradient's norm (clipped to clip_grad_norm when set)
                    norm = torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm or math.inf)
                    finite = bool(torch.isfinite(norm))
                # a step whose loss (an event the young flow maps to |z| > 1e19, a float32 overflow of z²) or
                # gradient overflowed is skipped, as a loss scaler does, instead of writing inf/NaN into every weight
                if not finite:
                    result.skipped_steps += 1
                    skipped_in_epoch += 1
                    skipped_in_a_row += 1
                    if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                        raise TrainingError(
                            f"the loss or its gradient was not finite in {skipped_in_a_row} steps in a row (epoch "
                            f"{epoch}, step {s}, loss {loss.item():.4g}); lower the learning rate (lr), enable "
                            "clip_grad_norm, or check the preprocessing of the targets"
                        )
                    continue
                skipped_in_a_row = 0
                opt.step()
                if ema is not None:
                    ema.update_parameters(flow)
            train_time += time.perf_counter() - t0
            trained_events += steps_per_epoch * batch
            if skipped_in_epoch:
                log.warning(
                    "epoch %d: %d of %d optimiser steps skipped, their loss or gradient was not finite",
                    epoch,
                    skipped_in_epoch,
                    steps_per_epoch,
                )
            flow.eval()
            evaluated: FlowModel = flow if ema is None else cast(FlowModel, ema.module)  # the weights kept
            if ema is not None:  # buffers (masks, permutations, ActNorm's init flag) follow the trained flow
                with torch.no_grad():
                    for b_ema, b in zip(ema.module.buffers(), flow.buffers(), strict=True):
                        b_ema.copy_(b)
            evaluated.eval()
            with torch.inference_mode():
                val_nll = weighted_nll(_batched_log_prob(evaluated, xv, cv), wv)
            w1 = None
            if config.selection == "wasserstein":
                w1 = mean_wasserstein(
                    evaluated,
                    xv,
                    cv,
                    np.random.default_rng([config.seed, epoch, 1]),
                    config.selection_events,
                    weights=w_val,
                )
            metric = w1 if config.selection == "wasserstein" else val_nll
            improved = metric is not None and math.isfinite(metric) and metric < result.best_metric
            if config.selection == "last":
                improved = True
            record = EpochRecord(
                epoch, total / counted if counted else math.nan, val_nll, w1, lr, time.perf_counter() - t0
            )
            result.history.append(record)
            if improved:
                assert metric is not None
                result.best_metric, result.best_epoch = float(metric), epoch
                best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
                epochs_since_best = 0
                if ckpt is not None:
                    save_tensors(ckpt / "best.safetensors", {f"model.{k}": v for k, v in best_state.items()})
            else:
                epochs_since_best += 1
            if config.patience is not None and epochs_since_best >= config.patience:
                result.stopped_early = True
            if ckpt is not None:
                tensors = {f"model.{k}": v for k, v in flow.state_dict().items()}
                tensors.update(_optimizer_tensors(opt))
                if ema is not None:
                    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
                save_tensors(ckpt / "last.safetensors", tensors, {"run_id": run_id, "result": result.to_dict()})
            bar.set_postfix(loss=f"{record.train_loss:.4f}", val=f"{metric:.4g}", best=result.best_epoch)
            bar.update(1)
            if bar.disable:  # no bar (a batch log, a pipe): one line per epoch instead
                log.info(
                    "epoch %d/%d: train loss %.5g, validation NLL %.5g%s, lr %.3g, %.1f s; best epoch %d",
                    epoch,
                    config.epochs,
                    record.train_loss,
                    val_nll,
                    "" if w1 is None else f", W1 {w1:.4g}",
                    lr,
                    record.seconds,
                    result.best_epoch,
                )
    finally:
        bar.close()
    if train_time > 0:
        result.train_events_per_second = trained_events / train_time
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    return result
