"""Event records (awkward, vector behaviours) to and from float64 feature matrices.

A flow sees a matrix; physicists see events. This module goes both ways:

* :class:`ObjectSlots` flattens a jagged collection (``photons``: ``var * {pt, eta, phi}``) into fixed
  columns ``photon1_pt``, ``photon1_eta`` … (1 = leading), and :func:`to_objects` turns such columns
  back into a collection of vector ``Momentum4D`` records;
* :class:`DerivedObservable` describes an observable computed with vector (``m_gg``: the mass of the
  leading photon pair) in JSON;
* :class:`FeatureSpec` says which columns are targets and which conditions, and produces the matrices.

Events with too few objects are dropped and counted in a :class:`FlattenReport` (or refused with
``too_few_objects="raise"``), never dropped silently. Everything is float64: vector's mass of float32
massless photons goes negative after arithmetic. Units: GeV and radians.

>>> import awkward as ak
>>> events = ak.Array([{"photons": [{"pt": 60.0, "eta": 0.5, "phi": 0.0}, {"pt": 50.0, "eta": -0.5, "phi": 3.0}]}])
>>> slots = ObjectSlots("photons", 2)
>>> flat, dropped = flatten_objects(events, slots)
>>> flat.fields[:3], dropped
(['photon1_pt', 'photon1_eta', 'photon1_phi'], 0)
>>> photons = to_objects(flat, slots)
>>> round(float((photons[:, 0] + photons[:, 1]).mass[0]), 3)
123.282
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import awkward as ak
import numpy as np
import vector

from .arguments import check_columns, describe
from .errors import InputError

vector.register_awkward()

__all__ = [
    "DerivedObservable",
    "FeatureSpec",
    "FlattenReport",
    "ObjectSlots",
    "check_finite",
    "feature_matrix",
    "flatten_objects",
    "from_matrix",
    "is_numeric_type",
    "numeric_fields",
    "object_blocks",
    "objects_from_blocks",
    "to_matrix",
    "to_objects",
    "with_objects",
]

DerivedKind = Literal["pair_mass", "pair_pt", "pair_eta", "pair_rapidity", "delta_r", "delta_phi"]
TooFew = Literal["drop", "raise"]
_KINDS: tuple[str, ...] = get_args(DerivedKind)
_TOO_FEW: tuple[str, ...] = get_args(TooFew)
_MOMENTUM = ("pt", "eta", "phi")


def _from_dict(cls: type, data: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    """Check ``data``'s keys against ``cls``'s fields; unknown or missing keys raise :class:`InputError`."""
    if not isinstance(data, Mapping):
        raise InputError(f"{cls.__name__}.from_dict takes a mapping, got {type(data).__name__}")
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise InputError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {valid}")
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(f"{cls.__name__}: missing key(s) {missing}")
    return dict(data)


def _collection(events: ak.Array, name: str, what: str) -> ak.Array:
    """``events[name]``, checked to be a list of records per event."""
    if name not in events.fields:
        raise InputError(f"{what}: the events have no collection {name!r}; fields present: {events.fields}")
    coll = events[name]
    t = coll.type.content
    while isinstance(t, ak.types.OptionType):
        t = t.content
    inner = t.content if isinstance(t, (ak.types.ListType, ak.types.RegularType)) else None
    while isinstance(inner, ak.types.OptionType):
        inner = inner.content
    if not isinstance(inner, ak.types.RecordType):
        raise InputError(f"{what}: field {name!r} has type {t}, not a list of records per event")
    return coll


def _require_fields(coll: ak.Array, name: str, needed: Sequence[str], what: str) -> None:
    missing = [f for f in needed if f not in coll.fields]
    if missing:
        raise InputError(f"{what}: the {name!r} records lack field(s) {missing}; fields present: {coll.fields}")


def _as_float64(arr: ak.Array) -> ak.Array:
    return ak.values_astype(arr, np.float64)


# -- object slots --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectSlots:
    """Flatten the first ``n`` objects of a jagged ``collection`` into columns ``<prefix><i>_<field>``.

    Slot 1 is the first object as stored (the leading one when the collection is ordered), or the one with the
    largest ``sort_by`` when that is given. ``prefix`` defaults to the collection with a trailing ``s`` removed.

    >>> ObjectSlots("photons", 2).columns()
    ['photon1_pt', 'photon1_eta', 'photon1_phi', 'photon2_pt', 'photon2_eta', 'photon2_phi']
    """

    collection: str
    n: int
    fields: tuple[str, ...] = _MOMENTUM
    prefix: str | None = None
    sort_by: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.collection, str) or not self.collection:
            raise InputError(f"ObjectSlots.collection must be a non-empty field name, got {self.collection!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise InputError(f"ObjectSlots.n must be a positive number of objects, got {self.n!r}")
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)
        if not fields or len(set(fields)) != len(fields) or not all(isinstance(f, str) and f for f in fields):
            raise InputError(f"ObjectSlots.fields must be distinct, non-empty field names, got {self.fields!r}")
        for attr in ("prefix", "sort_by"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or not value):
                raise InputError(f"ObjectSlots.{attr} must be a non-empty string or None, got {value!r}")
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "n", int(self.n))

    @property
    def column_prefix(self) -> str:
        """The prefix of the columns (``photon`` for ``photons``)."""
        if self.prefix is not None:
            return self.prefix
        return self.collection[:-1] if self.collection.endswith("s") and len(self.collection) > 1 else self.collection

    def column(self, slot: int, field_name: str) -> str:
        """The column of ``field_name`` in 1-based ``slot`` (``photon1_pt``)."""
        return f"{self.column_prefix}{slot}_{field_name}"

    def columns(self) -> list[str]:
        """All columns, slot by slot: leading object first."""
        return [self.column(i, f) for i in range(1, self.n + 1) for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "n": self.n,
            "fields": list(self.fields),
            "prefix": self.prefix,
            "sort_by": self.sort_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectSlots:
        d = _from_dict(cls, data, ("collection", "n"))
        if "fields" in d:
            d["fields"] = tuple(d["fields"])
        return cls(**d)


def _enough(events: ak.Array, requirements: Mapping[str, int], what: str) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of events with at least ``requirements[collection]`` objects in each collection, and drops per collection."""
    keep = np.ones(len(events), dtype=bool)
    dropped: dict[str, int] = {}
    for name, need in requirements.items():
        counts = ak.to_numpy(ak.fill_none(ak.num(_collection(events, name, what), axis=1), 0))
        ok = counts >= need
        if not ok.all():
            dropped[name] = int((~ok).sum())
        keep &= ok
    return keep, dropped


def _too_few_message(dropped: Mapping[str, int], requirements: Mapping[str, int], n_bad: int, n: int) -> str:
    parts = ", ".join(f"{dropped[c]} with fewer than {requirements[c]} {c}" for c in dropped)
    return (
        f"{n_bad} of {n} events have too few objects ({parts}); select them first or use "
        "too_few_objects='drop' to drop them (the count is reported)"
    )


def _slot_blocks(coll: ak.Array, slots: ObjectSlots, what: str) -> dict[str, np.ndarray]:
    """Float64 ``(events, slots.n)`` arrays of the slot fields, by field, for a collection where every event has
    at least ``slots.n`` objects."""
    _require_fields(coll, slots.collection, list(slots.fields) + ([slots.sort_by] if slots.sort_by else []), what)
    if slots.sort_by is not None:
        coll = coll[ak.argsort(coll[slots.sort_by], axis=1, ascending=False, stable=True)]
    by_field: dict[str, np.ndarray] = {}
    for f in slots.fields:
        block = _leading_block(coll[f], slots.n)
        if block is None:  # the general path: one object slot at a time
            rows = []
            for i in range(slots.n):
                values = coll[:, i][f]
                if not is_numeric_type(values.type.content):
                    raise InputError(
                        f"{what}: field {slots.collection}.{f} has type {values.type.content}, not numbers"
                    )
                rows.append(ak.to_numpy(_as_float64(values)).astype(np.float64, copy=False))
            block = np.stack(rows) if rows else np.zeros((0, len(coll)))
        by_field[f] = block.T  # each slot's column stays contiguous
    return by_field


def _leading_block(values: ak.Array, n: int) -> np.ndarray | None:
    """The first ``n`` numbers of each list as a float64 array (n, len(values)), read straight from the lists'
    starts when the layout is a list of numbers, possibly behind an index (a selection of events), every list
    holding ≥ n; ``None`` for any other layout (options, nested contents), which the caller reads the general way."""
    layout, index = _without_index(ak.to_layout(values))
    if not isinstance(layout, (ak.contents.ListOffsetArray, ak.contents.ListArray)):
        return None
    data = _plain_numbers(layout.content)
    if data is None:
        return None
    starts = np.asarray(layout.starts) if index is None else np.asarray(layout.starts)[index]
    block: np.ndarray = data[np.arange(n)[:, None] + starts[None, :]].astype(np.float64, copy=False)
    return block


def _without_index(layout: ak.contents.Content) -> tuple[ak.contents.Content, np.ndarray | None]:
    """An :class:`~awkward.contents.IndexedArray` (what ``events[mask]`` of records gives) as its content and the
    rows to take; any other layout as itself and ``None``."""
    if isinstance(layout, ak.contents.IndexedArray):
        return layout.content, np.asarray(layout.index)
    return layout, None


def _plain_numbers(content: ak.contents.Content) -> np.ndarray | None:
    """The numpy data of a one-dimensional array of plain numbers (bool, int, float; no options, strings or
    parameters), else ``None``."""
    if not isinstance(content, ak.contents.NumpyArray) or content.parameter("__array__") is not None:
        return None
    data = np.asarray(content.data)
    return data if data.ndim == 1 and data.dtype.kind in "biuf" else None


def object_blocks(
    events: ak.Array, slots: ObjectSlots, *, too_few: TooFew = "drop"
) -> tuple[dict[str, np.ndarray], int]:
    """The slot fields as float64 numpy arrays of shape ``(events, slots.n)``, by field, for the events with at least
    ``slots.n`` objects (the numpy form of :func:`flatten_objects`; :func:`objects_from_blocks` is its inverse).

    Returns ``(blocks, n_dropped)``; ``too_few="raise"`` raises :class:`InputError` with the count instead of dropping.
    """
    if too_few not in _TOO_FEW:
        raise InputError(f"too_few must be one of {list(_TOO_FEW)}, got {too_few!r}")
    what = f"ObjectSlots({slots.collection!r}, {slots.n})"
    keep, dropped = _enough(events, {slots.collection: slots.n}, what)
    n_bad = int((~keep).sum())
    if n_bad and too_few == "raise":
        raise InputError(f"{what}: " + _too_few_message(dropped, {slots.collection: slots.n}, n_bad, len(events)))
    coll = _collection(events, slots.collection, what)
    if n_bad:
        coll = coll[keep]
    return _slot_blocks(coll, slots, what), n_bad


def flatten_objects(events: ak.Array, slots: ObjectSlots, *, too_few: TooFew = "drop") -> tuple[ak.Array, int]:
    """Flat records of the slot columns (float64) for the events with at least ``slots.n`` objects.

    Returns ``(flat, n_dropped)``; ``too_few="raise"`` raises :class:`InputError` with the count instead of dropping.
    """
    blocks, n_bad = object_blocks(events, slots, too_few=too_few)
    columns = {slots.column(i + 1, f): blocks[f][:, i] for i in range(slots.n) for f in slots.fields}
    return ak.zip(columns, depth_limit=1), n_bad


# -- derived observables -------------------------------------------------------------------------------
def _four_vectors(coll: ak.Array, name: str, what: str) -> ak.Array:
    """Float64 ``Momentum4D`` records of a collection with ``pt``, ``eta``, ``phi`` and optional ``mass`` (else 0)."""
    _require_fields(coll, name, _MOMENTUM, what)
    parts = {f: _as_float64(coll[f]) for f in _MOMENTUM}
    parts["mass"] = _as_float64(coll["mass"]) if "mass" in coll.fields else ak.zeros_like(parts["pt"])
    return ak.zip(parts, with_name="Momentum4D")


@dataclass(frozen=True)
class DerivedObservable:
    """An observable of two objects of a collection, computed with vector (GeV, radians).

    ``kind`` is one of ``pair_mass``, ``pair_pt``, ``pair_eta``, ``pair_rapidity`` (of the pair's sum),
    ``delta_r`` or ``delta_phi`` (signed, in [-π, π]); ``indices`` are 0-based positions in the collection as
    stored. Objects without a ``mass`` field are massless.

    >>> DerivedObservable("m_gg", "pair_mass", "photons").to_dict()["indices"]
    [0, 1]
    """

    name: str
    kind: DerivedKind
    collection: str
    indices: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"DerivedObservable.name must be a non-empty column name, got {self.name!r}")
        if self.kind not in _KINDS:
            raise InputError(f"DerivedObservable {self.name!r}: unknown kind {self.kind!r}; kinds: {list(_KINDS)}")
        if not isinstance(self.collection, str) or not self.collection:
            raise InputError(
                f"DerivedObservable {self.name!r}: collection must be a non-empty field name, got {self.collection!r}"
            )
        idx = tuple(self.indices) if isinstance(self.indices, (Sequence, np.ndarray)) else ()
        if (
            len(idx) != 2
            or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0 for i in idx)
            or idx[0] == idx[1]
        ):
            raise InputError(
                f"DerivedObservable {self.name!r}: indices must be two distinct non-negative ints, got {self.indices!r}"
            )
        object.__setattr__(self, "indices", (int(idx[0]), int(idx[1])))

    @property
    def n_objects(self) -> int:
        """How many objects an event needs for this observable."""
        return max(self.indices) + 1

    def compute(self, events: ak.Array) -> np.ndarray:
        """The observable per event, float64, shape ``(len(events),)``.

        Every event must hold at least :attr:`n_objects` objects (:class:`InputError` with the count otherwise;
        :class:`FeatureSpec` drops and reports such events).
        """
        what = f"DerivedObservable {self.name!r}"
        coll = _collection(events, self.collection, what)
        keep, _ = _enough(events, {self.collection: self.n_objects}, what)
        if not keep.all():
            raise InputError(
                f"{what}: {int((~keep).sum())} of {len(events)} events have fewer than {self.n_objects} "
                f"{self.collection}; select them first (FeatureSpec drops and counts them)"
            )
        p4 = _four_vectors(coll, self.collection, what)
        a, b = p4[:, self.indices[0]], p4[:, self.indices[1]]
        if self.kind == "delta_r":
            value = a.deltaR(b)
        elif self.kind == "delta_phi":
            value = a.deltaphi(b)
        else:
            pair = a + b
            value = {"pair_mass": pair.mass, "pair_pt": pair.pt, "pair_eta": pair.eta, "pair_rapidity": pair.rapidity}[
                self.kind
            ]
        return np.asarray(ak.to_numpy(value), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "collection": self.collection, "indices": list(self.indices)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DerivedObservable:
        d = _from_dict(cls, data, ("name", "kind", "collection"))
        if "indices" in d:
            d["indices"] = tuple(d["indices"])
        return cls(**d)


# -- feature specification -----------------------------------------------------------------------------
@dataclass
class FlattenReport:
    """What :meth:`FeatureSpec.flatten` / :meth:`FeatureSpec.matrices` kept and dropped, and why."""

    n_input: int
    n_kept: int
    dropped_too_few_objects: int = 0
    dropped_nonfinite: dict[str, int] = field(default_factory=dict)
    #: the kept rows as indices into the events given, in order (not serialised)
    kept_rows: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_input": self.n_input,
            "n_kept": self.n_kept,
            "dropped_too_few_objects": self.dropped_too_few_objects,
            "dropped_nonfinite": dict(self.dropped_nonfinite),
        }


@dataclass
class FeatureSpec:
    """Which columns a model learns (``targets``) and conditions on (``conditions``), and how to get them.

    Columns are flat fields of the events, slot columns of ``objects`` (``photon1_pt``) or names of ``derived``
    observables (``m_gg``). Events lacking the objects that the columns need are dropped and counted
    (``too_few_objects="drop"``) or refused (``"raise"``).

    >>> spec = FeatureSpec(targets=["photon1_pt", "photon2_pt"], conditions=["m_gg"],
    ...                    objects=[ObjectSlots("photons", 2)],
    ...                    derived=[DerivedObservable("m_gg", "pair_mass", "photons")])
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    """

    targets: list[str]
    conditions: list[str] = field(default_factory=list)
    objects: list[ObjectSlots] = field(default_factory=list)
    derived: list[DerivedObservable] = field(default_factory=list)
    too_few_objects: TooFew = "drop"

    def __post_init__(self) -> None:
        if self.conditions is None:
            self.conditions = []
        self.targets = check_columns(self.targets, "FeatureSpec.targets")
        self.conditions = check_columns(self.conditions, "FeatureSpec.conditions", allow_empty=True)
        for attr in ("objects", "derived"):
            value = getattr(self, attr)
            if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
                raise InputError(f"FeatureSpec.{attr} must be a list, got {describe(value)}")
        self.objects = [o if isinstance(o, ObjectSlots) else ObjectSlots.from_dict(o) for o in self.objects]
        self.derived = [d if isinstance(d, DerivedObservable) else DerivedObservable.from_dict(d) for d in self.derived]
        if self.too_few_objects not in _TOO_FEW:
            raise InputError(
                f"FeatureSpec.too_few_objects must be one of {list(_TOO_FEW)}, got {self.too_few_objects!r}"
            )
        produced = [c for o in self.objects for c in o.columns()] + [d.name for d in self.derived]
        dup = sorted({c for c in produced if produced.count(c) > 1})
        if dup:
            raise InputError(f"FeatureSpec: column(s) {dup} are produced by more than one object slot or observable")

    @property
    def columns(self) -> list[str]:
        """Targets then conditions: the columns of the model, in its order."""
        return self.targets + self.conditions

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "conditions": list(self.conditions),
            "objects": [o.to_dict() for o in self.objects],
            "derived": [d.to_dict() for d in self.derived],
            "too_few_objects": self.too_few_objects,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        d = _from_dict(cls, data, ("targets",))
        d["objects"] = [ObjectSlots.from_dict(o) for o in d.get("objects", [])]
        d["derived"] = [DerivedObservable.from_dict(o) for o in d.get("derived", [])]
        return cls(**d)

    def _active(self, events: ak.Array) -> tuple[list[ObjectSlots], list[DerivedObservable]]:
        """Slots and observables to compute: those whose collection the events hold, and any a column needs."""
        needed = set(self.columns)
        present = set(events.fields)
        objects = [o for o in self.objects if o.collection in present or needed & set(o.columns())]
        derived = [d for d in self.derived if d.collection in present or d.name in needed]
        return objects, derived

    def flatten(self, events: ak.Array) -> tuple[ak.Array, FlattenReport]:
        """Flat float64 records of the targets and conditions (then any other slot or derived columns).

        Events with too few objects for the slots or observables are dropped and counted in the report
        (or raise, with ``too_few_objects="raise"``). Non-finite values are left for :meth:`matrices` /
        :func:`check_finite` to handle.
        """
        if not isinstance(events, ak.Array) or not isinstance(events.type.content, ak.types.RecordType):
            shown = events.type if isinstance(events, ak.Array) else type(events).__name__
            raise InputError(f"events must be an awkward record array (one record per event), got {shown}")
        objects, derived = self._active(events)
        produced = [c for o in objects for c in o.columns()] + [d.name for d in derived]
        missing = [c for c in self.columns if c not in produced and c not in events.fields]
        if missing:
            raise InputError(
                f"missing column(s) {missing}; the events have {events.fields}"
                + (f" and the spec produces {produced}" if produced else "")
            )
        requirements: dict[str, int] = {}
        for o in objects:
            requirements[o.collection] = max(requirements.get(o.collection, 0), o.n)
        for d in derived:
            requirements[d.collection] = max(requirements.get(d.collection, 0), d.n_objects)
        keep, dropped = _enough(events, requirements, "FeatureSpec")
        n_bad = int((~keep).sum())
        if n_bad and self.too_few_objects == "raise":
            raise InputError(_too_few_message(dropped, requirements, n_bad, len(events)))
        kept = events[keep] if n_bad else events
        values: dict[str, Any] = {}
        for o in objects:
            blocks = _slot_blocks(_collection(kept, o.collection, "FeatureSpec"), o, f"ObjectSlots({o.collection!r})")
            values.update({o.column(i + 1, f): blocks[f][:, i] for i in range(o.n) for f in o.fields})
        for d in derived:
            values[d.name] = d.compute(kept)
        order = self.columns + [c for c in produced if c not in self.columns]
        columns = {c: values[c] if c in values else _promoted(kept[c]) for c in order}
        flat = ak.zip(columns, depth_limit=1)
        report = FlattenReport(
            n_input=len(events), n_kept=len(kept), dropped_too_few_objects=n_bad, kept_rows=np.flatnonzero(keep)
        )
        return flat, report

    def discrete_columns(self, events: ak.Array, columns: Sequence[str]) -> dict[str, str]:
        """The columns among ``columns`` whose values come from boolean or integer fields of ``events`` (flat fields
        or fields of object slots; derived observables are float), with their type (``bool``, ``int64`` …)."""
        objects, derived = self._active(events)
        slot_fields = {o.column(i, f): (o.collection, f) for o in objects for i in range(1, o.n + 1) for f in o.fields}
        derived_names = {d.name for d in derived}
        out: dict[str, str] = {}
        for col in columns:
            if col in slot_fields:
                collection, name = slot_fields[col]
                t = events[collection][name].type.content
            elif col in derived_names or col not in events.fields:
                continue
            else:
                t = events[col].type.content
            while isinstance(t, (ak.types.OptionType, ak.types.ListType, ak.types.RegularType)):
                if t.parameter("__array__") in ("string", "bytestring"):
                    break
                t = t.content
            if isinstance(t, ak.types.NumpyType) and (t.primitive == "bool" or "int" in t.primitive):
                out[col] = t.primitive
        return out

    def matrices(
        self, events: ak.Array, *, nonfinite: Literal["raise", "drop"] = "raise"
    ) -> tuple[np.ndarray, np.ndarray | None, FlattenReport]:
        """Float64 ``(n, n_targets)`` and ``(n, n_conditions)`` matrices (``None`` without conditions) and the report.

        Rows with NaN or ±inf raise :class:`InputError` with the counts per column, or are dropped and counted
        (``nonfinite="drop"``).
        """
        _, x, c, report = self.flat_matrices(events, nonfinite=nonfinite)
        return x, c, report

    def flat_matrices(
        self, events: ak.Array, *, nonfinite: Literal["raise", "drop"] = "raise"
    ) -> tuple[ak.Array, np.ndarray, np.ndarray | None, FlattenReport]:
        """As :meth:`matrices`, with the flat records of the kept rows (:meth:`flatten`) first."""
        flat, report = self.flatten(events)
        x = to_matrix(flat, self.targets, what="target")
        c = to_matrix(flat, self.conditions, what="condition") if self.conditions else None
        both = x if c is None else np.hstack([x, c])
        bad = ~np.isfinite(both)
        if bad.any():
            _, keep = check_finite(both, self.columns, policy=nonfinite, what="targets and conditions")
            report.dropped_nonfinite = {col: int(k) for col, k in zip(self.columns, bad.sum(axis=0), strict=False) if k}
            report.n_kept = int(keep.sum())
            if report.kept_rows is not None:
                report.kept_rows = report.kept_rows[keep]
            flat, x = flat[keep], x[keep]
            c = None if c is None else c[keep]
        return flat, x, c, report


def _promoted(column: ak.Array) -> ak.Array:
    """Numeric columns as float64 (physics features); anything else as is, for :func:`to_matrix` to reject."""
    return _as_float64(column) if is_numeric_type(column.type.content) else column


# -- matrices ------------------------------------------------------------------------------------------
def is_numeric_type(t: ak.types.Type, *, optional: bool = True) -> bool:
    """Whether awkward type ``t`` holds one number (or boolean) per entry — the one test of "numeric" in the
    package. ``optional``: missing values (``?float64``) count as numbers too (they become NaN)."""
    while optional and isinstance(t, ak.types.OptionType):
        t = t.content
    return isinstance(t, ak.types.NumpyType) and t.primitive not in ("datetime64", "timedelta64")


def numeric_fields(events: ak.Array) -> list[str]:
    """The fields of ``events`` that hold one number (or boolean) per event, in their order."""
    return [name for name in ak.fields(events) if is_numeric_type(events[name].type.content)]


def to_matrix(events: ak.Array, columns: Sequence[str], *, what: str = "column") -> np.ndarray:
    """A C-contiguous float64 matrix ``(len(events), len(columns))`` of flat numeric (or boolean: 0/1) columns.

    Missing values (``None``) become NaN, for :func:`check_finite` to report. A missing, jagged, string or
    record column raises :class:`InputError` naming it (and the columns present, or its type).
    """
    if isinstance(columns, str):
        raise InputError(f"{what} columns must be a list of names, got the string {columns!r}")
    fields = events.fields
    missing = [c for c in columns if c not in fields]
    if missing:
        raise InputError(f"missing {what} column(s) {missing}; columns present: {fields}")
    out = np.empty((len(events), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        numbers = _plain_column(events, name)
        if numbers is not None:
            out[:, j] = numbers
            continue
        col = events[name]
        t = col.type.content
        if not is_numeric_type(t):
            hint = (
                " (a list per event: flatten it with ObjectSlots)"
                if isinstance(t, (ak.types.ListType, ak.types.RegularType)) and t.parameter("__array__") != "string"
                else ""
            )
            raise InputError(f"{what} column {name!r} has type {t}, not one number per event{hint}")
        if isinstance(t, ak.types.OptionType):
            col = ak.fill_none(col, np.nan)
        out[:, j] = ak.to_numpy(col)
    return out


def _plain_column(events: ak.Array, name: str) -> np.ndarray | None:
    """Field ``name`` of flat records as numpy, read from the layout when it is a plain array of numbers (possibly
    behind an event selection); ``None`` for anything else (options, lists, strings), which :func:`to_matrix` reads,
    and checks, through awkward."""
    layout, index = _without_index(ak.to_layout(events))
    if not isinstance(layout, ak.contents.RecordArray) or layout.is_tuple:
        return None
    data = _plain_numbers(layout.content(name))
    return data if data is None or index is None else data[index]


def from_matrix(matrix: np.ndarray, columns: Sequence[str]) -> ak.Array:
    """Flat float64 records, one field per column of ``matrix`` (shape ``(n, len(columns))``)."""
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise InputError(f"matrix must have shape (n, {len(columns)}) for columns {list(columns)}, got {arr.shape}")
    dup = sorted({c for c in columns if list(columns).count(c) > 1})
    if dup:
        raise InputError(f"column name(s) {dup} appear more than once")
    if not columns:
        raise InputError("from_matrix needs at least one column")
    return ak.zip({c: np.ascontiguousarray(arr[:, j]) for j, c in enumerate(columns)}, depth_limit=1)


def check_finite(
    matrix: np.ndarray, columns: Sequence[str], *, policy: Literal["raise", "drop"] = "raise", what: str = "targets"
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept rows, mask of kept rows)``; rows with NaN or ±inf raise :class:`InputError` (counts per column) or
    are dropped (``policy="drop"``)."""
    if policy not in ("raise", "drop"):
        raise InputError(f"policy must be 'raise' or 'drop', got {policy!r}")
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise InputError(
            f"{what}: matrix must have shape (n, {len(columns)}) for columns {list(columns)}, got {arr.shape}"
        )
    finite = np.isfinite(arr)
    keep = np.asarray(finite.all(axis=1))
    if keep.all():
        return arr, keep
    if policy == "raise":
        nan = np.isnan(arr).sum(axis=0)
        inf = np.isinf(arr).sum(axis=0)
        counts = "; ".join(
            f"{c}: {int(n)} NaN, {int(i)} inf" for c, n, i in zip(columns, nan, inf, strict=False) if n or i
        )
        raise InputError(
            f"{what}: {int((~keep).sum())} of {len(arr)} rows hold non-finite values ({counts}); clean the data or "
            "drop those rows (nonfinite='drop', CLI --drop-nonfinite)"
        )
    return arr[keep], keep


# -- back to objects -----------------------------------------------------------------------------------
def to_objects(flat: ak.Array, slots: ObjectSlots, *, mass: float = 0.0, extra_fields: Sequence[str] = ()) -> ak.Array:
    """The inverse of the flattening: a list of ``slots.n`` vector ``Momentum4D`` records per event (float64).

    Needs the ``pt``, ``eta`` and ``phi`` slot columns; ``mass`` (GeV) fills in when the slots have no mass
    column. ``extra_fields`` are further slot fields carried along (``photon1_iso`` → ``photons.iso``).
    The result has vector behaviours: ``(out[:, 0] + out[:, 1]).mass`` works.
    """
    missing_fields = [f for f in _MOMENTUM if f not in slots.fields]
    if missing_fields:
        raise InputError(
            f"to_objects needs slots with fields {list(_MOMENTUM)}; {slots.collection} lacks {missing_fields}"
        )
    unknown = [f for f in extra_fields if f not in slots.fields]
    if unknown:
        raise InputError(f"extra_fields {unknown} are not fields of the slots {list(slots.fields)}")
    names = [*_MOMENTUM, "mass", *[f for f in extra_fields if f not in (*_MOMENTUM, "mass")]]
    needed = [slots.column(i, f) for i in range(1, slots.n + 1) for f in names if f != "mass" or "mass" in slots.fields]
    absent = [c for c in needed if c not in flat.fields]
    if absent:
        raise InputError(f"to_objects: missing column(s) {absent}; columns present: {flat.fields}")
    blocks = {
        f: np.column_stack([to_matrix(flat, [slots.column(i + 1, f)], what="object")[:, 0] for i in range(slots.n)])
        for f in names
        if f != "mass" or "mass" in slots.fields
    }
    return objects_from_blocks(blocks, mass=mass)


def objects_from_blocks(blocks: Mapping[str, np.ndarray], *, mass: float = 0.0) -> ak.Array:
    """Lists of vector ``Momentum4D`` records from per-field arrays of shape ``(events, n)``: ``pt`` (GeV), ``eta``,
    ``phi`` (radians) required, ``mass`` (GeV) optional (else the constant ``mass``), further fields carried along;
    float64, n objects per event (the inverse of :func:`object_blocks`). ``(out[:, 0] + out[:, 1]).mass`` works."""
    missing = [f for f in _MOMENTUM if f not in blocks]
    if missing:
        raise InputError(f"objects_from_blocks needs the fields {list(_MOMENTUM)}; missing {missing}")
    arrays = {f: np.asarray(v, dtype=np.float64) for f, v in blocks.items()}
    shape = arrays["pt"].shape
    bad = [f for f, v in arrays.items() if v.ndim != 2 or v.shape != shape]
    if len(shape) != 2 or bad:
        raise InputError(f"objects_from_blocks: every field needs the shape (events, n) of 'pt' {shape}; not {bad}")
    n, per_event = shape
    if "mass" not in arrays:
        arrays["mass"] = np.full(shape, float(mass))
    names = [*_MOMENTUM, "mass", *[f for f in arrays if f not in (*_MOMENTUM, "mass")]]
    # built from its layout: every event holds exactly n objects (ak.zip + ak.unflatten took 2× as long)
    objects = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(arrays[f]).reshape(-1)) for f in names],
        names,
        parameters={"__record__": "Momentum4D"},
    )
    offsets = ak.index.Index64(np.arange(n + 1, dtype=np.int64) * per_event)
    return ak.Array(ak.contents.ListOffsetArray(offsets, objects))


def with_objects(events: ak.Array, name: str, objects: ak.Array) -> ak.Array:
    """``events`` with ``objects`` (one list per event) as field ``name``; vector behaviours are kept."""
    if len(objects) != len(events):
        raise InputError(f"with_objects: {len(objects)} object lists for {len(events)} events")
    return ak.with_field(events, objects, name)


def feature_matrix(events: ak.Array, features: Sequence[str]) -> np.ndarray:
    """The (events × features) float64 matrix of flat record fields; a clear error names a missing column."""
    missing = [f for f in features if f not in ak.fields(events)]
    if missing:
        raise InputError(f"the events lack the columns {missing}; they have {ak.fields(events)}")
    return np.column_stack([ak.to_numpy(events[f]).astype(np.float64) for f in features])
