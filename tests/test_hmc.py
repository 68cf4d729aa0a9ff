"""HMC (mcsurrogate.hmc): known 2-D targets, a Gaussian reweighted by an analytic w(z), and the diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcsurrogate.errors import InputError
from mcsurrogate.hmc import effective_sample_size, sample_hmc, split_rhat


def _moments_agree(samples: np.ndarray, mean: np.ndarray, cov: np.ndarray, z: float = 4.5) -> None:
    """The sample mean and covariance of the chains ``samples`` (draws, chains, d) agree with ``mean``/``cov``
    within ``z`` of their statistical errors, each at its own effective sample size (that of the coordinate for a
    mean, that of the product of the centred coordinates for a covariance entry)."""
    x = samples.reshape(-1, samples.shape[-1])
    m = x.mean(axis=0)
    err_mean = np.sqrt(np.diag(cov) / effective_sample_size(samples))
    assert np.all(np.abs(m - mean) < z * err_mean), (m, mean, err_mean)
    c = np.cov(x.T)
    centred = samples - m
    for i in range(len(m)):
        for j in range(i + 1):
            ess = effective_sample_size(centred[..., i] * centred[..., j])[0]
            # Var of a sample covariance entry of a Gaussian: (Σ_ii Σ_jj + Σ_ij²)/n
            err = np.sqrt((cov[i, i] * cov[j, j] + cov[i, j] ** 2) / ess)
            assert abs(c[i, j] - cov[i, j]) < z * err, (i, j, c, cov, err)


def test_shifted_gaussian_from_an_exponential_weight() -> None:
    # N(0, I) · exp(a·z) ∝ N(a, I): the refinement's target form log p(z) + log w(z)
    a = torch.tensor([1.0, -0.5], dtype=torch.float64)
    start = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    res = sample_hmc(lambda z: -0.5 * (z * z).sum(-1) + z @ a, start, draws=400, warmup=200, seed=3)
    d = res.diagnostics
    _moments_agree(res.samples, a.numpy(), np.eye(2))
    assert d.rhat_max < 1.05
    assert 0.6 < d.acceptance_rate < 0.97
    assert d.divergences == 0
    assert d.ess_min > 1000  # HMC on a Gaussian: nearly independent draws (12 800 in all)
    assert min(d.ess_second_moment) > 1000 and min(d.ess_second_moment) < 2 * d.ess_min
    json.dumps(d.to_dict(), allow_nan=False)


def test_correlated_gaussian_from_a_quadratic_weight() -> None:
    # N(0, I) · exp(−½ zᵀ(Σ⁻¹ − I)z) ∝ N(0, Σ), correlation 0.9 and unequal widths
    cov = np.array([[1.0, 0.9 * 0.5], [0.9 * 0.5, 0.25]])
    prec = torch.tensor(np.linalg.inv(cov) - np.eye(2))

    def log_prob(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(-1) - 0.5 * ((z @ prec) * z).sum(-1)

    start = torch.zeros(32, 2, dtype=torch.float64)
    res = sample_hmc(log_prob, start, draws=400, warmup=200, seed=11)
    d = res.diagnostics
    _moments_agree(res.samples, np.zeros(2), cov)
    assert d.rhat_max < 1.05


def test_reproducible_by_seed() -> None:
    start = torch.zeros(8, 2, dtype=torch.float64)

    def lp(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(-1)

    a = sample_hmc(lp, start, draws=20, warmup=20, seed=1).samples
    b = sample_hmc(lp, start, draws=20, warmup=20, seed=1).samples
    c = sample_hmc(lp, start, draws=20, warmup=20, seed=2).samples
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fixed_leapfrog_steps_and_no_warmup_use_the_given_settings() -> None:
    res = sample_hmc(
        lambda z: -0.5 * (z * z).sum(-1), torch.zeros(4, 3), draws=10, warmup=0, leapfrog_steps=3, step_size=0.2
    )
    assert res.diagnostics.leapfrog_steps == 3 and res.diagnostics.step_size == 0.2
    assert res.diagnostics.gradient_evaluations == 30
    assert res.samples.shape == (10, 4, 3)


def test_ess_of_an_ar1_process_matches_its_integrated_autocorrelation() -> None:
    # x_t = ρ x_{t−1} + ε: ESS = N (1 − ρ)/(1 + ρ)
    rng = np.random.default_rng(0)
    rho, n, m = 0.7, 4000, 4
    x = np.empty((n, m))
    x[0] = rng.standard_normal(m) / np.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.standard_normal(m)
    expected = n * m * (1 - rho) / (1 + rho)
    assert effective_sample_size(x)[0] == pytest.approx(expected, rel=0.15)
    assert split_rhat(x)[0] < 1.01
    # independent draws: ESS ≈ their count
    assert effective_sample_size(rng.standard_normal((1000, 4)))[0] == pytest.approx(4000, rel=0.15)


def test_rhat_flags_chains_that_disagree() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 4))
    x[:, 0] += 3.0  # one chain stuck elsewhere
    assert split_rhat(x)[0] > 1.1


def test_bad_inputs_are_refused() -> None:
    def lp(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(-1)

    with pytest.raises(InputError, match="initial"):
        sample_hmc(lp, torch.zeros(1, 2), draws=10)
    with pytest.raises(InputError, match="one value per chain"):
        sample_hmc(lambda z: z, torch.zeros(4, 2), draws=10)
    with pytest.raises(InputError, match="not finite"):
        sample_hmc(lambda z: torch.log(-(z * z).sum(-1)), torch.ones(4, 2), draws=10)
    with pytest.raises(InputError, match="draws"):
        sample_hmc(lp, torch.zeros(4, 2), draws=2)


def test_an_approximate_gradient_with_the_exact_metropolis_test_samples_the_exact_target() -> None:
    # the trajectories follow N(0.6·a, I); the Metropolis test uses N(a, I): the chains must sample N(a, I)
    a = torch.tensor([1.0, -0.5], dtype=torch.float64)

    def approx(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(-1) + 0.6 * (z @ a)

    def exact(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(-1) + z @ a

    start = torch.zeros(32, 2, dtype=torch.float64)
    res = sample_hmc(approx, start, draws=400, warmup=200, seed=4, log_prob_exact=exact)
    d = res.diagnostics
    _moments_agree(res.samples, a.numpy(), np.eye(2))
    assert d.acceptance_rate < d.integrator_acceptance_rate and d.rhat_max < 1.05
    # without the exact test it samples the approximation, far from N(a, I)
    off = sample_hmc(approx, start, draws=400, warmup=200, seed=4).samples.reshape(-1, 2).mean(axis=0)
    assert abs(off[0] - 0.6) < 0.05
