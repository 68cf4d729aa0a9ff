"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys

import mcsurrogate


def test_public_names_resolve_lazily():
    assert set(mcsurrogate.__all__) == {"__version__", *mcsurrogate._LAZY}
    for name in mcsurrogate.__all__:
        assert getattr(mcsurrogate, name) is not None


def test_io_and_files_layers_import_no_torch() -> None:
    """``import mcsurrogate.io`` (and the file helpers, errors, the command-line parser) load no torch, matplotlib or
    scikit-learn: a script that only reads and writes events starts in a fraction of a second (issue 33)."""
    code = (
        "import sys, mcsurrogate, mcsurrogate.io, mcsurrogate.files, mcsurrogate.errors\n"
        "from mcsurrogate.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_records_stats_and_validation_import_no_torch_matplotlib_or_sklearn() -> None:
    """The analysis layers load their heavy dependencies when a function needs them (a classifier, a plot, a flow):
    ``import mcsurrogate.validation`` in a coffea worker or a notebook costs awkward, hist, scipy only (issue 33)."""
    code = (
        "import sys, mcsurrogate.records, mcsurrogate.stats, mcsurrogate.validation\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'mplhep', 'sklearn') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
