"""Hamiltonian Monte Carlo on a differentiable log-density, many chains advanced together as one tensor.

The sampler of ELSA's latent-space refinement (:mod:`mcsurrogate.laser`), usable on any batched torch log-density
``log_prob(q) -> (chains,)`` whose value for a row depends on that row only. Each iteration draws standard-normal
momenta for every chain, runs ``L`` leapfrog steps of size ε (identity mass matrix: the target of the refinement
lives in a flow's latent space, already close to N(0, I)) and accepts each chain's end point with probability
min(1, exp(−ΔH)) (Metropolis correction: the chains sample the target exactly, whatever ε).

Warm-up: ε is adapted by dual averaging (Hoffman & Gelman 2014, the NUTS paper's algorithm 5: γ = 0.05, t₀ = 10,
κ = 0.75) towards a mean acceptance probability over the chains of ``target_accept``; the warm-up draws are then
discarded. The trajectory length L·ε is ``trajectory_length`` (in the target's units, σ of the latent) unless
``leapfrog_steps`` fixes L: L = ⌈trajectory_length/ε⌉ follows ε during warm-up and is frozen with it. Every iteration's
ε is jittered by ±20 % (one draw shared by the chains) so that no trajectory length resonates with the target's
periods.

Diagnostics (:class:`HMCDiagnostics`): the acceptance rate, divergences (ΔH > 1000 or a non-finite energy: the
end point is refused), and for each coordinate the multi-chain effective sample size (Geyer's initial monotone
sequence estimator on split chains, as Stan and BDA3) of the coordinate and of its centred square (HMC's draws of a
Gaussian are often anti-correlated: the first can exceed the number of draws for a mean, the second is the one for a
width), and the split-R̂ (Gelman et al., BDA3 §11.4).

>>> import torch
>>> result = sample_hmc(lambda q: -0.5 * (q * q).sum(-1), torch.zeros(8, 2), draws=50, warmup=50, seed=1)
>>> result.samples.shape
(50, 8, 2)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .arguments import check_float, check_int, check_seed, describe
from .errors import FitError, InputError

__all__ = ["HMCDiagnostics", "HMCResult", "effective_sample_size", "sample_hmc", "split_rhat"]

_DIVERGENCE = 1000.0


@dataclass
class HMCDiagnostics:
    """How a run of :func:`sample_hmc` went. ``ess`` (for a mean), ``ess_second_moment`` (for a variance) and ``rhat``
    hold one number per coordinate (in the order of the target's coordinates); ``seconds`` is the wall time of warm-up plus sampling, ``gradient_evaluations`` the number
    of log-density gradients per chain."""

    chains: int
    warmup: int
    draws: int
    leapfrog_steps: int
    step_size: float
    acceptance_rate: float
    integrator_acceptance_rate: float
    divergences: int
    ess: list[float]
    ess_second_moment: list[float]
    rhat: list[float]
    gradient_evaluations: int
    seconds: float

    @property
    def ess_min(self) -> float:
        return min(self.ess)

    @property
    def rhat_max(self) -> float:
        return max(self.rhat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chains": self.chains,
            "warmup": self.warmup,
            "draws": self.draws,
            "leapfrog_steps": self.leapfrog_steps,
            "step_size": self.step_size,
            "acceptance_rate": self.acceptance_rate,
            "integrator_acceptance_rate": self.integrator_acceptance_rate,
            "divergences": self.divergences,
            "ess": self.ess,
            "ess_min": self.ess_min,
            "ess_second_moment": self.ess_second_moment,
            "rhat": self.rhat,
            "rhat_max": self.rhat_max,
            "gradient_evaluations": self.gradient_evaluations,
            "seconds": self.seconds,
        }


@dataclass
class HMCResult:
    """The draws after warm-up, shape (draws, chains, dimension), float64, with their :class:`HMCDiagnostics`."""

    samples: np.ndarray
    diagnostics: HMCDiagnostics


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain (chains, n) at lags 0 … n−1 (biased 1/n normalisation), by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def _split(samples: np.ndarray) -> np.ndarray:
    """(draws, chains, d) → (d, 2·chains, ⌊draws/2⌋): each chain cut into its first and second half."""
    half = samples.shape[0] // 2
    if half < 2:
        raise InputError(f"split-chain diagnostics need at least 4 draws per chain, got {samples.shape[0]}")
    x = np.concatenate([samples[:half], samples[samples.shape[0] - half :]], axis=1)
    return np.moveaxis(x, (0, 1, 2), (2, 1, 0))


def _check_samples(samples: Any) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputError(f"samples must have shape (draws, chains) or (draws, chains, d), got {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("samples hold NaN/inf values")
    return x


def effective_sample_size(samples: np.ndarray) -> np.ndarray:
    """Multi-chain effective sample size of each coordinate of ``samples`` (draws, chains[, d]): Geyer's initial
    monotone sequence estimator on split chains (Stan's, BDA3 §11.5), capped at draws·chains·log10(draws·chains)."""
    x = _split(_check_samples(samples))
    d, m, n = x.shape
    out = np.empty(d)
    for k in range(d):
        acov = _autocovariance(x[k])
        within = acov[:, 0].mean() * n / (n - 1)
        var_plus = within * (n - 1) / n + (x[k].mean(axis=1).var(ddof=1) if m > 1 else 0.0)
        if not var_plus > 0:  # a constant coordinate: no information on its spread either way
            out[k] = float(m * n)
            continue
        rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
        rho[0] = 1.0
        # Geyer: sums of adjacent pairs, kept while positive, made monotone non-increasing
        pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
        positive = np.flatnonzero(pairs <= 0)
        pairs = pairs[: positive[0]] if len(positive) else pairs
        pairs = np.minimum.accumulate(pairs)
        tau = -1.0 + 2.0 * pairs.sum()
        total = m * n
        out[k] = min(total / max(tau, 1e-12), total * math.log10(total))
    return out


def split_rhat(samples: np.ndarray) -> np.ndarray:
    """Split-R̂ of each coordinate of ``samples`` (draws, chains[, d]) (BDA3 §11.4): ≈ 1 when the chains agree,
    above 1.01–1.05 when they have not mixed."""
    x = _split(_check_samples(samples))
    n = x.shape[2]
    within = x.var(axis=2, ddof=1).mean(axis=1)
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    var_plus = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / within)
    return np.where(within > 0, r, 1.0)


def _value(log_prob: Callable[[torch.Tensor], torch.Tensor], q: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        lp = log_prob(q.detach())
    if lp.shape != q.shape[:1]:
        raise InputError(
            f"log_prob_exact must return one value per chain, shape ({q.shape[0]},), got {tuple(lp.shape)}"
        )
    return lp.to(q.dtype)


def _value_and_grad(
    log_prob: Callable[[torch.Tensor], torch.Tensor], q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        q = q.detach().requires_grad_(True)
        lp = log_prob(q)
        if lp.shape != q.shape[:1]:
            raise InputError(f"log_prob must return one value per chain, shape ({q.shape[0]},), got {tuple(lp.shape)}")
        (grad,) = torch.autograd.grad(lp.sum(), q)
    return lp.detach(), grad.detach()


def sample_hmc(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    initial: torch.Tensor,
    *,
    draws: int,
    warmup: int = 200,
    trajectory_length: float = 1.5,
    leapfrog_steps: int | None = None,
    max_leapfrog_steps: int = 64,
    step_size: float = 0.5,
    target_accept: float = 0.8,
    seed: int = 0,
    log_prob_exact: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> HMCResult:
    """Draw ``draws`` points per chain from exp(``log_prob``) with HMC, after ``warmup`` adaptation iterations.

    ``initial`` (chains, d) holds each chain's start (float32 or float64; the chains run in its dtype);
    ``log_prob`` maps (chains, d) to (chains,), differentiably. ``step_size`` is the first ε of the warm-up (it is
    adapted towards the acceptance rate ``target_accept``); with ``warmup=0`` it is used as given. The number of
    leapfrog steps is ``leapfrog_steps`` if given, else ⌈``trajectory_length``/ε⌉ capped at ``max_leapfrog_steps``.
    Seeded: the momenta, the jitter and the accept draws come from one ``torch.Generator`` seeded with ``seed``.

    ``log_prob_exact`` (no gradient needed; e.g. a boosted-tree density ratio) makes the chains sample
    exp(``log_prob_exact``) instead, with ``log_prob`` only guiding the trajectories (surrogate-gradient HMC:
    leapfrog steps on any smooth potential are reversible and volume-preserving, so a Metropolis test on the exact
    density keeps the chains exact; Rasmussen 2003; Zhang, Shahbaba & Zhao 2017). The step size then adapts to the
    integrator's error on ``log_prob`` (``integrator_acceptance_rate``), and ``acceptance_rate`` is the exact test's:
    a poor approximation costs accepted steps, not correctness.
    Raises :class:`FitError` when the warm-up ends with no accepted step (a target with non-finite gradients).
    """
    if not callable(log_prob):
        raise InputError(f"log_prob must be a callable (chains, d) → (chains,), got {describe(log_prob)}")
    if not isinstance(initial, torch.Tensor) or initial.ndim != 2 or not initial.dtype.is_floating_point:
        raise InputError(f"initial must be a float tensor (chains, d), got {describe(initial)}")
    if initial.shape[0] < 2 or initial.shape[1] < 1:
        raise InputError(f"initial needs at least 2 chains and 1 coordinate (for R̂), got shape {tuple(initial.shape)}")
    draws = check_int(draws, "draws", minimum=4)
    warmup = check_int(warmup, "warmup", minimum=0)
    trajectory_length = check_float(trajectory_length, "trajectory_length", above=0.0)
    max_leapfrog_steps = check_int(max_leapfrog_steps, "max_leapfrog_steps", minimum=1)
    if leapfrog_steps is not None:
        leapfrog_steps = check_int(leapfrog_steps, "leapfrog_steps", minimum=1)
    step_size = check_float(step_size, "step_size", above=0.0)
    target_accept = check_float(target_accept, "target_accept", above=0.0, below=1.0)
    seed = check_seed(seed, generator=False)
    gen = torch.Generator(device=initial.device).manual_seed(seed)
    q = initial.detach().clone()
    lp, grad = _value_and_grad(log_prob, q)
    if not torch.isfinite(lp).all():
        raise InputError(f"log_prob is not finite at {int((~torch.isfinite(lp)).sum())} of the initial points")
    if log_prob_exact is not None and not callable(log_prob_exact):
        raise InputError(
            f"log_prob_exact must be None or a callable (chains, d) → (chains,), got {describe(log_prob_exact)}"
        )
    lpe = lp if log_prob_exact is None else _value(log_prob_exact, q)
    if not torch.isfinite(lpe).all():
        raise InputError(f"log_prob_exact is not finite at {int((~torch.isfinite(lpe)).sum())} of the initial points")

    def steps_for(eps: float) -> int:
        if leapfrog_steps is not None:
            return leapfrog_steps
        return max(1, min(max_leapfrog_steps, math.ceil(trajectory_length / eps)))

    # dual averaging state (Hoffman & Gelman 2014, algorithm 5)
    mu, gamma, t0, kappa = math.log(10 * step_size), 0.05, 10.0, 0.75
    h_bar, log_eps, log_eps_bar = 0.0, math.log(step_size), 0.0
    chains = q.shape[0]
    out = np.empty((draws, chains, q.shape[1]))
    accepted_sum, integrator_sum, divergences, gradients = 0.0, 0.0, 0, 0
    start = time.perf_counter()
    for it in range(warmup + draws):
        adapting = it < warmup
        eps_base = math.exp(log_eps) if adapting else math.exp(log_eps_bar) if warmup else step_size
        n_steps = steps_for(eps_base)
        eps = eps_base * (0.8 + 0.4 * float(torch.rand((), generator=gen, device=q.device)))
        p = torch.randn(q.shape, generator=gen, device=q.device, dtype=q.dtype)
        h0 = -lp + 0.5 * (p * p).sum(-1)
        q_new, g_new = q, grad
        p_new = p + 0.5 * eps * g_new
        for step in range(n_steps):
            q_new = q_new + eps * p_new
            lp_new, g_new = _value_and_grad(log_prob, q_new)
            p_new = p_new + (eps if step < n_steps - 1 else 0.5 * eps) * g_new
        gradients += n_steps
        kinetic = 0.5 * (p_new * p_new).sum(-1)
        delta = -lp_new + kinetic - h0
        bad = ~torch.isfinite(delta) | (delta > _DIVERGENCE)
        integrator_prob = torch.where(bad, torch.zeros_like(delta), (-delta.clamp(min=0.0)).exp())
        if log_prob_exact is None:
            lpe_new, accept_prob = lp_new, integrator_prob
        else:
            lpe_new = _value(log_prob_exact, q_new)
            delta_exact = -lpe_new + kinetic - (-lpe + 0.5 * (p * p).sum(-1))
            bad |= ~torch.isfinite(delta_exact) | (delta_exact > _DIVERGENCE)
            accept_prob = torch.where(bad, torch.zeros_like(delta), (-delta_exact.clamp(min=0.0)).exp())
        take = torch.rand(chains, generator=gen, device=q.device, dtype=q.dtype) < accept_prob
        take &= ~bad
        q = torch.where(take[:, None], q_new, q)
        lp = torch.where(take, lp_new, lp)
        lpe = torch.where(take, lpe_new, lpe)
        grad = torch.where(take[:, None], g_new, grad)
        mean_accept = float(integrator_prob.mean())  # what the step size controls
        if adapting:
            t = it + 1
            h_bar = (1 - 1 / (t + t0)) * h_bar + (target_accept - mean_accept) / (t + t0)
            log_eps = mu - math.sqrt(t) / gamma * h_bar
            weight = t**-kappa
            log_eps_bar = weight * log_eps + (1 - weight) * log_eps_bar
            if it == warmup - 1 and not math.isfinite(log_eps_bar):
                raise FitError("HMC warm-up failed: the step size did not converge (non-finite log-density?)")
        else:
            out[it - warmup] = q.detach().double().cpu().numpy()
            accepted_sum += float(accept_prob.mean())
            integrator_sum += mean_accept
            divergences += int(bad.sum())
    seconds = time.perf_counter() - start
    if accepted_sum == 0.0:
        raise FitError(
            "HMC accepted no step after the warm-up: the log-density or its gradient is not finite along trajectories"
        )
    final_eps = math.exp(log_eps_bar) if warmup else step_size
    diagnostics = HMCDiagnostics(
        chains=chains,
        warmup=warmup,
        draws=draws,
        leapfrog_steps=steps_for(final_eps),
        step_size=final_eps,
        acceptance_rate=accepted_sum / draws,
        integrator_acceptance_rate=integrator_sum / draws,
        divergences=divergences,
        ess=effective_sample_size(out).tolist(),
        ess_second_moment=effective_sample_size((out - out.mean(axis=(0, 1))) ** 2).tolist(),
        rhat=split_rhat(out).tolist(),
        gradient_evaluations=gradients,
        seconds=seconds,
    )
    return HMCResult(out, diagnostics)
