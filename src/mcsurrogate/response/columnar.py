"""Surrogate detector response inside columnar analyses: plain awkward arrays, coffea processors, dask-awkward.

:func:`add_surrogate_objects` takes events with a truth collection (e.g. ``GenPhoton``: pt in GeV, eta, phi) and
pile-up (e.g. ``Pileup.nTrueInt``) and returns them with a new collection (e.g. ``SmearedPhoton``) of surrogate
reco objects, ``reco = truth + Δ`` with Δ drawn from a response model (:func:`~.surrogate.train_response`). The
same call works on

* a plain ``ak.Array`` (any record array with those fields), or coffea NanoEvents in eager mode;
* a ``dask_awkward.Array`` (coffea's default NanoEvents, or ``dak.from_parquet``): it becomes one
  ``map_partitions`` task per partition, so it runs unchanged inside a coffea processor's ``process(events)``.

Reproducibility: when the events carry event identifiers (NanoAOD's ``run``, ``luminosityBlock``, ``event``) the
noise of each event is a counter-based hash of (seed, identifiers, noise index) mapped through Φ⁻¹, so an event
gets the same reco objects whatever partition or chunk it is processed in. Without identifiers, each chunk is
seeded from (seed, a digest of its truth p_T values): reproducible for a fixed partitioning.

Two kinds of model:

* a two-photon response :class:`~mcsurrogate.surrogate.Surrogate` (paper A): objects are taken in decreasing p_T;
  events with fewer than the model's number of objects get an empty list;
* an :class:`~.objects.ObjectResponse` (issue 31): every truth object of the event goes through the learned
  efficiency and, if kept, the per-object response; the new collection holds any number of objects (ordered by reco
  p_T). The noise of an object is keyed to (seed, event identifiers, its rank in truth p_T), so the result does not
  depend on partitioning either. For NanoAOD, select the truth objects first, e.g.
  ``events["GenPhoton"] = events.GenPart[(events.GenPart.pdgId == 22) & (events.GenPart.status == 1)]``.

The new objects are vector ``Momentum4D`` records (pt, eta, phi, mass). Models given as paths are loaded once per
process on ``device`` (``"auto"``: a GPU when one is present).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import vector
from scipy.special import ndtri

from ..errors import InputError
from ..surrogate import Surrogate
from .objects import ObjectResponse, TruthObjects
from .surrogate import DEFAULT_LAYOUT, ResponseLayout

__all__ = ["add_surrogate_objects", "event_noise", "event_uniforms", "load_cached_surrogate", "pair_mass"]

Model = Surrogate | ObjectResponse | str | os.PathLike[str]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def event_uniforms(keys: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Uniforms in (0, 1), shape (n, ``dims``), float64, a pure function of (seed, each row of ``keys``, column).

    ``keys`` is an (n, k) integer array identifying events (e.g. run, lumi block, event number; for objects, their
    rank too). SplitMix64 mixes them into 53-bit uniforms.
    """
    keys = np.atleast_2d(np.asarray(keys)).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _splitmix64(np.full(len(keys), np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
        for j in range(keys.shape[1]):
            h = _splitmix64(h ^ keys[:, j])
        cols = [_splitmix64(h ^ np.uint64(d + 1) * _GOLDEN) for d in range(dims)]
    bits = np.stack(cols, axis=1) >> np.uint64(11) if cols else np.zeros((len(keys), 0), np.uint64)
    return (bits.astype(np.float64) + 0.5) / float(1 << 53)


def event_noise(keys: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Standard-normal noise (n, ``dims``), float32: :func:`event_uniforms` mapped through Φ⁻¹."""
    return ndtri(event_uniforms(keys, dims, seed)).astype(np.float32)


def _field(events: ak.Array, path: str) -> ak.Array:
    """``events[path]`` where ``path`` is ``"a.b"`` (nested) or a top-level name; clear error otherwise."""
    current = events
    for part in path.split("."):
        if part not in ak.fields(current):
            raise InputError(f"the events have no field {path!r} (at {part!r}; fields there: {ak.fields(current)})")
        current = current[part]
    return current


@functools.lru_cache(maxsize=4)
def load_cached_surrogate(path: str, device: str = "cpu") -> Surrogate:
    """The Surrogate saved at ``path`` on ``device``, loaded once per process and kept (the four most recent): what a
    dask worker or coffea processor calls per partition (:mod:`mcsurrogate.distributed` keeps the CPU default)."""
    return Surrogate.load(path, device=device)


@functools.lru_cache(maxsize=4)
def _load_objects_cached(path: str, device: str) -> ObjectResponse:
    return ObjectResponse.load(path, device=device)


def _model(model: Model, device: str = "auto") -> Surrogate | ObjectResponse:
    if isinstance(model, (Surrogate, ObjectResponse)):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be a Surrogate, an ObjectResponse or the path of a saved one, got {type(model)}")
    path = Path(model)
    if (path / "object_response.json").is_file():
        return _load_objects_cached(str(path), str(device))
    return load_cached_surrogate(str(path), str(device))


def _eager_objects(
    events: ak.Array, model: ObjectResponse, truth: str, pileup: str, out: str, seed: int, event_id: Sequence[str]
) -> ak.Array:
    """Every truth object through the learned efficiency and per-object response; noise keyed per object."""
    objects = _field(events, truth)
    for f in ("pt", "eta", "phi"):
        if f not in ak.fields(objects):
            raise InputError(f"the truth collection {truth!r} has no field {f!r} (fields: {ak.fields(objects)})")
    mu = ak.to_numpy(_field(events, pileup)).astype(np.float64)
    t = TruthObjects.from_events(objects, mu, model.layout.dr_cap)
    n_noise, n_tags = model.response.noise_features, len(model.layout.tags)
    dims = 1 + n_noise + n_tags  # reconstruction, response noise, tags: a model without tags keeps its keyed noise
    if event_id and all(name in ak.fields(events) for name in event_id):
        ids = [ak.to_numpy(events[name]).astype(np.int64).view(np.uint64)[t.event] for name in event_id]
        u = event_uniforms(np.stack([*ids, t.rank.astype(np.uint64)], axis=1), dims, seed)
    else:
        digest = hashlib.blake2b(np.ascontiguousarray(t.kin["pt"]).tobytes(), digest_size=8).digest()
        u = np.random.default_rng([seed, int.from_bytes(digest, "little")]).random((len(t), dims))
    found, delta = model.sample_flat(t, u[:, 0], ndtri(u[:, 1 : 1 + n_noise]).astype(np.float32))
    tags = model.sample_tags(t, found, u[:, 1 + n_noise :])
    result = ak.with_field(events, model.reco_objects(t, found, delta, tags), out)
    return ak.Array(result, behavior={**vector.backends.awkward.behavior, **(events.behavior or {})})


def _eager(
    events: ak.Array,
    model: Model,
    truth: str,
    pileup: str,
    out: str,
    seed: int,
    event_id: Sequence[str],
    layout: ResponseLayout,
    device: str = "auto",
) -> ak.Array:
    surrogate = _model(model, device)
    if isinstance(surrogate, ObjectResponse):
        return _eager_objects(events, surrogate, truth, pileup, out, seed, event_id)
    objects = _field(events, truth)
    for f in ("pt", "eta", "phi"):
        if f not in ak.fields(objects):
            raise InputError(f"the truth collection {truth!r} has no field {f!r} (fields: {ak.fields(objects)})")
    mu = ak.to_numpy(_field(events, pileup)).astype(np.float64)
    objects = objects[ak.argsort(objects.pt, axis=1, ascending=False)]
    n = layout.n
    keep = ak.to_numpy(ak.num(objects, axis=1) >= n)
    sel = objects[keep][:, :n]
    columns = {}
    for i in range(n):
        for f in layout.fields:
            columns[f"{layout.prefix}{i + 1}_{f}"] = ak.to_numpy(sel[:, i][f]).astype(np.float64)
    columns[layout.pileup] = mu[keep]
    n_sel = int(keep.sum())
    reco = {f: np.zeros((n_sel, n)) for f in layout.fields}
    if n_sel:
        missing = [c for c in surrogate.conditions if c not in columns]
        if missing:
            raise InputError(f"the response model needs conditions {missing} that {truth!r}/{pileup!r} do not give")
        bad = [c for c in surrogate.conditions if not np.isfinite(columns[c]).all()]
        if bad:
            raise InputError(f"truth columns {bad} have NaN/inf values")
        noise = _noise(events, keep, columns, surrogate.noise_features, seed, event_id)
        conditions = np.column_stack([columns[c] for c in surrogate.conditions])
        delta = surrogate.sample_array(conditions=conditions, noise=noise, progress=False)
        truth_blocks = {
            f: np.column_stack([columns[f"{layout.prefix}{i + 1}_{f}"] for i in range(n)]) for f in layout.fields
        }
        reco = layout.reco(truth_blocks, delta, surrogate.targets)
    counts = np.where(keep, n, 0)
    flat = {f: reco[f].reshape(-1) for f in ("pt", "eta", "phi")}
    flat["mass"] = np.zeros(n_sel * n)
    objs = ak.unflatten(ak.zip(flat, with_name="Momentum4D"), counts)
    result = ak.with_field(events, objs, out)
    return ak.Array(result, behavior={**vector.backends.awkward.behavior, **(events.behavior or {})})


def _partition(
    events: ak.Array,
    model: Model,
    truth: str,
    pileup: str,
    out: str,
    seed: int,
    event_id: Sequence[str],
    layout: ResponseLayout,
    device: str = "auto",
) -> ak.Array:
    """One dask partition. On typetracer input (dask-awkward's column optimisation) it touches the columns the
    real call reads and returns the output's type without running the model."""
    if ak.backend(events) != "typetracer":
        return _eager(events, model, truth, pileup, out, seed, event_id, layout, device)
    objects = _field(events, truth)
    surrogate = _model(model, device)
    read = (
        ("pt", "eta", "phi", "mass", *surrogate.layout.tag_inputs)
        if isinstance(surrogate, ObjectResponse)
        else layout.fields
    )
    for f in read:
        if f in ak.fields(objects):
            ak.typetracer.touch_data(objects[f])
    ak.typetracer.touch_data(_field(events, pileup))
    for name in event_id:
        if name in ak.fields(events):
            ak.typetracer.touch_data(events[name])
    empty = ak.Array(events.layout.form.length_zero_array(), behavior=events.behavior)
    objs = _eager(empty, model, truth, pileup, out, seed, event_id, layout, device)[out]
    result = ak.with_field(events, ak.Array(objs.layout.to_typetracer(forget_length=True)), out)
    return ak.Array(result, behavior={**vector.backends.awkward.behavior, **(events.behavior or {})})


def _noise(
    events: ak.Array, keep: np.ndarray, columns: dict[str, np.ndarray], dims: int, seed: int, event_id: Sequence[str]
) -> np.ndarray:
    if event_id and all(name in ak.fields(events) for name in event_id):
        keys = np.stack([ak.to_numpy(events[name]).astype(np.int64).view(np.uint64)[keep] for name in event_id], axis=1)
        return event_noise(keys, dims, seed)
    digest = hashlib.blake2b(np.ascontiguousarray(columns[next(iter(columns))]).tobytes(), digest_size=8).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
    return rng.standard_normal((int(keep.sum()), dims), dtype=np.float32)


def add_surrogate_objects(
    events: Any,
    model: Model,
    *,
    truth: str = "GenPhoton",
    pileup: str = "Pileup.nTrueInt",
    out: str = "SmearedPhoton",
    seed: int = 0,
    event_id: Sequence[str] = ("run", "luminosityBlock", "event"),
    layout: ResponseLayout = DEFAULT_LAYOUT,
    device: str = "auto",
) -> Any:
    """Return ``events`` with a new collection ``out`` of surrogate reco objects (see the module docstring).

    ``model`` is a two-photon response surrogate, an :class:`~.objects.ObjectResponse` (any number of objects,
    efficiency applied), or the path of either's saved directory (loaded once per process on ``device``, which is
    what dask workers need; ``"auto"`` takes a GPU when there is one). ``truth`` and ``pileup`` name fields, nested
    with dots (``"Pileup.nTrueInt"``). ``layout`` is the two-photon model's (ignored for an ObjectResponse). Works on
    awkward arrays and, lazily, on dask-awkward arrays.
    """
    if "dask_awkward" in sys.modules:
        import dask_awkward as dak

        if isinstance(events, dak.Array):
            meta = _partition(events._meta, model, truth, pileup, out, seed, tuple(event_id), layout, device)
            return dak.map_partitions(
                _partition,
                events,
                model,
                truth,
                pileup,
                out,
                seed,
                tuple(event_id),
                layout,
                device,
                meta=meta,
                label="mcsurrogate-response",
            )
    return _eager(events, model, truth, pileup, out, seed, event_id, layout, device)


def _pair_mass(objects: ak.Array) -> ak.Array:
    if ak.backend(objects) == "typetracer":
        for f in ("pt", "eta", "phi", "mass"):
            ak.typetracer.touch_data(objects[f])
        empty = _pair_mass(ak.Array(objects.layout.form.length_zero_array()))
        return ak.Array(empty.layout.to_typetracer(forget_length=True))
    two = objects[ak.num(objects, axis=1) >= 2]
    first = ak.zip(
        {f: two[:, 0][f] for f in ("pt", "eta", "phi", "mass")},
        with_name="Momentum4D",
        behavior=vector.backends.awkward.behavior,
    )
    second = ak.zip(
        {f: two[:, 1][f] for f in ("pt", "eta", "phi", "mass")},
        with_name="Momentum4D",
        behavior=vector.backends.awkward.behavior,
    )
    return (first + second).mass


def pair_mass(objects: Any) -> Any:
    """Invariant mass (GeV) of the two leading objects, for events with at least two (awkward or dask-awkward)."""
    if "dask_awkward" in sys.modules:
        import dask_awkward as dak

        if isinstance(objects, dak.Array):
            return dak.map_partitions(
                _pair_mass, objects, meta=_pair_mass(objects._meta), label="mcsurrogate-pair-mass"
            )
    return _pair_mass(objects)
