"""Argument types of the command line: every flag is checked when it is parsed, not deep inside a command.

Each function is an ``argparse`` ``type=``: it turns the text into a value or raises
``argparse.ArgumentTypeError`` with what was expected, which argparse prints as
``mcsurrogate CMD: error: argument --flag: …`` with exit code 2 (no traceback).

>>> positive_int("12")
12
>>> event_count("1e6")
1000000
>>> float_list("0.05, 0.1")
[0.05, 0.1]
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = [
    "correlation",
    "device",
    "event_count",
    "float_list",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "open_fraction",
    "positive_float",
    "positive_int",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (epochs, bins, workers, partitions)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (permutations, a seed)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {value}")
    return value


def event_count(text: str) -> int:
    """A number of events ≥ 1, also written as ``1e6``; a fractional count (``10.7``) is refused, not truncated."""
    value = _float(text)
    if value != math.floor(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of events, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 event, got {text!r}")
    return int(value)


def positive_float(text: str) -> float:
    """A finite number > 0 (a luminosity, a learning rate, a range width)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number ≥ 0 (a relative systematic, a tolerance)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """A number in (0, 1) (a CLs level, a test size)."""
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def float_list(text: str) -> list[float]:
    """Comma-separated finite numbers, at least one (``0.05,0.1,0.2``)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected comma-separated numbers, got nothing")
    return [_float(p) for p in parts]


def correlation(text: str) -> float:
    """A correlation coefficient in [-1, 1]."""
    value = _float(text)
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a correlation between -1 and 1, got {text!r}")
    return value


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device(text: str) -> str:
    """A torch device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if not _DEVICE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text.strip()
