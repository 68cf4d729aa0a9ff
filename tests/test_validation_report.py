"""The validation report: FPD/KPD known answers, the grouped AUC, validate() + write_report(), the CLI."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mcsurrogate.cli import main
from mcsurrogate.errors import InputError
from mcsurrogate.io import write_events
from mcsurrogate.validation import fpd, frechet_distance, kpd, validate, write_report
from mcsurrogate.validation.c2st import _grouped_auc


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50_000, 3))
    b = rng.normal(size=(50000, 3)) + np.array([0.2, 0.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(0.04, abs=0.005)
    value, error = fpd(a, b, n_min=5_000, n_max=40_000, scaling="none")  # raw units: the known answer δ² = 0.04
    assert value == pytest.approx(0.04, abs=max(4 * error, 0.004))
    same, same_err = fpd(a, rng.normal(size=(50_000, 3)), n_min=5_000, n_max=40_000, scaling="none")
    assert abs(same) < max(4 * same_err, 2e-3)


def test_kpd_separates_same_from_different():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10_000, 4))
    same, same_err = kpd(a, rng.normal(size=(10_000, 4)), subset_size=2_000)
    diff, _ = kpd(a, rng.normal(size=(10_000, 4)) * 1.3, subset_size=2_000)
    assert abs(same) < 3 * same_err
    assert diff > 10 * same_err > 0


def test_grouped_auc_equals_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(2)
    s = np.round(rng.random(5_000), 2)
    y = (rng.random(5_000) < s).astype(float)
    w = rng.random(5_000)
    values, group = np.unique(s, return_inverse=True)
    assert _grouped_auc(group, len(values), w * y, w * (1 - y)) == pytest.approx(
        roc_auc_score(y, s, sample_weight=w), abs=1e-12
    )


def test_validate_finds_the_broken_feature_and_writes_the_report(tmp_path):
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(8_000, 3))
    good = rng.normal(size=(8_000, 3))
    bad = good.copy()
    bad[:, 2] = bad[:, 2] * 1.3
    fast = {"n_min": 2_000, "n_max": 8_000, "n_points": 5, "n_batches": 5, "subset_size": 1_000}
    report = validate(ref, good, ["a", "b", "c"], n_permutations=50, n_bootstrap=50, physics_options=fast)
    assert report.flagged_features == [] and report.c2st.p_value > 0.01
    broken = validate(ref, bad, ["a", "b", "c"], n_permutations=50, n_bootstrap=50, physics_options=fast)
    assert broken.flagged_features == ["c"]
    assert broken.c2st.auc > 0.52 and broken.c2st.p_value < 0.05
    assert broken.physics_distances["kpd"] > 5 * abs(broken.physics_distances["kpd_baseline"])
    # the reweighted candidate is closer to the reference than the raw one
    assert abs(broken.reweighted_c2st.auc - 0.5) < abs(broken.c2st.auc - 0.5)
    figures = write_report(broken, ref, bad, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    for key in ("auc", "auc_ci", "ci_covers", "p_value", "p_value_min", "decision", "accuracy"):
        assert key in data["c2st"]
    for key in ("wasserstein", "wasserstein_sd", "wasserstein_baseline", "chi2_pvalue", "ks_statistic", "ks_pvalue"):
        assert key in data["features"]["c"]
    assert set(data["timings_s"]) >= {"c2st", "features", "correlations", "physics_distances", "figures"}
    assert "c2st_roc.png" in figures and "corner.png" in figures and (tmp_path / "index.html").exists()


def test_validate_bad_input():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(100, 2))
    with pytest.raises(InputError, match="features"):
        validate(a, rng.normal(size=(100, 3)), ["x", "y"])
    nan = a.copy()
    nan[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        validate(a, nan, ["x", "y"])
    with pytest.raises(InputError, match="negative"):
        validate(a, a, ["x", "y"], weights_candidate=-np.ones(100))
    with pytest.raises(InputError, match="shape"):
        validate(a, a, ["x", "y"], weights_candidate=np.ones(5))
    with pytest.raises(InputError, match="non-empty"):
        validate(a, np.zeros((0, 2)), ["x", "y"])


def test_validate_cli(tmp_path):
    rng = np.random.default_rng(5)
    ref = {"pt": rng.exponential(40, 4_000), "eta": rng.normal(0, 1.5, 4_000)}
    can = {"pt": rng.exponential(40, 40_000), "eta": rng.normal(0, 1.5, 40_000), "extra": np.zeros(40_000)}
    write_events(ak.Array(ref), tmp_path / "ref.parquet")
    write_events(ak.Array(can), tmp_path / "can.parquet")
    out = tmp_path / "report"
    assert (
        main(
            [
                "validate",
                str(tmp_path / "ref.parquet"),
                str(tmp_path / "can.parquet"),
                "--permutations",
                "30",
                "--fpd-sizes",
                "2000,8000",
                "--kpd-subset-size",
                "1000",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads((out / "report.json").read_text())
    assert set(data["features"]) == {"pt", "eta"}
    assert any("unequal" in n or "subsampled" in n for n in data["notes"])
    assert (
        main(
            [
                "validate",
                str(tmp_path / "ref.parquet"),
                str(tmp_path / "can.parquet"),
                "--features",
                "pt,nope",
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 2
    )
