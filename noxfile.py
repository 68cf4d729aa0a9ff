#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2024.4.15"]
# ///
"""Task runner: ``nox -s tests``, ``nox -s lint``, ``nox -s docs`` (each in a fresh virtual environment)."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "uv|virtualenv"


@nox.session
def lint(session: nox.Session) -> None:
    """pre-commit: ruff (lint + format), mypy on src/, codespell, zizmor and the file hygiene hooks."""
    session.install("pre-commit")
    session.run("pre-commit", "run", "--all-files", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with the CPU build of PyTorch (as CI installs it)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (``--serve`` to preview)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[docs]")
    if session.posargs and session.posargs[0] == "--serve":
        session.run("mkdocs", "serve")
    else:
        session.run("mkdocs", "build", "--strict")


if __name__ == "__main__":
    nox.main()
