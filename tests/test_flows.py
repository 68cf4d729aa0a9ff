"""One contract over every flow family, conditional and unconditional."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform

from mcsurrogate.errors import InputError
from mcsurrogate.flows import FLOW_FAMILIES, FlowConfig, build_flow
from mcsurrogate.persistence import load_tensors, save_tensors
from mcsurrogate.training import TrainConfig, train_flow

FAMILIES = sorted(FLOW_FAMILIES)
CASES = [(m, c) for m in FAMILIES for c in (0, 2)]
IDS = [f"{m}-{'cond' if c else 'uncond'}" for m, c in CASES]
D = 3


def make(model: str, context: int, **kw) -> torch.nn.Module:
    torch.manual_seed(1)
    cfg = FlowConfig(model=model, blocks=2, hidden=16, bins=4, components=3, **kw)
    flow = build_flow(cfg, D, context or None)
    # a forward pass in training mode initialises data-dependent layers (ActNorm)
    flow.train()
    flow.log_prob(torch.randn(64, D), torch.randn(64, context) if context else None)
    return flow


def perturb(flow: torch.nn.Module, scale: float = 0.2, seed: int = 3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def ctx(n: int, context: int, dtype=torch.float32) -> torch.Tensor | None:
    return torch.randn(n, context, dtype=dtype) if context else None


@pytest.mark.parametrize(("model", "context"), CASES, ids=IDS)
def test_shapes_and_gradients_reach_every_parameter(model: str, context: int) -> None:
    flow = make(model, context)
    x = torch.randn(32, D)
    lp = flow.log_prob(x, ctx(32, context))
    assert lp.shape == (32,)
    assert torch.isfinite(lp).all()
    flow.zero_grad()
    (-lp.mean()).backward()
    dead = [name for name, p in flow.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"
    flow.eval()
    noise = flow.draw_noise(17, np.random.default_rng(0))
    assert noise.shape == (17, flow.noise_features)
    s = flow.sample_from_noise(noise, ctx(17, context))
    assert s.shape == (17, D) and torch.isfinite(s).all()


@pytest.mark.parametrize(("model", "context"), [c for c in CASES if c[1]], ids=[i for i in IDS if "-cond" in i])
def test_every_output_depends_on_the_context(model: str, context: int) -> None:
    flow = make(model, context)
    perturb(flow)
    flow.eval()
    c = torch.randn(8, context, requires_grad=True)
    noise = flow.draw_noise(8, np.random.default_rng(1))
    sample = flow.sample_from_noise(noise, c)
    for d in range(D):
        (grad,) = torch.autograd.grad(sample[:, d].sum(), c, retain_graph=True)
        assert grad.abs().sum() > 0, f"sampled feature {d} ignores the context"
    # and the density direction
    x = torch.randn(8, D)
    _z, _ = flow.transform(x, c)
    dens = flow.log_prob(x, c)
    (g,) = torch.autograd.grad(dens.sum(), c)
    assert g.abs().sum() > 0


def test_nflows_made_ignores_context_in_its_first_output() -> None:
    """The upstream fault our ConditionalMADE exists for (nflows PR #85): keep this test to notice a fix."""
    torch.manual_seed(0)
    t = MaskedAffineAutoregressiveTransform(features=3, hidden_features=16, context_features=2)
    c = torch.randn(4, 2, requires_grad=True)
    params = t.autoregressive_net(torch.randn(4, 3), c)
    (grad,) = torch.autograd.grad(params[:, :2].sum(), c)  # parameters of feature 1
    assert grad.abs().sum() == 0


@pytest.mark.parametrize(("model", "context"), CASES, ids=IDS)
def test_inverse_round_trip_and_log_det_match_numerical_jacobian(model: str, context: int) -> None:
    check_round_trip_and_log_det(make(model, context), context)


def test_affine_then_spline_autoregressive_blocks() -> None:
    flow = make("rqs-ar", 2, affine_blocks=2)
    kinds = [type(t).__name__ for t in flow.transform._transforms if "Permutation" not in type(t).__name__]
    assert kinds == ["AffineAutoregressive", "AffineAutoregressive", "SplineAutoregressive", "SplineAutoregressive"]
    check_round_trip_and_log_det(flow, 2)
    with pytest.raises(InputError, match="'affine_blocks' applies to model 'rqs-ar'"):
        FlowConfig(model="maf", affine_blocks=1)
    with pytest.raises(InputError, match="'affine_blocks'"):
        FlowConfig(model="rqs-ar", affine_blocks=-1)


def check_round_trip_and_log_det(flow: torch.nn.Module, context: int) -> None:
    """inverse(forward(x)) = x and the log-determinant equals log|det J| of the numerical Jacobian."""
    flow = flow.double()
    perturb(flow, 0.1)
    flow.eval()
    x = torch.randn(4, D, dtype=torch.float64)
    c = ctx(4, context, torch.float64)
    z, logdet = flow.transform(x, c)
    back, _ = flow.transform.inverse(z, c)
    assert torch.allclose(back, x, atol=1e-6), (back - x).abs().max()
    for i in range(len(x)):
        ci = None if c is None else c[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ci=ci: flow.transform(v[None], ci)[0][0], x[i])
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-6)


@pytest.mark.parametrize("model", FAMILIES)
def test_density_integrates_to_one(model: str) -> None:
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model=model, blocks=2, hidden=16, bins=4, components=3), 2, 1).double()
    flow.train()
    flow.log_prob(torch.randn(64, 2, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64))
    perturb(flow, 0.1)
    flow.eval()
    g = torch.linspace(-12, 12, 481, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    with torch.no_grad():
        dens = flow.log_prob(pts, torch.full((len(pts), 1), 0.7, dtype=torch.float64)).exp()
    integral = dens.sum().item() * (g[1] - g[0]).item() ** 2
    assert integral == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(("model", "context"), CASES, ids=IDS)
def test_save_load_gives_identical_density_and_samples(model: str, context: int, tmp_path) -> None:
    flow = make(model, context)
    perturb(flow, 0.05)
    flow.eval()
    save_tensors(tmp_path / "w.safetensors", flow.state_dict(), {"model": model})
    tensors, meta = load_tensors(tmp_path / "w.safetensors")
    assert meta == {"model": model}
    torch.manual_seed(99)  # a different initialisation, overwritten by the load
    other = build_flow(FlowConfig(model=model, blocks=2, hidden=16, bins=4, components=3), D, context or None)
    other.load_state_dict(tensors)
    other.eval()
    x, c = torch.randn(10, D), ctx(10, context)
    assert torch.equal(flow.log_prob(x, c), other.log_prob(x, c))
    noise = flow.draw_noise(10, np.random.default_rng(5))
    assert torch.equal(flow.sample_from_noise(noise, c), other.sample_from_noise(noise, c))


def _correlated(n: int, seed: int, conditional: bool) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    cov = [[1.0, 0.9], [0.9, 1.0]]
    x = rng.multivariate_normal([0, 0], cov, size=n)
    if not conditional:
        return x, None
    c = rng.uniform(-1.5, 1.5, size=(n, 1))
    x = 0.5 * x + np.hstack([c, -c])  # the context moves the mean; unit-ish marginal variance
    return x, c


@pytest.mark.parametrize(
    ("model", "context"),
    [(m, c) for m in FAMILIES for c in (0, 1)],
    ids=[f"{m}-{'cond' if c else 'uncond'}" for m in FAMILIES for c in (0, 1)],
)
def test_training_beats_the_base_density(model: str, context: int) -> None:
    x, c = _correlated(3000, 0, bool(context))
    xv, cv = _correlated(1000, 1, bool(context))
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model=model, blocks=2, hidden=32, bins=6, components=4), 2, context or None)
    cfg = TrainConfig(epochs=12, batch_size=128, lr=3e-3, schedule="constant", patience=None, device="cpu")
    result = train_flow(flow, x, c, xv, cv, cfg, progress=False)
    base_nll = float(np.mean(0.5 * (xv**2).sum(1) + math.log(2 * math.pi)))
    # the correlated Gaussian's true NLL is 0.83 nats (unconditional) and ~2.2 nats (conditional) below the base
    assert result.history[result.best_epoch - 1].val_nll < base_nll - 0.5, (result.best_metric, base_nll)


def test_config_errors_name_the_parameter() -> None:
    with pytest.raises(InputError, match=r"unknown flow model 'nope'.*maf"):
        FlowConfig(model="nope")
    with pytest.raises(InputError, match="'blocks'"):
        FlowConfig(blocks=0)
    with pytest.raises(InputError, match="unknown flow parameter"):
        FlowConfig.from_dict({"model": "maf", "widht": 3})
    with pytest.raises(InputError, match="at least 2 target features"):
        build_flow(FlowConfig(model="realnvp"), 1)


@pytest.mark.parametrize("context", [None, 3])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("block", ["affine", "spline"])
def test_one_pass_autoregressive_inverse_matches_nflows_loop(block: str, residual: bool, context: int | None) -> None:
    """The step-wise inverse (each hidden unit once) gives nflows' D-pass inverse and inverts the forward pass."""
    from nflows.transforms.autoregressive import AutoregressiveTransform

    from mcsurrogate.flows.autoregressive import AffineAutoregressive, SplineAutoregressive

    torch.manual_seed(1)
    if block == "affine":
        t = AffineAutoregressive(5, 24, context, residual=residual)
    else:
        t = SplineAutoregressive(5, 24, context, bins=6, tail_bound=3.0, residual=residual)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the near-identity start
        z, c = 2 * torch.randn(500, 5), (torch.randn(500, context) if context else None)
        x, logdet = t.inverse(z, c)
        x_loop, logdet_loop = AutoregressiveTransform.inverse(t, z, c)
        z_back, logdet_fwd = t(x, c)
    assert torch.allclose(x, x_loop, atol=1e-5) and torch.allclose(logdet, logdet_loop, atol=1e-4)
    assert torch.allclose(z_back, z, atol=1e-4) and torch.allclose(logdet, -logdet_fwd, atol=1e-4)
    # with autograd on, the same values through the path that keeps the graph (no in-place buffers)
    x_grad, logdet_grad = t.inverse(z, c)
    x_grad.sum().backward()
    assert torch.allclose(x_grad, x, atol=1e-6) and torch.allclose(logdet_grad, logdet, atol=1e-5)


@pytest.mark.parametrize("context", [None, 3])
def test_made_mog_sampling_matches_a_full_pass_per_feature(context: int | None) -> None:
    model = build_flow(FlowConfig(model="made-mog", blocks=2, hidden=24, components=4), 4, context)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        noise = model.draw_noise(400, np.random.default_rng(0))
        c = torch.randn(400, context) if context else None
        x = model.sample_from_noise(noise, c)
        # reference: the whole network once per feature, the component picked from the same uniform
        mog = model.base
        eps, unif = noise[:, :4], torch.special.ndtr(noise[:, 4:])
        ref = torch.zeros_like(eps)
        for d in range(4):
            log_w, means, log_stds = mog._params(ref, c)
            k = (unif[:, d : d + 1] > torch.cumsum(log_w[:, d].exp(), -1)).sum(-1, keepdim=True).clamp(max=3)
            ref[:, d] = (means[:, d].gather(1, k) + log_stds[:, d].gather(1, k).exp() * eps[:, d : d + 1])[:, 0]
    assert torch.allclose(x, ref, atol=1e-4)


@pytest.mark.parametrize("clip", [5.0, None], ids=["clipped", "unclipped"])
def test_a_step_whose_gradient_overflows_is_skipped_not_applied(clip: float | None, caplog) -> None:
    """A finite loss whose gradient overflows (an extreme batch, float32) used to write inf/NaN into every weight
    through the clipping (inf × 0) and stop the training a step later ("loss became nan"): the step is skipped and
    counted; ten in a row stop the training with a TrainingError."""
    from mcsurrogate.errors import TrainingError

    rng = np.random.default_rng(0)
    x, xv = rng.normal(size=(1024, 2)), rng.normal(size=(256, 2))
    cfg = TrainConfig(epochs=2, batch_size=128, lr=1e-3, patience=None, clip_grad_norm=clip, device="cpu")

    def overflowing(at: set[int]) -> tuple[torch.nn.Module, list[int]]:
        torch.manual_seed(0)
        flow = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, None)
        calls = [0]
        first = next(flow.parameters())

        def hook(grad: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            return grad * math.inf if calls[0] in at else grad

        first.register_hook(hook)
        return flow, calls

    flow, _ = overflowing({3})
    with caplog.at_level("WARNING", logger="mcsurrogate.training"):
        result = train_flow(flow, x, None, xv, None, cfg, progress=False)
    assert result.skipped_steps == 1 and result.to_dict()["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    assert all(math.isfinite(r.val_nll) for r in result.history)
    assert "epoch 1: 1 of 8 optimiser steps skipped" in caplog.text
    flow, _ = overflowing(set(range(5, 15)))
    with pytest.raises(TrainingError, match="not finite in 10 steps in a row"):
        train_flow(flow, x, None, xv, None, cfg, progress=False)


def test_a_step_whose_loss_overflows_is_skipped_not_fatal(caplog) -> None:
    """A young 10-block MAF mapped one tail event of a HIGGS-like batch to |z| ~ 1e22, whose z² overflows float32:
    the batch's loss was inf at step 30 and ended the training (paper B's MAF on t t̄ of seed 2024). Such a step is
    skipped and counted like a gradient overflow; ten in a row stop the training."""
    from mcsurrogate.errors import TrainingError

    rng = np.random.default_rng(1)
    x, xv = rng.normal(size=(1024, 2)), rng.normal(size=(256, 2))
    cfg = TrainConfig(epochs=2, batch_size=128, lr=1e-3, patience=None, device="cpu")

    def overflowing(at: set[int]) -> torch.nn.Module:
        torch.manual_seed(0)
        flow = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, None)
        calls = [0]
        loss = flow.training_loss

        def training_loss(*args: object) -> torch.Tensor:
            calls[0] += 1
            out = loss(*args)
            return out * math.inf if calls[0] in at else out

        flow.training_loss = training_loss  # type: ignore[method-assign]
        return flow

    torch.manual_seed(0)
    plain = train_flow(
        build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, None), x, None, xv, None, cfg, progress=False
    )
    with caplog.at_level("WARNING", logger="mcsurrogate.training"):
        result = train_flow(overflowing({2, 11}), x, None, xv, None, cfg, progress=False)
    assert result.skipped_steps == 2
    assert "epoch 1: 1 of 8 optimiser steps skipped, their loss or gradient" in caplog.text
    assert "epoch 2: 1 of 8" in caplog.text
    assert all(math.isfinite(r.train_loss) and math.isfinite(r.val_nll) for r in result.history)
    assert result.history[-1].val_nll != plain.history[-1].val_nll  # the two steps were not applied
    with pytest.raises(TrainingError, match="loss or its gradient was not finite in 10 steps in a row"):
        train_flow(overflowing(set(range(3, 13))), x, None, xv, None, cfg, progress=False)
