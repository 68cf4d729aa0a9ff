"""Safe persistence without pickle: tensors in safetensors, everything else in JSON, written atomically.

Every write goes to a temporary file in the destination's directory and is renamed over the final
name only when complete, so a process killed mid-write leaves the previous file (or none).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ModelDirectoryError, OutputExistsError

__all__ = [
    "atomic_directory",
    "atomic_write_text",
    "load_tensors",
    "read_json",
    "replace_atomically",
    "save_tensors",
    "temporary_path",
]


def temporary_path(dest: Path) -> Path:
    """A fresh, recognisable temporary name beside ``dest`` (``.NAME.tmp-PID-XXXX``)."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_atomically(tmp: Path, dest: Path) -> None:
    """fsync ``tmp``, give it the usual file mode (``mkstemp`` makes it 0600), rename it over ``dest``, fsync the dir."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)
    with contextlib.suppress(OSError):  # directory fsync: not possible on every platform
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest`` to fill; when the block ends without an error it replaces
    ``dest`` (an existing one only with ``overwrite``, moved aside first and then deleted), otherwise it is removed
    and ``dest`` stays as it was. Raises :class:`OutputExistsError` for an existing ``dest`` without ``overwrite``."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"{dest} exists already; choose another directory or pass overwrite=True (--overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``dest`` atomically (temporary file, fsync, rename)."""
    dest = Path(dest)
    tmp = temporary_path(dest)
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_atomically(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object; missing or damaged files raise :class:`ModelDirectoryError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelDirectoryError(f"{path}: file missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data
