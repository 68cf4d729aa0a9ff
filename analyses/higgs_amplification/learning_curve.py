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
import textwrap
import time
from pathlib import Path
from typing import Any

import torch

from mcsurrogate.amplification import CONTINUOUS_FEATURES, fit_auc_power_law, learning_curve, paper_b_candidates
from mcsurrogate.cli.arguments import event_count, open_fraction, positive_int
from mcsurrogate.errors import MCSurrogateError, sigterm_raises
from mcsurrogate.files import atomic_write_text
from mcsurrogate.training import resolve_device
from mcsurrogate.workflows.amplification_study import study_background
from mcsurrogate.workflows.figures import plot_learning_curve
from mcsurrogate.workflows.report import learning_curve_markdown

log = logging.getLogger("learning_curve")

FULL = {"n_background": 200_000, "blocks": 10, "hidden": 128, "epochs": 200, "batch_size": 1024, "n_sizes": 4}
SMALL = {"n_background": 12_000, "blocks": 4, "hidden": 64, "epochs": 20, "batch_size": 256, "n_sizes": 3}


def training_device() -> str:
    """What ``device="auto"`` trains on here, in words (the GPU's name, or the CPU and its thread count)."""
    device = resolve_device("auto")
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--small", action="store_true", help="run.py's --small samples, small flows: a few minutes")
    ap.add_argument("--cache", type=Path, default=Path("cache/higgs_benchmark"), help="run.py's sample cache")
    ap.add_argument("--workers", type=positive_int, default=2, help="Pythia processes, if the sample must be generated")
    ap.add_argument(
        "--n-background", type=event_count, help="t t̄ events (run.py's splits: half held out, 40 %% training)"
    )
    ap.add_argument(
        "--sizes",
        type=lambda text: [event_count(s) for s in text.split(",")],
        help="comma-separated training sizes (default: the training split, halved 3 times)",
    )
    ap.add_argument("--family", default="made-mog")
    ap.add_argument("--preprocessing", default="gauss-rank")
    ap.add_argument("--mass-differences", action="store_true", help="learn amplification.MASS_DIFFERENCES")
    ap.add_argument("--jet-pt-differences", action="store_true", help="learn amplification.JET_PT_DIFFERENCES")
    ap.add_argument("--blocks", type=positive_int)
    ap.add_argument("--hidden", type=positive_int)
    ap.add_argument("--activation", default="relu", help="hidden-layer activation (paper B's final model: gelu)")
    ap.add_argument("--epochs", type=positive_int)
    ap.add_argument("--ema-decay", type=open_fraction, help="exponential moving average of the weights per step")
    ap.add_argument("--permutations", type=positive_int, default=200, help="label permutations of the C2ST p-values")
    ap.add_argument(
        "--c2st-events",
        type=event_count,
        help="held-out events to score on (default: all); the C2ST AUC grows with this number, so curves from "
        "samples of different sizes compare at the same value",
    )
    ap.add_argument("--target", type=open_fraction, default=0.52, help="the AUC the extrapolation aims at")
    ap.add_argument("--seed", type=int, default=1)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        return study(args, argv)
    except MCSurrogateError as exc:
        print(textwrap.fill(f"error: {exc}", width=100), file=sys.stderr)
        return 2


def study(args: argparse.Namespace, argv: list[str] | None) -> int:
    mode = SMALL if args.small else FULL
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    parts, bkg_info = study_background(args.cache, args.n_background or mode["n_background"], args.seed, args.workers)
    holdout = parts.holdout
    if args.c2st_events is not None:
        if args.c2st_events > len(holdout):
            raise SystemExit(
                f"--c2st-events must be in 1..{len(holdout)} (the held-out events), got {args.c2st_events}"
            )
        holdout = holdout[: args.c2st_events]  # the held-out split is a random permutation already
    n_train = len(parts.train)
    sizes = args.sizes or [n_train // 2**k for k in reversed(range(mode["n_sizes"]))]
    (candidate,) = paper_b_candidates(
        families=[args.family],
        preprocessings=[args.preprocessing],
        blocks=args.blocks or mode["blocks"],
        hidden=args.hidden or mode["hidden"],
        activation=args.activation,
        differences=[
            name for name, on in (("masses", args.mass_differences), ("jet-pt", args.jet_pt_differences)) if on
        ],
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
        parts.train,
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
        "sample": bkg_info.to_dict(),
        "splits": parts.sizes(),
        "candidate": {"name": candidate.name, "flow": dict(candidate.flow), "preprocessing": candidate.preprocessing},
        "training": training,
        "c2st_events_per_class": len(holdout),
        "device": training_device(),
        "rows": [r.to_dict() | {"converged": r.converged} for r in rows],
        "power_law": None if law is None else law.to_dict(),
        "target_auc": args.target,
        "n_train_for_target": reach,
        "n_train_for_target_1sigma": list(band),
        "wall_s": time.perf_counter() - t_start,
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float))
    plot_learning_curve(rows, law, args.target).savefig(out / "learning_curve.png", dpi=120)
    atomic_write_text(out / "report.md", learning_curve_markdown(report, candidate, rows, law))
    log.info("wrote %s", out / "report.md")
    return 0


if __name__ == "__main__":
    with sigterm_raises():
        sys.exit(main())
