"""Domain exceptions of mcsurrogate.

Every error that a user can cause with their input derives from :class:`MCSurrogateError`,
so that the command line can print the message as one paragraph instead of a traceback.
Messages name the file, column or parameter and say what was expected.

:class:`Terminated` and :func:`sigterm_raises` turn a batch system's SIGTERM into an exception, so that a killed
command or analysis script unwinds its ``with`` blocks and deletes its half-written outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "FitError",
    "InputError",
    "MCSurrogateError",
    "MissingExtraError",
    "ModelDirectoryError",
    "OutputError",
    "OutputExistsError",
    "Terminated",
    "TrainingError",
    "refuse_unknown_fields",
    "sigterm_raises",
]


class MCSurrogateError(Exception):
    """Base class of every error mcsurrogate raises on purpose."""


class InputError(MCSurrogateError, ValueError):
    """Bad user input: a missing file, tree, branch or column, NaNs, wrong types or sizes."""


class OutputError(MCSurrogateError, OSError):
    """An output cannot be written: a read-only directory, a file where a directory is needed, another writer."""


class OutputExistsError(OutputError, FileExistsError):
    """An output path exists already (or another process is writing it) and the caller did not ask to overwrite."""


class ModelDirectoryError(MCSurrogateError):
    """A model directory is missing files, corrupted, not written by mcsurrogate, or too new."""


class MissingExtraError(MCSurrogateError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class FitError(MCSurrogateError, RuntimeError):
    """A statistical fit did not converge after its retries."""


class TrainingError(MCSurrogateError, FloatingPointError):
    """Training diverged (non-finite loss); the message says at which epoch and what to change."""


def require_extra(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install "mcsurrogate[extra]"``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f'this feature needs the optional package {module!r}; install it with pip install "mcsurrogate[{extra}]"'
        ) from exc


def refuse_unknown_fields(config_class: type, data: Mapping[str, Any], what: str) -> None:
    """Raise :class:`InputError` listing the keys of ``data`` that are not fields of the dataclass ``config_class``
    (and the valid ones); ``what`` names the parameters in the message (``"flow"`` → "unknown flow parameter(s)")."""
    valid = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise InputError(f"unknown {what} parameter(s) {unknown}; valid: {sorted(valid)}")


class Terminated(SystemExit):
    """Raised by :func:`sigterm_raises` on SIGTERM. Like KeyboardInterrupt it unwinds every ``with`` and
    ``finally`` block (temporary ``.NAME.tmp-*`` outputs are deleted); uncaught, the process exits quietly with
    code 143 (128 + SIGTERM), as if the signal had killed it."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


_sigterm = {"received": False}


def _raise_terminated(signum: int, frame: object) -> None:
    _sigterm["received"] = True
    raise Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; the previous handler is put back
    afterwards. Does nothing outside the main thread or over a handler installed outside Python.

    A signal handler runs wherever Python happens to be, also inside a callback from C code that swallows
    exceptions (pyarrow calls awkward's type deserialisation so); if the block then ends with another exception,
    or normally, after a SIGTERM, :class:`Terminated` is raised at its end anyway.

    >>> with sigterm_raises():  # doctest: +SKIP
    ...     main()
    """
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if previous is None:
        yield
        return
    _sigterm["received"] = False
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except Terminated:
        raise
    except BaseException as exc:
        if _sigterm["received"]:
            raise Terminated from exc
        raise
    else:
        if _sigterm["received"]:
            raise Terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
