"""Training on signed event weights: as they are, or cell-resampled first? A known-answer benchmark (issue 29).

    nice -n 10 python benchmarks/bench_weighted_training.py [--events 20000] [--seeds 0 1 2] [--epochs 20] [--json PATH]

Target: p(x) = (1 + a) N(x; 0, I) − a N(x; μ, 0.5² I) in 2-D with a = 0.2, μ = (0.5, 0): a positive density with a
dip (p / N(0, I) falls to 0.26 at x = 4μ/3). The weighted sample is drawn as a subtraction-style NLO generator makes
one: each event from one component, the first with probability (1 + a)/(1 + 2a) and weight +1, the second with
weight −1 (14 % negative events, Kish efficiency (1 − 2 · 0.143)² = 0.51). Exact samples of p: rejection sampling
from N(0, I).

Compared, per seed, with the same flow and training: a flow trained on the signed weights as they are
(``negative_weights="signed"``), one trained on cell-resampled weights (``"cell-resampling"``), and the bar: one
trained on an exact, unweighted sample of the signed sample's Kish effective size. Figures: the C2ST AUC against
exact samples and KL(p‖q) = E_p[log p − log q] on exact samples (p is known: a sharper figure than the C2ST).

Also, on the first seed's trained signed flow, the bias of the mean over an epoch's batches of the two ways to
normalise a batch's weighted NLL, against the gradient of the full-sample weighted NLL: dividing by the split's
mean weight (what mcsurrogate does: the epoch mean is the full gradient) or by each batch's own sum of weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import awkward as ak
import numpy as np
import torch
from scipy.stats import multivariate_normal

from mcsurrogate import Surrogate
from mcsurrogate.event_weights import WeightSummary
from mcsurrogate.validation import c2st

A, MU, SIGMA2 = 0.2, np.array([0.5, 0.0]), 0.5


def log_target(x: np.ndarray) -> np.ndarray:
    """log p(x) of the known-answer target (normalised)."""
    q1 = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x)
    q2 = multivariate_normal(MU, SIGMA2**2 * np.eye(2)).logpdf(x)
    return q1 + np.log((1 + A) - A * np.exp(q2 - q1))


def signed_sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` events of the two components with weights ±1 (a signed-weight sample of p)."""
    second = rng.random(n) < A / (1 + 2 * A)
    x = rng.normal(size=(n, 2))
    x[second] = MU + SIGMA2 * x[second]
    return x, np.where(second, -1.0, 1.0)


def exact_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` exact draws of p: N(0, I) proposals accepted with probability p / ((1 + a) N(0, I))."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        x = rng.normal(size=(2 * n, 2))
        ratio = np.exp(log_target(x) - multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x)) / (1 + A)
        out.append(x[rng.random(len(x)) < ratio])
    return np.concatenate(out)[:n]


def records(x: np.ndarray, w: np.ndarray | None = None) -> ak.Array:
    fields = {"x1": x[:, 0], "x2": x[:, 1]}
    return ak.zip(fields | ({} if w is None else {"w": w}))


def train(events: ak.Array, weighted: bool, mode: str, args: argparse.Namespace, seed: int) -> tuple[Surrogate, float]:
    model = Surrogate(
        ["x1", "x2"],
        flow={"model": args.flow, "blocks": args.blocks, "hidden": args.hidden},
        training={
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": 2e-3,
            "lr_final": 1e-5,
            "patience": None,
            "device": "cpu",
            "seed": seed,
        },
    )
    t0 = time.perf_counter()
    model.fit(events, weights="w" if weighted else None, negative_weights=mode, progress=False)
    return model, time.perf_counter() - t0


def judge(model: Surrogate, exact: np.ndarray, exact_kl: np.ndarray, seed: int, n_c2st: int) -> dict[str, Any]:
    gen = model.sample_array(n_c2st, seed=seed + 100)
    res = c2st(exact[:n_c2st], gen, n_repeats=3, n_permutations=50, n_bootstrap=0, seed=seed)
    kl = float(np.mean(log_target(exact_kl) - model.log_prob(records(exact_kl))))
    return {"c2st_auc": res.auc, "c2st_auc_ci": list(res.auc_ci), "kl": kl}


def gradient_bias(model: Surrogate, x: np.ndarray, w: np.ndarray, batch: int, epochs: int = 2) -> dict[str, float]:
    """Relative bias |mean over an epoch's batches of the batch gradient − full gradient| / |full gradient| of the
    weighted NLL, for the batch loss divided by the sample's mean weight and by the batch's own sum of weights
    (mean over ``epochs`` random partitions of the sample into batches)."""
    flow = model.model
    assert flow is not None
    steps = len(x) // batch
    y = torch.as_tensor(model.preprocessor.forward(x[: steps * batch]), dtype=torch.float32)
    wt = torch.as_tensor(w[: steps * batch], dtype=torch.float32)
    params = [p for p in flow.parameters() if p.requires_grad]

    def grad(loss: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])

    flow.train()
    full = grad(-(wt * flow.log_prob(y)).sum() / wt.sum())
    out = {"global_mean_weight": 0.0, "batch_sum_of_weights": 0.0}
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        sums = {k: torch.zeros_like(full) for k in out}
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            lp = flow.log_prob(y[idx])
            sums["global_mean_weight"] += grad(-(wt[idx] / wt.mean() * lp).mean())
            sums["batch_sum_of_weights"] += grad(-(wt[idx] * lp).sum() / wt[idx].sum())
        for k in out:
            out[k] += float(torch.linalg.norm(sums[k] / steps - full) / torch.linalg.norm(full)) / epochs
    flow.eval()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events of the signed-weight sample")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--flow", default="rqs-ar")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--c2st-events", type=int, default=10_000, help="events per class of the C2ST")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows: list[dict[str, Any]] = []
    bias: dict[str, Any] = {}
    for seed in args.seeds:
        rng = np.random.default_rng([seed, 29])
        x, w = signed_sample(args.events, rng)
        exact = exact_sample(args.c2st_events + 100_000, rng)
        exact_c2st, exact_kl = exact[: args.c2st_events], exact[args.c2st_events :]
        n_eff = round(WeightSummary.of("w", w, len(w)).kish_effective_size)
        variants = {
            "signed": (records(x, w), True, "signed"),
            "cell-resampling": (records(x, w), True, "cell-resampling"),
            f"exact, unweighted, n = Kish size ({n_eff})": (records(exact_sample(n_eff, rng)), False, "signed"),
        }
        for name, (events, weighted, mode) in variants.items():
            model, seconds = train(events, weighted, mode, args, seed)
            row = {"seed": seed, "variant": name, "train_seconds": seconds} | judge(
                model, exact_c2st, exact_kl, seed, args.c2st_events
            )
            row["kish_effective_size_train"] = model.metrics["weights"]["kish_effective_size"]
            rows.append(row)
            print(
                f"seed {seed}  {name:<40} C2ST AUC {row['c2st_auc']:.4f}  KL {row['kl']:.5f}  "
                f"(Kish size of the training split {row['kish_effective_size_train']:.0f}, {seconds:.0f} s)",
                flush=True,
            )
            if seed == args.seeds[0] and name == "signed":
                for b in (64, 500):
                    bias[str(b)] = gradient_bias(model, x, w, b)
    summary = {}
    for name in dict.fromkeys(r["variant"].split(",")[0] for r in rows):
        sel = [r for r in rows if r["variant"].split(",")[0] == name]
        summary[name] = {
            k: {"mean": float(np.mean([r[k] for r in sel])), "sd": float(np.std([r[k] for r in sel], ddof=1))}
            if len(sel) > 1
            else {"mean": float(sel[0][k]), "sd": None}
            for k in ("c2st_auc", "kl")
        }
    print("\nmean over seeds (SD):")
    for name, s in summary.items():
        sd = lambda v: f" ± {v:.4f}" if v is not None else ""
        print(
            f"  {name:<16} C2ST AUC {s['c2st_auc']['mean']:.4f}{sd(s['c2st_auc']['sd'])}   KL {s['kl']['mean']:.5f}{sd(s['kl']['sd'])}"
        )
    print("\nrelative bias of the epoch-mean batch gradient (first seed's signed flow):")
    for b, r in bias.items():
        print(
            f"  batch {b:>5}: divided by the mean weight {r['global_mean_weight']:.2e}, by the batch's Σw {r['batch_sum_of_weights']:.2e}"
        )
    better = min(("signed", "cell-resampling"), key=lambda k: summary[k]["kl"]["mean"])
    print(f"\nbetter on KL: {better}")
    if args.json:
        report = {
            "config": vars(args),
            "target": {"a": A, "mu": MU.tolist(), "sigma": SIGMA2},
            "rows": rows,
            "summary": summary,
            "gradient_bias": bias,
            "better": better,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, allow_nan=False)


if __name__ == "__main__":
    main()
