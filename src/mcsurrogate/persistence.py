"""Tensors without pickle: safetensors files (with a JSON header for metadata), written atomically.

The atomic-file machinery (temporary names, renames, locks, JSON) is :mod:`mcsurrogate.files`, which imports no
torch; this module is the torch side of a model directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ModelDirectoryError
from .files import replace_atomically, temporary_path

__all__ = ["load_tensors", "save_tensors"]


def save_tensors(
    dest: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None
) -> None:
    """Save tensors (and a JSON-serialisable ``meta`` dict, stored in the header) to a safetensors file, atomically."""
    dest = Path(dest)
    tmp = temporary_path(dest)
    try:
        contiguous = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(contiguous, str(tmp), metadata={"json": json.dumps(meta or {})})
        replace_atomically(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(tensors, meta)`` written by :func:`save_tensors`; a damaged file raises :class:`ModelDirectoryError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelDirectoryError(f"{path}: file missing")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        meta = json.loads(header.get("json", "{}"))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: not a readable safetensors file ({exc})") from exc
    return tensors, meta
