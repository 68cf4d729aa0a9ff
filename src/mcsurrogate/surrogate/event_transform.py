"""Event-level transforms of a surrogate's targets: an invertible map of whole events (e.g. a final state's
momenta to phase-space variables) between the physical target columns the user names and the columns the flow
learns. :class:`~mcsurrogate.surrogate.Surrogate` applies :meth:`EventTransform.forward` before its per-column
preprocessing, :meth:`EventTransform.inverse` after sampling, and adds :meth:`EventTransform.log_abs_det` to
``log_prob``; the transform is saved as strict JSON (``event_transform.json``) beside ``config.json``.

A transform is any class with the :class:`EventTransform` methods whose :meth:`~EventTransform.to_dict` names a
``kind`` of :data:`EVENT_TRANSFORMS` (the registry that :func:`as_event_transform` and loading read);
:class:`~mcsurrogate.phase_space.PhaseSpacePreprocessor` (``"phase-space"``) is the one registered today.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import awkward as ak
import numpy as np

from ..arguments import describe
from ..errors import InputError
from ..phase_space import PhaseSpacePreprocessor

__all__ = ["EVENT_TRANSFORMS", "EventTransform", "TargetMap", "as_event_transform"]


class EventTransform(Protocol):
    """What a surrogate needs of an event transform. ``forward``/``inverse``/``log_abs_det`` take a mapping of
    columns (name → one number per event) and return records / one value per event."""

    @property
    def input_columns(self) -> list[str]:
        """The physical columns :meth:`forward` reads and :meth:`inverse` writes: the surrogate's targets."""
        ...

    @property
    def output_columns(self) -> list[str]:
        """The columns :meth:`forward` writes: what the flow learns."""
        ...

    def forward(self, events: Any) -> ak.Array:
        """Physical columns → :attr:`output_columns`."""
        ...

    def inverse(self, events: Any) -> ak.Array:
        """:attr:`output_columns` → physical columns."""
        ...

    def log_abs_det(self, events: Any) -> np.ndarray:
        """``log |∂ forward / ∂ physical|`` per event: ``log p(x) = log q(forward(x)) + log_abs_det(x)``."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON state with the ``kind`` of the class in :data:`EVENT_TRANSFORMS`."""
        ...


#: the event transforms a surrogate takes and loads, by the ``kind`` their ``to_dict`` writes
EVENT_TRANSFORMS: dict[str, Any] = {"phase-space": PhaseSpacePreprocessor}


def as_event_transform(value: Any) -> EventTransform | None:
    """``value`` as an event transform: ``None``, an instance of a class of :data:`EVENT_TRANSFORMS`, or its
    ``to_dict()`` (a mapping with a registered ``kind``); anything else raises :class:`InputError`."""
    if value is None:
        return None
    registered = tuple(EVENT_TRANSFORMS.values())
    if isinstance(value, registered):
        return value
    kinds = ", ".join(repr(k) for k in EVENT_TRANSFORMS)
    if not isinstance(value, Mapping):
        names = ", ".join(c.__name__ for c in registered)
        raise InputError(
            f"event_transform must be None, a {names} or the dict of its to_dict() (kind {kinds}), "
            f"got {describe(value)}"
        )
    kind = value.get("kind")
    if kind not in EVENT_TRANSFORMS:
        raise InputError(f"event_transform's kind must be one of {kinds}, got {describe(kind)}")
    transform: EventTransform = EVENT_TRANSFORMS[kind].from_dict(value)
    return transform


def _matrix(records: ak.Array, columns: Sequence[str]) -> np.ndarray:
    """The float64 matrix (len(records), len(columns)) of flat numeric fields."""
    out = np.empty((len(records), len(columns)))
    for j, c in enumerate(columns):
        out[:, j] = ak.to_numpy(records[c])
    return out


class TargetMap:
    """A surrogate's targets (physical columns, in the user's order) ↔ the columns its flow learns: the
    ``transform``'s output columns, or the targets themselves without one (the identity)."""

    def __init__(self, targets: Sequence[str], transform: EventTransform | None) -> None:
        self.targets = list(targets)
        self.transform = transform
        if transform is not None:
            reads = list(transform.input_columns)
            missing = [c for c in reads if c not in self.targets]
            extra = [c for c in self.targets if c not in reads]
            problems = [f"missing from the targets: {missing}"] if missing else []
            problems += [f"targets it does not read: {extra}"] if extra else []
            if problems:
                raise InputError(
                    f"event_transform ({transform.to_dict()['kind']}) reads the columns {reads}: the targets must be "
                    f"exactly those, in any order; {'; '.join(problems)}"
                )

    @property
    def columns(self) -> list[str]:
        """The flow's columns (before the per-column preprocessing)."""
        return self.targets if self.transform is None else list(self.transform.output_columns)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Targets (n, len(targets)) → the flow's columns (n, len(columns)), float64."""
        if self.transform is None:
            return x
        out = self.transform.forward({c: x[:, j] for j, c in enumerate(self.targets)})
        return _matrix(out, self.columns)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """The flow's columns (n, len(columns)) → targets (n, len(targets)), float64."""
        if self.transform is None:
            return y
        out = self.transform.inverse({c: y[:, j] for j, c in enumerate(self.columns)})
        return _matrix(out, self.targets)

    def log_abs_det(self, flat: ak.Array) -> np.ndarray:
        """``log |∂ columns / ∂ targets|`` per event of flat records holding the target fields (0 without a
        transform): what turns a density of the flow's columns into one of the targets."""
        if self.transform is None:
            return np.zeros(len(flat))
        return np.asarray(self.transform.log_abs_det({c: flat[c] for c in self.targets}), dtype=np.float64)
