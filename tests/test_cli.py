"""The command line through subprocesses, on real ROOT and Parquet files; fault cases with SIGKILL. Error messages,
which need no process of their own, are checked in this process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mcsurrogate.cli import main
from mcsurrogate.errors import ModelDirectoryError
from mcsurrogate.persistence import load_tensors

from .conftest import correlated_events


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mcsurrogate", *args], capture_output=True, check=False, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (no interpreter start-up: ~4 s less per call); an unexpected exception propagates."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def write_root(path: Path, events: ak.Array, tree: str = "mc") -> Path:
    with uproot.recreate(path) as f:
        f[tree] = {name: events[name].to_numpy() for name in events.fields}
    return path


def fails_with(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())  # the paragraph is wrapped at 100 characters wherever a path ends
    for frag in fragments:
        assert " ".join(frag.split()) in text, (frag, proc.stderr)


@pytest.fixture(scope="module")
def root_file(tmp_path_factory) -> Path:
    return write_root(tmp_path_factory.mktemp("data") / "mc.root", correlated_events(6000, seed=1))


@pytest.fixture(scope="module")
def model_dir(root_file: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "maf"
    proc = run(
        "train",
        f"{root_file}:mc",
        "--targets",
        "a,b,c",
        "--conditions",
        "mu",
        "--model",
        "maf",
        "--blocks",
        "3",
        "--hidden",
        "32",
        "--epochs",
        "25",
        "--batch-size",
        "256",
        "--lr",
        "3e-3",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert "saved" in proc.stdout
    assert not Path(str(out) + ".checkpoints").exists()
    return out


def test_train_then_sample_reproduces_the_distributions(model_dir: Path, root_file: Path, tmp_path: Path) -> None:
    truth = uproot.open(root_file)["mc"].arrays(library="np")
    out = tmp_path / "gen.parquet"
    proc = run("sample", str(model_dir), "--conditions-from", f"{root_file}:mc", "-o", str(out), "--seed", "4")
    assert "wrote 6000 events" in proc.stdout
    gen = ak.from_parquet(out)
    assert set(gen.fields) == {"a", "b", "c", "mu"}
    for col in ("a", "b", "c"):
        t, g = truth[col], gen[col].to_numpy()
        assert abs(g.mean() - t.mean()) < 0.1 * t.std(), col
        assert g.std() == pytest.approx(t.std(), rel=0.1), col
    np.testing.assert_allclose(
        np.corrcoef([gen.a, gen.b, gen.c]), np.corrcoef([truth["a"], truth["b"], truth["c"]]), atol=0.1
    )
    # ROOT output too, and the same seed gives the same numbers
    out_root = tmp_path / "gen.root"
    run("sample", str(model_dir), "--conditions-from", str(root_file), "-o", str(out_root), "--seed", "4")
    again = uproot.open(out_root)["events"].arrays(library="np")
    np.testing.assert_array_equal(again["a"], gen.a.to_numpy())


def test_sample_reweighted_against_the_training_file(model_dir: Path, root_file: Path, tmp_path: Path) -> None:
    plain, weighted = tmp_path / "plain.parquet", tmp_path / "weighted.parquet"
    run_here("sample", str(model_dir), "--conditions-from", str(root_file), "-o", str(plain), "--seed", "4")
    proc = run_here(
        "sample",
        str(model_dir),
        "--conditions-from",
        str(root_file),
        "--reweight-against",
        f"{root_file}:mc",
        "-o",
        str(weighted),
        "--seed",
        "4",
        "--batch-size",
        "2500",
        "--save-reweighting",
        str(tmp_path / "rw"),
    )
    assert proc.returncode == 0 and "Kish efficiency" in proc.stdout and "wrote 6000 events" in proc.stdout
    # the saved reweighting gives the same weights without refitting
    reloaded = tmp_path / "reloaded.parquet"
    args = ["sample", str(model_dir), "--conditions-from", str(root_file), "-o", str(reloaded), "--seed", "4"]
    proc = run_here(*args, "--reweighting", str(tmp_path / "rw"))
    assert proc.returncode == 0 and "reweighting from" in proc.stdout, proc.stderr
    np.testing.assert_array_equal(
        ak.from_parquet(reloaded).weight.to_numpy(), ak.from_parquet(weighted).weight.to_numpy()
    )
    fails_with(
        run_here(*args, "--overwrite", "--reweighting", str(tmp_path / "rw"), "--reweight-against", f"{root_file}:mc"),
        "not both",
    )
    fails_with(run_here(*args, "--overwrite", "--save-reweighting", str(tmp_path / "rw2")), "pass both")
    refit = ["--reweight-against", f"{root_file}:mc", "--save-reweighting", str(tmp_path / "rw")]
    proc = run_here(*args[:4], "-o", str(tmp_path / "new.parquet"), *refit)
    fails_with(proc, "rw exists already")
    assert "Kish efficiency" not in proc.stdout  # refused before the fit, not after it
    fails_with(
        run_here(*args, "--overwrite", "--reweighting", str(tmp_path / "nothing")), "no such reweighting directory"
    )
    gen, base = ak.from_parquet(weighted), ak.from_parquet(plain)
    assert set(gen.fields) == {"a", "b", "c", "mu", "weight"}
    np.testing.assert_array_equal(gen.a.to_numpy(), base.a.to_numpy())  # the weights leave the events as they were
    w = gen.weight.to_numpy()
    assert np.isfinite(w).all() and w.min() > 0 and 0.8 < w.mean() < 1.25 and w.std() > 0
    # and validated with them: the weight column is not a feature, it weights the candidate
    report = tmp_path / "validation"
    proc = run_here(
        "validate",
        str(root_file),
        str(weighted),
        "--candidate-weights",
        "weight",
        "--permutations",
        "20",
        "--out",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((report / "report.json").read_text())
    assert set(data["features"]) == {"a", "b", "c", "mu"}
    assert data["c2st"]["n_candidate"] == 6000
    unweighted = tmp_path / "validation_unweighted"
    run_here(
        "validate",
        str(root_file),
        str(weighted),
        "--features",
        "a,b,c,mu",
        "--permutations",
        "20",
        "--out",
        str(unweighted),
    )
    plain_w1 = json.loads((unweighted / "report.json").read_text())["features"]["a"]["wasserstein"]
    assert data["features"]["a"]["wasserstein"] != plain_w1


def test_distill_then_sample_close_to_the_flow(model_dir: Path, root_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "fast"
    proc = run(
        "distill", str(model_dir), "--conditions-from", f"{root_file}:mc", "--pairs", "60000", "--epochs", "5",
        "--batch-size", "512", "--hidden", "64", "--precision", "bfloat16", "--activation", "relu",
        "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert "saved" in proc.stdout and "teacher variance" in proc.stdout
    assert json.loads(run("info", str(out), "--json").stdout)["distilled_sampler"]["hidden"] == 64
    assert "distilled, 3 × 64 relu, bfloat16" in run("info", str(out)).stdout
    for model, name in ((model_dir, "flow.parquet"), (out, "fast.parquet")):
        run("sample", str(model), "--conditions-from", f"{root_file}:mc", "-o", str(tmp_path / name), "--seed", "4")
    flow, fast = ak.from_parquet(tmp_path / "flow.parquet"), ak.from_parquet(tmp_path / "fast.parquet")
    for col in ("a", "b", "c"):  # same noise: event by event close
        f, g = flow[col].to_numpy(), fast[col].to_numpy()
        assert np.sqrt(np.mean((f - g) ** 2)) < 0.2 * f.std(), col
    fails_with(run("distill", str(model_dir), "--out", str(tmp_path / "x"), check=False), "--conditions-from")
    fails_with(run("distill", str(model_dir), "--conditions-from", str(root_file), "--out", str(out), check=False),
               "exists already")  # fmt: skip


def test_info(model_dir: Path) -> None:
    proc = run("info", str(model_dir))
    assert "maf" in proc.stdout and "a, b, c" in proc.stdout and "mu" in proc.stdout
    info = json.loads(run("info", str(model_dir), "--json").stdout)
    assert info["targets"] == ["a", "b", "c"] and info["n_parameters"] > 0


def test_reader_closing_the_pipe_ends_quietly(model_dir: Path) -> None:
    """``mcsurrogate info MODEL | head -1``: the reader is gone before the command writes; exit 141, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcsurrogate", "info", str(model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the child is still importing: its first write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_bad_inputs_get_one_paragraph(root_file: Path, model_dir: Path, tmp_path: Path) -> None:
    fails_with(
        run_here("train", str(tmp_path / "nope.root"), "--targets", "a", "--out", str(tmp_path / "m")),
        "nope.root",
    )
    fails_with(
        run_here("train", f"{root_file}:wrongtree", "--targets", "a", "--out", str(tmp_path / "m")),
        "wrongtree",
        "mc",
    )
    fails_with(run_here("train", str(root_file), "--targets", "a,zzz", "--out", str(tmp_path / "m")), "zzz")
    fails_with(run_here("train", str(root_file), "--targets", "a", "--out", str(model_dir)), "exists already")
    fails_with(run_here("sample", str(model_dir), "-o", str(tmp_path / "x.parquet")), "--conditions-from", "mu")
    fails_with(
        run_here("sample", str(tmp_path), "-n", "5", "-o", str(tmp_path / "x.parquet")),
        "not an mcsurrogate model directory",
    )
    existing = tmp_path / "exists.parquet"
    existing.write_bytes(b"precious")
    fails_with(run_here("sample", str(model_dir), "--conditions-from", str(root_file), "-o", str(existing)), "exists")
    assert existing.read_bytes() == b"precious"
    bad = write_root(tmp_path / "nan.root", ak.zip({"a": np.r_[np.nan, np.ones(99)], "mu": np.ones(100)}))
    fails_with(
        run_here("train", str(bad), "--targets", "a", "--conditions", "mu", "--out", str(tmp_path / "m")),
        "a: 1 NaN",
        "--drop-nonfinite",
    )


def _checkpoint_epoch(path: Path) -> int:
    try:
        _, meta = load_tensors(path)
    except ModelDirectoryError:  # a checkpoint being written: not readable yet
        return 0
    return len(meta.get("result", {}).get("history", []))


def test_training_killed_with_sigkill_resumes_to_the_same_model(tmp_path: Path) -> None:
    data = write_root(tmp_path / "big.root", correlated_events(30000, seed=5))
    common = [
        "--targets",
        "a,b",
        "--conditions",
        "mu",
        "--model",
        "maf",
        "--blocks",
        "2",
        "--hidden",
        "32",
        "--epochs",
        "8",
        "--batch-size",
        "128",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    run("train", str(data), *common, "--out", str(tmp_path / "reference"))

    out = tmp_path / "interrupted"
    last = Path(str(out) + ".checkpoints") / "last.safetensors"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcsurrogate", "train", str(data), *common, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while _checkpoint_epoch(last) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_epoch(last)
    assert 2 <= killed_at < 8 and not out.exists()

    run("train", str(data), *common, "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["resumed_from_epoch"] >= killed_at
    ref, _ = load_tensors(tmp_path / "reference" / "weights.safetensors")
    got, _ = load_tensors(out / "weights.safetensors")
    assert ref.keys() == got.keys()
    for key in ref:
        assert np.array_equal(ref[key].numpy(), got[key].numpy()), key


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_sampling_killed_while_writing_leaves_no_partial_file(model_dir: Path, tmp_path: Path, sig: int) -> None:
    cond = tmp_path / "cond.parquet"
    ak.to_parquet(correlated_events(2_000_000, seed=6), cond)
    out = tmp_path / "gen.parquet"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "sample",
            str(model_dir),
            "--conditions-from",
            str(cond),
            "--batch-size",
            "20000",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not any(p.name.startswith(".gen.parquet.tmp") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.time() < deadline, "sampling ended before a partial file appeared"
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    code = proc.wait()
    assert not out.exists()
    if sig == signal.SIGTERM:  # caught: the command unwinds, deletes its temporary file and exits with 128 + 15
        assert code == 143
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".gen.parquet.tmp")]


def test_preprocessing_choices_are_the_library_presets() -> None:
    from mcsurrogate.cli.core import PREPROCESSING_CHOICES
    from mcsurrogate.preprocessing import PRESETS

    assert PREPROCESSING_CHOICES == tuple(PRESETS)


def test_train_with_a_weight_column_records_the_effective_size(tmp_path: Path) -> None:
    """``train --weights COLUMN`` trains on the weights (the Kish size in metrics.json and ``info``); a bad weight
    column is refused naming it (issue 29)."""
    events = correlated_events(1500, seed=4)
    w = np.random.default_rng(0).exponential(1.0, len(events))
    data = write_root(tmp_path / "w.root", ak.with_field(ak.with_field(events, w, "w"), np.zeros(len(events)), "zero"))
    common = (
        "--targets",
        "a,b",
        "--model",
        "maf",
        "--blocks",
        "1",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    out = tmp_path / "weighted"
    proc = run_here("train", str(data), *common, "--weights", "w", "--bootstrap-seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "metrics.json").read_text())["weights"]
    n = summary["n_train"]
    assert summary["bootstrap_seed"] == 3 and summary["source"] == "w"
    assert 0.2 * n < summary["kish_effective_size"] < 0.8 * n  # exponential × Poisson(1) weights: Kish ≈ n/4
    assert "Kish effective size" in proc.stdout
    info = run_here("info", str(out))
    assert "training size" in info.stdout and "Poisson bootstrap seed 3" in info.stdout
    fails_with(run_here("train", str(data), *common, "--weights", "zero", "--out", str(tmp_path / "z")), "zero")
    assert not (tmp_path / "z").exists()


def test_batch_logs_get_one_line_per_epoch(tmp_path: Path) -> None:
    """Without a terminal (a batch job, a pipe) ``train`` logs a line per epoch with the loss and validation NLL
    on stderr, instead of a progress bar (issue 33 item 6)."""
    data = write_root(tmp_path / "d.root", correlated_events(800, seed=2))
    proc = run(
        "train", str(data), "--targets", "a,b", "--model", "maf", "--blocks", "1", "--hidden", "8",
        "--epochs", "3", "--device", "cpu", "--out", str(tmp_path / "m"),
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if " epoch " in line]
    assert len(lines) == 3, proc.stderr
    assert all("train loss" in line and "validation NLL" in line for line in lines)
    assert "epoch 3/3" in lines[-1]


def test_sample_refine_writes_unweighted_refined_events(tmp_path: Path) -> None:
    from mcsurrogate.refinement import fit_reweighting
    from mcsurrogate.surrogate import Surrogate

    events = correlated_events(2000, seed=41)
    fast = {"epochs": 1, "batch_size": 256, "patience": None, "device": "cpu", "seed": 0}
    model = Surrogate(["a", "b"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=fast)
    model.fit(events, progress=False)
    model.save(tmp_path / "model")
    generated = model.sample(2000, seed=1, progress=False)
    fit_reweighting(events, generated, ["a", "b"], folds=2, max_iter=20, seed=1).save(tmp_path / "rw")
    out = tmp_path / "refined.parquet"
    args = ["sample", str(tmp_path / "model"), "-n", "300", "-o", str(out), "--refine", str(tmp_path / "rw")]
    proc = run_here(*args, "--hmc-chains", "8", "--hmc-warmup", "20", "--hmc-thin", "2", "--seed", "3")
    assert proc.returncode == 0 and "split-R-hat" in proc.stdout and "wrote 300 events" in proc.stdout, proc.stderr
    refined = ak.from_parquet(out)
    assert set(refined.fields) == {"a", "b"} and np.isfinite(refined.a.to_numpy()).all()  # unweighted: no weight
    fails_with(run_here(*args, "--overwrite", "--reweighting", str(tmp_path / "rw")), "--refine writes unweighted")
    fails_with(run_here(*args, "--overwrite", "--hmc-chains", "1"), "chains")


def test_sample_refine_takes_a_conditional_model_s_conditions(tmp_path: Path) -> None:
    from mcsurrogate.refinement import fit_surrogate_reweighting
    from mcsurrogate.surrogate import Surrogate

    events = correlated_events(2000, seed=42)
    fast = {"epochs": 1, "batch_size": 256, "patience": None, "device": "cpu", "seed": 0}
    model = Surrogate(["a"], ["b"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=fast)
    model.fit(events, progress=False)
    model.save(tmp_path / "model")
    fit_surrogate_reweighting(model, events, seed=1, folds=2, max_iter=20).save(tmp_path / "rw")
    conditions = tmp_path / "conditions.parquet"
    ak.to_parquet(events[["b"]][:150], conditions)
    out = tmp_path / "refined.parquet"
    args = ["sample", str(tmp_path / "model"), "--conditions-from", str(conditions), "-o", str(out)]
    proc = run_here(*args, "--refine", str(tmp_path / "rw"), "--hmc-chains", "64", "--hmc-warmup", "10", "--seed", "3")
    assert proc.returncode == 0 and "wrote 150 events" in proc.stdout, proc.stderr
    refined = ak.from_parquet(out)
    np.testing.assert_array_equal(refined.b.to_numpy(), events.b[:150].to_numpy())  # one event per condition row
    assert np.isfinite(refined.a.to_numpy()).all()


def test_model_choices_are_the_flow_families() -> None:
    """The --model choices are written out (the parser loads no torch); they must stay the registry's families."""
    from mcsurrogate.cli.core import FLOW_CHOICES
    from mcsurrogate.flows import FLOW_FAMILIES

    assert sorted(FLOW_CHOICES) == sorted(FLOW_FAMILIES)
