"""Distilled samplers: a dense network fitted to a flow's noise → sample map, saved, loaded and exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcsurrogate import Surrogate
from mcsurrogate.cli.core import DISTILL_ACTIVATIONS, DISTILL_PRECISIONS
from mcsurrogate.errors import InputError
from mcsurrogate.export import export_onnx, export_torchscript, load_torchscript
from mcsurrogate.flows import FlowConfig, build_flow, distilled, frozen
from mcsurrogate.flows.distilled import DistillConfig, DistilledFlow, MLPSampler, distill_flow
from mcsurrogate.flows.made import ACTIVATIONS
from mcsurrogate.optimisation import adam_fused_if_available

from .conftest import correlated_events

EVENTS = correlated_events(3000, seed=11)
TRAIN = {"epochs": 4, "batch_size": 256, "device": "cpu", "patience": None, "seed": 0}
SMALL = {"pairs": 40_000, "epochs": 6, "hidden": 64, "layers": 3, "batch_size": 512}


@pytest.fixture(scope="module")
def teacher() -> Surrogate:
    flow = {"model": "rqs-coupling", "blocks": 2, "hidden": 16, "bins": 6}
    return Surrogate(["a", "b", "c"], ["mu"], flow=flow, training=TRAIN).fit(EVENTS, progress=False)


@pytest.fixture(scope="module")
def student(teacher: Surrogate) -> Surrogate:
    return teacher.distill(EVENTS, SMALL, progress=False)


def test_student_reproduces_the_teacher_for_the_same_noise(teacher, student) -> None:
    sub = EVENTS[:2000]
    t = teacher.sample(conditions=sub, seed=3)
    s = student.sample(conditions=sub, seed=3)
    rep = student.metrics["distillation"]
    # held-out squared error small against the teacher's width, per target (flow space, ~unit width)
    ratio = np.array(rep["validation_mse_per_feature"]) / np.square(rep["teacher_std_per_feature"])
    assert (ratio < 0.02).all(), ratio
    for col in ("a", "b", "c"):
        tv, sv = t[col].to_numpy(), s[col].to_numpy()
        rms = np.sqrt(np.mean((tv - sv) ** 2))
        assert rms < 0.15 * np.std(tv), (col, rms, np.std(tv))  # event by event, same noise
        assert abs(np.std(sv) / np.std(tv) - 1) < 0.05
    # the untouched original still samples with its flow
    assert not isinstance(teacher.model, DistilledFlow) and teacher.distill_config is None


def test_student_location_and_scale_are_the_teachers_local_mean_and_width(teacher, student) -> None:
    # the regression weighs each pair's error by exp(-s(c)); fitted as the teacher's local width it cannot run away
    # (a free s has a degenerate minimum, s → ∞: the object-response distillation walked into it)
    from mcsurrogate.surrogate.inputs import condition_matrix

    ctx = torch.from_numpy(teacher.flow_from_conditions(condition_matrix(teacher.spec, EVENTS[:3], {})))
    sampler = student.model.sampler
    with torch.no_grad():
        loc, log_scale = sampler.location_scale(ctx.float()).chunk(2, dim=1)
        for i in range(len(ctx)):
            n = 20_000
            z = torch.randn(n, 3, generator=torch.Generator().manual_seed(i))
            x = teacher.model.sample_from_noise(z, ctx[i : i + 1].float().expand(n, -1))
            np.testing.assert_allclose(torch.exp(log_scale[i]).numpy(), x.std(dim=0).numpy(), rtol=0.06)
            np.testing.assert_allclose(loc[i].numpy(), x.mean(dim=0).numpy(), atol=0.05 * float(x.std(dim=0).max()))


def test_student_keeps_the_teacher_density(teacher, student) -> None:
    np.testing.assert_array_equal(student.log_prob(EVENTS[:100]), teacher.log_prob(EVENTS[:100]))


def test_same_seed_same_student(teacher, student) -> None:
    again = teacher.distill(EVENTS, SMALL, progress=False)
    for k, v in student.model.sampler.state_dict().items():
        torch.testing.assert_close(again.model.sampler.state_dict()[k], v, rtol=0, atol=0)


def test_saved_student_samples_the_same(student, tmp_path) -> None:
    student.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["distilled_sampler"]["hidden"] == SMALL["hidden"] and config["schema_version"] == 3
    back = Surrogate.load(tmp_path / "m", device="cpu")
    assert isinstance(back.model, DistilledFlow) and back.distill_config == student.distill_config
    assert back.info()["distilled_sampler"] == student.distill_config.to_dict()
    a = student.sample(conditions=EVENTS[:300], seed=5)
    b = back.sample(conditions=EVENTS[:300], seed=5)
    np.testing.assert_array_equal(a["b"].to_numpy(), b["b"].to_numpy())
    # a directory of the previous schema (2: no sampling precision) still loads, sampling in float32
    del config["distilled_sampler"]["precision"]
    config["schema_version"] = 2
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    old = Surrogate.load(tmp_path / "m", device="cpu")
    assert old.model.precision == "float32" and old.distill_config == student.distill_config


def test_exported_student_holds_only_the_student(student, tmp_path) -> None:
    out = export_torchscript(student, tmp_path / "s.pt", example_batch=64)
    module = load_torchscript(out)
    n_student = sum(p.numel() for p in student.model.sampler.parameters())
    assert sum(p.numel() for p in module.parameters()) == n_student
    noise = torch.randn(50, 3)
    ctx = torch.randn(50, 1)
    with torch.no_grad():
        np.testing.assert_allclose(
            module(noise, ctx).numpy(), student.model.sample_from_noise(noise, ctx).numpy(), atol=1e-6
        )
    assert json.loads((tmp_path / "s.json").read_text())["distilled_sampler"]["layers"] == SMALL["layers"]
    pytest.importorskip("onnx")
    export_onnx(
        student, tmp_path / "onnx" / "s.onnx"
    )  # a coupling flow with an LU layer would be refused; the MLP is not


def test_bad_requests_are_refused(teacher, student) -> None:
    with pytest.raises(InputError, match="conditional: pass conditions"):
        teacher.distill(None, SMALL)
    with pytest.raises(InputError, match="distilled already"):
        student.distill(EVENTS, SMALL)
    with pytest.raises(InputError, match="'pairs' must be a positive integer"):
        teacher.distill(EVENTS, {"pairs": 0})
    with pytest.raises(InputError, match="unknown distillation parameter"):
        teacher.distill(EVENTS, {"width": 3})
    with pytest.raises(InputError, match="lack column"):
        teacher.distill(EVENTS[["a", "b"]], SMALL)


@pytest.mark.filterwarnings("ignore:the distilled student does not reproduce:UserWarning")  # deliberately tiny fits
def test_mixture_base_and_bad_contexts_are_refused() -> None:
    mog = build_flow(FlowConfig(model="made-mog", blocks=1, hidden=8, components=2), 2, 1)
    with pytest.raises(InputError, match="standard-normal base"):
        distill_flow(mog, np.zeros((10, 1), np.float32), DistillConfig(pairs=100, epochs=1))
    maf = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, 1)
    with pytest.raises(InputError, match=r"\(n, 1\) array"):
        distill_flow(maf, np.zeros((10, 2), np.float32), DistillConfig(pairs=100, epochs=1))
    with pytest.raises(InputError, match="NaN"):
        distill_flow(maf, np.full((10, 1), np.nan, np.float32), DistillConfig(pairs=100, epochs=1))
    uncond = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, None)
    flow, rep = distill_flow(uncond, None, DistillConfig(pairs=1000, epochs=1, hidden=8))
    assert flow.sample_from_noise(torch.zeros(4, 2)).shape == (4, 2) and len(rep["validation_mse_history"]) == 1


@pytest.mark.filterwarnings("ignore:the distilled student does not reproduce:UserWarning")  # deliberately tiny fits
def test_bfloat16_sampling_rounds_the_networks_only(teacher, student, tmp_path) -> None:
    fp32 = student.model
    bf16 = DistilledFlow(fp32.teacher, fp32.sampler, "bfloat16").eval()
    gen = torch.Generator().manual_seed(0)
    noise, ctx = torch.randn(3 * fp32.chunk + 17, 3, generator=gen), torch.randn(3 * fp32.chunk + 17, 1, generator=gen)
    with torch.inference_mode():
        a, b, again = (
            fp32.sample_from_noise(noise, ctx),
            bf16.sample_from_noise(noise, ctx),
            bf16.sample_from_noise(noise, ctx),
        )
    torch.testing.assert_close(again, b, rtol=0, atol=0)  # deterministic
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # it did round
    rms = (a - b).pow(2).mean(dim=0).sqrt()
    assert (rms < 0.01 * a.std(dim=0)).all(), rms  # bfloat16's 8 significant bits on a fitted correction
    with torch.no_grad():  # without autograd: float32 networks, activations computed in place
        no_grad = fp32.sample_from_noise(noise[:99], ctx[:99])
    with torch.enable_grad():  # with autograd on (fitting, validation): float32, out of place; the same numbers
        torch.testing.assert_close(bf16.sample_from_noise(noise[:99], ctx[:99]), no_grad, rtol=0, atol=0)
    small = teacher.distill(EVENTS, SMALL | {"pairs": 4000, "epochs": 1, "precision": "bfloat16"}, progress=False)
    assert small.model.precision == "bfloat16"
    small.save(tmp_path / "bf16")
    back = Surrogate.load(tmp_path / "bf16", device="cpu")
    assert back.model.precision == "bfloat16" and back.info()["distilled_sampler"]["precision"] == "bfloat16"
    x, y = small.sample(conditions=EVENTS[:300], seed=5), back.sample(conditions=EVENTS[:300], seed=5)
    np.testing.assert_array_equal(x["c"].to_numpy(), y["c"].to_numpy())
    with pytest.raises(InputError, match="unknown precision 'float16'; choose one of float32, bfloat16"):
        DistillConfig(precision="float16")
    with pytest.raises(InputError, match="unknown precision"):
        DistilledFlow(fp32.teacher, fp32.sampler, "half")


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh"])
@pytest.mark.parametrize("conditional", [True, False])
def test_frozen_bfloat16_sampler_matches_plain_torch(activation: str, conditional: bool, monkeypatch) -> None:
    """The inference path (oneDNN dense layers with fused bias and activation where it has them) against the same
    weights through the plain torch modules, both in bfloat16; and against the float32 module."""
    torch.manual_seed(4)
    sampler = MLPSampler(3, 2 if conditional else None, hidden=32, layers=2, activation=activation)
    for p in sampler.parameters():  # away from the identity start, so every layer matters
        torch.nn.init.normal_(p, std=0.3)
    noise = torch.randn(500, 3)
    ctx = torch.randn(500, 2) if conditional else None
    with torch.inference_mode():
        fast = sampler.frozen(torch.bfloat16)(noise, ctx)
        monkeypatch.setitem(frozen._onednn_dense, "works", False)  # what a CPU or build without oneDNN runs
        plain = sampler.frozen(torch.bfloat16)(noise, ctx)
        exact = sampler(noise, ctx)
    assert fast.dtype == plain.dtype == torch.float32 and fast.shape == (500, 3)
    scale = exact.std(dim=0)
    for approx in (fast, plain):  # bfloat16 rounding of each layer: a percent-level error per layer at most
        assert ((approx - exact).pow(2).mean(dim=0).sqrt() < 0.03 * scale).all()
    assert not torch.equal(fast, exact)


def test_cli_choices_are_the_library_s() -> None:
    assert DISTILL_ACTIVATIONS == tuple(ACTIVATIONS) and DISTILL_PRECISIONS == tuple(distilled.PRECISIONS)


def test_fused_adam_where_available_else_the_default() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    assert adam_fused_if_available(torch.optim.Adam, [param], lr=1e-3).defaults["fused"]  # torch ≥ 2.4 on CPU

    class NoFusedKernel(torch.optim.Adam):
        def __init__(self, params, fused=None, **options) -> None:
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be on a supported device")
            super().__init__(params, **options)

    opt = adam_fused_if_available(NoFusedKernel, iter([param]), lr=1e-3)  # a generator is consumed once only
    assert not opt.defaults["fused"] and opt.param_groups[0]["params"] == [param]


@pytest.mark.filterwarnings("ignore:the distilled student does not reproduce:UserWarning")  # deliberately tiny fits
def test_a_non_finite_distillation_loss_skips_the_step_and_a_diverged_student_is_refused(monkeypatch) -> None:
    from mcsurrogate.errors import TrainingError

    maf = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), 2, None)
    real = MLPSampler.distillation_loss
    calls = {"n": 0}

    def first_overflows(self, noise, context, target):  # the first step's loss overflows, the rest are real
        calls["n"] += 1
        loss = real(self, noise, context, target)
        return loss * float("inf") if calls["n"] == 1 else loss

    monkeypatch.setattr(MLPSampler, "distillation_loss", first_overflows)
    _, rep = distill_flow(maf, None, DistillConfig(pairs=2000, epochs=1, hidden=8, batch_size=500))
    assert rep["skipped_steps"] == 1 and np.isfinite(rep["validation_mse_history"]).all()
    monkeypatch.setattr(MLPSampler, "distillation_loss", lambda self, n, c, t: real(self, n, c, t) * float("nan"))
    with pytest.raises(TrainingError, match="not finite for 10 steps in a row"):
        distill_flow(maf, None, DistillConfig(pairs=20_000, epochs=1, hidden=8, batch_size=500))
    monkeypatch.setattr(MLPSampler, "distillation_loss", real)
    # a finite but poor student is kept, with a warning naming the target that it does not reproduce
    monkeypatch.setattr(distilled, "_mse", lambda *a: torch.tensor([0.001, 0.5], dtype=torch.float64))
    with pytest.warns(UserWarning, match=r"does not reproduce its teacher.*feature 1 \([\d.]+\)") as caught:
        distill_flow(maf, None, DistillConfig(pairs=2000, epochs=1, hidden=8, batch_size=500))
    assert "feature 0" not in str(caught[0].message)
    monkeypatch.setattr(distilled, "_mse", lambda *a: torch.full((2,), float("nan")))
    with pytest.raises(TrainingError, match="held-out error is not finite after epoch 1"):
        distill_flow(maf, None, DistillConfig(pairs=2000, epochs=1, hidden=8, batch_size=500))
