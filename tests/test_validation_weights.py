"""Event weights enter every number of the validation (issue 27, item 6).

Known answers: a candidate drawn from another law and weighted by the exact importance weights p_ref/p_cand *is*
the reference, so its weighted correlations, FPD, KPD, KS and C2ST must come back to the reference's. Integer
weights must give the same numbers as the unweighted sample with each event repeated that many times. Bad weights
(all zero, NaN, inf, negative, wrong length) are refused with an error that names the parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mcsurrogate.errors import InputError
from mcsurrogate.validation import (
    c2st,
    compare_correlations,
    compare_features,
    fit_density_ratio,
    fpd,
    kpd,
    validate,
)
from mcsurrogate.validation.density_ratio import tail_summary

NAMES = ["a", "b", "c"]
FPD_FAST = {"n_min": 5_000, "n_max": 20_000, "n_points": 5, "n_batches": 4}
KPD_FAST = {"subset_size": 1_000, "n_subsets": 10}


COV_REF = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 1.0]])
MEAN_CAN = np.array([0.4, 0.0, -0.2])
COV_CAN = 2.0 * np.eye(3)  # wider than the reference in every direction: bounded importance weights


@pytest.fixture(scope="module")
def shifted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference N(0, COV_REF); candidate N(MEAN_CAN, COV_CAN) with w = p_ref/p_cand (the exact map back)."""
    rng = np.random.default_rng(27)
    ref = rng.multivariate_normal(np.zeros(3), COV_REF, 60_000)
    can = rng.multivariate_normal(MEAN_CAN, COV_CAN, 150_000)
    w = stats.multivariate_normal(np.zeros(3), COV_REF).pdf(can) / stats.multivariate_normal(MEAN_CAN, COV_CAN).pdf(can)
    return ref, can, w


def test_weighted_correlations_come_back_to_the_reference(shifted):
    ref, can, w = shifted
    raw = compare_correlations(ref, can, NAMES)
    assert raw.max_abs_difference["pearson"] > 0.5  # unweighted: the candidate is uncorrelated
    fixed = compare_correlations(ref, can, NAMES, weights_candidate=w)
    np.testing.assert_allclose(fixed.pearson_candidate, COV_REF, atol=0.03)
    np.testing.assert_allclose(fixed.pearson_candidate, fixed.pearson_reference, atol=0.03)
    np.testing.assert_allclose(fixed.spearman_candidate, fixed.spearman_reference, atol=0.03)


def test_weighted_fpd_and_kpd_come_back_to_the_reference(shifted):
    ref, can, w = shifted
    raw, _ = fpd(ref, can, seed=1, **FPD_FAST)
    fixed, fixed_err = fpd(ref, can, weights_candidate=w, seed=1, **FPD_FAST)
    baseline, _ = fpd(ref[:30_000], ref[30_000:], seed=1, **FPD_FAST)
    assert raw > 20 * max(fixed, baseline, 1e-4)
    assert fixed < max(5 * baseline, baseline + 5 * fixed_err, 2e-3)
    k_raw, _ = kpd(ref, can, seed=1, **KPD_FAST)
    k_fixed, k_err = kpd(ref, can, weights_candidate=w, seed=1, **KPD_FAST)
    assert k_raw > 10 * max(abs(k_fixed), k_err)
    assert abs(k_fixed) < 3 * k_err + 1e-4


def test_weighted_ks_w1_and_chi2_come_back_to_the_reference(shifted):
    ref, can, w = shifted
    raw = compare_features(ref, can, NAMES, n_resamples=4, seed=2)
    fixed = compare_features(ref, can, NAMES, weights_candidate=w, n_resamples=4, seed=2)
    assert all(raw[n].values["ks_pvalue"] < 1e-6 for n in NAMES)
    for n in NAMES:
        assert fixed[n].values["ks_pvalue"] > 1e-3, (n, fixed[n].values)
        assert fixed[n].values["wasserstein"] < 0.03
        assert raw[n].values["ks_statistic"] > 5 * fixed[n].values["ks_statistic"]


def test_weighted_c2st_auc_comes_back_to_one_half(shifted):
    ref, can, w = shifted
    raw = c2st(ref[:20_000], can[:20_000], n_permutations=19, n_bootstrap=20, n_repeats=1)
    fixed = c2st(ref, can, weights_candidate=w, n_permutations=19, n_bootstrap=50, n_repeats=1, max_events=40_000)
    assert raw.auc > 0.6
    assert abs(fixed.auc - 0.5) < 0.01


def test_integer_weights_equal_repeated_events():
    rng = np.random.default_rng(3)
    ref = np.round(rng.normal(size=(3_000, 3)), 2)  # ties on purpose
    can = np.round(rng.normal(0.1, 1.1, size=(2_000, 3)), 2) @ np.array([[1, 0.5, 0], [0, 1, 0], [0, 0.2, 1]])
    k = rng.integers(0, 4, len(can))  # some events weigh 0
    rep = np.repeat(can, k, axis=0)
    cw = compare_correlations(ref, can, NAMES, weights_candidate=k.astype(float))
    cr = compare_correlations(ref, rep, NAMES)
    np.testing.assert_allclose(cw.pearson_candidate, cr.pearson_candidate, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cw.spearman_candidate, cr.spearman_candidate, rtol=0, atol=1e-12)
    fw = compare_features(ref, can, NAMES, weights_candidate=k.astype(float), n_resamples=2)
    fr = compare_features(ref, rep, NAMES, n_resamples=2)
    for n in NAMES:
        for key in ("wasserstein", "ks_statistic", "kl", "hellinger"):
            assert fw[n].values[key] == pytest.approx(fr[n].values[key], rel=1e-10, abs=1e-12), key
    # the tails of a density ratio: weighted fraction and weighted means of the events in them
    ratio = np.exp(can[:, 0] - can[:, 1])
    tw = tail_summary(can, ratio, NAMES, weights=k.astype(float))
    tr = tail_summary(rep, np.repeat(ratio, k), NAMES)
    for tail in ("overpopulated_w_below_0.5", "underpopulated_w_above_2"):
        assert tw[tail]["fraction_of_generated"] == pytest.approx(tr[tail]["fraction_of_generated"], rel=1e-12)
        for n in NAMES:
            assert tw[tail]["mean_of_features"][n] == pytest.approx(tr[tail]["mean_of_features"][n], rel=1e-10)
    assert tw["quantiles_generated"] == pytest.approx(tr["quantiles_generated"], rel=1e-12)


def test_spearman_and_ks_unweighted_are_scipys():
    rng = np.random.default_rng(4)
    a = np.round(rng.normal(size=(500, 3)), 1)
    b = np.round(rng.normal(0.2, size=(700, 3)), 1)
    c = compare_correlations(a, b, NAMES)
    np.testing.assert_allclose(c.spearman_reference, stats.spearmanr(a).statistic, atol=1e-12)
    np.testing.assert_allclose(c.pearson_candidate, np.corrcoef(b, rowvar=False), atol=1e-12)
    f = compare_features(a, b, NAMES, n_resamples=2)
    for j, n in enumerate(NAMES):
        ks = stats.ks_2samp(a[:, j], b[:, j])
        assert f[n].values["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
        assert f[n].values["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-9)
        assert f[n].values["wasserstein"] == pytest.approx(stats.wasserstein_distance(a[:, j], b[:, j]), rel=1e-12)
    # above scipy's exact limit, scipy's asymptotic formula with the same sizes
    a2, b2 = rng.normal(size=(30_000, 1)), rng.normal(0.01, size=(20_000, 1))
    big = compare_features(a2, b2, ["x"], n_resamples=2)["x"].values
    ks = stats.ks_2samp(a2[:, 0], b2[:, 0])
    assert big["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert big["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-9)


def test_reference_weights_enter_too():
    """The reference may be weighted (real MC is): a reference with the candidate's law, weighted back to the
    candidate's law, agrees with the candidate."""
    rng = np.random.default_rng(5)
    can = rng.normal(0, 1, (40_000, 1))
    ref = rng.normal(0.3, 1.2, (80_000, 1))
    w_ref = stats.norm.pdf(ref[:, 0]) / stats.norm.pdf(ref[:, 0], 0.3, 1.2)
    raw = compare_features(ref, can, ["x"])["x"]
    fixed = compare_features(ref, can, ["x"], weights_reference=w_ref)["x"]
    assert raw.flagged and not fixed.flagged
    assert fixed.values["ks_pvalue"] > 1e-3
    f_raw, _ = fpd(ref, can, seed=0, **FPD_FAST)
    f_fixed, _ = fpd(ref, can, weights_reference=w_ref, seed=0, **FPD_FAST)
    assert f_fixed < 0.05 * f_raw


BAD = {
    "all zero": np.zeros(200),
    "a NaN": np.r_[np.nan, np.ones(199)],
    "an inf": np.r_[np.inf, np.ones(199)],
    "negative": np.r_[-1.0, np.ones(199)],
    "wrong length": np.ones(7),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("side", ["weights_reference", "weights_candidate"])
def test_bad_weights_are_refused_naming_the_parameter(case, side):
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    kw = {side: BAD[case]}
    calls = [
        lambda: validate(a, b, ["x", "y"], n_permutations=19, **kw),
        lambda: compare_features(a, b, ["x", "y"], **kw),
        lambda: compare_correlations(a, b, ["x", "y"], **kw),
        lambda: c2st(a, b, n_permutations=19, **kw),
        lambda: fit_density_ratio(a, b, **kw),
        lambda: fpd(a, b, **kw, **FPD_FAST),
        lambda: kpd(a, b, **kw, **KPD_FAST),
    ]
    for call in calls:
        with pytest.raises(InputError, match=side):
            call()
