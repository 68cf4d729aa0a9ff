"""The MC-vs-MC baseline at the comparison's own sizes, and the bootstrap uncertainty of each 1-D number (issue 27,
item 7).

The truth is measured, not assumed: the mean and SD of W1 and of the KS distance between *independent* samples of
the comparison's sizes M and N from one law. The baseline must reproduce them for equal and for very unequal
sizes and for a weighted candidate; the earlier baseline (two halves of min(M/2, N) reference events) was
√2 too large for M = N, and found a known shift in 5 of 12 cases where the sized one finds ≥ 9.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mcsurrogate.validation import binned_divergences, compare_features

FEATURES = list("abcdefgh")


def _truth(m: int, n: int, reps: int, seed: int, weights: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """W1 and KS distance between ``reps`` pairs of independent N(0, 1) samples of sizes m and n (the candidate
    with exponential weights when ``weights``)."""
    rng = np.random.default_rng(seed)
    w1, ks = [], []
    for _ in range(reps):
        a, b = rng.normal(size=m), rng.normal(size=n)
        wb = rng.exponential(size=n) if weights else None
        w1.append(stats.wasserstein_distance(a, b, None, wb))
        ks.append(stats.ks_2samp(a, b).statistic if not weights else np.nan)
    return np.asarray(w1), np.asarray(ks)


@pytest.mark.parametrize(("m", "n"), [(4_000, 4_000), (20_000, 2_000)])
def test_baseline_matches_independent_samples_of_the_comparisons_sizes(m, n):
    w1, ks = _truth(m, n, 300, seed=m + n)
    rng = np.random.default_rng(1)
    out = compare_features(rng.normal(size=(m, 8)), rng.normal(size=(n, 8)), FEATURES, n_resamples=40, seed=2)
    base_mean = np.mean([out[f].baseline_mean["wasserstein"] for f in FEATURES])
    base_sd = np.mean([out[f].baseline_sd["wasserstein"] for f in FEATURES])
    ks_mean = np.mean([out[f].baseline_mean["ks_statistic"] for f in FEATURES])
    # the earlier halves of min(M/2, N) events: √(2/min(M/2, N)) / √(1/M + 1/N) = 1.41 (4000/4000), 1.35 (20000/2000)
    assert 0.85 < base_mean / w1.mean() < 1.15
    assert 0.75 < base_sd / w1.std() < 1.25
    assert 0.85 < ks_mean / ks.mean() < 1.15
    assert out["a"].baseline_sizes == (m, n)


def test_baseline_of_a_weighted_candidate_has_its_effective_size():
    """Exponential weights halve the candidate's Kish size: the baseline's second draw is sized so that it has
    the same effective size (here 5 000 of 10 000 events), and its W1 matches the weighted truth."""
    m = n = 10_000
    w1, _ = _truth(m, n, 300, seed=7, weights=True)
    rng = np.random.default_rng(8)
    out = compare_features(
        rng.normal(size=(m, 4)),
        rng.normal(size=(n, 4)),
        FEATURES[:4],
        weights_candidate=rng.exponential(size=n),
        n_resamples=40,
    )
    base_mean = np.mean([out[f].baseline_mean["wasserstein"] for f in FEATURES[:4]])
    assert 0.85 < base_mean / w1.mean() < 1.15
    assert 4_500 < out["a"].baseline_sizes[1] < 5_500


def test_a_known_shift_is_found_in_most_cases():
    """12 cases of a 0.075 shift between 4 000 and 4 000 events: the sized baseline flags ≥ 9 (measured: 10);
    a baseline √2 too large (the earlier one) flagged 5."""
    found = 0
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        ref, can = rng.normal(size=(4_000, 1)), rng.normal(0.075, 1.0, size=(4_000, 1))
        found += compare_features(ref, can, ["x"], seed=seed)["x"].flagged
    assert found >= 9


def test_bootstrap_sd_is_the_spread_of_the_comparison():
    rng = np.random.default_rng(9)
    spread = np.std(
        [stats.wasserstein_distance(rng.normal(size=5_000), rng.normal(0.2, size=5_000)) for _ in range(200)]
    )
    out = compare_features(rng.normal(size=(5_000, 4)), rng.normal(0.2, size=(5_000, 4)), FEATURES[:4], n_bootstrap=60)
    sd = np.mean([out[f].bootstrap_sd["wasserstein"] for f in FEATURES[:4]])
    assert 0.8 < sd / spread < 1.25
    assert out["a"].to_dict()["wasserstein_sd"] == out["a"].bootstrap_sd["wasserstein"]


def test_binned_numbers_are_those_of_hist_on_the_reference_quantiles():
    rng = np.random.default_rng(10)
    ref, can = np.round(rng.normal(size=(3_000, 1)), 2), np.round(rng.normal(0.1, size=(2_000, 1)), 2)
    w = rng.uniform(0.5, 2.0, 2_000)
    values = compare_features(ref, can, ["x"], weights_candidate=w, bins=20, n_resamples=2)["x"].values
    edges = np.unique(np.quantile(ref[:, 0], np.linspace(0, 1, 21), method="inverted_cdf"))
    expected = binned_divergences(ref[:, 0], can[:, 0], edges, None, w)
    for key in ("chi2", "chi2_ndf", "chi2_pvalue", "kl", "hellinger"):
        assert values[key] == pytest.approx(expected[key], rel=1e-10), key
    assert values["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref[:, 0], can[:, 0], None, w), rel=1e-10)


def test_w1_ratio_is_the_distance_over_its_baseline() -> None:
    from mcsurrogate.validation.divergences import FeatureDivergence

    fd = FeatureDivergence("x", {"wasserstein": 0.6}, {"wasserstein": 0.2}, {"wasserstein": 0.05})
    assert fd.w1_ratio == pytest.approx(3.0)
    zero = FeatureDivergence("x", {"wasserstein": 0.6}, {"wasserstein": 0.0}, {"wasserstein": 0.0})
    assert np.isfinite(zero.w1_ratio) and zero.w1_ratio > 1e299  # a zero baseline: finite, far above any bar
