"""The ``mcsurrogate`` command line: a thin layer over the library.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its sub-commands; each sub-command's handler takes the parsed arguments and returns an exit code.
Errors derived from :class:`mcsurrogate.errors.MCSurrogateError` are printed as one paragraph
(no traceback) with exit code 2. Ctrl-C and SIGTERM (a batch system's kill) unwind the command like an exception,
so half-written outputs (``.NAME.tmp-*`` beside the destination) are deleted; exit codes 130 and 143.
A reader that closes the pipe early (``mcsurrogate info MODEL | head -3``) ends the command quietly with exit code
141 (128 + SIGPIPE, as a shell tool would), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from ..errors import MCSurrogateError, Terminated, sigterm_raises

#: command-group modules, each with ``register(subparsers)``; imported lazily so that
#: ``mcsurrogate --help`` stays fast and a missing optional extra only breaks its own command.
_GROUPS = ("core", "response", "validate", "stats", "distributed")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="mcsurrogate",
        description="Generative surrogates for LHC Monte Carlo: train, sample, smear, validate, fit.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"mcsurrogate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        try:
            module = importlib.import_module(f"{__name__}.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{group}":
                continue  # group not written yet
            raise
        module.register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (a redirected or captured stderr included)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_to_stderr() -> None:
    """Show the package's INFO lines (one per training epoch when no progress bar is drawn, as in a batch log) on
    stderr, unless the caller configured logging for ``mcsurrogate`` already."""
    log = logging.getLogger("mcsurrogate")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcsurrogate`` command. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    _log_to_stderr()
    try:
        with sigterm_raises():
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away: point stdout at /dev/null so the interpreter's final flush cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141
    except MCSurrogateError as exc:
        message = textwrap.fill(str(exc), width=100, break_long_words=False, break_on_hyphens=False)
        print(f"mcsurrogate {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mcsurrogate {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"mcsurrogate {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
