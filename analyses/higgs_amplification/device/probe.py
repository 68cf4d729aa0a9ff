"""Seconds per training step (batch 1024, 18 features, fused Adam + EMA-like update) of a MADE-MoG of the given size
on device="auto"; prints one number."""

import sys
import time

import torch

from mcsurrogate.amplification import FAMILY_OPTIONS
from mcsurrogate.flows import FlowConfig, build_flow
from mcsurrogate.training import adam_fused_if_available, resolve_device

blocks, hidden, act = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dev = resolve_device("auto")
flow = build_flow(
    FlowConfig(
        **({"model": "made-mog", "blocks": blocks, "hidden": hidden, "activation": act} | FAMILY_OPTIONS["made-mog"])
    ),
    18,
).to(dev)
opt = adam_fused_if_available(torch.optim.Adam, flow.parameters(), lr=1e-4)
ema = [p.detach().clone() for p in flow.parameters()]
x = torch.randn(1024, 18, device=dev)


def step():
    loss = -flow.log_prob(x).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    torch._foreach_lerp_(ema, [p.detach() for p in flow.parameters()], 0.001)
    loss.item()


for _ in range(10):
    step()
if dev.type == "cuda":
    torch.cuda.synchronize()
n = 60 if dev.type == "cuda" else 3
t = time.perf_counter()
for _ in range(n):
    step()
if dev.type == "cuda":
    torch.cuda.synchronize()
print(f"{(time.perf_counter() - t) / n:.5f}")
