"""Training and sampling speed of every flow family at paper A's size, against a default nflows MAF built in the same run.

Paper A's size: 6 targets, 5 conditions, 10 blocks, networks of 2 hidden layers × 128. The baseline is
nflows' ``MaskedAffineAutoregressiveTransform`` with its defaults (residual blocks on), 10 blocks with
reverse permutations, in ``nflows.flows.Flow``.

    python benchmarks/bench_flows.py [--json out.json] [--quick] [--device auto]

Then the detector-response presets (``mcsurrogate.response.PRESETS``) at their own sizes, on the same 6 targets and
5 conditions, our MAF at the baseline's layer count (input layer + 4 residual layers: equal model size), and the
distilled sampler (``mcsurrogate.flows.distilled``, default size: sampling only) with SiLU and with ReLU hidden layers,
each in float32 and in bfloat16. Prints events/s and the ratio to the baseline; all timings from one process, same
data, same threads. Training steps use torch's default Adam for the baseline and the optimiser ``train_flow`` uses
(fused where available) for ours.

Achieved FLOP/s as a fraction of a plain matmul measured in the same run: for sampling, FLOPs per sampled event
(``torch.utils.flop_counter``) × events/s against the matmul of the sampler's arithmetic (the speed issue's target:
≥ 50 %); for training, forward + backward FLOPs per event × events/s against the float32 matmul, and how much faster
a model with the baseline's training FLOPs would train at the full matmul rate: the ceiling of any speed-up at equal
model size and batch size.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.transforms import CompositeTransform, MaskedAffineAutoregressiveTransform, ReversePermutation
from torch.utils.flop_counter import FlopCounterMode

from mcsurrogate.flows import FLOW_FAMILIES, FlowConfig, build_flow
from mcsurrogate.flows.distilled import PRECISIONS, DistillConfig, DistilledFlow, MLPSampler
from mcsurrogate.response import PRESETS, response_surrogate
from mcsurrogate.training import adam_fused_if_available, resolve_device

D, C, BLOCKS, HIDDEN = 6, 5, 10, 128


def nflows_default_maf() -> Flow:
    layers = []
    for _ in range(BLOCKS):
        layers += [MaskedAffineAutoregressiveTransform(D, HIDDEN, context_features=C), ReversePermutation(D)]
    return Flow(CompositeTransform(layers), StandardNormal([D]))


def time_training(loss, params, device, batch: int, seconds: float, ours: bool = False) -> float:
    """Events/s of Adam steps on one batch of the per-event ``loss(x, c)`` (a flow's −log p, flow matching's
    regression): torch's default Adam for the nflows baseline (what its users get), the optimiser
    :func:`mcsurrogate.training.train_flow` uses (fused where torch has the kernel) for ours."""
    opt = adam_fused_if_available(torch.optim.Adam, params, lr=1e-4) if ours else torch.optim.Adam(params, lr=1e-4)
    x, c = torch.randn(batch, D, device=device), torch.randn(batch, C, device=device)

    def step() -> None:
        value = loss(x, c).mean()
        opt.zero_grad()
        value.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


@torch.inference_mode()
def time_sampling(sample, device, batch: int, seconds: float) -> float:
    c = torch.randn(batch, C, device=device)
    sample(c)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sample(c)
        n += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def matmul_flops(
    device: torch.device, seconds: float, n: int = 20_000, k: int = 128, dtype: torch.dtype = torch.float32
) -> float:
    """FLOP/s of a (n × k) @ (k × k) matmul in ``dtype``, the shape of a flow layer on a batch of n events."""
    a, b = torch.randn(n, k, device=device, dtype=dtype), torch.randn(k, k, device=device, dtype=dtype)
    a @ b  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2.0 * n * k * k * reps / (time.perf_counter() - t0)


@torch.inference_mode()
def flops_per_event(sample, device: torch.device, batch: int = 1024) -> float:
    """FLOPs of one sampled event, counted by torch's FLOP counter on a batch."""
    c = torch.randn(batch, C, device=device)
    with FlopCounterMode(display=False) as counter:
        sample(c)
    return counter.get_total_flops() / batch


def train_flops_per_event(loss, device: torch.device, batch: int) -> float:
    """FLOPs of one training event (forward and backward of the per-event training ``loss(x, c)``; Adam's few per
    parameter left out), counted by torch's FLOP counter on a batch."""
    x, c = torch.randn(batch, D, device=device), torch.randn(batch, C, device=device)
    with FlopCounterMode(display=False) as counter:
        loss(x, c).mean().backward()
    return counter.get_total_flops() / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--families", default=",".join(FLOW_FAMILIES))
    ap.add_argument("--presets", default=",".join(PRESETS), help="response presets to time ('' for none)")
    ap.add_argument(
        "--no-distilled", dest="distilled", action="store_false", help="skip the distilled sampler (default size)"
    )
    args = ap.parse_args()
    device = resolve_device(args.device)
    seconds = 1.0 if args.quick else 4.0
    train_batch, sample_batch = 512, (20_000 if device.type == "cpu" else 200_000)
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}

    torch.manual_seed(0)
    base = nflows_default_maf().to(device)

    def base_loss(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return -base.log_prob(x, c)

    base_train = time_training(base_loss, base.parameters(), device, train_batch, seconds)
    base.eval()
    base_sample = time_sampling(lambda c: base.sample(1, context=c), device, sample_batch, seconds)
    n_par = sum(p.numel() for p in base.parameters())
    peak = matmul_flops(device, seconds)
    base_flops = flops_per_event(lambda c: base.sample(1, context=c), device)
    base_train_flops = train_flops_per_event(base_loss, device, train_batch)
    results["nflows-default-maf"] = {
        "train_events_per_s": base_train,
        "train_flops_per_event": base_train_flops,
        "train_flops_fraction_of_matmul": base_train_flops * base_train / peak,
        "sample_events_per_s": base_sample,
        "parameters": n_par,
        "sample_flops_per_event": base_flops,
        "sample_flops_fraction_of_matmul": base_flops * base_sample / peak,
    }
    peak_bf16 = matmul_flops(device, seconds, dtype=torch.bfloat16)
    results["matmul_flops_per_s"] = {"value": peak, "bfloat16": peak_bf16}
    print(f"float32 matmul (20000×128 @ 128×128): {peak / 1e9:.1f} GFLOP/s; bfloat16 {peak_bf16 / 1e9:.1f} GFLOP/s")
    # the most any model of the baseline's training FLOPs could gain per event at this batch size: running at the
    # float32 matmul rate, every FLOP a matmul of the benchmark's shape
    ceiling = peak / base_train_flops / base_train
    results["nflows-default-maf"]["train_ratio_at_matmul_rate"] = ceiling
    print(
        f"nflows MAF training: {base_train_flops / 1e3:.0f} kFLOP per event (forward + backward), "
        f"{100 * base_train_flops * base_train / peak:.0f} % of the float32 matmul rate; an equal-FLOP model at the "
        f"full matmul rate would train {ceiling:.2f}× faster"
    )
    head = f"{'model':<26}{'params':>10}{'train ev/s':>14}{'× base':>8}{'% matmul':>10}{'sample ev/s':>14}{'× base':>8}"
    print(head + f"{'kFLOP/ev':>10}{'% matmul':>10}")
    print(
        f"{'nflows-default-maf':<26}{n_par:>10}{base_train:>14.3g}{1:>8.2f}"
        f"{100 * base_train_flops * base_train / peak:>10.1f}{base_sample:>14.3g}{1:>8.2f}"
        f"{base_flops / 1e3:>10.0f}{100 * base_flops * base_sample / peak:>10.1f}"
    )

    configs: dict[str, FlowConfig | DistillConfig] = {
        name: FlowConfig(model=name, blocks=BLOCKS, hidden=HIDDEN, layers=2) for name in args.families.split(",")
    }
    if "maf" in configs:  # the baseline's layer count: an input layer and two residual blocks of two layers
        configs["maf residual 5 layers"] = FlowConfig(
            model="maf", blocks=BLOCKS, hidden=HIDDEN, layers=5, residual=True
        )
    if args.presets:
        configs |= {f"preset {p}": response_surrogate(p).flow_config for p in args.presets.split(",")}
    if args.distilled:
        # the student's speed does not depend on the teacher it was fitted to: a one-block teacher stands in
        dc = DistillConfig()
        for activation in ("silu", "relu"):
            for precision in PRECISIONS:
                name = f"distilled {dc.hidden}x{dc.layers} {activation}{' bf16' if precision == 'bfloat16' else ''}"
                configs[name] = DistillConfig(activation=activation, precision=precision)
    for name, cfg in configs.items():
        torch.manual_seed(0)
        if isinstance(cfg, DistillConfig):
            teacher = build_flow(FlowConfig(model="maf", blocks=1, hidden=8), D, C)
            sampler = MLPSampler(D, C, cfg.hidden, cfg.layers, cfg.activation)
            flow = DistilledFlow(teacher, sampler, cfg.precision).to(device)
            tr = tr_flops = float("nan")  # distilled from a trained flow, not trained on data
        else:
            flow = build_flow(cfg, D, C).to(device)
            # what Surrogate.fit minimises: −log p, or flow matching's velocity regression
            gen = torch.Generator(device=device).manual_seed(0)
            loss = lambda x, c, flow=flow, gen=gen: flow.training_loss(x, c, gen)
            tr = time_training(loss, flow.parameters(), device, train_batch, seconds, ours=True)
            tr_flops = train_flops_per_event(loss, device, train_batch)
        flow.eval()
        sa = time_sampling(
            lambda c, flow=flow: flow.sample_from_noise(flow.draw_noise(len(c), rng).to(device), c),
            device,
            sample_batch,
            seconds,
        )
        sampling_part = flow.sampler if isinstance(flow, DistilledFlow) else flow
        n_par = sum(p.numel() for p in sampling_part.parameters())
        # counted on the float32 module: the same matmuls (torch's counter does not see the oneDNN calls that run
        # a bfloat16 student)
        counted = DistilledFlow(flow.teacher, flow.sampler) if isinstance(flow, DistilledFlow) else flow
        fpe = flops_per_event(
            lambda c, flow=counted: flow.sample_from_noise(flow.draw_noise(len(c), rng).to(device), c), device
        )
        # the FLOP fraction against the matmul of the arithmetic the sampler runs in
        ref = peak_bf16 if isinstance(cfg, DistillConfig) and cfg.precision == "bfloat16" else peak
        results[name] = {
            ("distilled_sampler" if isinstance(cfg, DistillConfig) else "flow"): cfg.to_dict(),
            "train_events_per_s": tr,
            "train_flops_per_event": tr_flops,
            "train_flops_fraction_of_matmul": tr_flops * tr / peak,
            "sample_events_per_s": sa,
            "parameters": n_par,
            "train_ratio": tr / base_train,
            "sample_ratio": sa / base_sample,
            "sample_flops_per_event": fpe,
            "sample_flops_fraction_of_matmul": fpe * sa / ref,
        }
        print(
            f"{name:<26}{n_par:>10}{tr:>14.3g}{tr / base_train:>8.2f}{100 * tr_flops * tr / peak:>10.1f}"
            f"{sa:>14.3g}{sa / base_sample:>8.2f}"
            f"{fpe / 1e3:>10.0f}{100 * fpe * sa / ref:>10.1f}"
        )

    meta = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "size": {"targets": D, "conditions": C, "blocks": BLOCKS, "hidden": HIDDEN, "layers": 2},
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
