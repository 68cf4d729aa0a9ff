"""C2ST speed at paper B's scale: 2 × 10⁶ events × 18 features, with its bootstrap CI and permutation p-value.

    python benchmarks/bench_c2st.py [--events 2000000] [--json PATH]

Reference: 18 correlated, partly skewed features (a random covariance, three columns exponentiated like p_T or
masses); candidate: the same law with one feature's scale changed by 1 %. Prints the wall time (target: the whole
test ≤ 3 minutes on 2 CPU cores) with ``--repeats`` classifiers (default 5: the interval then covers their
training variance; 1: one classifier, test-set variance only), the machine's load average, and, in the same run,
the time of the permutation null with ``sklearn.metrics.roc_auc_score`` for comparison with the grouped AUC that
mcsurrogate uses.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from mcsurrogate.validation import c2st


def sample(n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    d = 18
    a = np.random.default_rng(42).normal(size=(d, d)) / np.sqrt(d)
    x = rng.normal(size=(n, d)) @ a.T
    x[:, :3] = np.exp(0.5 * x[:, :3])
    x[:, 5] *= scale
    return x.astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000, help="total events (half reference, half candidate)")
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5, help="classifiers on random half/half splits")
    ap.add_argument("--json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.events // 2
    ref, can = sample(n, rng), sample(n, rng, 1.01)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result = c2st(ref, can, n_permutations=args.permutations, n_repeats=args.repeats, max_events=n, seed=0)
    total = time.perf_counter() - t0
    load_after = os.getloadavg()
    # the same permutation null with scikit-learn's roc_auc_score, timed on 5 permutations and scaled
    t1 = time.perf_counter()
    for _ in range(5):
        roc_auc_score(rng.permutation(result.labels), result.scores)
    sk = (time.perf_counter() - t1) / 5 * args.permutations
    report = {
        "events": 2 * n,
        "features": ref.shape[1],
        "cores": os.cpu_count(),
        "seconds": total,
        "auc": result.auc,
        "auc_ci": list(result.auc_ci),
        "p_value": result.p_value,
        "permutations": args.permutations,
        "repeats": args.repeats,
        "auc_repeats": result.auc_repeats,
        "auc_sd_test": result.auc_sd_test,
        "ci_covers": result.ci_covers,
        "decision": result.decision,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "sklearn_permutation_null_seconds_estimate": sk,
    }
    print(
        f"C2ST on {2 * n:,} events × {ref.shape[1]} features ({os.cpu_count()} cores, {args.repeats} classifiers): "
        f"{total:.1f} s (target ≤ 180 s); {result.summary()}"
    )
    print(f"AUC per classifier {np.round(result.auc_repeats, 4).tolist()}, test-set SD {result.auc_sd_test:.4f}")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(f"the permutation null with sklearn.metrics.roc_auc_score would take ≈ {sk:.0f} s on its own")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
