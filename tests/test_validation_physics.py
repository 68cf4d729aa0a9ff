"""FPD and KPD as the field computes them (issue 27, item 9).

``jetnet_fpd`` and ``jetnet_kpd`` below are this test's own transcription of the formulas of
``jetnet.evaluation.gen_metrics`` (jet-net/JetNet; the package itself is not installed: it pulls a CUDA torch):
features divided by the reference's largest |value|; FPD at 10 sizes regular in 1/N between 20 000 and 50 000,
20 subsets each drawn with replacement and averaged, a straight line in 1/N with non-negative intercept and slope
(``curve_fit``), the intercept and its standard error; KPD: the unbiased MMD² with the kernel (x·y/d + 1)⁴ on 10
pairs of 5 000-event subsets, the i-th drawn with a generator seeded seed + 1000 i, the median and half the
16.275–83.725 % range. mcsurrogate's functions must give the same numbers on fixed arrays.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import linalg
from scipy.optimize import curve_fit

from mcsurrogate.errors import InputError
from mcsurrogate.validation import fpd, kpd, physics_distances
from mcsurrogate.validation.physics_distances import FPD_SIZES, KPD_SUBSET


def _jetnet_normalise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = np.max(np.abs(x), axis=0)
    top[top == 0] = 1
    return x / top, y / top


def _jetnet_frechet(mu1, sigma1, mu2, sigma2) -> float:
    diff = mu1 - mu2
    covmean = np.real(linalg.sqrtm(sigma1.dot(sigma2)))
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def jetnet_fpd(x, y, min_samples=20_000, max_samples=50_000, num_batches=20, num_points=10, normalise=True, seed=42):
    if normalise:
        x, y = _jetnet_normalise(x, y)
    batches = (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype("int32")
    rng = np.random.default_rng(seed)
    vals = []
    for size in batches:
        points = []
        for _ in range(num_batches):
            s1, s2 = x[rng.choice(len(x), size=size)], y[rng.choice(len(y), size=size)]
            points.append(_jetnet_frechet(s1.mean(0), np.cov(s1, rowvar=False), s2.mean(0), np.cov(s2, rowvar=False)))
        vals.append(np.mean(points))
    params, covs = curve_fit(lambda t, a, b: a + b * t, 1 / batches, vals, bounds=([0, 0], [np.inf, np.inf]))
    return params[0], np.sqrt(np.diag(covs)[0])


def jetnet_kpd(x, y, num_batches=10, batch_size=5_000, normalise=True, seed=42, degree=4):
    if normalise:
        x, y = _jetnet_normalise(x, y)
    vals = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        a, b = x[rng.choice(len(x), size=batch_size)], y[rng.choice(len(y), size=batch_size)]
        d = a.shape[1]
        xx, yy, xy = ((p @ q.T / d + 1.0) ** degree for p, q in ((a, a), (b, b), (a, b)))
        m, n = len(a), len(b)
        vals.append(
            (xx.sum() - np.trace(xx)) / (m * (m - 1)) + (yy.sum() - np.trace(yy)) / (n * (n - 1)) - 2 * xy.mean()
        )
    lo, hi = np.percentile(vals, [16.275, 83.725])
    return np.median(vals), (hi - lo) / 2


@pytest.fixture(scope="module")
def fixed() -> tuple[np.ndarray, np.ndarray]:
    """Features of very different scales (GeV-like, radians-like), candidate shifted and rescaled."""
    rng = np.random.default_rng(2211)
    scale = np.array([40.0, 1.2, 3.0, 0.05])
    x = rng.normal(size=(60_000, 4)) * scale + np.array([100.0, 0.0, 0.0, 0.1])
    y = rng.normal(size=(55_000, 4)) * scale * np.array([1.05, 1.0, 0.95, 1.0]) + np.array([102.0, 0.0, 0.1, 0.1])
    return x, y


def test_fpd_with_jetnets_defaults_is_jetnets(fixed):
    x, y = fixed
    ours = fpd(x, y, seed=42)
    theirs = jetnet_fpd(x, y, seed=42)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert ours[0] > 10 * ours[1] > 0


def test_kpd_is_jetnets(fixed):
    x, y = fixed
    defaults = {k: v.default for k, v in inspect.signature(kpd).parameters.items()}
    assert (KPD_SUBSET, defaults["n_subsets"], defaults["degree"]) == (5_000, 10, 4)
    assert FPD_SIZES == (20_000, 50_000)
    ours = kpd(x, y, subset_size=1_500, seed=42)
    theirs = jetnet_kpd(x, y, batch_size=1_500, seed=42)
    assert ours == pytest.approx(theirs, rel=1e-8)
    assert kpd(x, y, subset_size=1_500, degree=3, seed=7) == pytest.approx(
        jetnet_kpd(x, y, batch_size=1_500, degree=3, seed=7), rel=1e-8
    )


def test_the_other_conventions_are_jetnets_formulas_on_other_features(fixed):
    """``scaling="standard"`` is jetnet's FPD/KPD with ``normalise=False`` on features standardised with the
    reference's mean and SD; ``"none"`` on the raw features."""
    x, y = fixed
    mean, sd = x.mean(axis=0), x.std(axis=0)
    small = {"n_min": 3_000, "n_max": 9_000, "n_points": 4, "n_batches": 3}
    theirs_small = {"min_samples": 3_000, "max_samples": 9_000, "num_points": 4, "num_batches": 3}
    assert fpd(x, y, scaling="standard", seed=3, **small) == pytest.approx(
        jetnet_fpd((x - mean) / sd, (y - mean) / sd, normalise=False, seed=3, **theirs_small), rel=1e-9
    )
    assert kpd(x, y, scaling="none", subset_size=1_000, seed=3) == pytest.approx(
        jetnet_kpd(x, y, batch_size=1_000, normalise=False, seed=3), rel=1e-8
    )
    with pytest.raises(InputError, match="scaling"):
        fpd(x, y, scaling="minmax")


def test_physics_distances_reports_its_conventions_and_a_baseline_at_the_comparisons_sizes(fixed):
    x, y = fixed
    fast = {"n_min": 3_000, "n_max": 9_000, "n_points": 4, "n_batches": 3, "subset_size": 1_000}
    wide = y[:20_000] * np.array([1.0, 1.5, 1.0, 1.0])  # the radians-like feature 50 % wider
    out = physics_distances(x, wide, seed=1, **fast)
    d = out.to_dict()
    assert d["conventions"]["scaling"] == "max_abs" and d["conventions"]["kpd"]["degree"] == 4
    assert d["baseline_sizes"] == [60_000, 20_000]
    assert d["fpd"] == pytest.approx(fpd(x, wide, seed=1, n_min=3_000, n_max=9_000, n_points=4, n_batches=3)[0])
    assert d["fpd"] > 10 * (d["fpd_baseline"] + d["fpd_baseline_error"])
    assert d["kpd"] > 2 * (abs(d["kpd_baseline"]) + d["kpd_baseline_error"])
    same = physics_distances(x[:30_000], x[30_000:], seed=1, **fast)
    assert same.fpd < same.fpd_baseline + 4 * (same.fpd_error + same.fpd_baseline_error) + 1e-4
    assert abs(same.kpd) < 4 * same.kpd_error + abs(same.kpd_baseline) + 1e-6


def test_default_sizes_are_capped_at_a_small_sample(fixed):
    """Below 50 000 events jetnet still draws 50 000 with replacement; mcsurrogate's defaults cap the subsets at
    the smaller sample (n_max = min(M, N), n_min = 0.4 n_max, KPD subsets min(5000, M, N)); explicit sizes win."""
    x, y = fixed[0][:3_000], fixed[1][:2_000]
    assert fpd(x, y, seed=5) == fpd(x, y, n_min=800, n_max=2_000, seed=5)
    assert kpd(x, y, seed=5) == kpd(x, y, subset_size=2_000, seed=5)
    assert physics_distances(x, y, seed=5).conventions["fpd"]["n_max"] == 2_000
