"""Known-answer tests of the validation suite."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from mcsurrogate.errors import InputError
from mcsurrogate.validation import binned_divergences, c2st, compare_features


def test_c2st_recovers_the_analytic_auc_of_two_gaussians() -> None:
    rng = np.random.default_rng(0)
    d = 0.6
    r = c2st(rng.normal(0, 1, (20000, 1)), rng.normal(d, 1, (20000, 1)), n_permutations=50, n_bootstrap=100)
    optimal = norm.cdf(d / np.sqrt(2))
    # the classifier cannot beat the Bayes-optimal AUC, and gets close to it
    assert r.auc_ci[0] - 0.01 <= optimal and r.auc > optimal - 0.02
    assert r.p_value < 0.05


def test_c2st_under_the_null_is_consistent_with_half_and_p_values_are_not_small() -> None:
    pvals = []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        r = c2st(
            rng.normal(0, 1, (3000, 3)), rng.normal(0, 1, (3000, 3)), n_permutations=100, n_bootstrap=50, seed=seed
        )
        assert r.auc_ci[0] <= 0.5 + 0.01 and r.auc_ci[1] >= 0.5 - 0.01
        pvals.append(r.p_value)
    assert np.median(pvals) > 0.1


def test_c2st_input_checks_and_subsampling() -> None:
    rng = np.random.default_rng(1)
    r = c2st(rng.normal(size=(400, 2)), rng.normal(size=(100, 2)), n_permutations=19, n_bootstrap=10)
    assert r.notes and "subsampled to 100" in r.notes[0]
    with pytest.raises(InputError, match="features"):
        c2st(np.zeros((50, 2)), np.zeros((50, 3)))
    with pytest.raises(InputError, match="NaN"):
        c2st(np.r_[np.full((1, 2), np.nan), np.zeros((49, 2))], np.zeros((50, 2)))
    with pytest.raises(InputError, match="negative"):
        c2st(np.zeros((50, 2)), np.zeros((50, 2)), weights_candidate=-np.ones(50))
    with pytest.raises(InputError, match=r"shape \(3,\)"):
        c2st(np.zeros((50, 2)), np.zeros((50, 2)), weights_reference=np.ones(3))


def test_wasserstein_between_shifted_gaussians_is_the_shift_and_baseline_flags() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, (40000, 2))
    cand = np.c_[rng.normal(0.3, 1, 20000), rng.normal(0, 1, 20000)]
    out = compare_features(ref, cand, ["shifted", "same"])
    assert out["shifted"].values["wasserstein"] == pytest.approx(0.3, abs=0.02)
    assert out["shifted"].flagged and not out["same"].flagged
    assert out["same"].values["chi2_pvalue"] > 0.001 and out["shifted"].values["chi2_pvalue"] < 1e-6
    assert out["same"].to_dict()["wasserstein_baseline"] > 0


def test_binned_divergences_of_identical_histograms_are_zero() -> None:
    x = np.random.default_rng(3).normal(size=5000)
    d = binned_divergences(x, x, np.linspace(-3, 3, 21))
    assert d["chi2"] == 0 and d["kl"] == pytest.approx(0, abs=1e-9) and d["hellinger"] == pytest.approx(0, abs=1e-6)
    with pytest.raises(InputError, match="must be"):
        compare_features(np.zeros((10, 2)), np.zeros((10, 2)), ["only_one"])


def test_density_ratio_of_two_gaussians_is_recovered_and_reweighting_closes_the_gap() -> None:
    from mcsurrogate.validation import fit_density_ratio, reweighted_c2st

    rng = np.random.default_rng(4)
    ref, cand = rng.normal(0, 1, (40000, 1)), rng.normal(0.5, 1, (40000, 1))
    ratio = fit_density_ratio(ref, cand)
    x = np.array([[-1.0], [0.25], [1.5]])
    exact = norm.pdf(x[:, 0]) / norm.pdf(x[:, 0], 0.5)
    np.testing.assert_allclose(ratio.weights(x), exact, rtol=0.3)  # a boosted-tree estimate from 2 × 10⁴ events
    assert ratio.max_calibration_error() < 0.05
    fixed = reweighted_c2st(ref, cand, ratio, n_permutations=20, n_bootstrap=20)
    assert abs(fixed.auc - 0.5) < 0.02


def test_density_ratio_uses_candidate_weights_and_sklearns_calibration_binning() -> None:
    from sklearn.calibration import calibration_curve

    from mcsurrogate.validation import fit_density_ratio

    rng = np.random.default_rng(14)
    ref, cand = rng.normal(0, 1, (20000, 1)), rng.normal(0.5, 1, (20000, 1))
    exact = norm.pdf(cand[:, 0]) / norm.pdf(cand[:, 0], 0.5)
    # a candidate already weighted by the exact ratio is the reference: the fitted ratio is flat
    fixed = fit_density_ratio(ref, cand, weights_candidate=exact, folds=3)
    x = np.array([[-1.0], [0.25], [1.5]])
    np.testing.assert_allclose(fixed.weights(x), 1.0, atol=0.25)
    assert fixed.to_dict()["folds"] == 3 and len(fixed.to_dict()["boosting_iterations"]) == 3
    # unweighted, the out-of-fold calibration is sklearn's quantile calibration curve of the same scores
    ratio = fit_density_ratio(ref, cand, seed=2)
    assert len(ratio.models) == 2
    rng2 = np.random.default_rng(2)
    fold = np.r_[rng2.permutation(20000) % 2, rng2.permutation(20000) % 2]
    xs, ys = np.vstack([ref, cand]), np.r_[np.zeros(20000), np.ones(20000)]
    oof = np.empty(len(xs))
    for k, model in enumerate(ratio.models):
        oof[fold == k] = model.predict_proba(xs[fold == k])[:, 1]
    frac, mean = calibration_curve(ys, oof, n_bins=10, strategy="quantile")
    np.testing.assert_allclose(ratio.calibration["fraction_positive"], frac, rtol=1e-12)
    np.testing.assert_allclose(ratio.calibration["mean_predicted"], mean, rtol=1e-12)
    with pytest.raises(InputError, match="folds >= 2"):
        fit_density_ratio(ref, cand, folds=1)


def test_correlation_matrices() -> None:
    from mcsurrogate.validation import compare_correlations

    rng = np.random.default_rng(5)
    a = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 20000)
    b = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 20000)
    c = compare_correlations(a, b, ["x", "y"])
    assert c.pearson_reference[0, 1] == pytest.approx(0.8, abs=0.01)
    assert c.max_abs_difference["pearson"] == pytest.approx(0.3, abs=0.02)
    assert c.to_dict()["names"] == ["x", "y"]
