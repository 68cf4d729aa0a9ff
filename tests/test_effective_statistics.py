"""Known answers for the effective statistics of generated templates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mcsurrogate.errors import InputError
from mcsurrogate.validation import effective_statistics

EDGES = np.linspace(-3, 3, 13)


def test_unbiased_generator_is_worth_its_own_size():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=400_000)
    generated = rng.normal(size=1_000_000)
    result = effective_statistics(reference, generated, EDGES, [1_000, 10_000], n_subsamples=40, seed=2)
    ratio = result.median_n_eff() / result.sizes
    assert np.all((ratio > 0.7) & (ratio < 1.5)), ratio
    # the MC spread across disjoint subsamples follows the binomial expectation
    used = result.used_bins
    rel = result.sigma_mc[:, used] / result.sigma_expected[:, used]
    assert 0.8 < np.median(rel) < 1.2


def test_biased_generator_saturates_at_the_analytic_worth():
    rng = np.random.default_rng(3)
    shift = 0.05
    reference = rng.normal(size=1_000_000)
    generated = rng.normal(loc=shift, size=2_000_000)
    result = effective_statistics(reference, generated, EDGES, [1_000, 200_000], n_subsamples=10, seed=4)
    p = np.diff(stats.norm.cdf(EDGES))
    q = np.diff(stats.norm.cdf(EDGES - shift))
    expected = np.median((p * (1 - p) / (q - p) ** 2)[p >= result.min_fraction])
    assert result.worth() == pytest.approx(expected, rel=0.35)
    ratio = result.median_n_eff() / result.sizes
    assert ratio[0] > 0.6  # 10³ events: the statistical term dominates
    assert ratio[1] < 0.3  # 2 × 10⁵ events: the bias dominates, the sample is worth far fewer MC events
    assert result.to_dict()["worth"] == pytest.approx(result.worth())


def test_weights_of_the_exact_density_ratio_remove_the_saturation():
    rng = np.random.default_rng(5)
    shift = 0.05
    reference = rng.normal(size=1_000_000)
    generated = rng.normal(loc=shift, size=2_000_000)
    w = stats.norm.pdf(generated) / stats.norm.pdf(generated, loc=shift)
    sizes = [1_000, 200_000]
    raw = effective_statistics(reference, generated, EDGES, sizes, n_subsamples=10, seed=4)
    fixed = effective_statistics(reference, generated, EDGES, sizes, n_subsamples=10, seed=4, weights_generated=w)
    ratio = fixed.median_n_eff() / fixed.sizes
    assert raw.median_n_eff()[1] / sizes[1] < 0.3 and ratio[1] > 0.6  # weighted: no longer bias-dominated
    assert not np.isfinite(fixed.worth()) or fixed.worth() > 20 * raw.worth()
    unit = effective_statistics(reference, generated, EDGES, sizes, n_subsamples=10, seed=4, weights_generated=None)
    ones = effective_statistics(
        reference, generated, EDGES, sizes, n_subsamples=10, seed=4, weights_generated=np.ones(generated.size)
    )
    np.testing.assert_allclose(ones.rms_generated, unit.rms_generated, rtol=1e-12)
    with pytest.raises(InputError, match="weights_generated"):
        effective_statistics(reference, generated, EDGES, sizes, weights_generated=-w)


def test_bad_input_names_the_problem():
    good = np.zeros(10)
    with pytest.raises(InputError, match="reference sample is empty"):
        effective_statistics([], good, EDGES, [5])
    with pytest.raises(InputError, match="generated sample has 1 NaN"):
        effective_statistics(good, np.array([0.0, np.nan]), EDGES, [1])
    with pytest.raises(InputError, match="exceeds the generated pool"):
        effective_statistics(good, good, EDGES, [11])
    with pytest.raises(InputError, match="edges must be increasing"):
        effective_statistics(good, good, [1.0, 0.0], [5])
    with pytest.raises(InputError, match="sizes must be positive"):
        effective_statistics(good, good, EDGES, [0])


def test_plot_effective_statistics(tmp_path):
    from mcsurrogate.validation.plots import plot_effective_statistics

    rng = np.random.default_rng(5)
    result = effective_statistics(rng.normal(size=20_000), rng.normal(0.1, size=50_000), EDGES, [100, 1_000, 10_000])
    fig = plot_effective_statistics(result, variable="x")
    fig.savefig(tmp_path / "neff.png")
    assert (tmp_path / "neff.png").stat().st_size > 10_000
