"""Strict JSON for the statistics layer: every file it writes parses with any JSON reader (no ``NaN``, no ``Infinity``).

A fit result can hold numbers that JSON cannot: NaN (a failed scan point, an undefined σ) and ±inf (q₀ of data that
the background alone cannot produce). :func:`strict` turns them into JSON values with a fixed meaning:

* NaN → ``null`` (no number: the point failed or the quantity is undefined; the row's ``reason`` says why);
* +inf / −inf → the strings ``"inf"`` / ``"-inf"`` (``float("inf")`` reads them back);
* numpy scalars and arrays → Python numbers and lists; tuples → lists.

>>> dumps({"q0": float("inf"), "sigma": float("nan"), "mu": 1.5})
'{"q0": "inf", "sigma": null, "mu": 1.5}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["dumps", "strict"]


def strict(value: Any) -> Any:
    """``value`` with NaN → None, ±inf → ``"inf"``/``"-inf"``, numpy types → Python types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
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
