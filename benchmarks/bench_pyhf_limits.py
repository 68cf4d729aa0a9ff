"""CLs upper limits and the full paper-B scan: mcsurrogate.stats.Inference against pyhf's default upper_limit.

    python benchmarks/bench_pyhf_limits.py [--json PATH] [--skip-scan]

1. The same 20-bin workspace (signal × μ; background with a 10 % normsys and staterror), Poisson-fluctuated
   observed data (seeded), in one process: ``pyhf.infer.intervals.upper_limits.upper_limit(data, model)``
   with pyhf's defaults (numpy backend, its default optimiser, toms748 bracketing) versus
   ``Inference(model, data).upper_limit()``; speed ratio and the largest relative difference over the
   observed and the five expected limits (target: ≥ 50×, ≤ 1 %).
2. The full scan of the stats issue: 3 systematics × 10 luminosities × (10 N_gen + the MC reference), each
   point with μ̂ ± σ, Z₀ and the limit with bands (target: ≤ 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pyhf

from mcsurrogate.stats import Inference, Sample, scan


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--processes", type=int, default=1, help="worker processes for the scan")
    args = ap.parse_args()
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "pyhf": pyhf.__version__,
        "backend": pyhf.get_backend()[0].name,
        "optimizer": pyhf.get_backend()[1].name,
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
    print(f"  speed-up {t_pyhf / t_ours:.0f}× (target ≥ 50×); largest relative difference {rel:.1e} (target ≤ 1e-2)")

    if not args.skip_scan:
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
            processes=args.processes,
        )
        t_scan = time.perf_counter() - t0
        report["scan"] = {
            "points": len(rows),
            "seconds": t_scan,
            "processes": args.processes,
            "seconds_per_point": t_scan / len(rows),
        }
        print(
            f"full scan: {len(rows)} points (3 syst × 10 lumi × (10 N_gen + MC)) in {t_scan:.1f} s "
            f"({t_scan / len(rows) * 1e3:.0f} ms/point, {args.processes} process(es); target ≤ 300 s)"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
