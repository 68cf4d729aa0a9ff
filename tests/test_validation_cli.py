"""``mcsurrogate validate``: every flag checked when parsed, weights on both sides, help with units and defaults."""

from __future__ import annotations

import argparse
import json

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.cli import build_parser, main
from mcsurrogate.io import write_events

FAST = ["--fpd-sizes", "1000,4000", "--kpd-subset-size", "500", "--resamples", "4", "--repeats", "2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A reference with weights that map its shifted law back onto the candidate's, and bad weight columns."""
    tmp = tmp_path_factory.mktemp("validate_cli")
    rng = np.random.default_rng(0)
    x_ref = rng.normal(0.3, 1.0, 3_000)
    ref = {
        "x": x_ref,
        "y": rng.normal(0, 1, 3_000),
        "w": np.exp(-0.3 * x_ref + 0.045),  # N(0.3, 1) weighted back to N(0, 1)
        "zero": np.zeros(3_000),
        "nan": np.r_[np.nan, np.ones(2_999)],
    }
    can = {"x": rng.normal(0, 1, 3_000), "y": rng.normal(0, 1, 3_000), "wc": np.ones(3_000)}
    write_events(ak.Array(ref), tmp / "ref.parquet")
    write_events(ak.Array(can), tmp / "can.parquet")
    return tmp


def _run(files, *extra: str, out: str = "out") -> int:
    return main(["validate", str(files / "ref.parquet"), str(files / "can.parquet"), "--out", str(files / out), *extra])


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--permutations", "-1"),
        ("--permutations", "0"),
        ("--bins", "0"),
        ("--resamples", "1"),
        ("--repeats", "0"),
        ("--bootstrap", "-3"),
        ("--level", "1"),
        ("--max-events", "10.5"),
        ("--fpd-sizes", "50000,20000"),
        ("--kpd-subset-size", "0"),
        ("--kpd-degree", "0"),
        ("--threads", "0"),
        ("--seed", "-1"),
        ("--physics-scaling", "minmax"),
    ],
)
def test_bad_flags_are_refused_when_parsed(files, capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        _run(files, flag, value, out="never")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "Traceback" not in err
    assert not (files / "never").exists()


def test_unknown_corner_feature_is_refused_before_the_work(files, capsys):
    assert _run(files, "--features", "x,y", "--corner", "x,nope", out="corner") == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "--corner" in err
    assert not (files / "corner").exists()


def test_unwritable_out_is_refused_before_the_work(files, capsys, tmp_path, monkeypatch):
    """--out below a regular file: exit 2 naming it, before any file is read (issue 28 item 3)."""
    from mcsurrogate.validation import report

    def never(*args, **kwargs):
        raise AssertionError("validate ran although --out cannot be written")

    monkeypatch.setattr(report, "validate", never)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = main(["validate", str(files / "ref.parquet"), str(files / "can.parquet"), "--out", str(blocker / "sub")])
    assert code == 2
    err = capsys.readouterr().err
    assert "a_file" in err and "Traceback" not in err


def test_a_failed_validate_leaves_no_empty_out(files, capsys):
    assert _run(files, "--features", "x,nope", out="failed") == 2
    assert "nope" in capsys.readouterr().err
    assert not (files / "failed").exists()


def test_too_few_permutations_for_the_level_exit_2(files, capsys):
    assert _run(files, "--permutations", "5", out="few") == 2
    err = " ".join(capsys.readouterr().err.split())  # the CLI wraps its paragraph at 100 characters
    assert "at least 19" in err and "Traceback" not in err


@pytest.mark.parametrize(("column", "words"), [("zero", "all zero"), ("nan", "NaN")])
def test_bad_weight_columns_are_named(files, capsys, column, words):
    assert _run(files, "--reference-weights", column, *FAST, out=f"bad_{column}") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert repr(column) in err and "ref.parquet" in err and words in err


def test_reference_and_candidate_weights(files, capsys):
    assert _run(files, "--features", "x,y", "--permutations", "19", *FAST, out="raw") == 0
    assert (
        _run(
            files,
            "--reference-weights",
            "w",
            "--candidate-weights",
            "wc",
            "--permutations",
            "19",
            "--threads",
            "1",
            *FAST,
            out="weighted",
        )
        == 0
    )
    raw = json.loads((files / "raw" / "report.json").read_text())
    weighted = json.loads((files / "weighted" / "report.json").read_text())
    assert set(weighted["features"]) == {"x", "y"}  # weight columns are not features
    assert raw["features"]["x"]["ks_pvalue"] < 1e-6
    assert weighted["features"]["x"]["ks_pvalue"] > 1e-3
    assert weighted["physics_distances"]["conventions"]["weights"] == "weighted resample"
    assert {"read", "c2st", "features", "figures"} <= set(weighted["timings_s"])
    assert "seconds per section" in capsys.readouterr().out


def test_every_option_has_help_with_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    validate = sub.choices["validate"]
    for action in validate._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        assert action.help, action.option_strings
        assert "default" in action.help or "required" in action.help, action.option_strings
