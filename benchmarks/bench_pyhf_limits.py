"""CLs upper limits and the full paper-B scan: mcsurrogate.stats.Inference against pyhf's default upper_limit.

    python benchmarks/bench_pyhf_limits.py [--json PATH] [--skip-scan] [--processes N] [--ladder]

1. The same 20-bin workspace (signal × μ; background with a 10 % normsys and staterror), Poisson-fluctuated
   observed data (seeded), in one process: ``pyhf.infer.intervals.upper_limits.upper_limit(data, model)``
   with pyhf's defaults (numpy backend, its default optimiser, toms748 bracketing) versus
   ``Inference(model, data).upper_limit()``; speed ratio and the largest relative difference over the
   observed and the five expected limits.
2. The full scan of the stats issue: 3 systematics × 10 luminosities × (10 N_gen + the MC reference), each
   point with μ̂ ± σ, Z₀ and the limit with bands; the points that failed (if any) are listed.
3. ``--ladder``: the same scan once per fit ladder with one step left out (``FIT_LADDER``), counting the fits each
   step settled and the points that fail without it: which fallback the scan needs.

Targets (issue 27), printed with each figure: ≥ 50× pyhf's default upper_limit, limits within 1 %, the scan within
300 s on 2 CPU cores, 0 aborted (failed) points.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import time
from typing import Any

import numpy as np
import pyhf

from mcsurrogate.stats import Inference, Sample, ScanPoint, inference, scan, scan_summary
from mcsurrogate.stats.jsonable import dumps

TARGETS = {"speedup": 50.0, "max_relative_difference": 1e-2, "scan_seconds": 300.0, "failed_points": 0}


def workspace_model(seed: int = 0) -> tuple[object, np.ndarray]:
    x = np.linspace(0.0, 1.0, 20)
    b = 1000.0 * np.exp(-3.0 * x) + 20.0
    s = 50.0 * np.exp(-0.5 * ((x - 0.5) / 0.1) ** 2)
    spec = {
        "channels": [
            {
                "name": "sr",
                "samples": [
                    {
                        "name": "signal",
                        "data": s.tolist(),
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": b.tolist(),
                        "modifiers": [
                            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                            {"name": "staterror_sr", "type": "staterror", "data": (0.3 * np.sqrt(b)).tolist()},
                        ],
                    },
                ],
            }
        ]
    }
    model = pyhf.Model(spec, poi_name="mu")
    observed = np.random.default_rng(seed).poisson(b).astype(float)
    return model, np.concatenate([observed, model.config.auxdata])


def full_scan(processes: int = 1, progress: bool = False) -> tuple[list[ScanPoint], float]:
    """The issue's full scan (330 points) and its wall time in seconds."""
    rng = np.random.default_rng(1)
    signal = Sample(rng.normal(125.0, 12.0, 100_000))
    mc = Sample(rng.exponential(60.0, 100_000) + 40.0)
    generated = Sample(rng.exponential(60.5, 10**7) + 40.0)  # a slightly wrong surrogate
    t0 = time.perf_counter()
    rows = scan(
        signal,
        mc,
        generated,
        bins=20,
        range=(40.0, 300.0),
        luminosities=np.geomspace(0.1, 100, 10),
        n_generated=np.geomspace(1e3, 1e7, 10).astype(int),
        systematics=(0.05, 0.10, 0.20),
        processes=processes,
        progress=progress,
    )
    return rows, time.perf_counter() - t0


def fit_steps(rows: list[ScanPoint]) -> dict[str, int]:
    """How many fits each step of the fit ladder settled, summed over the scan's rows."""
    counts: collections.Counter[str] = collections.Counter()
    for r in rows:
        for part in (r.fit_steps or "").split(", "):
            if part:
                step, n = part.rsplit(" ", 1)
                counts[step] += int(n)
    return dict(counts)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--skip-scan", action="store_true", help="only the single-limit comparison")
    ap.add_argument("--processes", type=int, default=1, help="worker processes for the scan (default: 1)")
    ap.add_argument("--ladder", action="store_true", help="also the fit-ladder study (one scan per left-out step)")
    args = ap.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "pyhf": pyhf.__version__,
        "backend": pyhf.get_backend()[0].name,
        "optimizer": pyhf.get_backend()[1].name,
        "targets": TARGETS,
    }
    model, data = workspace_model()

    t0 = time.perf_counter()
    ref_obs, ref_exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model)
    t_pyhf = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = Inference(model, data).upper_limit()
    t_ours = time.perf_counter() - t0
    ref = np.array([float(ref_obs), *[float(v) for v in ref_exp]])
    new = np.array([ours.observed, *ours.expected])
    rel = float(np.max(np.abs(new / ref - 1)))
    report["upper_limit"] = {
        "pyhf_default_s": t_pyhf,
        "mcsurrogate_s": t_ours,
        "speedup": t_pyhf / t_ours,
        "max_relative_difference": rel,
        "pyhf_limits": ref.tolist(),
        "mcsurrogate_limits": new.tolist(),
        "fits": ours.n_fits,
    }
    print(
        f"one CLs upper limit with ±1σ/±2σ bands, 20 bins, staterror + normsys ({report['backend']}/"
        f"{report['optimizer']}):"
    )
    print(f"  pyhf default upper_limit : {t_pyhf:8.3f} s   obs {ref[0]:.5f}  exp {np.round(ref[1:], 5).tolist()}")
    print(f"  mcsurrogate Inference    : {t_ours:8.3f} s   obs {new[0]:.5f}  exp {np.round(new[1:], 5).tolist()}")
    speedup = t_pyhf / t_ours
    print(
        f"  speed-up {speedup:.0f}× (target ≥ {TARGETS['speedup']:.0f}×: {_verdict(speedup >= TARGETS['speedup'])}); "
        f"largest relative difference {rel:.1e} (target ≤ {TARGETS['max_relative_difference']:.0e}: "
        f"{_verdict(rel <= TARGETS['max_relative_difference'])})"
    )

    if not args.skip_scan:
        rows, t_scan = full_scan(args.processes, progress=True)
        failed = [r for r in rows if r.status != "ok"]
        report["scan"] = {
            "points": len(rows),
            "seconds": t_scan,
            "processes": args.processes,
            "seconds_per_point": t_scan / len(rows),
            "failed_points": len(failed),
            "failed": [r.reason for r in failed],
            "mu_at_bound": sum(bool(r.mu_at_bound) for r in rows),
            "fit_steps": fit_steps(rows),
        }
        print(
            f"full scan: {len(rows)} points (3 syst × 10 lumi × (10 N_gen + MC)) in {t_scan:.1f} s "
            f"({t_scan / len(rows) * 1e3:.0f} ms/point, {args.processes} process(es); target ≤ "
            f"{TARGETS['scan_seconds']:.0f} s: {_verdict(t_scan <= TARGETS['scan_seconds'])})"
        )
        print(
            f"  {scan_summary(rows)} (target {TARGETS['failed_points']} failed: "
            f"{_verdict(len(failed) <= TARGETS['failed_points'])}); fits settled per step: {fit_steps(rows)}"
        )

    if args.ladder:
        full = inference.FIT_LADDER
        study = {}
        try:
            for left_out in (None, *full):
                inference.FIT_LADDER = tuple(s for s in full if s != left_out)
                rows, seconds = full_scan(1)  # in this process, which holds the changed ladder
                name = "full ladder" if left_out is None else f"without {left_out}"
                failed = sum(r.status != "ok" for r in rows)
                study[name] = {"failed_points": failed, "seconds": seconds, "fit_steps": fit_steps(rows)}
                print(f"  fit ladder {name:20s}: {failed:3d} failed points, {seconds:6.1f} s, {fit_steps(rows)}")
        finally:
            inference.FIT_LADDER = full
        report["ladder"] = study
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(dumps(report, indent=1))


if __name__ == "__main__":
    main()
