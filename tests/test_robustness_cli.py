"""The command line used as a careless or hostile user would (issue 28): bad flags, outputs that cannot be written,
two writers of one output, killed writers' leftovers, modes of what is written, aborts at interpreter exit.

Every case ends in exit code 0 or in the one-paragraph error (exit 2), never in a traceback, a lost file or a
process killed by SIGABRT. Cases run in this process where they can (``run_here``), in subprocesses where the
process itself is the subject (exit, locks held by another process, SIGKILL).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.cli import build_parser, main
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import OutputError, OutputExistsError
from mcsurrogate.files import atomic_directory, check_writable, output_directory, output_lock, publish, temporary_path
from mcsurrogate.io import EventWriter, write_events

from .conftest import correlated_events

CLI = [sys.executable, "-m", "mcsurrogate"]


def run_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in this process; argparse's exit (code 2 for a bad flag) becomes the return code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def fails_cleanly(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    paragraph = " ".join(proc.stderr.split())  # the CLI wraps its message at 100 characters
    for fragment in fragments:
        assert fragment in paragraph, (fragment, proc.stderr)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real inputs: truth photons (Parquet, the packaged sample's first 5000 events), flat events, a small
    unconditional model (``a, b``) and a small response model."""
    from mcsurrogate.response.smearing import SmearingConfig, smear_photons
    from mcsurrogate.response.surrogate import train_response
    from mcsurrogate.surrogate import Surrogate

    d = tmp_path_factory.mktemp("inputs")
    truth = load_default_truth()[:5000]
    ak.to_parquet(truth, d / "truth.parquet")
    smeared = smear_photons(truth[:2000], SmearingConfig(scenario="baseline"), seed=1)
    write_events(smeared, d / "smeared.parquet")
    write_events(correlated_events(3000, seed=2), d / "flat.parquet")
    model = Surrogate(["a", "b"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training={"epochs": 1})
    model.fit(correlated_events(3000, seed=2), progress=False)
    model.save(d / "model")
    response = train_response(
        smeared, "demo", flow={"blocks": 1, "hidden": 8}, training={"epochs": 1, "device": "cpu"}, progress=False
    )
    response.save(d / "response")
    return {"truth": d / "truth.parquet", "smeared": d / "smeared.parquet", "flat": d / "flat.parquet",
            "model": d / "model", "response": d / "response"}  # fmt: skip


# -- item 5: every flag is checked when it is parsed -----------------------------------------------------
BAD_FLAGS = {
    "sample-dask -n abc": ["sample-dask", "M", "-n", "abc", "--partitions", "2", "--out", "o"],
    "sample-dask -n 10.7": ["sample-dask", "M", "-n", "10.7", "--partitions", "2", "--out", "o"],
    "sample-dask -n 0": ["sample-dask", "M", "-n", "0", "--partitions", "2", "--out", "o"],
    "sample-dask --partitions 0": ["sample-dask", "M", "-n", "1e3", "--partitions", "0", "--out", "o"],
    "sample-dask --seed -1": ["sample-dask", "M", "-n", "10", "--partitions", "1", "--out", "o", "--seed", "-1"],
    "demo --epochs 0": ["demo", "--epochs", "0"],
    "demo --events -5": ["demo", "--events", "-5"],
    "demo --events 2.5": ["demo", "--events", "2.5"],
    "demo --seed x": ["demo", "--seed", "x"],
    "train --epochs 0": ["train", "D.root", "--targets", "a", "--out", "m", "--epochs", "0"],
    "train --lr 0": ["train", "D.root", "--targets", "a", "--out", "m", "--lr", "0"],
    "train --lr nan": ["train", "D.root", "--targets", "a", "--out", "m", "--lr", "nan"],
    "train --batch-size -3": ["train", "D.root", "--targets", "a", "--out", "m", "--batch-size", "-3"],
    "train --blocks 0": ["train", "D.root", "--targets", "a", "--out", "m", "--blocks", "0"],
    "train --hidden x": ["train", "D.root", "--targets", "a", "--out", "m", "--hidden", "x"],
    "train --device gpu": ["train", "D.root", "--targets", "a", "--out", "m", "--device", "gpu"],
    "train --preprocessing bogus": ["train", "D.root", "--targets", "a", "--out", "m", "--preprocessing", "bogus"],
    "sample -n 0": ["sample", "M", "-o", "x.parquet", "-n", "0"],
    "sample -n 1.5": ["sample", "M", "-o", "x.parquet", "-n", "1.5"],
    "sample --batch-size 0": ["sample", "M", "-o", "x.parquet", "-n", "10", "--batch-size", "0"],
    "sample --device tpu": ["sample", "M", "-o", "x.parquet", "-n", "10", "--device", "tpu"],
    "distill --pairs 0": ["distill", "M", "--out", "o", "--pairs", "0"],
    "distill --layers 0": ["distill", "M", "--out", "o", "--layers", "0"],
    "distill --epochs -1": ["distill", "M", "--out", "o", "--epochs", "-1"],
    "smear --rho 1.5": ["smear", "T", "-o", "x.parquet", "--scenario", "correlation", "--rho", "1.5"],
    "smear --seed -2": ["smear", "T", "-o", "x.parquet", "--seed", "-2"],
    "train-response --epochs 0": ["train-response", "S", "--out", "o", "--epochs", "0"],
    "apply --batch-size 0": ["apply", "M", "T", "-o", "x.parquet", "--batch-size", "0"],
    "generate -n 0": ["generate", "higgs-diphoton", "-n", "0", "--seed", "1", "-o", "x.parquet"],
    "generate --workers 0": ["generate", "higgs-diphoton", "-n", "9", "--seed", "1", "--workers", "0", "-o", "x.pq"],
    "generate --chunk-size 0": ["generate", "higgs-diphoton", "-n", "9", "--seed", "1", "--chunk-size", "0", "-o", "x"],
    "generate --pt-min -1": ["generate", "pythia", "--settings", "s", "-n", "9", "--seed", "1", "--pt-min", "-1", "-o", "x"],
    "generate --min-count -1": ["generate", "pythia", "--settings", "s", "-n", "9", "--seed", "1", "--min-count", "-1", "-o", "x"],
}  # fmt: skip


@pytest.mark.parametrize("argv", BAD_FLAGS.values(), ids=BAD_FLAGS.keys())
def test_bad_flags_are_refused_when_parsed(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    proc = run_here(*argv)
    fails_cleanly(proc, "error: argument")
    assert proc.stdout == "" and not list(tmp_path.iterdir())  # nothing ran, nothing written


#: the command groups of this module's commands (cli/stats.py and cli/validate.py have their own tests)
GROUPS = ("demo", "train", "sample", "distill", "info", "generate", "smear", "train-response", "apply", "sample-dask")


def _subparsers(parser: object) -> dict[str, object]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _subparsers(sub)
                found.update({f"{name} {k}": v for k, v in nested.items()} if nested else {name: sub})
    return found


def test_every_option_says_what_it_is_and_its_default() -> None:
    import argparse

    missing = []
    for name, parser in _subparsers(build_parser()).items():
        if name.split()[0] not in GROUPS:
            continue
        assert isinstance(parser, argparse.ArgumentParser)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = action.help or ""
            flag_only = isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction))
            if not text or (action.option_strings and not flag_only and not action.required and "default" not in text):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}: {text!r}")
    assert not missing, "options without a help text naming their default:\n" + "\n".join(missing)


# -- item 3: outputs that cannot be written are refused before the work -----------------------------------
@pytest.fixture
def unwritable(tmp_path: Path) -> dict[str, Path]:
    """Two places no output can go: below a regular file, and in a directory this process cannot write to
    (a read-only directory; as root, which ignores the mode bits, /proc)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    if os.geteuid() != 0:
        read_only = tmp_path / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
    else:
        read_only = Path("/proc")
    return {"below-a-file": blocker / "sub", "read-only": read_only}


WRITERS = {
    "sample": lambda f, out: ["sample", str(f["model"]), "-n", "100", "-o", f"{out}/gen.parquet"],
    "train": lambda f, out: ["train", str(f["flat"]), "--targets", "a", "--epochs", "1", "--out", f"{out}/m"],
    "smear": lambda f, out: ["smear", str(f["truth"]), "-o", f"{out}/smeared.parquet"],
    "distill": lambda f, out: ["distill", str(f["model"]), "--pairs", "2000", "--epochs", "1", "--hidden", "8",
                               "--layers", "1", "--device", "cpu", "--out", f"{out}/fast"],
    "train-response": lambda f, out: ["train-response", str(f["smeared"]), "--preset", "demo", "--epochs", "1",
                                      "--out", f"{out}/r"],
    "apply": lambda f, out: ["apply", str(f["response"]), str(f["truth"]), "-o", f"{out}/reco.parquet"],
    "sample-dask": lambda f, out: ["sample-dask", str(f["model"]), "-n", "100", "--partitions", "2", "--out",
                                   f"{out}/parts"],
    "sample --save-reweighting": lambda f, out: ["sample", str(f["model"]), "-n", "100", "--reweight-against",
                                                 str(f["flat"]), "--save-reweighting", f"{out}/rw", "-o",
                                                 str(f["writable"] / "unused.parquet")],
    "demo": lambda f, out: ["demo", "--events", "500", "--epochs", "1", "--out", f"{out}/demo"],
}  # fmt: skip


@pytest.mark.parametrize("where", ["below-a-file", "read-only"])
@pytest.mark.parametrize("command", WRITERS.keys())
def test_unwritable_output_is_refused_before_the_work(
    files: dict[str, Path], unwritable: dict[str, Path], tmp_path: Path, command: str, where: str
) -> None:
    proc = run_here(*WRITERS[command]({**files, "writable": tmp_path}, unwritable[where]))
    fails_cleanly(proc, "cannot write")
    assert proc.stdout == "", proc.stdout  # refused before reading, training or sampling anything


def test_check_writable_names_the_reason(tmp_path: Path, unwritable: dict[str, Path]) -> None:
    with pytest.raises(OutputError, match="a_file is a file, not a directory"):
        check_writable(unwritable["below-a-file"] / "deeper" / "out.parquet")
    with pytest.raises(OutputError, match="cannot create files in"):
        check_writable(unwritable["read-only"] / "out.parquet")
    with pytest.raises(OutputError, match="is a directory; give a file name"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "new" / "dir", directory=True) == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".mcsurrogate-write-test-*"))


# -- item 2: two writers of one output ----------------------------------------------------------------------
HOLDER = """
import sys
from mcsurrogate.files import output_lock
with output_lock(sys.argv[1], purpose="another test writer"):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_by_another_process(dest: Path) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(dest)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0


LOCKED = {
    "sample": lambda f, d: (["sample", str(f["model"]), "-n", "100", "-o", str(d / "gen.parquet")], d / "gen.parquet"),
    "train": lambda f, d: (["train", str(f["flat"]), "--targets", "a", "--epochs", "1", "--out", str(d / "m")],
                           d / "m"),
    "smear": lambda f, d: (["smear", str(f["truth"]), "-o", str(d / "s.parquet")], d / "s.parquet"),
    "distill": lambda f, d: (["distill", str(f["model"]), "--pairs", "2000", "--epochs", "1", "--hidden", "8",
                              "--layers", "1", "--device", "cpu", "--out", str(d / "fast")], d / "fast"),
    "train-response": lambda f, d: (["train-response", str(f["smeared"]), "--preset", "demo", "--epochs", "1",
                                     "--out", str(d / "r")], d / "r"),
    "apply": lambda f, d: (["apply", str(f["response"]), str(f["truth"]), "-o", str(d / "reco.parquet")],
                           d / "reco.parquet"),
    "sample-dask": lambda f, d: (["sample-dask", str(f["model"]), "-n", "100", "--partitions", "2", "--out",
                                  str(d / "parts")], d / "parts"),
    "fit": lambda f, d: (["fit", str(f["flat"]), str(f["flat"]), "--var", "a", "--range", "20,90", "--bins", "5",
                          "--out", str(d / "fit")], d / "fit"),
    "scan": lambda f, d: (["scan", str(f["flat"]), str(f["flat"]), str(f["flat"]), "--var", "a", "--range", "20,90",
                           "--bins", "5", "--lumis", "1", "--ngen", "1000", "--systematics", "0.1", "--out",
                           str(d / "scan")], d / "scan"),
}  # fmt: skip


@pytest.mark.parametrize("command", LOCKED.keys())
def test_second_writer_of_an_output_fails_before_its_work(files: dict[str, Path], tmp_path: Path, command: str) -> None:
    argv, dest = LOCKED[command](files, tmp_path)
    with held_by_another_process(dest):
        proc = run_here(*argv)
    fails_cleanly(proc, "is being written by another process", "another test writer")
    assert proc.stdout == "" and not dest.exists() and not list(tmp_path.glob("*.checkpoints"))  # no work done
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.endswith(".lock")]


def test_two_trainings_into_one_directory(files: dict[str, Path], tmp_path: Path) -> None:
    """The second ``train --out tm`` is refused at once (the first owns tm and tm.checkpoints); the first ends well."""
    big = tmp_path / "big.parquet"
    write_events(correlated_events(20000, seed=3), big)
    args = ["train", str(big), "--targets", "a,b", "--conditions", "mu", "--blocks", "2", "--hidden", "16",
            "--epochs", "4", "--batch-size", "128", "--device", "cpu", "--out", str(tmp_path / "tm")]  # fmt: skip
    first = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (tmp_path / "tm.checkpoints").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_here(*args)
    out, err = first.communicate(timeout=600)
    fails_cleanly(second, "tm is being written by another process", "tm.checkpoints")
    assert first.returncode == 0, err
    assert "saved" in out and (tmp_path / "tm" / "weights.safetensors").is_file()
    assert not (tmp_path / "tm.checkpoints").exists()


@pytest.mark.slow
def test_concurrent_samples_into_one_file_one_wins(files: dict[str, Path], tmp_path: Path) -> None:
    """Two ``sample -o same.parquet`` started together: one writes, the other is refused; never both 'wrote'."""
    for trial in range(2):
        out = tmp_path / f"same{trial}.parquet"
        procs = [
            subprocess.Popen(
                [*CLI, "sample", str(files["model"]), "-n", str(n), "--seed", str(n), "-o", str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in (20000, 30000)
        ]
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 2], results
        (winner,) = [stdout for code, stdout, _ in results if code == 0]
        (loser,) = [" ".join(stderr.split()) for code, _, stderr in results if code == 2]
        assert "Traceback" not in loser
        assert "being written by another process" in loser or "exists already" in loser, loser
        assert f"wrote {len(ak.from_parquet(out))} events" in winner


def test_rename_never_replaces_an_output_that_appeared_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(OutputExistsError, match="appeared while it was being written"), EventWriter(out) as writer:
        writer.write(correlated_events(10))
        out.write_bytes(b"precious")  # another program, which takes no lock, wrote it meanwhile
    assert out.read_bytes() == b"precious" and not list(tmp_path.glob(".out.parquet.*"))
    model = tmp_path / "model"
    with pytest.raises(OutputExistsError, match="appeared while"), atomic_directory(model) as tmp:
        (tmp / "config.json").write_text("{}")
        model.mkdir()
        (model / "mine").write_text("precious")
    assert [p.name for p in model.iterdir()] == ["mine"] and not list(tmp_path.glob(".model.*"))
    tmp = temporary_path(out)
    tmp.write_text("new")
    with pytest.raises(OutputExistsError):
        publish(tmp, out)
    assert out.read_bytes() == b"precious"
    publish(tmp, out, overwrite=True)
    assert out.read_text() == "new"


def test_output_lock_is_reentrant_and_exclusive(tmp_path: Path) -> None:
    dest = tmp_path / "x.parquet"
    with output_lock(dest, purpose="outer"), output_lock(dest):
        assert (tmp_path / ".x.parquet.lock").read_text() == f"pid {os.getpid()}: outer"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(lambda: output_lock(dest).__enter__())
            with pytest.raises(OutputExistsError, match="another thread of this process"):
                future.result()
    assert not (tmp_path / ".x.parquet.lock").exists()


# -- item 4: what killed writers leave behind is cleaned ----------------------------------------------------
KILLED_WRITER = """
import sys
import awkward as ak
import numpy as np
from mcsurrogate.io import EventWriter
with EventWriter(sys.argv[1]) as writer:
    writer.write(ak.zip({"a": np.arange(1000.0)}))
    print(writer.temporary, flush=True)
    sys.stdin.read()
"""


def test_leftovers_of_a_killed_sample_are_cleaned_by_the_next(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gen.parquet"
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    leftover = Path(killed.stdout.readline().strip())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert leftover.name.startswith(f".gen.parquet.tmp-{killed.pid}-") and leftover.stat().st_size > 0
    alive = tmp_path / ".gen.parquet.tmp-1-live"  # PID 1 runs: not ours to delete
    alive.write_text("in progress")
    proc = run_here("sample", str(files["model"]), "-n", "100", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not leftover.exists() and alive.exists() and len(ak.from_parquet(out)) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "gen.parquet"]  # no lock file either


def test_failed_command_leaves_no_empty_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "scan" / "results"
    with pytest.raises(ValueError, match="bad luminosity"), output_directory(out):
        assert out.is_dir()
        raise ValueError("bad luminosity")
    assert not (tmp_path / "scan").exists()
    with pytest.raises(ValueError, match="late"), output_directory(out):
        (out / "scan.json").write_text("[]")
        raise ValueError("late")
    assert (out / "scan.json").exists()  # what was written stays
    with pytest.raises(OutputExistsError, match="exists and is not empty"), output_directory(out):
        pass
    with output_directory(out, overwrite=True):
        pass


def test_output_directory_filled_while_waiting_for_its_lock_is_refused(tmp_path: Path, monkeypatch) -> None:
    """A writer that fills --out between the first check and the lock (it held the lock then) is seen under the lock."""
    from mcsurrogate import files

    out = tmp_path / "results"
    real_lock = files.output_lock

    @contextlib.contextmanager
    def lock_after_another_writer(dest: Path, **kw):
        out.mkdir()
        (out / "scan.json").write_text("[1]")  # the other writer's finished output
        with real_lock(dest, **kw) as held:
            yield held

    monkeypatch.setattr(files, "output_lock", lock_after_another_writer)
    with pytest.raises(OutputExistsError, match="exists and is not empty"), output_directory(out):
        (out / "scan.json").write_text("[2]")
    assert (out / "scan.json").read_text() == "[1]"


FIT = ["--var", "a", "--range", "20,90", "--bins", "5"]


@pytest.mark.parametrize("command", ["scan", "fit"])
def test_scan_or_fit_that_fails_on_its_input_leaves_no_output_directory(
    files: dict[str, Path], tmp_path: Path, command: str
) -> None:
    """A --var the files lack is found after --out is claimed: the command fails cleanly and leaves no (empty)
    --out behind, nor the parents made for it."""
    inputs = [str(files["flat"])] * (3 if command == "scan" else 2)
    out = tmp_path / "results" / command
    proc = run_here(command, *inputs, "--var", "nope", "--range", "0,1", "--out", str(out))
    fails_cleanly(proc, "nope")
    assert list(tmp_path.iterdir()) == []


def test_fit_never_replaces_an_output_without_overwrite(files: dict[str, Path], tmp_path: Path) -> None:
    """A second run into a filled --out is refused before it reads its inputs (here: a missing file), the first
    output stays as it was; --overwrite writes into it."""
    out = tmp_path / "fit"
    first = run_here("fit", str(files["flat"]), str(files["flat"]), *FIT, "--out", str(out))
    assert first.returncode == 0, first.stderr
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(written) == ["fit.json", "workspace.json"]
    for again in (
        ["fit", str(files["flat"]), str(files["flat"]), *FIT, "--asimov-mu", "1", "--out", str(out)],
        ["fit", str(files["flat"]), str(tmp_path / "missing.parquet"), *FIT, "--out", str(out)],
        ["scan", str(files["flat"]), str(files["flat"]), str(tmp_path / "missing.parquet"), *FIT, "--out", str(out)],
    ):
        proc = run_here(*again)
        fails_cleanly(proc, f"{out} exists and is not empty", "--overwrite")
        assert proc.stdout == "" and {p.name: p.read_bytes() for p in out.iterdir()} == written
    proc = run_here(
        "fit", str(files["flat"]), str(files["flat"]), *FIT, "--asimov-mu", "1", "--out", str(out), "--overwrite"
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "fit.json").read_bytes() != written["fit.json"]


# -- item 9: modes follow the umask ---------------------------------------------------------------------------
def test_model_and_reweighting_directories_follow_the_umask(files: dict[str, Path], tmp_path: Path) -> None:
    from mcsurrogate.surrogate import Surrogate

    previous = os.umask(0o027)
    try:
        Surrogate.load(files["model"]).save(tmp_path / "model")
        proc = run_here("sample", str(files["model"]), "-n", "300", "--reweight-against", str(files["flat"]),
                        "--save-reweighting", str(tmp_path / "rw"), "-o", str(tmp_path / "gen.parquet"))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    finally:
        os.umask(previous)
    for folder in (tmp_path / "model", tmp_path / "rw"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder
        for f in folder.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
    assert stat.S_IMODE((tmp_path / "gen.parquet").stat().st_mode) == 0o640


# -- item 1: no abort at interpreter exit ---------------------------------------------------------------------
READ_SCRIPT = "import mcsurrogate.surrogate, sys; from mcsurrogate.io import read_events; read_events(sys.argv[1])"
EXITS = {
    "read_events script": (
        [sys.executable, "-c", READ_SCRIPT, "{truth}"], 0),
    "train, missing column": ([*CLI, "train", "{truth}", "--targets", "zzz", "--out", "{tmp}/m"], 2),
    "train-response, truth file": ([*CLI, "train-response", "{truth}", "--out", "{tmp}/r"], 2),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", EXITS.keys())
def test_no_abort_at_exit_under_load(files: dict[str, Path], tmp_path: Path, case: str) -> None:
    """20 runs, three at a time on a busy machine: a read Parquet file used to make 1 exit in 6 abort (SIGABRT, 134:
    an Arrow thread released a Python buffer while the interpreter shut down)."""
    argv, expected = EXITS[case]
    argv = [a.format(truth=files["truth"], tmp=tmp_path) for a in argv]

    def once(_: int) -> tuple[int, str]:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        return proc.returncode, proc.stderr[-300:]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(once, range(20)))
    wrong = [r for r in results if r[0] != expected]
    assert not wrong, f"{len(wrong)} of 20 runs ended otherwise than with exit {expected}: {wrong[:3]}"
    assert np.all([("Traceback" not in err) for _, err in results])


def test_refused_command_leaves_no_directories_behind(files: dict[str, Path], tmp_path: Path) -> None:
    """The output's missing parents are made for its lock; a command that fails before writing removes them."""
    proc = run_here("sample", str(tmp_path / "no_model"), "-n", "10", "-o", str(tmp_path / "new" / "sub" / "x.parquet"))
    fails_cleanly(proc, "no_model")
    assert list(tmp_path.iterdir()) == []
    proc = run_here("sample", str(files["model"]), "-n", "10", "-o", str(tmp_path / "new" / "sub" / "x.parquet"))
    assert proc.returncode == 0 and (tmp_path / "new" / "sub" / "x.parquet").is_file(), proc.stderr


@pytest.mark.parametrize("then", ["raises", "returns"])
def test_sigterm_swallowed_by_c_code_still_terminates(then: str) -> None:
    """pyarrow calls awkward's Python type deserialisation from C and turns an exception there into an Arrow error:
    a SIGTERM that lands there must still end the command as terminated (exit 143), not as that error (exit 2)."""
    from mcsurrogate.errors import InputError, Terminated, sigterm_raises

    with pytest.raises(Terminated), sigterm_raises():
        try:  # what the C code does with the exception of its callback
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException:  # noqa: BLE001, S110
            pass
        if then == "raises":
            raise InputError("chunk 5 does not match the first chunk's fields")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
