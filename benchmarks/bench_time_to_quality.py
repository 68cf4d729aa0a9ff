"""Time to quality (issue 32): training wall time until a model passes a validation bar, for nflows' default MAF
recipe, the project's best nflows family and flow matching, in one run on this machine.

    python benchmarks/bench_time_to_quality.py [--quick] [--task response,higgs] [--json out.json]

Tasks and bars:

* ``response`` — paper A's detector response (baseline smearing of the packaged gg→H truth): the χ²/bin of the
  width ratios ≤ 1.3 and the m_γγ mean within 0.05 GeV, measured as ``mcsurrogate.response.study`` does (test split
  the surrogate never saw, ``--oversample`` smearings per truth event on both sides). Models: ``maf`` (the
  ``paper-a`` preset: MAF 10 × 128, power-law decay over 500 epochs, Wasserstein selection), ``affine-spline`` (the
  analysis default: 2 affine + 3 spline autoregressive blocks, weight averaging) and ``flow-matching`` (the
  ``flow-matching`` preset: a velocity MLP of 3 residual blocks × 2 × 192, SiLU, 32 epochs at lr 3e-3 decaying
  linearly, weight averaging).
* ``higgs`` — the HIGGS-like benchmark's 18 continuous features (t t̄, cached Pythia samples): held-out C2ST AUC
  ≤ 0.55 with ``--higgs-events`` held-out MC events against as many generated ones. Models: ``maf`` 10 × 128 (paper
  B's grid), ``made-mog`` 10 × 128 residual, 10 components (the best nflows family on this task) and
  ``flow-matching`` 4 × 256 SiLU, each with Gauss-rank preprocessing, batch 1024, the amplification study's
  training settings (flow matching: its own recipe, ``amplification.FAMILY_TRAINING``).

Each model trains with its full recipe and ``Surrogate.fit`` checkpoints; every ``--check-every`` epochs the run is
paused (after the epoch's checkpoint), the best weights so far are evaluated, and training resumes from the
checkpoint (the same weights as an uninterrupted run). The time to quality is the sum of the epochs' own seconds
(training and the per-epoch validation, as ``TrainResult.history`` records them) up to the first check that passes;
evaluations are timed apart. A model that does not pass within ``--budget`` seconds of training gets ``null`` and
its ratio is a bound. torch uses one thread (the machine has 2 shared cores).

``--frontier`` (HIGGS task, issue 32's quality frontier): each model trains with :data:`FRONTIER_MODELS` and
:data:`FRONTIER_TRAINING` past the bar until ``--budget`` seconds of the process's CPU time of training (one thread;
evaluations excluded, so two models may run side by side on the two cores without shortening each other's budget),
and the lowest C2ST AUC within the budget is its frontier point.

    python benchmarks/bench_time_to_quality.py --task higgs --frontier --higgs-models made-mog --check-every 10
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from mcsurrogate import Surrogate
from mcsurrogate.errors import TrainingError
from mcsurrogate.persistence import load_tensors
from mcsurrogate.training import split_indices

RESPONSE_MODELS: dict[str, dict[str, Any]] = {
    "maf": {"preset": "paper-a"},
    "affine-spline": {"preset": "affine-spline"},
    "flow-matching": {"preset": "flow-matching"},
    #: the preset with its epoch selected by the validation W1 instead of the NLL (measured: it froze at epoch <= 12)
    "flow-matching-w1": {"preset": "flow-matching", "training": {"selection": "wasserstein"}},
}
HIGGS_MODELS: dict[str, dict[str, Any]] = {
    "maf": {"model": "maf", "blocks": 10, "hidden": 128},
    "made-mog": {"model": "made-mog", "blocks": 10, "hidden": 128, "residual": True, "components": 10},
    "flow-matching": {"model": "flow-matching", "blocks": 4, "hidden": 256, "activation": "silu"},
}
#: a variant of the HIGGS task's flow matching (``--higgs-models flow-matching-w1``): its recipe with the epoch
#: selected by the validation W1 instead of the last epoch's averaged weights
HIGGS_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "flow-matching-w1": ("flow-matching", {"selection": "wasserstein"})
}
#: the quality frontier (``--frontier``): how low each family's C2ST gets within ``--budget`` CPU seconds of training
#: (one torch thread): MADE-MoG twice as deep and wide (paper B's 30 × 512 reached 0.513 on a GPU), flow matching at
#: its size with 2.5 times its recipe's epochs (it was still improving at its recipe's end; 100 epochs take about
#: half an hour), the MAF with weight averaging and more patience; all with the amplification study's settings
#: otherwise
FRONTIER_MODELS: dict[str, dict[str, Any]] = HIGGS_MODELS | {
    "made-mog": HIGGS_MODELS["made-mog"] | {"blocks": 20, "hidden": 256},
}
FRONTIER_TRAINING: dict[str, dict[str, Any]] = {
    "maf": {"epochs": 300, "patience": 30, "ema_decay": 0.999},
    "made-mog": {"epochs": 150, "patience": 25, "ema_decay": 0.999},
    "flow-matching": {"epochs": 100},
}


class _Pause(Exception):
    """Raised from the training log after every k-th epoch: the checkpoint of that epoch is written already."""


class _PauseEvery(logging.Handler):
    def __init__(self, every: int) -> None:
        super().__init__(logging.INFO)
        self.every = every
        self.epochs = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("epoch "):
            self.epochs += 1
            if self.epochs % self.every == 0:
                raise _Pause


@dataclass
class Check:
    epoch: int
    train_seconds: float
    quality: dict[str, float]
    passes: bool
    eval_seconds: float
    #: the process's CPU time of training up to this check (evaluations excluded)
    train_cpu_seconds: float = 0.0


@dataclass
class ModelRun:
    name: str
    config: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    seconds_to_quality: float | None = None
    epochs_to_quality: int | None = None
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0
    epochs: int = 0
    finished: bool = False
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_until(
    name: str,
    make: Callable[[], Surrogate],
    events: ak.Array,
    evaluate: Callable[[Surrogate], tuple[dict[str, float], bool]],
    *,
    every: int,
    budget: float,
    fit_kwargs: dict[str, Any] | None = None,
    until_budget: bool = False,
) -> ModelRun:
    """Train ``make()``'s surrogate on ``events`` in chunks of ``every`` epochs; evaluate the best weights so far after
    each chunk; stop at the first pass, at the end of the recipe or past ``budget`` seconds of training.
    ``until_budget`` (the quality frontier): go on after a pass, and count the budget in the process's CPU seconds
    of training (evaluations excluded), which other processes on the machine do not shorten."""
    cpu_start, eval_cpu = time.process_time(), 0.0
    model = make()
    run = ModelRun(name, {"flow": model.flow_config.to_dict(), "training": model.train_config.to_dict()})
    logger = logging.getLogger("mcsurrogate.training")
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as ckpt:
        while True:
            pause = _PauseEvery(every)
            logger.addHandler(pause)
            try:
                model.fit(events, checkpoint_dir=ckpt, resume=True, progress=False, **(fit_kwargs or {}))
                run.finished = True
            except TrainingError as exc:  # a recipe that diverges is a result, not the end of the benchmark
                run.failure = str(exc)
                print(f"  {name}: training failed: {exc}", flush=True)
                return run
            except _Pause:
                tensors, meta = load_tensors(Path(ckpt) / "best.safetensors")
                model.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items()})  # type: ignore[union-attr]
                model.model.eval()  # type: ignore[union-attr]
            finally:
                logger.removeHandler(pause)
            _, meta = load_tensors(Path(ckpt) / "last.safetensors")
            history = meta["result"]["history"]
            if run.checks and len(history) == run.epochs:  # the recipe ended right after the last check
                return run
            run.epochs = len(history)
            run.train_seconds = float(sum(h["seconds"] for h in history))
            run.train_cpu_seconds = time.process_time() - cpu_start - eval_cpu
            t0, c0 = time.perf_counter(), time.process_time()
            quality, passes = evaluate(model)
            eval_cpu += time.process_time() - c0
            check = Check(
                run.epochs, run.train_seconds, quality, passes, time.perf_counter() - t0, run.train_cpu_seconds
            )
            run.checks.append(check)
            print(
                f"  {name}: epoch {check.epoch}, {check.train_seconds:.0f} s of training "
                f"({check.train_cpu_seconds:.0f} CPU s): "
                + ", ".join(f"{k} {v:.4g}" for k, v in quality.items())
                + (" PASSES" if passes else ""),
                flush=True,
            )
            if passes and run.seconds_to_quality is None:
                run.seconds_to_quality, run.epochs_to_quality = run.train_seconds, run.epochs
                if not until_budget:
                    return run
            if run.finished or (run.train_cpu_seconds if until_budget else run.train_seconds) > budget:
                return run
            model = make()  # a fresh object resumes from the checkpoint (same run id: same config and data)


# -- task (a): detector response ------------------------------------------------------------------------------
def response_task(args: argparse.Namespace) -> dict[str, Any]:
    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.response.evaluation import evaluate_response
    from mcsurrogate.response.smearing import smear_photons
    from mcsurrogate.response.study import SCENARIOS
    from mcsurrogate.response.surrogate import (
        DEFAULT_LAYOUT,
        apply_response,
        response_surrogate,
        response_table,
    )

    layout, config, seed = DEFAULT_LAYOUT, SCENARIOS["baseline"], args.seed
    truth = load_default_truth()
    if args.response_events:
        truth = truth[: args.response_events]
    smeared = smear_photons(truth, config, seed=seed)
    split = split_indices(len(smeared), (0.8, 0.1, 0.1), seed)

    def truth_of(part: ak.Array) -> ak.Array:
        return ak.zip(
            {layout.collection: part[layout.truth_collection], layout.pileup: part[layout.pileup]}, depth_limit=1
        )

    fields = [layout.collection, layout.truth_collection, layout.pileup]

    def passes(part: ak.Array, n: int, base: int) -> ak.Array:
        first = ak.zip({f: part[f] for f in fields}, depth_limit=1)
        more = [smear_photons(truth_of(first), config, seed=base + j) for j in range(1, n)]
        return ak.concatenate([first, *(ak.zip({f: m[f] for f in fields}, depth_limit=1) for m in more)])

    train_events = response_table(passes(smeared[split.train], args.train_smearings, seed + 2000), layout)
    val_events = response_table(passes(smeared[split.validation], args.train_smearings, seed + 3000), layout)
    reference = passes(smeared[split.test], args.oversample, seed + 1000)
    test_truth = truth_of(reference[: len(split.test)])
    test_truth = test_truth[np.tile(np.arange(len(test_truth)), args.oversample)]

    def evaluate(model: Surrogate) -> tuple[dict[str, float], bool]:
        generated = apply_response(model, test_truth, layout=layout, seed=seed + 1)
        ev = evaluate_response(reference, generated, layout=layout, n_boot=args.n_boot, seed=seed).to_dict()
        chi2 = float(ev["width_ratio_consistency"]["chi2_per_bin"])
        dm = float(ev["mass_mean_difference_gev"])
        return {"chi2_per_bin": chi2, "mass_mean_difference_gev": dm}, chi2 <= 1.3 and abs(dm) < 0.05

    runs = {}
    for name in args.models:
        spec = RESPONSE_MODELS[name]
        training = {"seed": seed, "device": "cpu"} | spec.get("training", {})
        if args.quick:
            training["epochs"] = max(2, args.check_every * 2)

        def make(spec: dict[str, Any] = spec, training: dict[str, Any] = training) -> Surrogate:
            return response_surrogate(spec["preset"], layout=layout, flow=spec.get("flow"), training=training)

        print(f"[response] {name}", flush=True)
        runs[name] = train_until(
            name,
            make,
            train_events,
            evaluate,
            every=args.check_every,
            budget=args.budget,
            fit_kwargs={"validation": val_events},
        )
    return {
        "bar": "chi2/bin of the width ratios <= 1.3 and |m_gg mean difference| < 0.05 GeV",
        "n_truth_events": len(truth),
        "train_smearings": args.train_smearings,
        "oversample": args.oversample,
        "n_train": len(train_events),
        "n_validation": len(val_events),
        "n_test_truth": len(split.test),
        "runs": {k: v.to_dict() for k, v in runs.items()},
    }


# -- task (b): HIGGS-like benchmark ---------------------------------------------------------------------------
def higgs_task(args: argparse.Namespace) -> dict[str, Any]:
    from mcsurrogate.amplification import CONTINUOUS_FEATURES, FAMILY_TRAINING, feature_matrix
    from mcsurrogate.validation.c2st import c2st, minimum_permutations
    from mcsurrogate.workflows.sample_cache import cached_sample

    n_held = args.higgs_events
    n_total = n_held + args.higgs_train
    events, info = cached_sample("ttbar", n_total, args.higgs_seed, Path(args.higgs_cache), args.workers)
    features = list(CONTINUOUS_FEATURES)
    held_out = feature_matrix(events[:n_held], features)
    train = events[n_held:n_total]

    def evaluate(model: Surrogate) -> tuple[dict[str, float], bool]:
        generated = model.sample_array(n_held, seed=args.seed + 1)
        result = c2st(
            held_out,
            generated,
            n_permutations=minimum_permutations(0.05),
            n_repeats=1,
            n_bootstrap=2,
            seed=args.seed,
        )
        return {"c2st_auc": float(result.auc)}, result.auc <= 0.55

    runs = {}
    models = FRONTIER_MODELS if args.frontier else HIGGS_MODELS
    for name in args.models:
        family, variant = HIGGS_VARIANTS.get(name, (name, {}))
        flow = models[family] | ({"blocks": 2, "hidden": 32} if args.quick else {})
        shared = {"batch_size": 1024, "epochs": 100, "patience": 15, "seed": args.seed, "device": "cpu"}
        training = shared | FAMILY_TRAINING.get(family, {})
        if args.frontier:
            training |= FRONTIER_TRAINING[family]
        training |= variant
        if args.quick:
            training["epochs"] = max(2, args.check_every * 2)

        def make(flow: dict[str, Any] = flow, training: dict[str, Any] = training) -> Surrogate:
            return Surrogate(features, flow=flow, preprocessing="gauss-rank", training=training)

        print(f"[higgs] {name}", flush=True)
        runs[name] = train_until(
            name, make, train, evaluate, every=args.check_every, budget=args.budget, until_budget=args.frontier
        )
    out = {
        "bar": "held-out C2ST AUC <= 0.55 (hgb classifier, 18 continuous features)",
        "samples": str(info.file),
        "n_held_out_per_class": n_held,
        "n_training_events": args.higgs_train,
        "runs": {k: v.to_dict() for k, v in runs.items()},
    }
    if args.frontier:
        out["frontier"] = {k: frontier(v, args.budget) for k, v in runs.items()}
        print("[higgs] frontier:", out["frontier"], flush=True)
    return out


def frontier(run: ModelRun, budget: float) -> dict[str, Any] | None:
    """The lowest C2ST AUC among ``run``'s checks within ``budget`` CPU seconds of training, with its epoch and
    times (``None`` when no check fell within the budget)."""
    within = [c for c in run.checks if c.train_cpu_seconds <= budget]
    if not within:
        return None
    best = min(within, key=lambda c: c.quality["c2st_auc"])
    return {
        "c2st_auc": best.quality["c2st_auc"],
        "epoch": best.epoch,
        "train_seconds": best.train_seconds,
        "train_cpu_seconds": best.train_cpu_seconds,
    }


def ratios(task: dict[str, Any], baseline: str = "maf") -> dict[str, Any]:
    """Time to quality of the baseline over each model's (> 1: faster than the baseline); a bound when one of them
    did not pass (``">= x"`` or ``"<= x"``), ``None`` when neither did."""
    runs = task["runs"]
    base = runs.get(baseline)
    out: dict[str, Any] = {}
    for name, run in runs.items():
        if name == baseline or base is None:
            continue
        b, m = base["seconds_to_quality"], run["seconds_to_quality"]
        if base["failure"] is not None or run["failure"] is not None:
            out[name] = "no ratio: " + " and ".join(
                f"{n} failed to train" for n, r in ((baseline, base), (name, run)) if r["failure"] is not None
            )
        elif b is not None and m is not None:
            out[name] = b / m
        elif m is not None:  # the baseline did not pass within its training time
            out[name] = f">= {base['train_seconds'] / m:.3g}"
        elif b is not None:
            out[name] = f"<= {b / run['train_seconds']:.3g}"
        else:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="response,higgs", help="comma-separated: response, higgs")
    ap.add_argument(
        "--models",
        default="maf,affine-spline,flow-matching",
        help="response models (higgs: maf,made-mog,flow-matching)",
    )
    ap.add_argument("--higgs-models", default="maf,made-mog,flow-matching")
    ap.add_argument("--quick", action="store_true", help="a smoke run: small samples and models, 2 checks each")
    ap.add_argument("--check-every", type=int, default=2, help="epochs between quality checks")
    ap.add_argument("--budget", type=float, default=3600.0, help="seconds of training per model at most")
    ap.add_argument(
        "--frontier",
        action="store_true",
        help="HIGGS task: the quality frontier, the lowest C2ST AUC within --budget CPU seconds of training per model "
        "(FRONTIER_MODELS and FRONTIER_TRAINING; training goes on after the bar is passed)",
    )
    ap.add_argument("--response-events", type=int, help="first N truth events (default: all)")
    ap.add_argument("--train-smearings", type=int, default=1)
    ap.add_argument("--oversample", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=20)
    ap.add_argument("--higgs-events", type=int, default=100_000, help="held-out MC (and generated) events per class")
    ap.add_argument("--higgs-train", type=int, default=160_000, help="training (and validation) events")
    ap.add_argument("--higgs-cache", default="cache/higgs_benchmark")
    ap.add_argument("--higgs-seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="Pythia processes if the samples must be generated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.response_events = args.response_events or 20_000
        args.higgs_events, args.higgs_train = min(args.higgs_events, 2_000), min(args.higgs_train, 4_000)
        args.check_every, args.n_boot, args.oversample = 1, 5, min(args.oversample, 2)
    out: dict[str, Any] = {
        "quick": args.quick,
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "check_every": args.check_every,
        "budget_seconds": args.budget,
        "frontier": args.frontier,
    }
    if args.frontier and "response" in args.task.split(","):
        print("error: --frontier is a HIGGS-task measurement; use --task higgs", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    for task in args.task.split(","):
        if task == "response":
            args.models = args.models.split(",") if isinstance(args.models, str) else args.models
            out["response"] = response_task(args)
        elif task == "higgs":
            response_models = args.models
            args.models = args.higgs_models.split(",")
            out["higgs"] = higgs_task(args)
            args.models = response_models
        else:
            print(f"error: unknown task {task!r}; choose response, higgs", file=sys.stderr)
            return 2
        out[task]["ratios_vs_maf"] = ratios(out[task])
        print(f"[{task}] time to quality (s):", {k: v["seconds_to_quality"] for k, v in out[task]["runs"].items()})
        print(f"[{task}] ratio maf / model:", out[task]["ratios_vs_maf"], flush=True)
    out["wall_seconds"] = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps(_finite(out), indent=2, allow_nan=False))
    return 0


def _finite(value: Any) -> Any:
    """``value`` with NaN and ±inf replaced by ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    sys.exit(main())
