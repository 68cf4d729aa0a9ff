"""Checks of Python API arguments at the public boundary.

Each check returns the value in its plain form (``int``, ``float``, ``list[str]``, ``Path`` …) or raises
:class:`~mcsurrogate.errors.InputError` (a ``ValueError``) that names the parameter, says what was expected and
what came instead, so that a wrong type never surfaces as a ``TypeError`` from deep inside numpy or torch.
No torch, no awkward at import (the I/O, stats and validation layers may use it).

>>> check_int(5, "n", minimum=0)
5
>>> check_columns("mu", "targets")
Traceback (most recent call last):
...
mcsurrogate.errors.InputError: targets must be a list of column names, got the string 'mu' (one column: ['mu'])
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .errors import InputError

__all__ = [
    "check_bool",
    "check_choice",
    "check_columns",
    "check_float",
    "check_int",
    "check_interval",
    "check_numeric_array",
    "check_numeric_matrix",
    "check_path",
    "check_records",
    "check_seed",
    "check_string",
    "describe",
    "is_pandas",
]


def describe(value: Any) -> str:
    """``repr`` of a short value and its type (``'10' (str)``), for messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` (Python or numpy integer; not a bool, float or string) within [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {describe(value)}")
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        bounds = (
            f"≥ {minimum}"
            if maximum is None
            else f"≤ {maximum}"
            if minimum is None
            else f"between {minimum} and {maximum}"
        )
        raise InputError(f"{name} must be an integer {bounds}, got {out}")
    return out


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` as a ``float`` (a real number, not a bool or string); ``minimum``/``maximum`` are inclusive bounds,
    ``above``/``below`` exclusive ones; NaN is always refused, ±inf unless ``finite=False``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {describe(value)}")
    out = float(value)
    if math.isnan(out) or (finite and math.isinf(out)):
        raise InputError(f"{name} must be a finite number, got {out}")
    limits = (
        (minimum, "≥", out >= minimum if minimum is not None else True),
        (maximum, "≤", out <= maximum if maximum is not None else True),
        (above, ">", out > above if above is not None else True),
        (below, "<", out < below if below is not None else True),
    )
    wrong = [f"{sign} {bound}" for bound, sign, ok in limits if not ok]
    if wrong:
        raise InputError(f"{name} must be {' and '.join(wrong)}, got {out}")
    return out


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool`` (``True``/``False`` or a numpy bool; not a string such as ``'no'``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (strings), else an error listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {list(choices)}, got {describe(value)}")
    return value


@overload
def check_seed(seed: Any, name: str = ..., *, generator: Literal[False]) -> int: ...


@overload
def check_seed(seed: Any, name: str = ..., *, generator: bool = ...) -> int | np.random.Generator: ...


def check_seed(seed: Any, name: str = "seed", *, generator: bool = True) -> int | np.random.Generator:
    """A seed: a non-negative integer, or (with ``generator``) a :class:`numpy.random.Generator`, returned as is."""
    if generator and isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        expected = "a non-negative integer" + (" or a numpy.random.Generator" if generator else "")
        raise InputError(f"{name} must be {expected}, got {describe(seed)}")
    return int(seed)


def is_pandas(value: Any, kind: str = "DataFrame") -> bool:
    """Whether ``value`` is a pandas ``DataFrame`` (or another pandas ``kind``, e.g. ``Series``), without importing
    pandas."""
    return type(value).__module__.split(".")[0] == "pandas" and type(value).__name__ == kind


def check_columns(value: Any, name: str, *, allow_empty: bool = False) -> list[str]:
    """``value`` as a list of distinct, non-empty column names: a list or tuple of strings (not a single string,
    whose letters would become columns, and not a mapping, whose keys would)."""
    if isinstance(value, str):
        raise InputError(f"{name} must be a list of column names, got the string {value!r} (one column: [{value!r}])")
    if isinstance(value, Mapping) or not isinstance(value, (Sequence, np.ndarray)):
        raise InputError(f"{name} must be a list of column names, got {describe(value)}")
    columns = list(value)
    bad = [c for c in columns if not isinstance(c, str) or not c]
    if bad:
        raise InputError(f"{name} must be a list of column names (non-empty strings), got {columns!r}")
    if not columns and not allow_empty:
        raise InputError(f"{name} must name at least one column, got an empty list")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise InputError(f"{name} lists {dup} more than once")
    return columns


def check_path(value: Any, name: str) -> Path:
    """``value`` as a :class:`~pathlib.Path` (a string or ``os.PathLike``; not ``None`` or a number)."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise InputError(f"{name} must be a path (a non-empty string or os.PathLike), got {describe(value)}")
    return Path(value)


def check_string(value: Any, name: str) -> str:
    """``value`` if it is a non-empty string (a name: a channel, a column), else an error naming ``name``."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty string, got {describe(value)}")
    return value


def check_interval(value: Any, name: str) -> tuple[float, float]:
    """``value`` as ``(low, high)``: two finite real numbers (a tuple, list or array) with ``low < high``."""
    if (
        isinstance(value, (str, bytes, Mapping))
        or not isinstance(value, (Sequence, np.ndarray))
        or len(value) != 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in value)
    ):
        raise InputError(f"{name} must be two numbers (low, high), got {describe(value)}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{name} must be two finite numbers (low, high), got ({low}, {high})")
    if not low < high:
        raise InputError(f"{name} must have low < high, got ({low}, {high})")
    return low, high


def check_numeric_array(value: Any, name: str, *, ndim: int | None = None) -> np.ndarray:
    """``value`` (an array, a number or nested lists of numbers) as a float64 array, of ``ndim`` dimensions if
    given; booleans count as 0/1, NaN is left for the caller's finiteness check. Strings (also numeric ones such as
    ``'1.5'``), ragged lists and objects other than numbers raise."""
    try:
        raw = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise InputError(f"{name} must be a rectangular array of numbers ({exc})") from None
    if raw.dtype.kind not in "biufO":
        raise InputError(f"{name} must hold numbers, got an array of dtype {raw.dtype}")
    try:
        arr = np.asarray(raw, dtype=np.float64)  # object arrays: None → NaN, numbers → floats
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must hold numbers ({exc})") from None
    if raw.dtype.kind == "O" and raw.ndim == 0 and value is None:
        raise InputError(f"{name} must be an array of numbers, got None")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must be a {ndim}-D array of numbers, got shape {arr.shape}")
    return arr


def check_numeric_matrix(value: Any, name: str, columns: Sequence[str]) -> np.ndarray:
    """``value`` (an array or nested list of numbers) as a float64 matrix of shape ``(n, len(columns))``; booleans
    count as 0/1, NaN is left for the caller's finiteness check. Strings, objects and other shapes raise."""
    arr = check_numeric_array(value, name)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        hint = f" (a 1-D array: reshape it to (n, {len(columns)}))" if arr.ndim == 1 else ""
        raise InputError(
            f"{name} must have shape (n, {len(columns)}) for columns {list(columns)}, got {arr.shape}{hint}"
        )
    return arr


def check_records(value: Any, name: str) -> Any:
    """``value`` if it is an awkward array of records (one record per event), else an error naming ``name``."""
    import awkward as ak  # here, not at import: the light layers need no awkward for the other checks

    if not isinstance(value, ak.Array) or not isinstance(value.type.content, ak.types.RecordType):
        shown = f"an array of type {value.type}" if isinstance(value, ak.Array) else describe(value)
        raise InputError(f"{name} must be an awkward record array (one record per event), got {shown}")
    return value
