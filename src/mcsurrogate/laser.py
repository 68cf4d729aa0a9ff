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
  standard-normal noise. Flow matching (an ODE per gradient) is refused.
* **Conditional surrogates** (a detector response given truth): the reweighting's w(x, c) is fitted on targets and
  conditions together; every condition row gets its own chain, started at the flow's prior draw for that row and
  moved a fixed number of HMC iterations towards p(z|c)·w(F(z; c), c), so each row's refined event is independent of
  the others' (no chain is re-used across rows, nothing for a classifier test to memorise). The step size is adapted
  once on a pilot batch; :attr:`Refinement.log_weight_trace` shows whether the iterations sufficed.

The MLP is trained at every call (seeded, a few seconds on a CPU); nothing is pickled or saved.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping
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
from .hmc import HMCDiagnostics, HMCResult, effective_sample_size, sample_hmc, split_rhat
from .records import feature_matrix
from .surrogate import Surrogate
from .surrogate.inputs import condition_matrix
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
    #: conditional refinements with the exact trees: the mean log-weight of the rows' chains after each HMC
    #: iteration (the event is the state after ``thin``); it climbs from the flow's density and levels off once the
    #: chains have reached the refined one
    log_weight_trace: list[float] | None = None

    def distilled_weights(self, events: ak.Array | np.ndarray) -> np.ndarray:
        """The distilled MLP's weights w(x) of generated ``events`` (records with the surrogate's targets and
        conditions as fields, or an (n, d) array of targets then conditions in that order; original units): the
        weights the refinement samples, to compare a sample weighted with them against the refined one (the
        refinement's own error apart from the weight's)."""
        s = self.surrogate
        columns = list(s.targets) + list(s.conditions)
        m = events if isinstance(events, np.ndarray) else feature_matrix(events, columns)
        y = torch.as_tensor(s.flow_from_targets(m[:, : len(s.targets)]), dtype=torch.float32, device=s.device)
        if s.conditional:
            cy = torch.as_tensor(s.flow_from_conditions(m[:, len(s.targets) :]), dtype=torch.float32, device=s.device)
            y = torch.cat([y, cy], dim=1)
        return np.exp(_batched(lambda v, _: self.log_weight(v), y).double().cpu().numpy())

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
            "log_weight_trace": self.log_weight_trace,
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
    """The latent map of a surrogate's flow given a context (``None`` for an unconditional flow; else one preprocessed
    condition row per latent row): its log density, the map to preprocessed coordinates, a prior draw."""

    dimension: int
    log_prob: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    to_preprocessed: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    draw: Callable[[int, np.random.Generator, torch.Tensor | None], torch.Tensor]


def _latent(model: Any, device: torch.device) -> _Latent:
    if isinstance(model, FlowMatchingModel):
        raise InputError(
            "LASER needs a flow whose latent map is cheap to differentiate; flow matching integrates an ODE per "
            "gradient: refine a surrogate of another family (maf, rqs-ar, rqs-coupling, realnvp, glow, made-mog) "
            "or a distilled one"
        )
    if isinstance(model, DistilledFlow):
        sampler = model.sampler

        def gaussian(u: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
            return -0.5 * (u * u).sum(-1)

        return _Latent(
            model.noise_features,
            gaussian,
            lambda u, ctx: sampler(u, ctx),
            lambda n, rng, ctx: model.draw_noise(n, rng).to(device),
        )
    if isinstance(model, FlowModel):
        flow = model

        def draw(n: int, rng: np.random.Generator, ctx: torch.Tensor | None) -> torch.Tensor:
            with torch.no_grad():
                return flow.base.from_noise(flow.draw_noise(n, rng).to(device), ctx)

        return _Latent(
            flow.features,
            lambda z, ctx: flow.base.log_prob(z, ctx),
            lambda z, ctx: flow.transform.inverse(z, ctx)[0],
            draw,
        )
    raise InputError(f"LASER does not know the latent space of a {describe(model)}")  # pragma: no cover


def _batched(
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    z: torch.Tensor,
    ctx: torch.Tensor | None = None,
    size: int = 65536,
) -> torch.Tensor:
    with torch.no_grad():
        parts = [fn(z[i : i + size], None if ctx is None else ctx[i : i + size]) for i in range(0, len(z), size)]
        return torch.cat(parts) if parts else z


def _distil(
    reweighting: Reweighting,
    surrogate: Surrogate,
    latent: _Latent,
    conditions: _Conditions | None,
    events: int,
    epochs: int,
    hidden: int,
    rng: np.random.Generator,
    seed: int,
) -> tuple[_LogWeight, WeightAgreement]:
    """The MLP log w(y[, c_y]) regressed on the trees' log w over ``events`` fresh generated events (80 % fit, 20 %
    held out for the agreement); a conditional surrogate's events take condition rows drawn from ``conditions``."""
    start = time.perf_counter()
    c = cy = ctx = None
    if conditions is not None:
        rows = rng.integers(0, len(conditions.c), events)
        c, cy = conditions.c[rows], conditions.cy[rows]
        ctx = torch.as_tensor(cy, dtype=torch.float32, device=surrogate.device)
    y = _batched(latent.to_preprocessed, latent.draw(events, rng, ctx), ctx).double().cpu()
    x = surrogate.targets_from_flow(y.numpy())
    keep = np.isfinite(x).all(axis=1) & torch.isfinite(y).all(dim=1).numpy()
    y, x = y[torch.from_numpy(keep)], x[keep]
    if c is not None and cy is not None:
        x = np.hstack([x, c[keep]])
        y = torch.cat([y, torch.from_numpy(cy[keep]).double()], dim=1)
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


@dataclass
class _Conditions:
    """A conditional refinement's condition rows: original units ``c`` and the flow's preprocessed ``cy``."""

    c: np.ndarray
    cy: np.ndarray


class _Targets:
    """The HMC log-densities of one set of chains: the distilled guide and the trees' exact one (see
    :func:`refine`), each chain with its own condition row for a conditional surrogate."""

    def __init__(
        self,
        latent: _Latent,
        log_w: _LogWeight,
        reweighting: Reweighting,
        surrogate: Surrogate,
        c: np.ndarray | None,
        cy: np.ndarray | None,
    ) -> None:
        self.latent, self.log_w, self.reweighting, self.surrogate, self.c = latent, log_w, reweighting, surrogate, c
        device = surrogate.device
        self.ctx = None if cy is None else torch.as_tensor(cy, dtype=torch.float32, device=device)

    def guide(self, z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        log_prior = self.latent.log_prob(zf, self.ctx)  # first: the order autograd sums the two gradients in
        y = self.latent.to_preprocessed(zf, self.ctx)
        inputs = y if self.ctx is None else torch.cat([y, self.ctx], dim=1)
        return (log_prior + self.log_w(inputs)).double()

    def log_tree_weight(self, x: np.ndarray, non_finite: float) -> np.ndarray:
        """log of the reweighting's weights of target rows ``x`` (in chain order, repeated per draw, with this set's
        conditions); ``non_finite`` for rows that are not finite."""
        if self.c is not None:
            x = np.hstack([x, np.tile(self.c, (len(x) // len(self.c), 1))])
        finite = np.isfinite(x).all(axis=1)
        out = np.full(len(x), non_finite)
        out[finite] = np.log(self.reweighting.weights(x[finite]))
        return out

    def exact(self, z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        y = self.latent.to_preprocessed(zf, self.ctx).double().cpu().numpy()
        log_trees = self.log_tree_weight(self.surrogate.targets_from_flow(y), -np.inf)
        return self.latent.log_prob(zf, self.ctx).double() + torch.as_tensor(log_trees, device=z.device)

    def events(self, z: np.ndarray) -> np.ndarray:
        """Targets (original units) of latent rows ``z`` of these chains (rows in chain order, repeated per draw)."""
        zt = torch.as_tensor(z, dtype=torch.float32, device=self.surrogate.device)
        ctx = None if self.ctx is None else self.ctx.repeat(len(z) // len(self.ctx), 1)
        y = _batched(self.latent.to_preprocessed, zt, ctx).double().cpu().numpy()
        return self.surrogate.targets_from_flow(y)


def refine(
    reweighting: Reweighting,
    surrogate: Surrogate,
    n: int | None = None,
    seed: int = 0,
    *,
    conditions: ak.Array | np.ndarray | Mapping[str, Any] | None = None,
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
    time: hence thin 25 by default), and a batch of chains costs about what one chain does per gradient; the weight
    is an MLP (``hidden`` units per layer) distilled from the trees on ``distill_events`` generated events in
    ``distill_epochs`` epochs. With ``exact`` (the default) the MLP only guides the HMC trajectories and the trees
    decide each Metropolis step, so the refined events follow the trees' weights exactly (the MLP's quality shows in
    the acceptance rate); ``exact=False`` samples the MLP's weights. Seeded: the same seed gives the same events.

    **Conditional surrogates** (the reweighting fitted on targets + conditions, as
    :func:`~mcsurrogate.refinement.fit_surrogate_reweighting` does): pass ``conditions`` (records, a dict of columns
    or an (n, len(conditions)) array, original units) instead of ``n``; every condition row gets its own chain,
    started from the flow's prior draw for that row (already the unrefined surrogate's event) and moved ``thin`` HMC
    iterations towards p(z|c)·w(F(z; c), c); its last state is the row's refined event, so the events are
    independent and come back in the rows' order. The step size and trajectory are adapted once, in ``warmup``
    iterations of a pilot run on ``chains`` rows drawn from ``conditions`` (discarded), and the rows then run in
    batches of ``chains``. Every condition's latent target is close to N(0, I) (the flow made it so; w only tilts
    it), so the chains are nearly exchangeable and the ESS and R̂ over them keep their meaning; the mean log-weight
    per iteration (:attr:`Refinement.log_weight_trace`) shows whether ``thin`` iterations have moved the rows from
    the flow's density to the refined one (it rises from its start and levels off).

    Raises :class:`InputError` for a flow-matching surrogate, a reweighting fitted on other features, ``n`` with a
    conditional surrogate (unless equal to the rows) or ``conditions`` with an unconditional one.
    """
    from .refinement import Reweighting

    if not isinstance(reweighting, Reweighting):
        raise InputError(f"reweighting must be a Reweighting, got {describe(reweighting)}")
    if not isinstance(surrogate, Surrogate):
        raise InputError(f"surrogate must be a Surrogate, got {describe(surrogate)}")
    features = list(surrogate.targets) + list(surrogate.conditions)
    if list(reweighting.features) != features:
        raise InputError(
            f"the reweighting was fitted on the features {reweighting.features}; this surrogate generates "
            f"{features}" + (" (targets, then conditions)" if surrogate.conditional else "")
        )
    cond = None
    if surrogate.conditional:
        if conditions is None:
            raise InputError(
                f"this surrogate is conditional: pass conditions (one refined event per row) with columns "
                f"{surrogate.conditions}"
            )
        c = condition_matrix(surrogate.spec, conditions, surrogate.metrics.get("condition_ranges") or {})
        if n is not None and n != len(c):
            raise InputError(f"n={n} differs from the number of condition rows ({len(c)}); pass one or the other")
        if len(c) == 0:
            raise InputError("conditions holds no row: nothing to refine")
        cond = _Conditions(c, surrogate.flow_from_conditions(c))
        n = len(c)
    elif conditions is not None:
        raise InputError("this surrogate is unconditional: pass n, not conditions")
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
        cond,
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
    if cond is None:
        targets = _Targets(latent, log_w, reweighting, surrogate, None, None)
        initial = latent.draw(chains, np.random.default_rng(streams[1]), None).double()
        kept = max(math.ceil(n / chains), 4)  # split-chain diagnostics need 4 kept draws per chain
        hmc_seed = int(streams[2].generate_state(1)[0])
        result = _hmc(targets, initial, thin * kept, warmup, hmc_seed, trajectory_length=trajectory_length, exact=exact)
        samples = result.samples[::thin]
        every = samples.reshape(-1, latent.dimension)  # (draws × chains, d), draw-major: chains vary fastest
        x_all = targets.events(every)
        log_trees = targets.log_tree_weight(x_all, 0.0).reshape(samples.shape[:2]) if exact else None
        x, c_out, trace = x_all[:n], None, None
        hmc = result.diagnostics
    else:
        samples, log_trees, hmc = _refine_conditional(
            latent,
            log_w,
            reweighting,
            surrogate,
            cond,
            chains,
            warmup,
            thin,
            streams,
            trajectory_length=trajectory_length,
            exact=exact,
        )
        x = _Targets(latent, log_w, reweighting, surrogate, cond.c, cond.cy).events(samples[thin - 1])
        c_out = cond.c
        trace = None
        if log_trees is not None:
            finite = np.isfinite(log_trees)
            trace = (np.where(finite, log_trees, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)).tolist()
    # the diagnostics of the draws kept (the ESS of the events returned, not of every draw)
    centred = samples - samples.mean(axis=(0, 1))
    diagnostics = dataclasses.replace(
        hmc,
        ess=effective_sample_size(samples).tolist(),
        ess_second_moment=effective_sample_size(centred**2).tolist(),
        rhat=split_rhat(samples).tolist(),
    )
    ess_log_weight = None
    if log_trees is not None:
        finite_trees = np.where(np.isfinite(log_trees), log_trees, 0.0)
        ess_log_weight = float(effective_sample_size(finite_trees)[0])
        kept_events = min(n, samples.shape[0] * samples.shape[1])
        if ess_log_weight < 0.5 * kept_events and cond is None:
            warnings.warn(
                f"the refined events' log-weights have an effective sample size of {ess_log_weight:.0f} for "
                f"{kept_events} events: the chains have not mixed in the weights (the refined sample leans towards "
                "the distilled MLP's or the flow's distribution); raise thin (or chains)",
                stacklevel=2,
            )
    return Refinement(
        sample_records(surrogate.spec, x, c_out),
        diagnostics,
        agreement,
        surrogate,
        log_w,
        ess_log_weight,
        trace,
    )


def _hmc(
    targets: _Targets,
    initial: torch.Tensor,
    draws: int,
    warmup: int,
    seed: int,
    *,
    trajectory_length: float,
    exact: bool,
    step_size: float = 0.5,
    leapfrog_steps: int | None = None,
) -> HMCResult:
    return sample_hmc(
        targets.guide,
        initial,
        draws=draws,
        warmup=warmup,
        trajectory_length=trajectory_length,
        step_size=step_size,
        leapfrog_steps=leapfrog_steps,
        seed=seed,
        log_prob_exact=targets.exact if exact else None,
    )


def _refine_conditional(
    latent: _Latent,
    log_w: _LogWeight,
    reweighting: Reweighting,
    surrogate: Surrogate,
    cond: _Conditions,
    chains: int,
    warmup: int,
    thin: int,
    streams: list[np.random.SeedSequence],
    *,
    trajectory_length: float,
    exact: bool,
) -> tuple[np.ndarray, np.ndarray | None, HMCDiagnostics]:
    """One chain per condition row (see :func:`refine`): the draws (max(thin, 4), rows, d) of every row's chain
    (the row's event is draw ``thin`` − 1), their trees' log-weights (draws, rows) with ``exact`` (−inf where the
    event is not finite), and the merged diagnostics (ESS and R̂ left for the caller to fill)."""
    n = len(cond.c)
    rng = np.random.default_rng(streams[1])
    draws = max(thin, 4)
    seeds = streams[2].generate_state(2 + math.ceil(n / chains))
    step_size, leapfrog_steps, seconds, gradients = 0.5, None, 0.0, 0
    if warmup:
        rows = rng.integers(0, n, min(chains, n) if n >= 2 else 2)
        pilot = _Targets(latent, log_w, reweighting, surrogate, cond.c[rows], cond.cy[rows])
        initial = latent.draw(len(rows), rng, pilot.ctx).double()
        result = _hmc(pilot, initial, 4, warmup, int(seeds[0]), trajectory_length=trajectory_length, exact=exact)
        step_size, leapfrog_steps = result.diagnostics.step_size, result.diagnostics.leapfrog_steps
        seconds, gradients = result.diagnostics.seconds, result.diagnostics.gradient_evaluations
    samples = np.empty((draws, n, latent.dimension))
    log_trees = np.empty((draws, n)) if exact else None
    accept = integrator = 0.0
    divergences = 0
    for b, start in enumerate(range(0, n, chains)):
        stop = min(n, start + chains)
        idx = np.arange(start, stop)
        if len(idx) < 2:  # a single left-over row runs beside a copy of itself (sample_hmc needs two chains)
            idx = np.array([start, start])
        part = _Targets(latent, log_w, reweighting, surrogate, cond.c[idx], cond.cy[idx])
        initial = latent.draw(len(idx), rng, part.ctx).double()
        result = _hmc(
            part,
            initial,
            draws,
            0,
            int(seeds[2 + b]),
            trajectory_length=trajectory_length,
            exact=exact,
            step_size=step_size,
            leapfrog_steps=leapfrog_steps,
        )
        m = stop - start
        samples[:, start:stop] = result.samples[:, :m]
        if log_trees is not None:
            x = part.events(result.samples.reshape(-1, latent.dimension))
            log_trees[:, start:stop] = part.log_tree_weight(x, -np.inf).reshape(draws, len(idx))[:, :m]
        d = result.diagnostics
        accept += d.acceptance_rate * m
        integrator += d.integrator_acceptance_rate * m
        divergences += d.divergences
        seconds += d.seconds
        gradients += d.gradient_evaluations
    hmc = HMCDiagnostics(
        chains=n,
        warmup=warmup,
        draws=draws,
        leapfrog_steps=leapfrog_steps or result.diagnostics.leapfrog_steps,
        step_size=step_size,
        acceptance_rate=accept / n,
        integrator_acceptance_rate=integrator / n,
        divergences=divergences,
        ess=[],
        ess_second_moment=[],
        rhat=[],
        gradient_evaluations=gradients,
        seconds=seconds,
    )
    return samples, log_trees, hmc
