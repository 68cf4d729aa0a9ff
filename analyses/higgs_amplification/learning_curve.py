"""How much training MC does the amplifier need? One flow candidate trained on nested subsamples of the t t̄
training split, each scored on the held-out MC (C2ST with as many generated events as held-out ones), and a power
law AUC − 0.5 ∝ n^(−b) extrapolated to the quality bar's AUC.

    python analyses/higgs_amplification/learning_curve.py --out reports/lc --mass-differences --ema-decay 0.999
    python analyses/higgs_amplification/learning_curve.py --out reports/lc_small --small      # a few minutes

The samples and splits are run.py's (same cache, same ``--n-background`` and ``--seed``): the held-out half is the
one run.py validates on, and the largest size is run.py's whole training split, so its point is the model run.py
would train with the same settings. Every size uses the same recipe (``--epochs``, patience 15, batch 1024); each
keeps checkpoints in ``OUT/checkpoints/n<size>``, so the same command started again resumes.

Writes ``report.json`` (every plotted number), ``report.md`` and ``learning_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from run import (  # run.py beside this script: same samples and splits
    CHUNK_SIZE,
    cached_sample,
    difference_sets,
    split_background,
)

from mcsurrogate.amplification import (
    CONTINUOUS_FEATURES,
    AucPowerLaw,
    ComparisonRow,
    fit_auc_power_law,
    learning_curve,
    paper_b_candidates,
)
from mcsurrogate.errors import sigterm_raises
from mcsurrogate.files import atomic_write_text
from mcsurrogate.training import resolve_device

log = logging.getLogger("learning_curve")

FULL = {"n_background": 200_000, "blocks": 10, "hidden": 128, "epochs": 200, "batch_size": 1024, "n_sizes": 4}
SMALL = {"n_background": 12_000, "blocks": 4, "hidden": 64, "epochs": 20, "batch_size": 256, "n_sizes": 3}


def converged(row: ComparisonRow) -> bool:
    """Whether the training stopped improving before its last epoch: a point whose best epoch is the last one is
    limited by the training length, not only by its events, and lies above the curve of converged trainings."""
    return row.best_epoch < row.epochs_run


def plot_learning_curve(rows: list[ComparisonRow], law: AucPowerLaw | None, target: float) -> Figure:
    """Held-out C2ST AUC (95 % CI) and NLL per event against the training events, with the power-law fit carried
    to the target AUC."""
    n = np.array([r.extra["n_train"] for r in rows], dtype=float)
    auc = np.array([r.auc for r in rows])
    err = np.array([[r.auc - r.auc_ci[0], r.auc_ci[1] - r.auc] for r in rows]).T
    done = np.array([converged(r) for r in rows])
    fig = Figure(figsize=(11, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.errorbar(n, auc, yerr=err, fmt="none", ecolor="black")
    ax1.plot(n[done], auc[done], "o", color="black", label="held-out C2ST AUC (95 % CI)")
    ax1.plot(n[~done], auc[~done], "o", mfc="white", color="black", label="… still improving at the last epoch")
    ax1.axhline(target, color="tab:red", ls=":", label=f"bar: AUC ≤ {target}")
    ax1.axhline(0.5, color="grey", ls="--")
    if law is not None:
        reach = law.n_for(target)
        x_max = n[-1] * 3 if not np.isfinite(reach) else max(n[-1] * 1.5, min(reach * 1.5, n[-1] * 1e3))
        x = np.geomspace(n[0], x_max, 200)
        label = rf"$0.5 + {law.amplitude:.3f}\,(n/10^4)^{{-{law.exponent:.2f} \pm {law.exponent_error:.2f}}}$"
        ax1.plot(x, law.auc(x), color="tab:blue", label=label)
        if np.isfinite(reach) and reach <= x_max:
            ax1.axvline(reach, color="tab:blue", ls=":", label=f"reaches {target} at n ≈ {reach:.2g}")
    ax1.set_xscale("log")
    ax1.set_xlabel("training events $n$")
    ax1.set_ylabel("C2ST AUC")
    ax1.legend(fontsize="small")
    ax2.plot(n, [r.nll for r in rows], "o-", color="black")
    ax2.set_xscale("log")
    ax2.set_xlabel("training events $n$")
    ax2.set_ylabel("held-out NLL per event")
    fig.tight_layout()
    return fig


def training_device() -> str:
    """What ``device="auto"`` trains on here, in words (the GPU's name, or the CPU and its thread count)."""
    device = resolve_device("auto")
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--small", action="store_true", help="run.py's --small samples, small flows: a few minutes")
    ap.add_argument("--cache", type=Path, default=Path("cache/higgs_benchmark"), help="run.py's sample cache")
    ap.add_argument("--workers", type=int, default=2, help="Pythia processes, if the sample must be generated")
    ap.add_argument("--n-background", type=int, help="t t̄ events (run.py's splits: half held out, 40 %% training)")
    ap.add_argument("--sizes", help="comma-separated training sizes (default: the training split, halved 3 times)")
    ap.add_argument("--family", default="made-mog")
    ap.add_argument("--preprocessing", default="gauss-rank")
    ap.add_argument("--mass-differences", action="store_true", help="learn amplification.MASS_DIFFERENCES")
    ap.add_argument("--jet-pt-differences", action="store_true", help="learn amplification.JET_PT_DIFFERENCES")
    ap.add_argument("--blocks", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--activation", default="relu", help="hidden-layer activation (paper B's final model: gelu)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--ema-decay", type=float, help="exponential moving average of the weights per step")
    ap.add_argument("--permutations", type=int, default=200, help="label permutations of the C2ST p-values")
    ap.add_argument(
        "--c2st-events",
        type=int,
        help="held-out events to score on (default: all); the C2ST AUC grows with this number, so curves from "
        "samples of different sizes compare at the same value",
    )
    ap.add_argument("--target", type=float, default=0.52, help="the AUC the extrapolation aims at")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    mode = SMALL if args.small else FULL
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    given_sizes: list[int] = []
    if args.sizes:
        try:
            given_sizes = [int(float(s)) for s in args.sizes.split(",")]
        except ValueError:
            raise SystemExit(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None

    background, bkg_info = cached_sample(
        "ttbar", args.n_background or mode["n_background"], args.seed, args.cache, args.workers
    )
    parts = split_background(background, args.seed)
    holdout = parts["holdout"]
    if args.c2st_events is not None:
        if not 0 < args.c2st_events <= len(holdout):
            raise SystemExit(
                f"--c2st-events must be in 1..{len(holdout)} (the held-out events), got {args.c2st_events}"
            )
        holdout = holdout[: args.c2st_events]  # the held-out split is a random permutation already
    n_train = len(parts["train"])
    sizes = given_sizes or [n_train // 2**k for k in reversed(range(mode["n_sizes"]))]
    (candidate,) = paper_b_candidates(
        families=[args.family],
        preprocessings=[args.preprocessing],
        blocks=args.blocks or mode["blocks"],
        hidden=args.hidden or mode["hidden"],
        activation=args.activation,
        differences=difference_sets(args),
    )
    training: dict[str, Any] = {
        "epochs": args.epochs or mode["epochs"],
        "patience": 15,
        "batch_size": mode["batch_size"],
        "seed": args.seed,
    }
    if args.ema_decay is not None:
        training["ema_decay"] = args.ema_decay
    log.info("%s on %s training events, scored on %d held-out events", candidate.name, sizes, len(holdout))
    rows = learning_curve(
        parts["train"],
        holdout,
        candidate,
        sizes,
        features=CONTINUOUS_FEATURES,
        training=training,
        n_permutations=args.permutations,
        seed=args.seed,
        checkpoint_dir=out / "checkpoints",
    )
    usable = [r for r in rows if r.failure is None and r.auc > 0.5]
    law = (
        fit_auc_power_law([r.extra["n_train"] for r in usable], [r.auc for r in usable], [r.auc_ci for r in usable])
        if len(usable) >= 2
        else None
    )
    reach = law.n_for(args.target) if law is not None else float("nan")
    band = law.n_for_band(args.target) if law is not None else (float("nan"), float("nan"))
    report = {
        "command": "python analyses/higgs_amplification/learning_curve.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "sample": bkg_info | {"chunk_size": CHUNK_SIZE},
        "splits": {k: len(v) for k, v in parts.items()},
        "candidate": {"name": candidate.name, "flow": dict(candidate.flow), "preprocessing": candidate.preprocessing},
        "training": training,
        "c2st_events_per_class": len(holdout),
        "device": training_device(),
        "rows": [r.to_dict() | {"converged": converged(r)} for r in rows],
        "power_law": None if law is None else law.to_dict(),
        "target_auc": args.target,
        "n_train_for_target": reach,
        "n_train_for_target_1sigma": list(band),
        "wall_s": time.perf_counter() - t_start,
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float))
    plot_learning_curve(rows, law, args.target).savefig(out / "learning_curve.png", dpi=120)
    lines = [
        "# Learning curve of the amplifier",
        "",
        f"Command: `{report['command']}`  ",
        (
            f"{candidate.name} ({candidate.flow['blocks']} × {candidate.flow['hidden']}, "
            f"{candidate.flow['activation']}); trained on {report['device']}; C2ST with {len(holdout):,} held-out "
            f"events per class; wall time {report['wall_s'] / 60:.1f} min."
        ),
        "",
        "| training events | epochs (best) | converged | NLL | C2ST AUC [95 % CI] | max W1/base | train s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r.extra['n_train']:,} | {r.epochs_run} ({r.best_epoch}) | {'yes' if converged(r) else 'no'} "
            f"| {r.nll:.3f} | {r.auc:.4f} [{r.auc_ci[0]:.4f}, {r.auc_ci[1]:.4f}] | {r.w1_ratio_max:.2f} "
            f"| {r.train_seconds:.0f} |"
            for r in rows
        ),
        "",
    ]
    if law is not None:
        lines.append(
            f"Power law: AUC − 0.5 = {law.amplitude:.4f} (n/10⁴)^−({law.exponent:.3f} ± {law.exponent_error:.3f}), "
            f"χ²/ndf = {law.chi2:.2f}/{law.ndf}; AUC {args.target} at n ≈ {reach:.3g} training events "
            f"(±1σ: {band[0]:.3g} – {band[1]:.3g}), an extrapolation beyond the largest size measured."
            + (
                ""
                if all(converged(r) for r in rows)
                else " Points still improving at their last epoch (open markers) lie above a converged curve: "
                "more epochs would lower them, so the extrapolation holds for this training length, not for the "
                "model trained to convergence."
            )
        )
    lines += ["", "![learning curve](learning_curve.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    log.info("wrote %s", out / "report.md")
    return 0


if __name__ == "__main__":
    with sigterm_raises():
        sys.exit(main())
