"""The whole validation report at paper B's scale: ``mcsurrogate validate`` on 2 × 10⁶ events × 18 features.

    python benchmarks/bench_validate.py [--events 2000000] [--threads N] [--json PATH]

``--events`` is the total, half reference and half candidate (as ``bench_c2st.py``). Reference: 18 correlated,
partly skewed features (a random covariance, three columns exponentiated like p_T or masses); candidate: the same
law with one feature's scale changed by 1 %. Both are written to Parquet and the command runs end to end with its
defaults (every section: 1-D divergences with bootstrap and baseline, 5-classifier C2ST with 200 permutations,
density ratio, reweighted C2ST, FPD/KPD with baselines, correlations, figures). Prints the seconds of each
section, wall-clock and CPU (target: the whole command ≤ 180 s on 2 CPU cores) and the machine's load average
before and after: on a machine shared with other jobs the wall time stretches with the load, while the CPU time
of a single-threaded run (``--threads 1``) is close to what the same run takes on an idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from mcsurrogate.cli import main as cli
from mcsurrogate.io import write_events


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
    ap.add_argument("--threads", type=int, help="passed to `validate --threads` (default: one per core)")
    ap.add_argument("--workdir", help="where the Parquet files and the report go (default: a temporary directory)")
    ap.add_argument("--json")
    args = ap.parse_args()
    n = args.events // 2
    rng = np.random.default_rng(0)
    names = [f"f{j:02d}" for j in range(18)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for label, x in (("reference", sample(n, rng)), ("candidate", sample(n, rng, 1.01))):
            columns = {name: np.ascontiguousarray(x[:, j]) for j, name in enumerate(names)}
            write_events(ak.Array(columns), work / f"{label}.parquet")
        load_before = os.getloadavg()
        command = ["validate", str(work / "reference.parquet"), str(work / "candidate.parquet")]
        command += ["--out", str(work / "report"), "--overwrite"]
        command += ["--threads", str(args.threads)] if args.threads else []
        t0 = time.perf_counter()
        code = cli(command)
        total = time.perf_counter() - t0
        load_after = os.getloadavg()
        if code != 0:
            raise SystemExit(f"mcsurrogate validate exited with {code}")
        report = json.loads((work / "report" / "report.json").read_text())
    sections, cpu = report["timings_s"], report["cpu_s"]
    result = {
        "events": 2 * n,
        "features": len(names),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "seconds_total": total,
        "seconds_per_section": sections,
        "cpu_seconds_per_section": cpu,
        "cpu_seconds_total": sum(cpu.values()),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "auc": report["c2st"]["auc"],
        "auc_ci": report["c2st"]["auc_ci"],
        "p_value": report["c2st"]["p_value"],
        "decision": report["c2st"]["decision"],
        "flagged_features": report["flagged_features"],
    }
    print(
        f"mcsurrogate validate on {2 * n:,} events × {len(names)} features ({os.cpu_count()} cores, threads "
        f"{args.threads or 'default'}): {total:.1f} s (target ≤ 180 s)"
    )
    print(f"  {'section':<18} {'wall s':>8} {'CPU s':>8}")
    for section, seconds in sections.items():
        print(f"  {section:<18} {seconds:8.1f} {cpu[section]:8.1f}")
    print(f"  {'sum':<18} {sum(sections.values()):8.1f} {sum(cpu.values()):8.1f}")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(f"C2ST: AUC {result['auc']:.4f} {result['auc_ci']}, p = {result['p_value']:.3g} ({result['decision']})")
    print(f"flagged features (the 1 % scale change is f05): {result['flagged_features']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
