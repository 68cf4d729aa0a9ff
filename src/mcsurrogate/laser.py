"""Latent-space refinement (LASER, ELSA's second step; Nachman & Winterhalder, arXiv 2305.07696): unweighted events
from a surrogate corrected by a :class:`~mcsurrogate.refinement.Reweighting`.

A flow samples x = F(z) with z from its base density p(z). The reweighting's w(x) = p_MC(x)/p_gen(x) turns the flow's
events into MC-like ones as weights; pulled back to the latent space, w(F(z)) makes the *latent* density
p(z)·w(F(z)) whose image under F is p_gen·w = p_MC, without a Jacobian (F is applied to the same z on both sides).
Hamiltonian Monte Carlo (:func:`~mcsurrogate.hmc.sample_hmc`, many chains as one tensor) draws z from it; F maps the
draws to unweighted events. The latent space is where HMC works well: the target is N(0, I)-like, smooth and unimodal
where the data space may be none of these.

Choices, and why:

* **Differentiable weight.** The reweighting's boosted trees are piecewise constant (zero gradient almost everywhere),
  so HMC needs a differentiable w. A saved reweighting keeps no training events, so a small torch MLP (two hidden
  layers of SiLU, smooth gradients) is *distilled* from the trees: it regresses the trees' log w (clipped and
  normalised as :meth:`Reweighting.weights`) on ``distill_events`` events generated afresh by the flow, the region
  where w is used. This keeps the weights the user validated (rather than a second classifier with its own errors)
  and smooths the trees' steps; :class:`WeightAgreement` reports how close the two are on held-out generated events
  (correlation and RMS of log w, the Kish efficiency of each).
* **Exact to the trees.** The MLP only guides the trajectories: the Metropolis test of each HMC step uses the trees'
  w (``exact=True``, the default; surrogate-gradient HMC, see :func:`~mcsurrogate.hmc.sample_hmc`), so the refined
  events follow the very weights of the reweighting; the MLP's errors cost accepted steps (``hmc.acceptance_rate``
  below ``hmc.integrator_acceptance_rate``), not correctness. On the HIGGS-like setup of
  ``benchmarks/bench_laser.py`` (18 features, MLP log-w correlation 0.78 with the trees) the refined events reached
  C2ST 0.581 with the trees deciding, 0.640 with the MLP's own weights (``exact=False``; the MLP-weighted flow: 0.664),
  for 0.575 of the tree-weighted flow.
* **Where w is evaluated.** The MLP takes the flow's *preprocessed* coordinates y = T⁻¹(z) (the flow's own output,
  before the numpy preprocessing's inverse P⁻¹). A density ratio is invariant under a bijection applied to both
  densities, so w(P⁻¹(y)) is the data-space ratio; no torch port of the preprocessing is needed, the trees are
  evaluated on P⁻¹(y) in numpy only to make the MLP's regression targets, and the preprocessed coordinates are
  already standardised-like inputs for an MLP.
* **Which latent.** For an nflows-based :class:`~mcsurrogate.flows.FlowModel` (MAF, splines, coupling flows,
  MADE-MoG base), z is the base variable: target log p_base(z) + log w(T⁻¹(z)) (for MADE-MoG p_base is the mixture,
  whose sampling from noise picks components discontinuously). For a distilled surrogate, z is the student's
  standard-normal noise. Flow matching (an ODE per gradient) and conditional surrogates are refused.

The MLP is trained at every call (seeded, a few seconds on a CPU); nothing is pickled or saved.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import torch
from torch import nn

from .arguments import check_bool, check_float, check_int, check_seed, describe
from .errors import InputError
from .flows.distilled import DistilledFlow
from .flows.flow_matching import FlowMatchingModel
from .flows.model import FlowModel
from .hmc import HMCDiagnostics, effective_sample_size, sample_hmc, split_rhat
from .records import feature_matrix
from .surrogate import Surrogate
from .surrogate.sampling import sample_records
from .validation.samples import kish_size

if TYPE_CHECKING:
    from .refinement import Reweighting

__all__ = ["Refinement", "WeightAgreement", "refine"]


@dataclass
class WeightAgreement:
    """The distilled MLP's weights against the reweighting's boosted trees on ``events`` held-out generated events:
    Pearson ``correlation`` and ``rms_log_weight`` of log w, and the Kish efficiency (Σw)²/(n Σw²) of each."""

    events: int
    correlation: float
    rms_log_weight: float
    kish_efficiency_trees: float
    kish_efficiency_mlp: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "correlation": self.correlation,
            "rms_log_weight": self.rms_log_weight,
            "kish_efficiency_trees": self.kish_efficiency_trees,
            "kish_efficiency_mlp": self.kish_efficiency_mlp,
            "seconds": self.seconds,
        }


@dataclass
class Refinement:
    """``events``: unweighted refined events (records as :meth:`Surrogate.sample`, original units); ``hmc``: the
    chains' diagnostics (their effective sample size per latent coordinate tells how many independent events the
    ``events`` are worth); ``agreement``: the distilled weight against the trees."""

    events: ak.Array
    hmc: HMCDiagnostics
    agreement: WeightAgreement
    surrogate: Surrogate = field(repr=False)
    log_weight: nn.Module = field(repr=False)
    #: effective sample size of the reweighting's log-weight over the kept draws (the chains' mixing in the weight
    #: itself, which the per-coordinate ESS of ``hmc`` does not see); ``None`` without the exact trees
    ess_log_weight: float | None = None

    def distilled_weights(self, events: ak.Array | np.ndarray) -> np.ndarray:
        """The distilled MLP's weights w(x) of generated ``events`` (records with the surrogate's targets as fields,
        or an (n, d) array of them in that order; original units): the weights the refinement samples, to compare
        a sample weighted with them against the refined one (the refinement's own error apart from the weight's)."""
        x = events if isinstance(events, np.ndarray) else feature_matrix(events, self.surrogate.targets)
        y = torch.as_tensor(self.surrogate.flow_from_targets(x), dtype=torch.float32, device=self.surrogate.device)
        return np.exp(_batched(self.log_weight, y).double().cpu().numpy())

    @property
    def events_per_second(self) -> float:
        """Refined events per second of HMC (warm-up included, distillation not)."""
        return len(self.events) / self.hmc.seconds if self.hmc.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": len(self.events),
            "events_per_second": self.events_per_second,
            "hmc": self.hmc.to_dict(),
            "ess_log_weight": self.ess_log_weight,
            "weight_agreement": self.agreement.to_dict(),
        }


class _LogWeight(nn.Module):
    """log w(y) on the flow's preprocessed coordinates: standardise, two SiLU layers, clamp to the trees' range."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int, low: float, high: float) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        d = len(mean)
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )
        self.low, self.high = low, high

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net((y - self.mean) / self.std).squeeze(-1).clamp(self.low, self.high)


@dataclass
class _Latent:
    """The latent map of a surrogate's flow: its log density, the map to preprocessed coordinates, a prior draw."""

    dimension: int
    log_prob: Callable[[torch.Tensor], torch.Tensor]
    to_preprocessed: Callable[[torch.Tensor], torch.Tensor]
    draw: Callable[[int, np.random.Generator], torch.Tensor]


def _latent(model: Any, device: torch.device) -> _Latent:
    if isinstance(model, FlowMatchingModel):
        raise InputError(
            "LASER needs a flow whose latent map is cheap to differentiate; flow matching integrates an ODE per "
            "gradient: refine a surrogate of another family (maf, rqs-ar, rqs-coupling, realnvp, glow, made-mog) "
            "or a distilled one"
        )
    if isinstance(model, DistilledFlow):
        sampler = model.sampler

        def gaussian(u: torch.Tensor) -> torch.Tensor:
            return -0.5 * (u * u).sum(-1)

        return _Latent(
            model.noise_features,
            gaussian,
            lambda u: sampler(u, None),
            lambda n, rng: model.draw_noise(n, rng).to(device),
        )
    if isinstance(model, FlowModel):
        flow = model

        def draw(n: int, rng: np.random.Generator) -> torch.Tensor:
            with torch.no_grad():
                return flow.base.from_noise(flow.draw_noise(n, rng).to(device), None)

        return _Latent(
            flow.features, lambda z: flow.base.log_prob(z, None), lambda z: flow.transform.inverse(z, None)[0], draw
        )
    raise InputError(f"LASER does not know the latent space of a {describe(model)}")  # pragma: no cover


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, size: int = 65536) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(z[i : i + size]) for i in range(0, len(z), size)]) if len(z) else z


def _distil(
    reweighting: Reweighting,
    surrogate: Surrogate,
    latent: _Latent,
    events: int,
    epochs: int,
    hidden: int,
    rng: np.random.Generator,
    seed: int,
) -> tuple[_LogWeight, WeightAgreement]:
    """The MLP log w(y) regressed on the trees' log w over ``events`` fresh generated events (80 % fit, 20 % held
    out for the agreement)."""
    start = time.perf_counter()
    y = _batched(latent.to_preprocessed, latent.draw(events, rng)).double().cpu()
    x = surrogate.targets_from_flow(y.numpy())
    keep = np.isfinite(x).all(axis=1) & torch.isfinite(y).all(dim=1).numpy()
    y, x = y[torch.from_numpy(keep)], x[keep]
    if len(y) < 100:
        raise InputError(f"only {len(y)} of {events} generated events are finite: too few to distil the weights")
    target = torch.from_numpy(np.log(reweighting.weights(x)))
    order = torch.from_numpy(rng.permutation(len(y)))
    n_fit = int(0.8 * len(y))
    fit, held = order[:n_fit], order[n_fit:]
    yf = y[fit].float()
    std = yf.std(dim=0).clamp(min=1e-6)
    log_norm = math.log(reweighting.normalisation)
    log_clip = math.log(reweighting.clip)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _LogWeight(yf.mean(dim=0), std, hidden, -log_clip - log_norm, log_clip - log_norm)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch = 512
    steps = epochs * math.ceil(n_fit / batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    tf = target[fit].float()
    for _ in range(epochs):
        perm = torch.randperm(n_fit, generator=gen)
        for i in range(0, n_fit, batch):
            idx = perm[i : i + batch]
            loss = ((net(yf[idx]) - tf[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    net.eval().requires_grad_(False)
    with torch.no_grad():
        log_mlp = net(y[held].float()).double().numpy()
    log_trees = target[held].numpy()
    w_mlp, w_trees = np.exp(log_mlp), np.exp(log_trees)
    n_held = len(held)
    spread = float(log_trees.std() * log_mlp.std())
    agreement = WeightAgreement(
        events=n_held,
        correlation=float(np.corrcoef(log_trees, log_mlp)[0, 1]) if spread > 0 else 1.0,
        rms_log_weight=float(np.sqrt(np.mean((log_mlp - log_trees) ** 2))),
        kish_efficiency_trees=kish_size(w_trees, n_held) / n_held,
        kish_efficiency_mlp=kish_size(w_mlp, n_held) / n_held,
        seconds=time.perf_counter() - start,
    )
    return net.to(surrogate.device), agreement


def refine(
    reweighting: Reweighting,
    surrogate: Surrogate,
    n: int,
    seed: int = 0,
    *,
    chains: int = 512,
    warmup: int = 200,
    thin: int = 25,
    trajectory_length: float = 1.5,
    distill_events: int = 20000,
    distill_epochs: int = 30,
    hidden: int = 64,
    exact: bool = True,
) -> Refinement:
    """``n`` unweighted events of ``surrogate`` refined by ``reweighting`` (see the module docstring).

    ``chains`` HMC chains start from the flow's latent prior, adapt their step size for ``warmup`` iterations
    (trajectory length ``trajectory_length`` in latent units) and then keep every ``thin``-th draw until ``n`` are
    collected (at least 4 per chain); the diagnostics' ESS and R̂ are those of the kept draws. Many chains and a
    thinning beyond the rejection runs keep the events nearly independent: a sample with repeated (rejected) or
    nearly repeated draws is memorised by a classifier test, which then scores it far worse than it is (measured on
    the HIGGS-like setup: C2ST 0.750 with 64 chains and no thinning, 0.552 with 1000 chains thinned by 10, for the
    same target; with 8 000 training events and tree weights of Kish efficiency 0.34, thin 5 gave 0.629 and thin 25
    0.607 against 0.604 for the tree-weighted flow unweighted by hit-or-miss at the same count, for 1.6× the HMC
    time: hence thin 25 by default), and a batch of chains costs about what one chain does per gradient; the weight is an MLP (``hidden`` units per layer) distilled from the trees on ``distill_events``
    generated events in ``distill_epochs`` epochs. With ``exact`` (the default) the MLP only guides the HMC
    trajectories and the trees decide each Metropolis step, so the refined events follow the trees' weights exactly
    (the MLP's quality shows in the acceptance rate); ``exact=False`` samples the MLP's weights. Seeded: the same seed gives the same events. Raises
    :class:`InputError` for a conditional or flow-matching surrogate, or a reweighting fitted on other features.
    """
    from .refinement import Reweighting

    if not isinstance(reweighting, Reweighting):
        raise InputError(f"reweighting must be a Reweighting, got {describe(reweighting)}")
    if not isinstance(surrogate, Surrogate):
        raise InputError(f"surrogate must be a Surrogate, got {describe(surrogate)}")
    if surrogate.conditional:
        raise InputError(
            "LASER refines unconditional surrogates only: a conditional one would need one chain per condition row"
        )
    if list(reweighting.features) != surrogate.targets:
        raise InputError(
            f"the reweighting was fitted on the features {reweighting.features}; this surrogate's targets are "
            f"{surrogate.targets}"
        )
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed, generator=False)
    chains = check_int(chains, "chains", minimum=2)
    warmup = check_int(warmup, "warmup", minimum=0)
    thin = check_int(thin, "thin", minimum=1)
    trajectory_length = check_float(trajectory_length, "trajectory_length", above=0.0)
    distill_events = check_int(distill_events, "distill_events", minimum=500)
    distill_epochs = check_int(distill_epochs, "distill_epochs", minimum=1)
    hidden = check_int(hidden, "hidden", minimum=1)
    exact = check_bool(exact, "exact")
    device = surrogate.device
    model = surrogate.trained_model.to(device).eval()
    latent = _latent(model, device)
    streams = np.random.SeedSequence(seed).spawn(3)
    log_w, agreement = _distil(
        reweighting,
        surrogate,
        latent,
        distill_events,
        distill_epochs,
        hidden,
        np.random.default_rng(streams[0]),
        seed,
    )

    if agreement.correlation < 0.5:
        warnings.warn(
            f"the distilled weight follows the reweighting's trees poorly on held-out generated events (log-w "
            f"correlation {agreement.correlation:.2f}, Kish efficiency {agreement.kish_efficiency_mlp:.3f} vs the trees' "
            f"{agreement.kish_efficiency_trees:.3f}): trees whose weights on fresh events are mostly noise cannot be "
            + (
                "followed by a smooth HMC trajectory, so few steps will be accepted"
                if exact
                else "followed, and the refined events follow the smooth MLP, not the trees"
            ),
            stacklevel=2,
        )

    def target(z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        return (latent.log_prob(zf) + log_w(latent.to_preprocessed(zf))).double()

    def log_tree_weight(x: np.ndarray, non_finite: float) -> np.ndarray:
        """log of the reweighting's weights of target rows ``x``; ``non_finite`` for rows that are not finite."""
        finite = np.isfinite(x).all(axis=1)
        out = np.full(len(x), non_finite)
        out[finite] = np.log(reweighting.weights(x[finite]))
        return out

    def exact_target(z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        x = surrogate.targets_from_flow(latent.to_preprocessed(zf).double().cpu().numpy())
        log_trees = log_tree_weight(x, -np.inf)
        return latent.log_prob(zf).double() + torch.as_tensor(log_trees, device=z.device)

    initial = latent.draw(chains, np.random.default_rng(streams[1])).double()
    kept = max(math.ceil(n / chains), 4)  # split-chain diagnostics need 4 kept draws per chain
    draws = thin * kept
    hmc_seed = int(streams[2].generate_state(1)[0])
    result = sample_hmc(
        target,
        initial,
        draws=draws,
        warmup=warmup,
        trajectory_length=trajectory_length,
        seed=hmc_seed,
        log_prob_exact=exact_target if exact else None,
    )
    samples = result.samples[::thin]
    # the diagnostics of the draws kept (the ESS of the events returned, not of every draw)
    centred = samples - samples.mean(axis=(0, 1))
    diagnostics = dataclasses.replace(
        result.diagnostics,
        ess=effective_sample_size(samples).tolist(),
        ess_second_moment=effective_sample_size(centred**2).tolist(),
        rhat=split_rhat(samples).tolist(),
    )
    every = samples.reshape(-1, latent.dimension)  # (draws × chains, d), draw-major: chains vary fastest
    y = _batched(latent.to_preprocessed, torch.as_tensor(every, dtype=torch.float32, device=device)).double().cpu()
    x_all = surrogate.targets_from_flow(y.numpy())
    ess_log_weight = None
    if exact:
        log_trees = log_tree_weight(x_all, 0.0).reshape(samples.shape[:2])
        ess_log_weight = float(effective_sample_size(log_trees)[0])
        kept_events = min(n, len(x_all))
        if ess_log_weight < 0.5 * kept_events:
            warnings.warn(
                f"the refined events' log-weights have an effective sample size of {ess_log_weight:.0f} for "
                f"{kept_events} events: the chains have not mixed in the weights (the refined sample leans towards "
                "the distilled MLP's or the flow's distribution); raise thin (or chains)",
                stacklevel=2,
            )
    x = x_all[:n]
    return Refinement(sample_records(surrogate.spec, x, None), diagnostics, agreement, surrogate, log_w, ess_log_weight)
