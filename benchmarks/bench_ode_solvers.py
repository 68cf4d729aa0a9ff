"""ODE solvers of flow matching (issue 32 item 1): network evaluations, wall time and error of samples and log_prob
for the fixed-step solvers (Euler, midpoint, RK4) at several step counts and the adaptive Dormand–Prince 5(4) at
several tolerances, against RK4 × 64 on the same noise (samples) and the same Hutchinson probes (log_prob).

    python benchmarks/bench_ode_solvers.py [--quick] [--json out.json]

The model: the detector-response preset ``flow-matching`` (velocity MLP 3 residual blocks × 2 × 192, SiLU; six
responses given five conditions) trained on ``--events`` packaged gg→H truth events with one baseline smearing each
(``--epochs``, default the preset's 32). The test events are the next ``--samples`` truth events: sampling draws one
response per event (``Surrogate.sample_array``, seed 1), log_prob evaluates the first ``--log-prob-events`` of their
reference smearing (``Surrogate.log_prob``, Hutchinson's estimate with one probe, seed 0: the preset's trace).

Errors are in the flow's standardised space: samples — mean and maximum over events of the Euclidean distance to
the reference sample (standard deviations of the preprocessed responses); log_prob — mean and maximum absolute
difference to the reference (nats). Network evaluations are counted rows of the velocity network per event; wall
time is the best of ``--repeats`` runs on one torch thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mcsurrogate.flows.flow_matching import (
    AdaptiveSolver,
    FlowMatchingModel,
    LikelihoodSettings,
    OdeSolver,
    Solver,
    VelocityField,
)

REFERENCE = OdeSolver("rk4", 64)


def solvers(quick: bool) -> list[tuple[str, Solver]]:
    """The solver settings measured, with their labels."""
    fixed = [("euler", (8, 16, 32)), ("midpoint", (4, 8, 16)), ("rk4", (2, 4, 8, 16))]
    out: list[tuple[str, Solver]] = [
        (f"{method} × {steps}", OdeSolver(method, steps))  # type: ignore[arg-type]
        for method, counts in fixed
        for steps in (counts[:2] if quick else counts)
    ]
    for tol in (1e-3, 1e-4) if quick else (1e-2, 1e-3, 1e-4, 1e-5):
        out.append((f"dopri5 tol {tol:g}", AdaptiveSolver(rtol=tol, atol=tol)))
    for tol in (1e-3,) if quick else (1e-3, 1e-4):
        out.append((f"dopri5 tol {tol:g}, batch step", AdaptiveSolver(rtol=tol, atol=tol, step_size="batch")))
    return out


class Counter:
    """Counts the rows that pass through a velocity network's ``jvp`` (what ``forward`` calls too)."""

    def __init__(self, velocity: VelocityField) -> None:
        self.rows = 0
        inner = velocity.jvp

        def jvp(x: torch.Tensor, *args: Any) -> Any:
            self.rows += len(x)
            return inner(x, *args)

        velocity.jvp = jvp  # type: ignore[method-assign,assignment]


def timed(fn: Callable[[], np.ndarray], repeats: int, counter: Counter) -> tuple[np.ndarray, float, int]:
    """``fn()``'s result, its best wall time (s) over ``repeats`` runs and the network rows of one run."""
    best, out, rows = float("inf"), np.zeros(0), 0
    for _ in range(repeats):
        counter.rows = 0
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        rows = counter.rows
    return out, best, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="truth events to train on (default 2e4)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    parser.add_argument("--samples", type=int, default=5000, help="test events to sample (default 5000)")
    parser.add_argument("--log-prob-events", type=int, default=2000, help="test events for log_prob (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting, best kept (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3000 events, 2 epochs, fewer settings")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.epochs, args.samples, args.log_prob_events, args.repeats = 3000, 2, 500, 300, 1
    torch.set_num_threads(1)

    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.response.smearing import smear_photons
    from mcsurrogate.response.study import SCENARIOS
    from mcsurrogate.response.surrogate import response_table, train_response

    truth = load_default_truth()[: args.events + args.samples]
    smeared = smear_photons(truth, SCENARIOS["baseline"], seed=args.seed)
    training: dict[str, Any] = {"device": "cpu", "seed": args.seed}
    if args.epochs is not None:
        training["epochs"] = args.epochs
    start = time.perf_counter()
    s = train_response(smeared[: args.events], "flow-matching", training=training, progress=False)
    train_s = time.perf_counter() - start
    test = response_table(smeared[args.events :])
    lp_events = test[: args.log_prob_events]
    model = s.model
    if not isinstance(model, FlowMatchingModel):  # pragma: no cover - the preset builds one
        raise TypeError(f"the flow-matching preset built {type(model).__name__}")
    counter = Counter(model.velocity)
    preset_likelihood = model.likelihood

    def sample() -> np.ndarray:
        return s.flow_from_targets(s.sample_array(conditions=test, seed=1))

    def log_prob() -> np.ndarray:
        return s.log_prob(lp_events)

    def likelihood(solver: Solver) -> LikelihoodSettings:
        return LikelihoodSettings(solver, "hutchinson", probes=1, seed=0)

    with torch.inference_mode():
        model.sampling, model.likelihood = REFERENCE, likelihood(REFERENCE)
        ref_sample, ref_sample_s, ref_sample_rows = timed(sample, 1, counter)
        ref_lp, ref_lp_s, ref_lp_rows = timed(log_prob, 1, counter)
        rows = []
        for label, solver in solvers(args.quick):
            model.sampling, model.likelihood = solver, likelihood(solver)
            x, sample_s, sample_rows = timed(sample, args.repeats, counter)
            lp, lp_s, lp_rows = timed(log_prob, args.repeats, counter)
            dist = np.linalg.norm(x - ref_sample, axis=1)
            dlp = np.abs(lp - ref_lp)
            rows.append(
                {
                    "solver": label,
                    "settings": {"method": solver.method}
                    | (
                        {"steps": solver.steps}
                        if isinstance(solver, OdeSolver)
                        else {"rtol": solver.rtol, "atol": solver.atol, "step_size": solver.step_size}
                    ),
                    "sample_evaluations_per_event": sample_rows / len(test),
                    "sample_seconds": sample_s,
                    "sample_error_mean": float(dist.mean()),
                    "sample_error_max": float(dist.max()),
                    "log_prob_evaluations_per_event": lp_rows / len(lp_events),
                    "log_prob_seconds": lp_s,
                    "log_prob_error_mean_nats": float(dlp.mean()),
                    "log_prob_error_max_nats": float(dlp.max()),
                }
            )
    model.likelihood = preset_likelihood

    print(
        f"flow-matching preset trained on {args.events} events, {s.train_config.epochs} epochs in {train_s:.0f} s; "
        f"{len(test)} sampled, {len(lp_events)} log_prob events; reference RK4 × 64 "
        f"(sampling {ref_sample_s:.2f} s, log_prob {ref_lp_s:.2f} s); one torch thread"
    )
    header = "| solver | passes (sample) | sample s | sample error mean / max | passes (log_prob) | log_prob s | "
    header += "log_prob error mean / max (nats) |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['solver']} | {r['sample_evaluations_per_event']:.1f} | {r['sample_seconds']:.2f} | "
            f"{r['sample_error_mean']:.1e} / {r['sample_error_max']:.1e} | {r['log_prob_evaluations_per_event']:.1f} | "
            f"{r['log_prob_seconds']:.2f} | {r['log_prob_error_mean_nats']:.1e} / {r['log_prob_error_max_nats']:.1e} |"
        )
    if args.json:
        out = {
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
            },
            "sizes": {
                "train_events": args.events,
                "epochs": s.train_config.epochs,
                "sample_events": len(test),
                "log_prob_events": len(lp_events),
                "repeats": args.repeats,
            },
            "train_seconds": train_s,
            "reference": {
                "solver": "rk4 × 64",
                "sample_seconds": ref_sample_s,
                "sample_evaluations_per_event": ref_sample_rows / len(test),
                "log_prob_seconds": ref_lp_s,
                "log_prob_evaluations_per_event": ref_lp_rows / len(lp_events),
            },
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, allow_nan=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
