"""Object-level detector response for any multiplicity, learned from matched truth–reco pairs.

:class:`ObjectResponse` is trained on events that hold a truth collection and a reco collection (an analyst's own full
simulation: ``GenPart``/``GenJet`` and ``Photon``/``Jet``, or :func:`~.reference_detector.reconstruct_photons`) and
replaces the detector on new truth events:

1. **Matching** (:func:`~.matching.match_objects`, ΔR < ``max_dr``, one to one, nearest first). Truth objects are
   taken in decreasing truth E_T; their position is the object's *rank*.
2. **Efficiency** (:class:`~.efficiency.EfficiencyModel`): p(reconstructed | log E_T, η, μ, the event's truth object
   count, log ΔR to the nearest other truth object), a calibrated classifier of matched vs unmatched truth objects.
3. **Response**: a conditional flow (:class:`~mcsurrogate.surrogate.Surrogate`) of Δ = reco − truth per object (E_T
   in GeV, η, φ in radians, Δφ wrapped) given the object's truth E_T and η, μ, the object count, ΔR to the nearest
   other truth object, and the **previous reconstructed objects of the event** (in rank order): their number and the
   mean of their pulls Δ/σ̂ per response, σ̂ a smooth resolution model (:class:`PullScale`: log σ̂ additive in
   log E_T, |η| and μ) fitted on the training pairs.
   Sampling goes rank by rank (autoregressive over the objects, vectorised over events): an object's response
   depends on those sampled before it. For responses with a common component (a shared correlation ρ between every
   two objects), the number and mean pull of the earlier objects are exactly what the next one depends on.
4. **Tags** (``ObjectLayout.tags``, e.g. a jet's b-tag): each a 0/1 field of the reco objects, learned as p(tag |
   reconstructed, log E_T, η, μ and the truth fields ``ObjectLayout.tag_inputs``, e.g. the jet's flavour) by a
   calibrated classifier (:class:`~.efficiency.EfficiencyModel`) on the matched objects, and drawn per reconstructed
   object when sampling.
5. **Width calibration** (:meth:`ObjectResponse.with_width_calibration`, part of :meth:`ObjectResponse.fit`): the
   flow's responses are multiplied by c(E_T, |η|, μ) = σ̂_reco / σ̂_flow, two :class:`PullScale` fits of the training
   pairs' reco responses and of the flow's own samples at the same conditions (a closure correction of the
   flow's widths, which it fits to 1–3 % where the resolution changes slope).

Fakes (reco objects without a truth partner) are counted in the training metrics but not modelled.

A model directory holds ``object_response.json`` (layout, pull scale, width calibration, metrics), ``efficiency.json`` +
``efficiency.safetensors``, ``response/`` (a :class:`~mcsurrogate.surrogate.Surrogate` directory) and one
``tag_<name>/`` per tag (an efficiency-model directory); no pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from scipy.linalg import block_diag

from .. import __version__
from ..arguments import check_bool, check_float, check_int, check_path, check_records, check_seed, describe
from ..errors import InputError, ModelDirectoryError, TrainingError
from ..files import atomic_directory, atomic_write_text, read_json
from ..flows.distilled import DistillConfig
from ..preprocessing import Log, Standardize
from ..surrogate import Surrogate
from ..surrogate.inputs import outside_training_range
from .efficiency import EfficiencyConfig, EfficiencyModel, Transform
from .matching import Matching, match_objects, nearest_other
from .resolution import core_width

__all__ = ["ObjectLayout", "ObjectResponse", "PullScale", "TruthObjects", "object_preset", "training_pairs"]

FORMAT = "mcsurrogate.object_response"
SCHEMA_VERSION = 1
EFFICIENCY_FEATURES = ("pt", "eta", "mu", "n_objects", "dr_nearest")
EFFICIENCY_TRANSFORMS: tuple[Transform, ...] = ("log", "linear", "linear", "linear", "log")
#: the response flow's conditions it reads as log(x + offset) before standardising (:meth:`ObjectResponse.fit`)
LOG_CONDITIONS: dict[str, float] = {"pt": 0.0, "dr_nearest": 0.01}
#: hidden units per layer of the distilled response sampler unless told otherwise (:meth:`ObjectResponse.distill`)
OBJECT_STUDENT_HIDDEN = 128


@dataclass(frozen=True)
class ObjectLayout:
    """Where the objects live and what is modelled.

    ``truth``/``reco``: the collections of the training events (``truth`` also names the truth collection that
    :meth:`ObjectResponse.apply` reads, unless told otherwise); ``pileup``: the per-event μ; ``fields``: the
    responses Δ = reco − truth (a subset of pt [GeV], eta, phi [rad]; the others are copied from truth);
    ``max_dr``: the matching cone; ``reco_pt_min`` (GeV): reco objects at or below it are not kept (as the reference
    detector's threshold); ``dr_cap``: ΔR to the nearest other truth object, capped (and used for lone objects);
    ``symmetric_eta``: the detector responds alike at η and −η, so the response flow reads |η| (both halves of the
    detector train one function; an analyst's detector with η-asymmetric features must leave it off); ``tags``: 0/1
    fields of the reco objects to learn and draw (e.g. ``("btag",)``; the reco collection must hold them);
    ``tag_inputs``: truth fields the tags' classifiers read beside E_T, η and μ (e.g. ``("flavour",)``; the truth
    collection must hold them, in training and when applied)."""

    truth: str = "truth_photons"
    reco: str = "photons"
    pileup: str = "mu"
    fields: tuple[str, ...] = ("pt", "eta", "phi")
    max_dr: float = 0.1
    reco_pt_min: float = 0.0
    dr_cap: float = 5.0
    symmetric_eta: bool = False
    tags: tuple[str, ...] = ()
    tag_inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("truth", "reco", "pileup"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InputError(f"ObjectLayout.{name} must be a non-empty field name, got {describe(value)}")
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)
        if not fields or len(set(fields)) != len(fields) or not set(fields) <= {"pt", "eta", "phi"}:
            raise InputError(f"ObjectLayout.fields must be distinct names among pt, eta, phi, got {self.fields!r}")
        object.__setattr__(self, "fields", fields)
        check_float(self.max_dr, "ObjectLayout.max_dr", above=0.0)
        check_float(self.reco_pt_min, "ObjectLayout.reco_pt_min", minimum=0.0)
        check_float(self.dr_cap, "ObjectLayout.dr_cap", above=0.0)
        check_bool(self.symmetric_eta, "ObjectLayout.symmetric_eta")
        kinematic = {"pt", "eta", "phi", "mass"}
        for name in ("tags", "tag_inputs"):
            value = getattr(self, name)
            names = (value,) if isinstance(value, str) else tuple(value)
            if len(set(names)) != len(names) or any(not isinstance(n, str) or not n or n in kinematic for n in names):
                raise InputError(
                    f"ObjectLayout.{name} must be distinct field names other than pt, eta, phi, mass; got {value!r}"
                )
            object.__setattr__(self, name, names)
        if self.tag_inputs and not self.tags:
            raise InputError("ObjectLayout.tag_inputs are read by the tags' classifiers; the layout has no tags")

    def eta_condition(self, eta: np.ndarray) -> np.ndarray:
        """The η the response flow reads: |η| with :attr:`symmetric_eta`, else η."""
        return np.abs(eta) if self.symmetric_eta else eta

    @property
    def targets(self) -> list[str]:
        return [f"d_{f}" for f in self.fields]

    @property
    def conditions(self) -> list[str]:
        return [
            "pt",
            "eta",
            "mu",
            "n_objects",
            "dr_nearest",
            "n_previous",
            *[f"previous_pull_{f}" for f in self.fields],
        ]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fields"] = list(self.fields)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ObjectLayout:
        d = dict(d)
        for name in ("fields", "tags", "tag_inputs"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


# -- truth objects ---------------------------------------------------------------------------------------
@dataclass
class TruthObjects:
    """Flat numpy arrays of the truth objects of events, event by event, in decreasing truth E_T (rank order):
    kinematics, μ and object count of their event, ΔR to the nearest other truth object (capped), rank, event."""

    objects: ak.Array  # jagged, sorted by pt
    counts: np.ndarray
    kin: dict[str, np.ndarray]
    mu: np.ndarray  # per object
    n_objects: np.ndarray
    dr_nearest: np.ndarray
    rank: np.ndarray
    event: np.ndarray
    mu_event: np.ndarray

    @classmethod
    def from_events(cls, objects: ak.Array, mu: np.ndarray, dr_cap: float) -> TruthObjects:
        """From a jagged collection (fields pt, eta, phi) and the per-event μ."""
        if objects.ndim != 2 or not objects.fields:
            raise InputError(f"the truth objects must be a list of records per event, got type {objects.type}")
        missing = [f for f in ("pt", "eta", "phi") if f not in objects.fields]
        if missing:
            raise InputError(f"the truth objects lack field(s) {missing}; fields: {objects.fields}")
        mu = np.asarray(mu, dtype=np.float64)
        if mu.shape != (len(objects),) or not np.isfinite(mu).all():
            raise InputError(f"pile-up must be one finite number per event ({len(objects)}), got shape {mu.shape}")
        objects = objects[ak.argsort(objects.pt, axis=1, ascending=False, stable=True)]
        counts = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
        kin = {f: np.asarray(ak.to_numpy(ak.flatten(objects[f])), dtype=np.float64) for f in ("pt", "eta", "phi")}
        bad = [f for f, v in kin.items() if not np.isfinite(v).all()]
        if bad or (kin["pt"] <= 0).any():
            raise InputError(f"the truth objects need finite kinematics and pt > 0 (bad: {bad or ['pt']})")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
        event = np.repeat(np.arange(len(counts)), counts)
        dr = np.asarray(ak.to_numpy(ak.flatten(nearest_other(objects, empty=dr_cap))), dtype=np.float64)
        return cls(
            objects=objects,
            counts=counts,
            kin=kin,
            mu=mu[event],
            n_objects=counts[event].astype(np.float64),
            dr_nearest=np.minimum(dr, dr_cap),
            rank=np.arange(len(event)) - starts[event],
            event=event,
            mu_event=mu,
        )

    def efficiency_features(self, names: Sequence[str] = EFFICIENCY_FEATURES) -> np.ndarray:
        """The efficiency classifier's inputs ``names`` (of :data:`EFFICIENCY_FEATURES`), one row per object."""
        columns = {
            "pt": self.kin["pt"],
            "eta": self.kin["eta"],
            "mu": self.mu,
            "n_objects": self.n_objects,
            "dr_nearest": self.dr_nearest,
        }
        return np.column_stack([columns[name] for name in names]) if names else np.zeros((len(self), 0))

    def tag_features(self, inputs: Sequence[str] = ()) -> np.ndarray:
        """The tags' classifiers' inputs, one row per object: truth E_T (GeV), η, μ and the truth fields ``inputs``
        (numbers, e.g. a jet's flavour)."""
        columns = [self.kin["pt"], self.kin["eta"], self.mu]
        for name in inputs:
            if name not in self.objects.fields:
                raise InputError(
                    f"the truth objects have no field {name!r}, which the layout's tag_inputs name "
                    f"(fields: {self.objects.fields})"
                )
            values = np.asarray(ak.to_numpy(ak.flatten(self.objects[name])), dtype=np.float64)
            if not np.isfinite(values).all():
                raise InputError(f"the truth objects' field {name!r} (a tag input) has NaN/inf values")
            columns.append(values)
        return np.column_stack(columns)

    @property
    def feeds_later(self) -> np.ndarray:
        """Whether each object comes before the last object of its event (its response conditions a later one)."""
        return np.asarray(self.rank < self.counts[self.event] - 1)

    def __len__(self) -> int:
        return len(self.event)


def _previous(event: np.ndarray, found: np.ndarray, pulls: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """For objects in rank order: the number of earlier found objects of their event and the mean of their pulls."""
    f = found.astype(np.float64)
    incl_n = np.cumsum(f)
    incl_s = np.cumsum(pulls * f[:, None], axis=0)
    counts = np.bincount(event, minlength=n_events)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # totals before each event's first object
    before_n = np.concatenate([[0.0], incl_n])[starts][event]
    before_s = np.vstack([np.zeros((1, pulls.shape[1])), incl_s])[starts][event]
    n_prev = incl_n - f - before_n
    s_prev = incl_s - pulls * f[:, None] - before_s
    # exactly 0 without earlier objects (the running sums' differences leave ~1e-16 there, and a column that is
    # almost but not exactly an atom at 0 looks like millions of outliers to the training's input check)
    return n_prev, np.where(n_prev[:, None] > 0, s_prev / np.maximum(n_prev, 1.0)[:, None], 0.0)


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2 * np.pi) - np.pi


# -- pull scale ------------------------------------------------------------------------------------------
@dataclass
class PullScale:
    """σ̂ of each response as a function of truth E_T (GeV), |η| and μ, fitted on the training pairs.

    ``kind="additive"`` (what :meth:`fit` makes): log σ̂ = f₁(log E_T) + f₂(|η|) + f₃(μ), each fᵢ piecewise linear
    between knots (constant beyond the outer ones), fitted by weighted least squares to the log core widths
    (:func:`.resolution.core_width`) of the training responses in quantile bins of the three variables, weighted
    by the pairs per bin. A resolution that factorises, σ = σ₁(E_T) σ₂(η) σ₃(μ) (paper A's reference), is described
    up to the interpolation; any other to first order, and the flow models what remains. Smooth: the pulls
    Δ/σ̂ that carry the earlier objects' responses to the next object do not jump at bin edges, and their noise is
    the fit's (≈ 1 %), not a bin's (the core width of ~10³ pairs, and the width's variation inside the bin:
    ±6–10 % rms for the bins of the first design, which the flow then had to learn as conditional noise).

    ``kind="binned"``: the core width per bin of ``pt_edges`` × ``eta_edges`` × ``mu_edges`` (the first object
    models; read from their directories, not made any more)."""

    pt_edges: list[float]
    eta_edges: list[float]
    mu_edges: list[float]
    widths: list[list[list[list[float]]]]  # binned: (field, pt bin, |η| bin, μ bin)
    kind: str = "binned"
    knots: list[list[float]] = dataclasses.field(default_factory=list)  # additive: of log E_T, |η|, μ in turn
    log_widths: list[list[list[float]]] = dataclasses.field(default_factory=list)  # additive: (field, variable, knot)

    def __post_init__(self) -> None:
        if self.kind not in ("binned", "additive"):
            raise InputError(f"PullScale.kind must be 'binned' or 'additive', got {self.kind!r}")

    @classmethod
    def fit(
        cls,
        pt: np.ndarray,
        eta: np.ndarray,
        mu: np.ndarray,
        delta: np.ndarray,
        *,
        bins: tuple[int, int, int] = (20, 12, 8),
        min_count: int = 200,
    ) -> PullScale:
        """The additive σ̂ of responses ``delta`` (n, fields) of objects at truth ``pt`` (GeV), ``eta``, ``mu``:
        ``bins`` quantile bins per variable (their knots at the bins' mean coordinates; fewer, in proportion, where
        the pairs would fill the bins with fewer than ``min_count`` on average); bins with fewer than ``min_count``
        pairs are left out of the fit."""
        x = np.column_stack([np.log(pt), np.abs(eta), mu]).astype(np.float64)
        if len(x) < 10 or not np.isfinite(x).all():
            raise InputError(f"need at least 10 matched pairs with finite kinematics for the pull scale, got {len(x)}")
        n_bins = [check_int(b, "bins", minimum=1) for b in bins]
        if len(n_bins) != 3:
            raise InputError(f"bins: one count per variable (E_T, |η|, μ), got {bins!r}")
        min_count = min(check_int(min_count, "min_count", minimum=10), len(x))
        shrink = min(1.0, (len(x) / (min_count * float(np.prod(n_bins)))) ** (1 / 3))
        idx, knots = [], []
        for j, b in enumerate(n_bins):
            edges = np.unique(np.quantile(x[:, j], np.linspace(0, 1, max(1, int(b * shrink)) + 1)))
            k = _bin_index(edges, x[:, j])
            idx.append(k)
            counts = np.bincount(k, minlength=len(edges) - 1)
            centres = np.bincount(k, x[:, j], minlength=len(counts)) / np.maximum(counts, 1)
            knots.append(np.unique(centres[counts > 0]))
        shape = tuple(int(i.max()) + 1 for i in idx)
        flat = np.ravel_multi_index(tuple(idx), shape)
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(int(np.prod(shape)) + 1))
        groups = [order[bounds[b] : bounds[b + 1]] for b in range(len(bounds) - 1)]
        groups = [g for g in groups if len(g) >= min_count]
        if not groups:
            raise InputError(f"no bin of the pull scale holds {min_count} pairs; give more training events")
        # one row per bin: hat functions of each variable at the bin's mean coordinates
        centre = np.array([x[g].mean(axis=0) for g in groups])
        design = np.hstack([_hats(knots[j], centre[:, j]) for j in range(3)])
        n = np.array([len(g) for g in groups], dtype=np.float64)
        # a faint second-difference penalty keeps the knot values defined where no bin is centred near them
        rows = block_diag(*[np.diff(np.eye(len(k)), 2, axis=0) for k in knots])
        w = np.sqrt(n / n.mean())
        splits = np.cumsum([len(k) for k in knots])[:-1]
        log_widths = []
        for f in range(delta.shape[1]):
            widths = np.array([core_width(delta[g, f])[1] for g in groups])
            ok = widths > 0  # a bin whose responses are all alike (zero core width) says nothing about log σ
            if not ok.any():
                raise InputError(f"response {f} has zero width in the training pairs: nothing to learn")
            a = np.vstack([design[ok] * w[ok, None], 1e-3 * rows])
            y = np.concatenate([np.log(widths[ok]) * w[ok], np.zeros(len(rows))])
            coef = np.linalg.lstsq(a, y, rcond=None)[0]
            log_widths.append([c_.tolist() for c_ in np.split(coef, splits)])
        return cls([], [], [], [], kind="additive", knots=[k.tolist() for k in knots], log_widths=log_widths)

    def ratio(self, other: PullScale) -> PullScale:
        """The additive model of σ̂_self / σ̂_other (both fitted by :meth:`fit` on the same objects, hence the same
        knots): log σ̂ subtracted knot by knot."""
        if self.kind != "additive" or other.kind != "additive" or self.knots != other.knots:
            raise InputError("the ratio of two pull scales needs two additive fits with the same knots")
        log_ratio = [
            [(np.asarray(a) - np.asarray(b)).tolist() for a, b in zip(fa, fb, strict=True)]
            for fa, fb in zip(self.log_widths, other.log_widths, strict=True)
        ]
        return PullScale([], [], [], [], kind="additive", knots=self.knots, log_widths=log_ratio)

    def _index(self, pt: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            _bin_index(np.asarray(self.pt_edges), pt),
            _bin_index(np.asarray(self.eta_edges), np.abs(eta)),
            _bin_index(np.asarray(self.mu_edges), mu),
        )

    def sigma(self, pt: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """σ̂ of every response for objects at (pt [GeV], eta, mu): shape (n, n_fields)."""
        if self.kind == "additive":
            # piecewise linear in each variable, constant beyond the outer knots (np.interp's rule): the segment of
            # each object is searched once per variable for all fields, then each field's segment is a line
            x = (np.log(np.asarray(pt, dtype=np.float64)), np.abs(eta), np.asarray(mu, dtype=np.float64))
            log_sigma = np.zeros((len(self.log_widths), len(x[0])))
            for v in range(3):
                knots = np.asarray(self.knots[v], dtype=np.float64)
                xc = np.clip(x[v], knots[0], knots[-1])
                seg = np.clip(np.searchsorted(knots, xc, side="right") - 1, 0, max(len(knots) - 2, 0))
                for f, field in enumerate(self.log_widths):
                    values = np.asarray(field[v], dtype=np.float64)
                    if len(knots) == 1:
                        log_sigma[f] += values[0]
                        continue
                    slope = np.diff(values) / np.diff(knots)
                    log_sigma[f] += (values[:-1] - slope * knots[:-1])[seg] + slope[seg] * xc
            return np.exp(log_sigma.T)
        i, j, k = self._index(pt, eta, mu)
        table = np.asarray(self.widths)
        return np.asarray(table[:, i, j, k].T)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PullScale:
        return cls(**dict(d))


def _bin_index(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The bin of each ``x`` between ``edges`` (values beyond them in the first or last bin)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(len(edges) - 2, 0))


def _hats(knots: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights (n, len(knots)) of points ``x`` between ``knots`` (constant beyond them)."""
    out = np.zeros((len(x), len(knots)))
    if len(knots) == 1:
        out[:, 0] = 1.0
        return out
    xc = np.clip(x, knots[0], knots[-1])
    i = np.clip(np.searchsorted(knots, xc, side="right") - 1, 0, len(knots) - 2)
    t = (xc - knots[i]) / (knots[i + 1] - knots[i])
    rows = np.arange(len(x))
    out[rows, i] = 1.0 - t
    out[rows, i + 1] += t
    return out


# -- presets ---------------------------------------------------------------------------------------------
def object_preset(name: str = "affine-spline") -> dict[str, Any]:
    """Flow and training settings of the per-object response flow: ``affine-spline`` (two affine autoregressive
    blocks for location and scale, three spline blocks, weight averaging) or ``demo`` (a minute on 2 cores)."""
    if name == "affine-spline":
        return {
            "flow": {
                "model": "rqs-ar",
                "affine_blocks": 2,
                "blocks": 3,
                "hidden": 128,
                "layers": 2,
                "bins": 12,
                "tail_bound": 6.0,
            },
            "training": {
                "epochs": 20,
                "batch_size": 1024,
                "lr": 1e-3,
                "lr_final": 1e-5,
                "schedule": "power",
                "power": 1.0,
                "selection": "nll",
                "patience": None,
                "ema_decay": 0.998,
            },
        }
    if name == "demo":
        return {
            "flow": {
                "model": "rqs-ar",
                "affine_blocks": 1,
                "blocks": 1,
                "hidden": 32,
                "layers": 2,
                "bins": 8,
                "tail_bound": 6.0,
            },
            "training": {
                "epochs": 3,
                "batch_size": 512,
                "lr": 3e-3,
                "lr_final": 3e-5,
                "schedule": "power",
                "power": 1.0,
                "selection": "nll",
                "patience": None,
            },
        }
    raise InputError(f"unknown object-response preset {name!r}; choose affine-spline or demo")


# -- the model -------------------------------------------------------------------------------------------
class ObjectResponse:
    """Efficiency + autoregressive per-object response (module docstring). Build with :meth:`fit` or :meth:`load`."""

    def __init__(
        self,
        layout: ObjectLayout,
        efficiency: EfficiencyModel,
        response: Surrogate,
        scale: PullScale,
        metrics: dict[str, Any] | None = None,
        context_bounds: Mapping[str, Sequence[float]] | None = None,
        width_calibration: PullScale | None = None,
        tag_models: Mapping[str, EfficiencyModel] | None = None,
    ) -> None:
        self.layout = layout
        self.efficiency = efficiency
        self.response = response
        self.scale = scale
        self.metrics = metrics or {}
        #: the factor c(E_T, |η|, μ) per response that sampling multiplies the flow's responses by
        #: (:meth:`with_width_calibration`); None: the flow's responses as they come
        self.width_calibration = width_calibration
        #: the event-context conditions (object count, ΔR to the nearest object, the earlier objects' count and mean
        #: pulls) are clipped into these [0.1 %, 99.9 %] quantiles of the training objects when sampling: a process
        #: with more objects than the training sample reuses the most crowded context it was trained on instead of
        #: extrapolating the networks (empty: no clipping)
        self.context_bounds = {k: (float(v[0]), float(v[1])) for k, v in (context_bounds or {}).items()}
        #: p(tag | reconstructed, truth E_T, η, μ, ``layout.tag_inputs``) per name of ``layout.tags``
        self.tag_models = dict(tag_models or {})
        if set(self.tag_models) != set(layout.tags):
            raise InputError(
                f"tag_models must be one classifier per tag of the layout {list(layout.tags)}, got "
                f"{sorted(self.tag_models)}"
            )

    # -- training -----------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        events: ak.Array,
        layout: ObjectLayout | None = None,
        *,
        preset: str = "affine-spline",
        flow: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        efficiency: EfficiencyModel | EfficiencyConfig | Mapping[str, Any] | None = None,
        efficiency_events: ak.Array | None = None,
        efficiency_features: Sequence[str] = EFFICIENCY_FEATURES,
        log_conditions: Sequence[str] = tuple(LOG_CONDITIONS),
        tag_classifier: EfficiencyConfig | Mapping[str, Any] | None = None,
        scale_events: ak.Array | None = None,
        scale_bins: tuple[int, int, int] = (20, 12, 8),
        validation_fraction: float = 0.1,
        calibrate_widths: bool = True,
        seed: int = 0,
        progress: bool | None = None,
    ) -> ObjectResponse:
        """Train on ``events`` holding ``layout.truth``, ``layout.reco`` (jagged, any counts) and ``layout.pileup``.

        Events (not objects) are split: ``validation_fraction`` of them select the flow's epoch and stop the
        efficiency training. ``flow``/``training`` override single fields of the ``preset``
        (:func:`object_preset`); ``efficiency`` an :class:`~.efficiency.EfficiencyConfig` or dict of its fields, or a
        trained :class:`~.efficiency.EfficiencyModel` to use as it is (e.g. one detector's efficiency shared by
        responses fitted for several smearings; ``efficiency_events`` and ``efficiency_features`` are then not read).
        ``efficiency_events``: other (e.g. more) events of the same layout to train the efficiency on; by default
        ``events``. The efficiency is one probability per object and cheap to train, so it can use many more detector
        passes than the flow: its statistical precision must beat the one of any test it is compared with.
        ``efficiency_features``: the classifier's inputs, a subset of :data:`EFFICIENCY_FEATURES` (dropping
        ``n_objects`` helps a process with other object counts when the detector does not depend on it).
        ``log_conditions``: the flow's conditions it reads in log before standardising (of :data:`LOG_CONDITIONS`:
        truth E_T and ΔR to the nearest object, whose responses and efficiencies change fastest at small values).
        ``tag_classifier``: settings of the classifiers of ``layout.tags`` (an :class:`~.efficiency.EfficiencyConfig`
        or dict of its fields; its defaults with this ``seed``), trained on the matched objects of
        ``efficiency_events`` where given (a tag is one more probability per object), else of ``events``.
        ``scale_events``: events of the same layout (e.g. more detector passes over the same truth) to fit the pull
        scale σ̂ on (:class:`PullScale`, default ``events``), and ``scale_bins`` its quantile bins of E_T, |η|, μ
        (fewer, in proportion, where the pairs are few). σ̂ turns the earlier objects' responses into the pulls the next
        object reads, so its error is noise on every chain: with knots from 4 detector passes it is 2 % rms (9–13 % at
        the ends of the ranges), from 16 passes in 40 × 24 × 16 bins 0.9 % (4 %), which took the object study's
        fully correlated widths to the statistical floor (docs/object_response.md).
        ``calibrate_widths``: finish with :meth:`with_width_calibration` on ``events`` (the same seed)."""
        layout = ObjectLayout() if layout is None else layout
        if not isinstance(layout, ObjectLayout):
            raise InputError(f"layout must be an ObjectLayout, got {describe(layout)}")
        check_records(events, "events")
        seed = check_seed(seed, generator=False)
        validation_fraction = check_float(validation_fraction, "validation_fraction", above=0.0, below=1.0)
        calibrate_widths = check_bool(calibrate_widths, "calibrate_widths")
        trained = efficiency if isinstance(efficiency, EfficiencyModel) else None
        if trained is not None and not trained.metrics:
            raise InputError("efficiency: the EfficiencyModel given has not been trained (fit or load it first)")
        if trained is not None and efficiency_events is not None:
            raise InputError("efficiency_events train an efficiency; a trained EfficiencyModel was given as efficiency")
        names = list(efficiency_features) if not isinstance(efficiency_features, str) else [efficiency_features]
        if trained is not None:
            names = list(trained.features)
        unknown = sorted(set(names) - set(EFFICIENCY_FEATURES))
        if unknown or not names or len(set(names)) != len(names):
            raise InputError(
                f"efficiency_features must be distinct names among {list(EFFICIENCY_FEATURES)}, got {names}"
            )
        t, found, partner, reco, matching = _matched(events, layout)
        delta = _responses(t, found, partner, reco, layout)
        # the objects the classifiers (efficiency, tags) train on: those of efficiency_events where given
        t_cls, found_cls, partner_cls, reco_cls = t, found, partner, reco
        if efficiency_events is not None:
            check_records(efficiency_events, "efficiency_events")
            t_cls, found_cls, partner_cls, reco_cls, _ = _matched(efficiency_events, layout)
        tag_x, tag_y = _tag_pairs(t_cls, found_cls, partner_cls, reco_cls, layout)  # checked before any training
        if isinstance(efficiency, EfficiencyModel):
            eff = efficiency
        else:
            eff_cfg = (
                efficiency
                if isinstance(efficiency, EfficiencyConfig)
                else EfficiencyConfig.from_dict({"seed": seed} | dict(efficiency or {}))
            )
            transforms = [EFFICIENCY_TRANSFORMS[EFFICIENCY_FEATURES.index(name)] for name in names]
            eff = EfficiencyModel(names, transforms, eff_cfg).fit(t_cls.efficiency_features(names), found_cls)
        tag_models = _fit_tags(tag_x, tag_y, layout, tag_classifier, seed)
        if scale_events is None:
            t_s, found_s, delta_s = t, found, delta
        else:
            check_records(scale_events, "scale_events")
            t_s, found_s, delta_s, _ = training_pairs(scale_events, layout)
        scale = PullScale.fit(
            t_s.kin["pt"][found_s], t_s.kin["eta"][found_s], t_s.mu[found_s], delta_s[found_s], bins=scale_bins
        )
        table = _table(t, found, delta, scale, layout)

        rng = np.random.default_rng([seed, 31])
        is_val = rng.random(len(t.counts)) < validation_fraction
        keep_train, keep_val = found & ~is_val[t.event], found & is_val[t.event]
        if keep_train.sum() < 10 or keep_val.sum() < 10:
            raise InputError(f"too few matched objects to train on ({int(found.sum())}); give more events")
        logs = [log_conditions] if isinstance(log_conditions, str) else list(log_conditions)
        if not set(logs) <= set(LOG_CONDITIONS) or len(set(logs)) != len(logs):
            raise InputError(f"log_conditions must be distinct names among {list(LOG_CONDITIONS)}, got {logs}")
        p = object_preset(preset)
        surrogate = Surrogate(
            layout.targets,
            layout.conditions,
            flow=p["flow"] | dict(flow or {}),
            preprocessing="standardize",
            condition_preprocessing={
                name: [Log(LOG_CONDITIONS[name]), Standardize()] if name in logs else "standardize"
                for name in layout.conditions
            },
            training={"seed": seed} | p["training"] | dict(training or {}),
        )
        surrogate.fit(
            ak.zip({k: v[keep_train] for k, v in table.items()}, depth_limit=1),
            validation=ak.zip({k: v[keep_val] for k, v in table.items()}, depth_limit=1),
            progress=progress,
        )
        bounds = {
            name: _quantile_bounds(table[name][found if name not in ("n_objects", "dr_nearest") else slice(None)])
            for name in layout.conditions
            if name in CONTEXT
        }
        metrics = {
            "matching": matching.to_dict(),
            "n_events": len(t.counts),
            "n_truth_objects": len(t),
            "efficiency_overall": float(found.mean()),
            "efficiency_training_objects": (
                len(found_cls)
                if trained is None
                else int(eff.metrics.get("n_train", 0) + eff.metrics.get("n_validation", 0))
            ),
            "efficiency_given": trained is not None,
            "n_fakes": int(ak.sum(~matching.reco_matched)),
            "efficiency": eff.metrics,
        } | ({"tags": {name: m.metrics for name, m in tag_models.items()}} if tag_models else {})
        model = cls(layout, eff, surrogate, scale, metrics, bounds, tag_models=tag_models)
        if calibrate_widths:
            model = model._calibrated(t, found, delta, table, seed)
        return model

    def with_width_calibration(self, events: ak.Array, *, seed: int = 0) -> ObjectResponse:
        """A copy that corrects the response flow's widths by a closure calibration on ``events`` (matched truth–reco
        pairs as for :meth:`fit`, e.g. the training events).

        The flow is sampled once per matched object at that object's own conditions, the earlier objects' pulls those
        of the reco objects in ``events`` (teacher forcing: the same one step as in training), and a
        :class:`PullScale` is fitted to these samples and to the reco responses with the same bins and knots; their
        ratio c(E_T, |η|, μ) = σ̂_reco / σ̂_flow multiplies every sampled response (before its pull conditions the next
        object). A flow fits the resolution to 1–3 % where it changes slope (paper A's reference: flat below 20 GeV,
        falling above) however long it trains. The calibration carries the statistical noise of ``events``' responses
        instead: give it at least as many pairs as the flow trained on (the object study: 4 detector passes moved a
        well-fitted flow's widths away from the reference's, 16 did not; docs/object_response.md). The tails are
        scaled with the core. Replaces an earlier calibration; deterministic for a ``seed``. Cost when sampling: one
        evaluation of the additive model per object."""
        seed = check_seed(seed, generator=False)
        t, found, delta, _ = training_pairs(events, self.layout)
        if found.sum() < 10:
            raise InputError(f"need at least 10 matched objects in the events to calibrate on, got {int(found.sum())}")
        return self._calibrated(t, found, delta, _table(t, found, delta, self.scale, self.layout), seed)

    def _calibrated(
        self, t: TruthObjects, found: np.ndarray, delta: np.ndarray, table: Mapping[str, np.ndarray], seed: int
    ) -> ObjectResponse:
        cond = np.column_stack([table[name][found] for name in self.layout.conditions])
        rng = np.random.default_rng([seed, 37])
        noise = rng.standard_normal((len(cond), self.response.noise_features))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="conditions outside the training range")
            generated = self.response.sample_array(conditions=cond, noise=noise, progress=False)
        pt, eta, mu = t.kin["pt"][found], t.kin["eta"][found], t.mu[found]
        reco = PullScale.fit(pt, eta, mu, delta[found])
        flow = PullScale.fit(pt, eta, mu, generated)
        calibration = reco.ratio(flow)
        factors = calibration.sigma(pt, eta, mu)
        metrics = dict(self.metrics) | {
            "width_calibration": {
                "pairs": int(found.sum()),
                "seed": seed,
                "factor_range": [
                    [float(v) for v in np.quantile(factors[:, j], [0.001, 0.999])] for j in range(factors.shape[1])
                ],
            }
        }
        return ObjectResponse(
            self.layout,
            self.efficiency,
            self.response,
            self.scale,
            metrics,
            self.context_bounds,
            calibration,
            self.tag_models,
        )

    def training_conditions(self, events: ak.Array) -> ak.Array:
        """The flow's condition rows of the matched objects of ``events`` (truth + reco, as for :meth:`fit`): what
        :meth:`distill` needs."""
        t, found, delta, _ = training_pairs(events, self.layout)
        table = _table(t, found, delta, self.scale, self.layout)
        return ak.zip({k: table[k][found] for k in self.layout.conditions}, depth_limit=1)

    def distill(
        self,
        events: ak.Array,
        config: DistillConfig | Mapping[str, Any] | None = None,
        *,
        calibration_events: ak.Array | None = None,
        progress: bool | None = None,
    ) -> ObjectResponse:
        """A copy whose response flow is distilled (:meth:`Surrogate.distill`) at the conditions of ``events``'s
        matched objects (the training events): one dense pass per object when sampling. A calibrated flow's student
        gets a width calibration of its own (:meth:`with_width_calibration`, the flow's seed) on
        ``calibration_events`` (default ``events``: give the events the flow was calibrated on).

        ``config``: a :class:`~mcsurrogate.flows.distilled.DistillConfig` or a dict of its fields; a dict without
        ``hidden`` gets :data:`OBJECT_STUDENT_HIDDEN` (128) units per layer: on the object study's teacher, a 3 × 128
        student fits as well as a 3 × 256 one (held-out error 2.5 × 10⁻⁴ and 2.4 × 10⁻⁴; width χ²/bin 1.02 and 1.09 on
        held-out gg → H, 1.72 and 1.81 on tt̄H, the flow 1.08 and 1.61) and samples 2.7× faster (bfloat16, 2-core
        AMD EPYC)."""
        if config is None or isinstance(config, Mapping):
            config = {"hidden": OBJECT_STUDENT_HIDDEN} | dict(config or {})
        student = self.response.distill(self.training_conditions(events), config, progress=progress)
        distilled = ObjectResponse(
            self.layout,
            self.efficiency,
            student,
            self.scale,
            dict(self.metrics),
            self.context_bounds,
            tag_models=self.tag_models,
        )
        if self.width_calibration is None:
            return distilled
        seed = int(self.metrics.get("width_calibration", {}).get("seed", 0))
        return distilled.with_width_calibration(events if calibration_events is None else calibration_events, seed=seed)

    # -- sampling -----------------------------------------------------------------------------------------
    def sample_flat(
        self, t: TruthObjects, uniforms: np.ndarray, noise: np.ndarray, *, batch_size: int = 100_000
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(found, delta)`` for truth objects ``t``: reconstructed where ``uniforms`` < p(reco), and for those the
        responses (n, len(fields)) sampled rank by rank from the standard-normal ``noise`` (n, noise_features)."""
        n = len(t)
        if uniforms.shape != (n,) or noise.shape != (n, self.response.noise_features):
            raise InputError(
                f"need {n} uniforms and noise of shape ({n}, {self.response.noise_features}); "
                f"got {uniforms.shape} and {noise.shape}"
            )
        self._warn_outside_training_range(t)
        found = uniforms < self.reconstruction_probability(t) if n else np.zeros(0, dtype=bool)
        nf = len(self.layout.fields)
        delta = np.zeros((n, nf))
        n_prev = np.zeros(len(t.counts))
        s_prev = np.zeros((len(t.counts), nf))
        # the reconstructed objects grouped by rank (ascending object index within a rank), and their truth
        # conditions once: each rank's step then touches only its own objects
        kept = np.flatnonzero(found)
        kept = kept[np.argsort(t.rank[kept], kind="stable")]
        n_ranks = int(t.counts.max()) if len(t.counts) else 0
        bounds = np.searchsorted(t.rank[kept], np.arange(n_ranks + 1))
        truth_cond = np.column_stack(
            [
                t.kin["pt"][kept],
                self.layout.eta_condition(t.kin["eta"][kept]),
                t.mu[kept],
                self._clip("n_objects", t.n_objects[kept]),
                self._clip("dr_nearest", t.dr_nearest[kept]),
            ]
        )
        # the pulls' scale, in rank order, of the objects whose pulls condition a later object of their event (the
        # others' pulls are never read: σ̂ = inf adds 0 to their event's sums)
        sigma = np.full((len(kept), nf), np.inf)
        feeds = t.feeds_later[kept]
        rows = kept[feeds]
        sigma[feeds] = self.scale.sigma(t.kin["pt"][rows], t.kin["eta"][rows], t.mu[rows])
        factor = (
            None
            if self.width_calibration is None
            else self.width_calibration.sigma(t.kin["pt"][kept], t.kin["eta"][kept], t.mu[kept])
        )
        for r in range(n_ranks):
            sel = kept[bounds[r] : bounds[r + 1]]
            if not len(sel):
                continue
            ev = t.event[sel]
            prev_n = n_prev[ev]
            mean = s_prev[ev] / np.maximum(prev_n, 1.0)[:, None]
            pulls = [self._clip(f"previous_pull_{f}", mean[:, j]) for j, f in enumerate(self.layout.fields)]
            cond = np.column_stack([truth_cond[bounds[r] : bounds[r + 1]], self._clip("n_previous", prev_n), *pulls])
            with warnings.catch_warnings():  # the truth conditions are checked once above; the pulls vary by rank
                warnings.filterwarnings("ignore", message="conditions outside the training range")
                d = self.response.sample_array(conditions=cond, noise=noise[sel], batch_size=batch_size, progress=False)
            bad = ~np.isfinite(d).all(axis=1)
            if bad.any():  # they would become the next objects' conditions: say where it started
                first = dict(zip(self.layout.conditions, cond[np.argmax(bad)].tolist(), strict=True))
                raise TrainingError(
                    f"the response flow gave non-finite responses for {int(bad.sum())} of {len(d)} objects of rank "
                    f"{r} (the first one's conditions: {first}); the model is damaged or was trained on non-finite values"
                )
            if factor is not None:
                d = d * factor[bounds[r] : bounds[r + 1]]
            delta[sel] = d
            s_prev[ev] += d / sigma[bounds[r] : bounds[r + 1]]
            n_prev[ev] += 1.0
        return found, delta

    def sample_tags(self, t: TruthObjects, found: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """The tags (n, len(layout.tags), bool) of truth objects ``t``: set where the object is ``found``
        (reconstructed) and its ``uniforms`` (n, len(layout.tags)) fall below the tag's probability."""
        n, k = len(t), len(self.layout.tags)
        if uniforms.shape != (n, k) or found.shape != (n,):
            raise InputError(
                f"need found of shape ({n},) and uniforms of shape ({n}, {k}); got {found.shape} and {uniforms.shape}"
            )
        tags = np.zeros((n, k), dtype=bool)
        rows = np.flatnonzero(found)
        if k and len(rows):
            x = t.tag_features(self.layout.tag_inputs)[rows]
            for j, name in enumerate(self.layout.tags):
                tags[rows, j] = uniforms[rows, j] < self.tag_models[name].probability(x)
        return tags

    def reconstruction_probability(self, t: TruthObjects) -> np.ndarray:
        """p(reconstructed) of each truth object of ``t``, as sampling draws it (the event context clipped into
        :attr:`context_bounds`)."""
        names = self.efficiency.features
        x = t.efficiency_features(names)
        for j, name in enumerate(names):
            x[:, j] = self._clip(name, x[:, j])
        return self.efficiency.probability(x)

    def _clip(self, name: str, values: np.ndarray) -> np.ndarray:
        if name not in self.context_bounds:
            return values
        lo, hi = self.context_bounds[name]
        return np.clip(values, lo, hi)

    def _warn_outside_training_range(self, t: TruthObjects) -> None:
        """One warning for truth objects outside the range of the training objects' E_T, |η|, μ or count."""
        ranges = self.response.metrics.get("condition_ranges", {})
        values = {
            "pt": t.kin["pt"],
            "eta": self.layout.eta_condition(t.kin["eta"]),
            "mu": t.mu,
            "n_objects": t.n_objects,
        }
        notes = outside_training_range(values, ranges)
        if notes:
            warnings.warn(
                "truth objects outside the training range (the response extrapolates there): " + "; ".join(notes),
                stacklevel=3,
            )

    def reco_objects(
        self, t: TruthObjects, found: np.ndarray, delta: np.ndarray, tags: np.ndarray | None = None
    ) -> ak.Array:
        """The jagged reco collection (vector Momentum4D, ordered by reco E_T) of sampled ``found``/``delta``: the
        modelled responses added to the truth kinematics, the others copied, the mass (GeV) scaled by reco/truth E_T,
        and each of ``layout.tags`` as 0/1 (from :meth:`sample_tags`; needed when the layout has tags)."""
        if self.layout.tags and (tags is None or tags.shape != (len(t), len(self.layout.tags))):
            raise InputError(
                f"the layout's tags {list(self.layout.tags)} need tags of shape "
                f"({len(t)}, {len(self.layout.tags)}) from sample_tags"
            )
        kin = {f: t.kin[f].copy() for f in ("pt", "eta", "phi")}
        for j, f in enumerate(self.layout.fields):
            kin[f] = kin[f] + delta[:, j]
        kin["phi"] = _wrap(kin["phi"])
        keep = found & (kin["pt"] > self.layout.reco_pt_min)
        counts = np.bincount(t.event[keep], minlength=len(t.counts))
        cols = {f: kin[f][keep] for f in ("pt", "eta", "phi")}
        if "mass" in t.objects.fields:
            # the mass scales with E_T, as a calorimeter's energy scale scales the whole four-momentum (jets)
            mass = np.asarray(ak.to_numpy(ak.flatten(t.objects.mass)), dtype=np.float64)
            cols["mass"] = (mass * kin["pt"] / t.kin["pt"])[keep]
        else:
            cols["mass"] = np.zeros(int(keep.sum()))
        for j, name in enumerate(self.layout.tags):
            assert tags is not None
            cols[name] = tags[keep, j].astype(np.float64)
        objs = ak.unflatten(ak.zip(cols, with_name="Momentum4D"), counts)
        return objs[ak.argsort(objs.pt, axis=1, ascending=False, stable=True)]

    def apply(
        self,
        truth: ak.Array,
        *,
        seed: int | np.random.Generator = 0,
        collection: str | None = None,
        batch_size: int = 100_000,
    ) -> ak.Array:
        """Replace the detector on truth events: ``truth[collection]`` (default ``layout.truth``; any count per event)
        and ``truth[layout.pileup]``. Returns records with ``layout.reco`` (reconstructed objects, efficiency applied,
        ordered by reco E_T), ``layout.truth`` (the truth objects, by truth E_T) and ``layout.pileup``."""
        check_records(truth, "truth")
        rng = check_seed(seed)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        name = self.layout.truth if collection is None else collection
        for field in (name, self.layout.pileup):
            if field not in truth.fields:
                raise InputError(f"the truth events have no field {field!r} (fields: {truth.fields})")
        t = TruthObjects.from_events(truth[name], ak.to_numpy(truth[self.layout.pileup]), self.layout.dr_cap)
        uniforms = rng.random(len(t))
        noise = rng.standard_normal((len(t), self.response.noise_features)).astype(np.float32)
        found, delta = self.sample_flat(t, uniforms, noise, batch_size=batch_size)
        tags = self.sample_tags(t, found, rng.random((len(t), len(self.layout.tags))))
        return ak.zip(
            {
                self.layout.reco: self.reco_objects(t, found, delta, tags),
                self.layout.truth: t.objects,
                self.layout.pileup: t.mu_event,
            },
            depth_limit=1,
        )

    def add_reco(
        self,
        events: ak.Array,
        *,
        truth: str | None = None,
        out: str | None = None,
        seed: int | np.random.Generator = 0,
        batch_size: int = 100_000,
    ) -> ak.Array:
        """``events`` with one more field: a jagged collection ``out`` (default ``layout.reco``) of surrogate reco
        objects (vector Momentum4D: pt [GeV], eta, phi [rad], mass [GeV]; efficiency applied, ordered by reco E_T)
        of the truth collection ``truth`` (default ``layout.truth``) and ``layout.pileup``. Every other field is
        kept as it is. An ``out`` that ``events`` holds already is refused (:class:`InputError` naming it)."""
        check_records(events, "events")
        truth = self.layout.truth if truth is None else truth
        out = self.layout.reco if out is None else out
        for name, value in (("truth", truth), ("out", out)):
            if not isinstance(value, str) or not value:
                raise InputError(f"{name} must be a non-empty field name, got {describe(value)}")
        if out in events.fields:
            raise InputError(f"the events hold a field {out!r} already; name the new reco collection otherwise")
        generated = self.apply(events, seed=seed, collection=truth, batch_size=batch_size)
        return ak.with_field(events, generated[self.layout.reco], out)

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model directory atomically (JSON + safetensors; module docstring)."""
        path = check_path(path, "path")
        overwrite = check_bool(overwrite, "overwrite")
        with atomic_directory(path, overwrite=overwrite) as tmp:
            config = {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "mcsurrogate_version": __version__,
                "layout": self.layout.to_dict(),
                "scale": self.scale.to_dict(),
                "width_calibration": None if self.width_calibration is None else self.width_calibration.to_dict(),
                "context_bounds": {k: list(v) for k, v in self.context_bounds.items()},
                "metrics": self.metrics,
            }
            atomic_write_text(tmp / "object_response.json", json.dumps(config, indent=2, allow_nan=False))
            self.efficiency.save(tmp)
            self.response.save(tmp / "response")
            for name, tag_model in self.tag_models.items():
                (tmp / f"tag_{name}").mkdir()
                tag_model.save(tmp / f"tag_{name}")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> ObjectResponse:
        """Load a directory written by :meth:`save` (``device`` for both networks: ``auto``, ``cpu``, ``cuda``)."""
        root = check_path(path, "path")
        file = root / "object_response.json"
        if not file.is_file():
            raise ModelDirectoryError(f"{root} is not an object-response model directory (no object_response.json)")
        d = read_json(file)
        if d.get("format") != FORMAT:
            raise ModelDirectoryError(f"{file} was not written by mcsurrogate (format {d.get('format')!r})")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ModelDirectoryError(
                f"{file}: schema_version {d.get('schema_version')!r}; this mcsurrogate {__version__} reads "
                f"{SCHEMA_VERSION}"
            )
        try:
            layout = ObjectLayout.from_dict(d["layout"])
            scale = PullScale.from_dict(d["scale"])
            calibration = d.get("width_calibration")
            width_calibration = None if calibration is None else PullScale.from_dict(calibration)
        except (KeyError, TypeError, InputError) as exc:
            raise ModelDirectoryError(f"{file} is damaged ({exc})") from exc
        response = Surrogate.load(root / "response", device=device)
        if response.targets != layout.targets or response.conditions != layout.conditions:
            raise ModelDirectoryError(f"{root}/response does not model the layout's columns")
        return cls(
            layout,
            EfficiencyModel.load(root, device=device),
            response,
            scale,
            d.get("metrics", {}),
            d.get("context_bounds", {}),
            width_calibration,
            {name: EfficiencyModel.load(root / f"tag_{name}", device=device) for name in layout.tags},
        )


def _collections(events: ak.Array, layout: ObjectLayout) -> tuple[ak.Array, ak.Array, np.ndarray]:
    for name in (layout.truth, layout.reco, layout.pileup):
        if name not in events.fields:
            raise InputError(f"the events have no field {name!r} (fields: {events.fields})")
    for role, name in (("truth", layout.truth), ("reco", layout.reco)):
        if events[name].ndim != 2 or not events[name].fields:
            raise InputError(
                f"the {role} collection {name!r} must be a list of records (pt, eta, phi) per event, got type "
                f"{events[name].type.content}"
            )
    reco = events[layout.reco]
    missing = [f for f in ("eta", "phi", *layout.fields) if f not in reco.fields]
    if missing:
        raise InputError(f"the reco objects {layout.reco!r} lack field(s) {sorted(set(missing))}")
    return events[layout.truth], reco, np.asarray(ak.to_numpy(events[layout.pileup]), dtype=np.float64)


#: the event-context conditions clipped into their training range when sampling (:attr:`ObjectResponse.context_bounds`)
CONTEXT = ("n_objects", "dr_nearest", "n_previous", "previous_pull_pt", "previous_pull_eta", "previous_pull_phi")


def _quantile_bounds(values: np.ndarray, q: float = 0.001) -> list[float]:
    return [float(np.quantile(values, q)), float(np.quantile(values, 1 - q))]


def training_pairs(events: ak.Array, layout: ObjectLayout) -> tuple[TruthObjects, np.ndarray, np.ndarray, Matching]:
    """Truth objects matched to reco ones (ΔR, one-to-one): the truth objects (rank order), whether each has a reco
    partner, the responses Δ = reco − truth of those (GeV, radians; zeros elsewhere),
    and the matching."""
    t, found, partner, reco, matching = _matched(events, layout)
    return t, found, _responses(t, found, partner, reco, layout), matching


def _matched(events: ak.Array, layout: ObjectLayout) -> tuple[TruthObjects, np.ndarray, np.ndarray, ak.Array, Matching]:
    """The truth objects (rank order), whether each has a reco partner, the flat index of the partners of those in
    the reco collection, the reco collection and the matching."""
    truth, reco, mu = _collections(events, layout)
    matching = match_objects(truth, reco, max_dr=layout.max_dr)
    t = TruthObjects.from_events(truth, mu, layout.dr_cap)
    order = ak.argsort(truth.pt, axis=1, ascending=False, stable=True)
    local = np.asarray(ak.to_numpy(ak.flatten(matching.truth_index[order])), dtype=np.int64)
    found = local >= 0
    r_start = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(reco, axis=1)))[:-1]]).astype(np.int64)
    return t, found, r_start[t.event[found]] + local[found], reco, matching


def _responses(
    t: TruthObjects, found: np.ndarray, partner: np.ndarray, reco: ak.Array, layout: ObjectLayout
) -> np.ndarray:
    delta = np.zeros((len(t), len(layout.fields)))
    for j, f in enumerate(layout.fields):
        d = np.asarray(ak.to_numpy(ak.flatten(reco[f])), dtype=np.float64)[partner] - t.kin[f][found]
        delta[found, j] = _wrap(d) if f == "phi" else d
    return delta


def _tag_pairs(
    t: TruthObjects, found: np.ndarray, partner: np.ndarray, reco: ak.Array, layout: ObjectLayout
) -> tuple[np.ndarray, np.ndarray]:
    """The tags' training rows: the matched truth objects' :meth:`TruthObjects.tag_features` and their partners'
    tags (n_matched, len(layout.tags), bool), each checked to be 0/1 and not constant."""
    if not layout.tags:
        return np.zeros((int(found.sum()), 0)), np.zeros((int(found.sum()), 0), dtype=bool)
    x = t.tag_features(layout.tag_inputs)[found]
    y = np.zeros((len(x), len(layout.tags)), dtype=bool)
    for j, name in enumerate(layout.tags):
        if name not in reco.fields:
            raise InputError(
                f"the reco collection {layout.reco!r} has no field {name!r} (a tag of the layout; fields: {reco.fields})"
            )
        values = np.asarray(ak.to_numpy(ak.flatten(reco[name])), dtype=np.float64)[partner]
        if not np.isin(values, (0.0, 1.0)).all():
            raise InputError(f"the tag {name!r} of {layout.reco!r} must be 0/1 (or bool) per object")
        if not len(values) or values.min() == values.max():
            raise InputError(f"the tag {name!r} is the same for every matched object ({len(values)}): nothing to learn")
        y[:, j] = values > 0.5
    return x, y


def _fit_tags(
    x: np.ndarray,
    y: np.ndarray,
    layout: ObjectLayout,
    config: EfficiencyConfig | Mapping[str, Any] | None,
    seed: int,
) -> dict[str, EfficiencyModel]:
    """One classifier p(tag | truth E_T, η, μ, ``layout.tag_inputs``) per tag, on the rows of :func:`_tag_pairs`."""
    if not layout.tags:
        return {}
    cfg = (
        config
        if isinstance(config, EfficiencyConfig)
        else EfficiencyConfig.from_dict({"seed": seed} | dict(config or {}))
    )
    names = ["pt", "eta", "mu", *layout.tag_inputs]
    linear: Transform = "linear"
    transforms: list[Transform] = ["log", linear, linear, *[linear] * len(layout.tag_inputs)]
    return {
        name: EfficiencyModel(names, transforms, cfg).fit(x, y[:, j], label=f"tag {name}")
        for j, name in enumerate(layout.tags)
    }


def _table(
    t: TruthObjects, found: np.ndarray, delta: np.ndarray, scale: PullScale, layout: ObjectLayout
) -> dict[str, np.ndarray]:
    """Condition and target columns of every truth object (the rows of ``found`` ones are the training pairs)."""
    pulls = delta / scale.sigma(t.kin["pt"], t.kin["eta"], t.mu)
    n_prev, mean_prev = _previous(t.event, found, pulls, len(t.counts))
    table = _conditions(t, n_prev, mean_prev, layout)
    return table | {name: delta[:, j] for j, name in enumerate(layout.targets)}


def _conditions(
    t: TruthObjects, n_prev: np.ndarray, mean_prev: np.ndarray, layout: ObjectLayout
) -> dict[str, np.ndarray]:
    cols = {
        "pt": t.kin["pt"],
        "eta": layout.eta_condition(t.kin["eta"]),
        "mu": t.mu,
        "n_objects": t.n_objects,
        "dr_nearest": t.dr_nearest,
        "n_previous": n_prev,
    }
    return cols | {f"previous_pull_{f}": mean_prev[:, j] for j, f in enumerate(layout.fields)}
