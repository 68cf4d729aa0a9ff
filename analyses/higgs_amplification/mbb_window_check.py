"""Where does the post-cut m_bb deficit come from: the flow, or the training MC it learned?

    python analyses/higgs_amplification/mbb_window_check.py --out reports/mbb_check \\
        --model reports/amp/best_model --n-background 200000

``--model``: the ``best_model`` directory of a ``run.py --out reports/amp --n-background 200000`` run (same
``--n-background`` and ``--seed``: the model is checked against that training split). What it found for the 10 × 128
mass-differences model is in docs/results/amplification.md (its files at commit ``ca9f729``).

With run.py's samples and splits, the model generates 10 × the training split (run.py's generation seed); a signal
classifier (run.py's recipe) is trained against the first 10⁵ generated events (paper B) and, separately, against
the training MC. For each cut, and without a cut, the m_bb fractions in the 20 GeV bins from 80 to 160 GeV are
written for the training, selection and held-out MC and for the other generated events, with their binomial
errors: if the training MC is low where the generator is low, the generator learned a fluctuation of its
training sample, which no generator trained on it can avoid. Writes ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from mcsurrogate.amplification import CONTINUOUS_FEATURES, feature_matrix, generate
from mcsurrogate.cli.arguments import event_count
from mcsurrogate.errors import MCSurrogateError, sigterm_raises
from mcsurrogate.files import atomic_write_text
from mcsurrogate.stats import train_signal_classifier
from mcsurrogate.workflows.amplification_study import study_background, study_signal
from mcsurrogate.workflows.cut_analysis import fit_edges
from mcsurrogate.workflows.model_choice import reuse_model

log = logging.getLogger("mbb_window_check")


def fractions(values: np.ndarray, edges: np.ndarray, bins: range) -> dict[str, list[float]]:
    """Fractions of ``values`` (GeV) in the chosen bins of ``edges``, with binomial errors."""
    counts = np.histogram(values, edges)[0].astype(float)
    n = max(len(values), 1)
    p = counts / n
    return {"fraction": [float(p[j]) for j in bins], "error": [float(np.sqrt(p[j] * (1 - p[j]) / n)) for j in bins]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="a best_model directory trained on run.py's split")
    ap.add_argument("--cache", type=Path, default=Path("cache/higgs_benchmark"), help="run.py's sample cache")
    ap.add_argument("--n-background", type=event_count, default=200_000, help="t t̄ events the model's run.py used")
    ap.add_argument("--seed", type=int, default=1, help="run.py's --seed")
    ap.add_argument("--n-signal", type=event_count, default=50_000, help="signal events the model's run.py used")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        return study(args, argv)
    except MCSurrogateError as exc:
        print(textwrap.fill(f"error: {exc}", width=100), file=sys.stderr)
        return 2


def study(args: argparse.Namespace, argv: list[str] | None) -> int:
    features = list(CONTINUOUS_FEATURES)
    col = features.index("m_bb")
    parts, bkg_info = study_background(args.cache, args.n_background, args.seed)
    model = reuse_model(args.model, len(parts.train)).model
    signal, _ = study_signal(args.cache, args.n_signal, args.seed)
    x_sig = feature_matrix(signal.classifier, features)
    x = {k: feature_matrix(getattr(parts, k), features) for k in ("train", "select", "holdout")}
    generated = feature_matrix(
        generate(model, 10 * len(parts.train), source=parts.train, seed=args.seed + 10), features
    )
    n_clf = 100_000
    x["generated"] = generated[n_clf:]
    edges = fit_edges()
    bins = range(int(np.searchsorted(edges, 80.0)), int(np.searchsorted(edges, 160.0)))
    result: dict[str, object] = {
        "command": "python analyses/higgs_amplification/mbb_window_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "sample": bkg_info.to_dict(),
        "model": str(args.model),
        "bins_gev": [[float(edges[j]), float(edges[j + 1])] for j in bins],
        "no_cut": {k: fractions(v[:, col], edges, bins) for k, v in x.items()},
    }
    for label, bkg in (("classifier_vs_generated", generated[:n_clf]), ("classifier_vs_training_mc", x["train"])):
        cut = train_signal_classifier(x_sig, bkg, threshold=0.55, seed=args.seed)
        rows: dict[str, dict[str, Any]] = {}
        for k, v in x.items():
            sel = cut.select(v)
            rows[k] = {"efficiency": float(sel.mean()), **fractions(v[sel, col], edges, bins)}
        result[label] = rows
        log.info("%s: %s", label, {k: round(r["fraction"][2], 4) for k, r in rows.items()})
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "report.json", json.dumps(result, indent=1))
    log.info("report in %s", args.out / "report.json")
    return 0


if __name__ == "__main__":
    with sigterm_raises():
        sys.exit(main())
