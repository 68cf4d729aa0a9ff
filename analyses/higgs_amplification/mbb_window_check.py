"""Where does the post-cut m_bb deficit come from: the flow, or the training MC it learned?

    python analyses/higgs_amplification/mbb_window_check.py --out reports/mbb_check \\
        --model analyses/higgs_amplification/results_mass_differences/best_model --n-background 200000

With run.py's samples and splits, the model generates 10 × the training split (run.py's generation seed); a signal
classifier (run.py's recipe) is trained against the first 10⁵ generated events (paper B) and, separately, against
the training MC. For each cut, and without a cut, the m_bb fractions in the 20 GeV bins from 80 to 160 GeV are
written for the training, selection and held-out MC and for the other generated events, with their binomial
errors: if the training MC is low where the generator is low, the generator learned a fluctuation of its
training sample, which no generator trained on it can avoid. Writes ``report.json``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import numpy as np
from run import FIT_BINS, FIT_RANGE, cached_sample, model_study_inputs, model_study_parser  # run.py, beside

from mcsurrogate.amplification import CONTINUOUS_FEATURES, feature_matrix, generate
from mcsurrogate.errors import sigterm_raises
from mcsurrogate.files import atomic_write_text
from mcsurrogate.stats import train_signal_classifier

log = logging.getLogger("mbb_window_check")


def fractions(values: np.ndarray, edges: np.ndarray, bins: range) -> dict[str, list[float]]:
    """Fractions of ``values`` (GeV) in the chosen bins of ``edges``, with binomial errors."""
    counts = np.histogram(values, edges)[0].astype(float)
    n = max(len(values), 1)
    p = counts / n
    return {"fraction": [float(p[j]) for j in bins], "error": [float(np.sqrt(p[j] * (1 - p[j]) / n)) for j in bins]}


def main(argv: list[str] | None = None) -> int:
    ap = model_study_parser(__doc__)
    ap.add_argument("--n-signal", type=int, default=50_000, help="signal events the model's run.py used")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    features = list(CONTINUOUS_FEATURES)
    col = features.index("m_bb")
    parts, model, bkg_info = model_study_inputs(args)
    signal, _ = cached_sample("signal", args.n_signal, args.seed + 1, args.cache, workers=2)
    sig_perm = np.random.default_rng(args.seed + 2).permutation(len(signal))
    x_sig = feature_matrix(signal[sig_perm[: len(signal) // 2]], features)
    x = {k: feature_matrix(parts[k], features) for k in ("train", "select", "holdout")}
    generated = feature_matrix(
        generate(model, 10 * len(parts["train"]), source=parts["train"], seed=args.seed + 10), features
    )
    n_clf = 100_000
    x["generated"] = generated[n_clf:]
    edges = np.linspace(*FIT_RANGE, FIT_BINS + 1)
    bins = range(int(np.searchsorted(edges, 80.0)), int(np.searchsorted(edges, 160.0)))
    result: dict[str, object] = {
        "command": "python analyses/higgs_amplification/mbb_window_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "sample": bkg_info,
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
