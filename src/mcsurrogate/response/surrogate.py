"""Detector-response surrogate (paper A): a conditional flow of Δ = reco − truth given truth kinematics and pile-up.

For two photons the targets are the six responses ``d_photon{1,2}_{pt,eta,phi}`` (E_T in GeV, η, φ in radians,
Δφ wrapped to (−π, π]) and the conditions ``photon1_pt, photon2_pt, photon1_eta, photon2_eta, mu`` (φ is left
out: the detector is symmetric in φ). Applying the model: ``reco = truth + Δ`` drawn per event.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np

from ..arguments import check_columns, check_int, check_records, check_seed, describe
from ..errors import InputError
from ..flows import FlowConfig
from ..flows.distilled import DistillConfig
from ..flows.flow_matching import FlowMatchingSettings, LikelihoodSettings, OdeSolver
from ..preprocessing import Atanh, Preprocessor, Scale, Standardize
from ..records import ObjectSlots, flatten_objects, object_blocks, objects_from_blocks, to_matrix
from ..surrogate import Surrogate
from ..training import TrainConfig

__all__ = [
    "PRESETS",
    "ResponseLayout",
    "apply_response",
    "distill_response",
    "response_surrogate",
    "response_table",
    "train_response",
    "wrap_phi",
]


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map angles (radians) into (−π, π]."""
    x = np.asarray(phi, dtype=np.float64)
    out = x - 2 * np.pi * np.round(x / (2 * np.pi))  # one rounding, 2.7× faster than np.mod's floor division
    return np.where(out == -np.pi, np.pi, out)


@dataclass(frozen=True)
class ResponseLayout:
    """Where the objects live in the event records and which columns the model uses.

    ``collection`` holds the reco objects of smeared events (and the truth objects of a truth sample);
    ``truth_collection`` holds the truth objects of smeared events; ``pileup`` the per-event μ.
    """

    collection: str = "photons"
    truth_collection: str = "truth_photons"
    n: int = 2
    fields: tuple[str, ...] = ("pt", "eta", "phi")
    condition_fields: tuple[str, ...] = ("pt", "eta")
    pileup: str = "mu"
    prefix: str = "photon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", check_int(self.n, "ResponseLayout.n", minimum=1))
        for attr in ("fields", "condition_fields"):
            object.__setattr__(self, attr, tuple(check_columns(getattr(self, attr), f"ResponseLayout.{attr}")))
        for attr in ("collection", "truth_collection", "pileup", "prefix"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value:
                raise InputError(f"ResponseLayout.{attr} must be a non-empty field name, got {describe(value)}")

    def slots(self, collection: str) -> ObjectSlots:
        return ObjectSlots(collection=collection, n=self.n, fields=self.fields, prefix=self.prefix)

    @property
    def response_columns(self) -> list[str]:
        return [f"d_{self.prefix}{i}_{f}" for i in range(1, self.n + 1) for f in self.fields]

    @property
    def condition_columns(self) -> list[str]:
        """Paper A's order: E_T1, E_T2, η1, η2, then μ."""
        cols = [f"{self.prefix}{i}_{f}" for f in self.condition_fields for i in range(1, self.n + 1)]
        return [*cols, self.pileup]

    def reco(self, truth: dict[str, np.ndarray], delta: np.ndarray, targets: Sequence[str]) -> dict[str, np.ndarray]:
        """``reco = truth + Δ`` per field as ``(events, n)`` arrays (GeV, radians), φ wrapped into (−π, π]:
        ``truth`` the truth objects' fields as ``(events, n)`` arrays, ``delta`` a response surrogate's sampled
        targets, whose columns ``targets`` name (``d_<prefix><i>_<field>``)."""
        targets = list(targets)
        out = {}
        for f in self.fields:
            which = [targets.index(f"d_{self.prefix}{i}_{f}") for i in range(1, self.n + 1)]
            value = truth[f] + delta[:, which]
            out[f] = wrap_phi(value) if f == "phi" else value
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_LAYOUT = ResponseLayout()

#: per-field scale factors of the responses (paper A's reference code: 20 GeV, 0.005, 0.01)
RESPONSE_SCALES = {"pt": 20.0, "eta": 0.005, "phi": 0.01}


def _truth_blocks(
    events: ak.Array, collection: str, layout: ResponseLayout
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """``(blocks, mu, n_dropped)``: the first ``layout.n`` objects' fields as float64 ``(events, n)`` arrays and μ,
    for the events with at least ``layout.n`` objects."""
    if collection not in events.fields:
        raise InputError(f"the events have no field {collection!r} (fields: {events.fields})")
    if layout.pileup not in events.fields:
        raise InputError(f"the events have no pile-up field {layout.pileup!r} (fields: {events.fields})")
    blocks, dropped = object_blocks(events, layout.slots(collection), too_few="drop")
    pileup = events[layout.pileup]
    if dropped:
        pileup = pileup[ak.num(events[collection], axis=1) >= layout.n]
    return blocks, to_matrix(ak.zip({layout.pileup: pileup}, depth_limit=1), [layout.pileup])[:, 0], dropped


def _flat_truth(events: ak.Array, collection: str, layout: ResponseLayout) -> tuple[ak.Array, int]:
    blocks, mu, dropped = _truth_blocks(events, collection, layout)
    return ak.zip(_columns(blocks, mu, layout), depth_limit=1), dropped


def _columns(blocks: dict[str, np.ndarray], mu: np.ndarray, layout: ResponseLayout) -> dict[str, np.ndarray]:
    """Flat columns ``photon1_pt, photon1_eta, …, mu`` of object blocks."""
    columns = {f"{layout.prefix}{i + 1}_{f}": blocks[f][:, i] for i in range(layout.n) for f in layout.fields}
    return columns | {layout.pileup: mu}


def _check_layout(layout: Any) -> ResponseLayout:
    if not isinstance(layout, ResponseLayout):
        raise InputError(f"layout must be a ResponseLayout, got {describe(layout)}")
    return layout


def _check_model(model: Any) -> Surrogate:
    if isinstance(model, (str, os.PathLike)):
        raise InputError(
            f"model must be a Surrogate, got the path {str(model)!r}: load it first with Surrogate.load({str(model)!r})"
        )
    if not isinstance(model, Surrogate):
        raise InputError(f"model must be a Surrogate, got {describe(model)}")
    return model


def response_table(smeared: ak.Array, layout: ResponseLayout = DEFAULT_LAYOUT) -> ak.Array:
    """Flat records of truth columns, μ and the responses Δ = reco − truth of smeared events.

    ``smeared`` holds ``layout.collection`` (reco), ``layout.truth_collection`` and ``layout.pileup``.
    Events with fewer than ``n`` objects are dropped (the count is raised as an error: smeared samples should
    always carry ``n`` objects).
    """
    check_records(smeared, "smeared")
    _check_layout(layout)
    truth, dropped_t = _flat_truth(smeared, layout.truth_collection, layout)
    reco, dropped_r = flatten_objects(smeared, layout.slots(layout.collection), too_few="drop")
    if dropped_t or dropped_r:
        raise InputError(
            f"{max(dropped_t, dropped_r)} smeared events have fewer than {layout.n} objects in "
            f"{layout.collection!r}/{layout.truth_collection!r}; select events first"
        )
    out = truth
    for i in range(1, layout.n + 1):
        for f in layout.fields:
            col = f"{layout.prefix}{i}_{f}"
            delta = reco[col].to_numpy() - truth[col].to_numpy()
            if f == "phi":
                delta = wrap_phi(delta)
            out = ak.with_field(out, delta, f"d_{col}")
    return out


def _scaled(layout: ResponseLayout, then: str) -> dict[str, list[Any]]:
    chains: dict[str, list[Any]] = {}
    for col in layout.response_columns:
        field_name = col.rsplit("_", 1)[1]
        chain: list[Any] = [Scale(RESPONSE_SCALES.get(field_name, 1.0))]
        if then == "standardize":
            chain.append(Standardize())
        elif then == "atanh":
            chain.append(Atanh())
        chains[col] = chain
    return chains


def _linear_decay(*, epochs: int, lr: float, patience: int | None, ema_decay: float | None = None) -> TrainConfig:
    """The unbounded presets' training: batch 1024, lr decaying linearly to lr/100, NLL selection."""
    return TrainConfig(
        epochs=epochs,
        batch_size=1024,
        lr=lr,
        lr_final=lr / 100,
        schedule="power",
        power=1.0,
        selection="nll",
        patience=patience,
        ema_decay=ema_decay,
    )


def _preset(name: str, layout: ResponseLayout) -> dict[str, Any]:
    if name == "paper-a":
        # paper A: MAF, 10 blocks, MADE 2 × 128 ReLU, permutations, power-law decay 1e-3 → 1e-5 (power 0.5),
        # batch 512, 500 epochs, selection by mean 1-D Wasserstein distance on the validation split
        return {
            "flow": FlowConfig(model="maf", blocks=10, hidden=128, layers=2, activation="relu"),
            # responses scaled to [-1, 1] and a final tanh bijection: events outside are dropped (counted)
            "preprocessing": _scaled(layout, "atanh"),
            "training": TrainConfig(
                epochs=500,
                batch_size=512,
                lr=1e-3,
                lr_final=1e-5,
                schedule="power",
                power=0.5,
                selection="wasserstein",
                patience=None,
            ),
        }
    if name == "spline":
        # one network pass per block when sampling; no bound on the responses, so no event is dropped
        return {
            "flow": FlowConfig(model="rqs-coupling", blocks=6, hidden=128, layers=2, bins=12, tail_bound=6.0),
            "preprocessing": _scaled(layout, "standardize"),
            "training": _linear_decay(epochs=40, lr=2e-3, patience=8),
        }
    if name == "spline-ar":
        # autoregressive rational-quadratic splines: no dense mixing layer between blocks, so no correlation
        # between responses is created by a linear map the data do not constrain; sampling takes one network
        # pass per block, in six sequential steps
        return {
            "flow": FlowConfig(model="rqs-ar", blocks=5, hidden=128, layers=2, bins=12, tail_bound=6.0),
            "preprocessing": _scaled(layout, "standardize"),
            "training": _linear_decay(epochs=40, lr=2e-3, patience=8),
        }
    if name == "affine-spline":
        # two affine autoregressive blocks learn the conditional location and scale (the resolutions vary by a
        # factor ~4 with E_T, η and μ), three spline blocks shape what is left (asymmetric tails); weight averaging
        # and a schedule that anneals within 24 epochs instead of early stopping (the validation NLL turns up after
        # ~15 epochs on 1.6 × 10⁵ events); lr 1e-3 rather than 2e-3 halved the χ²/bin of the width ratios
        return {
            "flow": FlowConfig(
                model="rqs-ar", affine_blocks=2, blocks=3, hidden=128, layers=2, bins=12, tail_bound=6.0
            ),
            "preprocessing": _scaled(layout, "standardize"),
            "training": _linear_decay(epochs=24, lr=1e-3, patience=None, ema_decay=0.998),
        }
    if name == "flow-matching":
        # conditional flow matching (docs/flow_matching.md): a residual SiLU velocity MLP (3 blocks × 2 × 192),
        # trained by regression, sampled with RK4 × 8 (32 network passes per event). Its step is ~1.5× cheaper than
        # affine-spline's, so 32 epochs at lr 3e-3 take about affine-spline's 24; lr 1e-3 over 24 epochs (the
        # affine-spline recipe) left the validation NLL still falling and a width-ratio χ²/bin of 7.8 against 1.4
        # (baseline, 10⁵ truth events, one pass). log_prob (the per-epoch validation NLL, selection and the saved
        # model's default) takes Hutchinson's estimate with midpoint × 4: 0.02 nats from RK4 × 16 with the exact
        # trace at 1/19 of its time. Selection stays on that NLL: by the validation W1 (the HIGGS task's choice) the
        # weights froze at epoch ≤ 12, χ²/bin 3.55 against 1.29 (bench_time_to_quality's flow-matching-w1)
        return {
            "flow": FlowConfig(
                model="flow-matching",
                blocks=3,
                hidden=192,
                layers=2,
                activation="silu",
                flow_matching=FlowMatchingSettings(
                    sampling=OdeSolver("rk4", 8), likelihood=LikelihoodSettings(OdeSolver("midpoint", 4), "hutchinson")
                ),
            ),
            "preprocessing": _scaled(layout, "standardize"),
            "training": _linear_decay(epochs=32, lr=3e-3, patience=None, ema_decay=0.999),
        }
    if name == "demo":
        return {
            "flow": FlowConfig(model="rqs-coupling", blocks=4, hidden=64, layers=2, bins=8, tail_bound=6.0),
            "preprocessing": _scaled(layout, "standardize"),
            "training": _linear_decay(epochs=12, lr=3e-3, patience=None),
        }
    raise InputError(f"unknown response preset {name!r}; choose one of {', '.join(PRESETS)}")


#: preset names: ``paper-a`` (the paper's MAF), ``spline`` (coupling splines: fast sampling, unbounded),
#: ``spline-ar`` (autoregressive splines), ``affine-spline`` (affine then spline autoregressive blocks, weight
#: averaging: the analysis default), ``flow-matching`` (conditional flow matching, weight averaging), ``demo``
#: (minutes on 2 cores)
PRESETS = ("paper-a", "spline", "spline-ar", "affine-spline", "flow-matching", "demo")


def response_surrogate(
    preset: str = "affine-spline",
    *,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    flow: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Surrogate:
    """An untrained response surrogate from a preset; ``flow``/``training`` override single fields."""
    _check_layout(layout)
    for name, value in (("flow", flow), ("training", training)):
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f"{name} must be a dict of fields that override the preset's, got {describe(value)}")
    p = _preset(preset, layout)
    flow_cfg = FlowConfig.from_dict(p["flow"].to_dict() | (flow or {}))
    train_cfg = TrainConfig.from_dict(p["training"].to_dict() | (training or {}))
    pre = Preprocessor(layout.response_columns, p["preprocessing"])
    return Surrogate(
        layout.response_columns,
        layout.condition_columns,
        flow=flow_cfg,
        training=train_cfg,
        preprocessing=pre,
        condition_preprocessing="standardize",
    )


def train_response(
    smeared: ak.Array,
    preset: str = "affine-spline",
    *,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    flow: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    validation: ak.Array | None = None,
    checkpoint_dir: str | None = None,
    progress: bool | None = None,
    weights: str | np.ndarray | Sequence[float] | None = None,
    validation_weights: str | np.ndarray | Sequence[float] | None = None,
    drop_nonfinite_weights: bool = False,
    negative_weights: Literal["signed", "cell-resampling"] = "signed",
    bootstrap_seed: int | None = None,
) -> Surrogate:
    """Train a response surrogate on smeared (reco + truth) events; returns the fitted :class:`Surrogate`.

    ``validation``: smeared events for model selection kept apart by the caller (then all of ``smeared`` trains);
    by default ``smeared`` is split by the training fractions.
    ``weights``: event weights, a numeric field of ``smeared`` (then of ``validation`` too, unless
    ``validation_weights`` says otherwise) or an array of one per event; with ``drop_nonfinite_weights``,
    ``negative_weights`` and ``bootstrap_seed`` as in :meth:`Surrogate.fit`."""
    check_records(smeared, "smeared")
    if validation is not None:
        check_records(validation, "validation")
    model = response_surrogate(preset, layout=layout, flow=flow, training=training)
    return model.fit(
        _with_weight_column(response_table(smeared, layout), smeared, weights, "smeared"),
        weights=weights,
        drop_nonfinite_weights=drop_nonfinite_weights,
        negative_weights=negative_weights,
        bootstrap_seed=bootstrap_seed,
        validation=None
        if validation is None
        else _with_weight_column(
            response_table(validation, layout),
            validation,
            weights if validation_weights is None else validation_weights,
            "validation",
        ),
        validation_weights=validation_weights,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )


def _with_weight_column(table: ak.Array, smeared: ak.Array, weights: Any, what: str) -> ak.Array:
    """The response table with the weight field of the ``what`` events when ``weights`` names one (the table has a
    row per smeared event: :func:`response_table` refuses events it would drop)."""
    if not isinstance(weights, str):
        return table  # an array or None: Surrogate.fit checks it
    if weights not in smeared.fields:
        raise InputError(f"weights column {weights!r} is not a field of the {what} events; they have {smeared.fields}")
    return ak.with_field(table, smeared[weights], weights)


def distill_response(
    model: Surrogate,
    truth: ak.Array,
    config: DistillConfig | Mapping[str, Any] | None = None,
    *,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    progress: bool | None = None,
) -> Surrogate:
    """:meth:`Surrogate.distill` at the conditions of truth events (``layout.collection`` objects and μ, as
    :func:`apply_response` takes them; e.g. the training sample's truth): a copy that samples in one dense pass."""
    _check_model(model)
    check_records(truth, "truth")
    _check_layout(layout)
    flat, _ = _flat_truth(truth, layout.collection, layout)
    return model.distill(flat, config, progress=progress)


def apply_response(
    model: Surrogate,
    truth: ak.Array,
    *,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    seed: int | np.random.Generator = 0,
    batch_size: int = 100_000,
    progress: bool | None = None,
) -> ak.Array:
    """Smear truth events with the surrogate: ``reco = truth + Δ``, Δ sampled given the truth and μ.

    ``truth`` holds ``layout.collection`` (truth objects, ≥ n per event; extra objects are ignored, events with
    fewer are dropped with a warning) and ``layout.pileup``. Returns records like the reference smearing's:
    ``layout.collection`` (reco, vector Momentum4D, massless), ``layout.truth_collection`` and ``layout.pileup``.
    """
    _check_model(model)
    check_records(truth, "truth")
    _check_layout(layout)
    seed = check_seed(seed)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    missing = sorted(set(layout.condition_columns) - set(model.conditions)) + sorted(
        set(model.conditions) - set(layout.condition_columns)
    )
    if missing or sorted(model.targets) != sorted(layout.response_columns):
        raise InputError(
            f"the model's columns (targets {model.targets}, conditions {model.conditions}) do not match the "
            f"response layout (targets {layout.response_columns}, conditions {layout.condition_columns})"
        )
    blocks, mu, dropped = _truth_blocks(truth, layout.collection, layout)
    if dropped:
        import warnings

        warnings.warn(
            f"{dropped} truth events with fewer than {layout.n} {layout.collection} were dropped", stacklevel=2
        )
    # numpy from here on: the conditions as a matrix, the responses as one (no records in between)
    columns = _columns(blocks, mu, layout)
    c = np.column_stack([columns[name] for name in model.conditions])
    bad = ~np.isfinite(c)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise InputError(f"truth column {model.conditions[j]!r} has {int(bad[:, j].sum())} NaN/inf values")
    delta = model.sample_array(conditions=c, seed=seed, batch_size=batch_size, progress=progress)
    reco = layout.reco(blocks, delta, model.targets)
    truth_objects = {f: blocks[f] for f in layout.fields}
    return ak.zip(
        {
            layout.collection: objects_from_blocks(reco),
            layout.truth_collection: objects_from_blocks(truth_objects),
            layout.pileup: mu,
        },
        depth_limit=1,
    )
