"""How much does the held-out C2ST AUC of a reweighted generator depend on the reweighting fit's own randomness?

    python analyses/higgs_amplification/reweighting_spread.py --out reports/rw_spread \\
        --model reports/amp/best_model --n-background 200000

``--model``: the ``best_model`` directory of a ``run.py --out reports/amp --n-background 200000`` run (same
``--n-background`` and ``--seed``: the model is checked against that training split). What it found for the 10 × 128
mass-differences model is in docs/results/amplification.md (its files at commit ``8cdaa8f``).

One evaluation sample of the model (run.py's generation seed) is scored against run.py's held-out MC (C2ST with
``--c2st-events`` per class) unweighted, and weighted by ``--fits`` reweightings (``mcsurrogate.refinement``), each
learned from the training MC against its own generated fit sample (twice the training split) with its own
classifier seeds. Writes ``report.json`` with every AUC and its interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcsurrogate.amplification import CONTINUOUS_FEATURES, feature_matrix, generate
from mcsurrogate.cli.arguments import event_count, positive_int
from mcsurrogate.errors import MCSurrogateError, sigterm_raises
from mcsurrogate.files import atomic_write_text
from mcsurrogate.refinement import fit_reweighting
from mcsurrogate.validation import c2st
from mcsurrogate.workflows.amplification_study import study_background
from mcsurrogate.workflows.model_choice import reuse_model

log = logging.getLogger("reweighting_spread")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="a best_model directory trained on run.py's split")
    ap.add_argument("--cache", type=Path, default=Path("cache/higgs_benchmark"), help="run.py's sample cache")
    ap.add_argument("--n-background", type=event_count, default=200_000, help="t t̄ events the model's run.py used")
    ap.add_argument("--seed", type=int, default=1, help="run.py's --seed")
    ap.add_argument("--fits", type=positive_int, default=4, help="independent reweighting fits")
    ap.add_argument("--c2st-events", type=event_count, default=100_000, help="held-out and generated events per class")
    ap.add_argument("--permutations", type=positive_int, default=20, help="label permutations of the C2ST p-values")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        return study(args, argv)
    except MCSurrogateError as exc:
        print(textwrap.fill(f"error: {exc}", width=100), file=sys.stderr)
        return 2


def study(args: argparse.Namespace, argv: list[str] | None) -> int:
    t_start = time.perf_counter()
    features = list(CONTINUOUS_FEATURES)
    parts, info = study_background(args.cache, args.n_background, args.seed)
    model = reuse_model(args.model, len(parts.train)).model
    x_hold = feature_matrix(parts.holdout, features)[: args.c2st_events]
    x_eval = feature_matrix(generate(model, len(x_hold), source=parts.train, seed=args.seed + 10), features)

    def score(weights: np.ndarray | None) -> dict[str, float | list[float]]:
        r = c2st(x_hold, x_eval, weights_candidate=weights, n_permutations=args.permutations, seed=args.seed)
        return {"auc": r.auc, "auc_ci": list(r.auc_ci), "p_value": r.p_value}

    rows: list[dict[str, Any]] = [{"fit": None, **score(None)}]
    log.info("unweighted: AUC %.4f", rows[0]["auc"])
    for k in range(1, args.fits + 1):
        t0 = time.perf_counter()
        fit_sample = generate(model, 2 * len(parts.train), source=parts.train, seed=args.seed + 200 + k)
        rw = fit_reweighting(parts.train, fit_sample, features, seed=args.seed + k)
        row = {"fit": k, **score(rw.weights(x_eval)), "kish_efficiency": rw.kish_efficiency}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        log.info("fit %d: AUC %.4f, Kish efficiency %.3f (%.0f s)", k, row["auc"], rw.kish_efficiency, row["seconds"])
    weighted = np.array([r["auc"] for r in rows[1:]], dtype=float)
    report = {
        "command": "python analyses/higgs_amplification/reweighting_spread.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "sample": info.to_dict(),
        "model": str(args.model),
        "c2st_events_per_class": len(x_hold),
        "rows": rows,
        "weighted_auc_mean": float(weighted.mean()) if weighted.size else None,
        "weighted_auc_sd": float(weighted.std(ddof=1)) if weighted.size > 1 else None,
        "wall_s": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=1, default=float))
    log.info(
        "weighted AUC %.4f ± %.4f (SD of %d fits); report in %s",
        report["weighted_auc_mean"] or np.nan,
        report["weighted_auc_sd"] or np.nan,
        len(weighted),
        args.out / "report.json",
    )
    return 0


if __name__ == "__main__":
    with sigterm_raises():
        sys.exit(main())
