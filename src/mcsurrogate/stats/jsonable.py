"""Strict JSON for the statistics layer: every file it writes parses with any JSON reader (no ``NaN``, no ``Infinity``).

A fit result can hold numbers that JSON cannot: NaN (a failed scan point, an undefined σ) and ±inf (q₀ of data that
the background alone cannot produce). :func:`strict` turns them into JSON values with a fixed meaning:

* NaN → ``null`` (no number: the point failed or the quantity is undefined; the row's ``reason`` says why);
* +inf / −inf → the strings ``"inf"`` / ``"-inf"`` (``float("inf")`` reads them back);
* numpy scalars and arrays → Python numbers and lists; tuples → lists;
* a result object with a ``to_dict()`` method (a scan row, a toy) → its dict.

:func:`number` reads such a value back as a float, :func:`from_strict` a whole result dataclass from its dict.

>>> dumps({"q0": float("inf"), "sigma": float("nan"), "mu": 1.5})
'{"q0": "inf", "sigma": null, "mu": 1.5}'
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from ..errors import InputError

__all__ = ["dumps", "from_strict", "number", "strict"]

T = TypeVar("T")


def strict(value: Any) -> Any:
    """``value`` with NaN → None, ±inf → ``"inf"``/``"-inf"``, numpy types → Python types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return strict(value.to_dict())
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return [strict(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(strict(value), allow_nan=False, **kwargs)``: strict JSON text."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def number(value: Any, name: str = "value") -> float:
    """A float back from :func:`strict`'s JSON: ``None`` → NaN, ``"inf"``/``"-inf"`` → ±inf, a number → itself.

    >>> number(None), number("-inf"), number(2)
    (nan, -inf, 2.0)
    """
    if value is None:
        return math.nan
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, null, 'inf' or '-inf'; got {value!r}")
    return float(value)


def from_strict(cls: type[T], data: Any, *, derived: Iterable[str] = ()) -> T:
    """The dataclass ``cls`` back from its ``to_dict()`` (read from strict JSON): every field declared ``float`` goes
    through :func:`number` (``None`` → NaN); a field the dict leaves out takes its default (for a ``float | None``
    field: ``None``, not computed, where a present ``null`` is NaN, computed but undefined). ``derived``: keys of the
    dict that are properties of ``cls``, not fields (ignored). A missing field without a default or an unknown key
    raises :class:`~mcsurrogate.errors.InputError` naming it."""
    if not isinstance(data, Mapping):
        raise InputError(f"a {cls.__name__} is read from a JSON object; got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields) - set(derived))
    if unknown:
        raise InputError(
            f"{cls.__name__} has no field {', '.join(map(repr, unknown))}; its fields are {sorted(fields)}"
        )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise InputError(f"the {cls.__name__} lacks its field {name!r}")
            continue
        value = data[name]
        kind = str(field.type).replace(" ", "")
        if kind in ("float", "float|None"):
            value = number(value, f"{cls.__name__}.{name}")
        values[name] = value
    return cls(**values)
