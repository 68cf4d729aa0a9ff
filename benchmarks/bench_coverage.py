"""The coverage study by toys (issue 30): 200 toys × 10 luminosities on 2 CPU cores, with the floors and the limits.

    python benchmarks/bench_coverage.py [--json PATH] [--toys 200] [--processes 2] [--quick]

Set-up (paper B's shape, no training): a falling m_bb-like background in 25 bins over [60, 500] GeV, 10⁵ MC events
(the truth the toys are drawn from, luminosity 1 to 1000 × the MC), the signal a 15 GeV wide peak at 125 GeV at 5 %
of the background; the "flow" is the MC shape with a deliberate mismodelling (a 4 % tilt and a 3 % dip under the
peak), generated templates of 10⁶ events redrawn for every toy; the surrogate modifier comes from a synthetic
ensemble of K = 20 members around it (tilts and dips of that size × a standard-normal amplitude, and 0.5 % per-bin
noise: the bias is a 1–2σ fluctuation of such an ensemble), eigen-decomposed
(``SurrogateUncertainty.histosys``). Every toy is fitted with four templates (generated, generated + modifier,
perfect generator, memorising learner of 3 × 10⁴ training events) and every luminosity gets the expected-limit shifts
(generated templates once, floors over 20 limit toys).

Prints the wall time and the CPU seconds of all processes (÷ processes: the wall time on idle cores) against the target
(≤ 600 s on 2 cores), the load average of the machine at start and end (the machine is shared: a loaded machine
stretches the wall time, not the CPU seconds), the number of failed fits and the coverage table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import hist
import numpy as np

from mcsurrogate.stats import CoverageToy, SurrogateUncertainty, TemplateSpread, coverage_study
from mcsurrogate.stats.jsonable import dumps

TARGET_SECONDS = 600.0
EDGES = np.linspace(60.0, 500.0, 26)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])


def _hist(values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(EDGES, name="m_bb"), storage=hist.storage.Weight())
    h.view().value = values
    h.view().variance = variances
    return h


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def setup(seed: int = 0) -> dict[str, object]:
    """The templates and the modifier of the benchmark (deterministic)."""
    rng = np.random.default_rng(seed)
    parent = (CENTRES / 100.0) ** 1.5 * np.exp(-CENTRES / 70.0)
    parent /= parent.sum()
    peak = np.exp(-0.5 * ((CENTRES - 125.0) / 15.0) ** 2)
    peak /= peak.sum()
    tilt = np.linspace(-1.0, 1.0, CENTRES.size)
    flow = parent * (1 + 0.04 * tilt - 0.03 * peak / peak.max())
    members = []
    for _ in range(20):
        a, d = rng.normal(size=2)
        member = flow * (1 + 0.04 * a * tilt - 0.03 * d * peak / peak.max() + rng.normal(scale=0.005, size=flow.size))
        members.append(_hist(member * 1e6, member * 1e6))
    spread = TemplateSpread.from_templates(members, nominal=_hist(flow * 1e6, flow * 1e6))
    return {
        "signal": _hist(peak * 1e5, peak * 10.0),
        "mc": _hist(parent * 1e5, parent * 1e5),
        "flow": _hist(flow * 1e8, flow * 1e8),  # the flow's shape: 100 × the template size
        "modifier": SurrogateUncertainty.histosys(spread, max_components=3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures (and the coverage points) to this JSON file")
    ap.add_argument("--toys", type=int, default=200, help="toys per luminosity (default: 200)")
    ap.add_argument("--processes", type=int, default=2, help="worker processes (default: 2, the machine's cores)")
    ap.add_argument("--quick", action="store_true", help="20 toys × 3 luminosities, no target check")
    args = ap.parse_args()
    parts = setup()
    modifier = parts["modifier"]
    assert isinstance(modifier, SurrogateUncertainty)
    lumis = [1.0, 30.0, 1000.0] if args.quick else [float(x) for x in np.geomspace(1.0, 1000.0, 10)]
    toys = 20 if args.quick else args.toys
    load_start = os.getloadavg()
    cpu_start = _cpu_seconds()
    started = time.perf_counter()
    result = coverage_study(
        parts["signal"],  # type: ignore[arg-type]
        parts["mc"],  # type: ignore[arg-type]
        parts["flow"],  # type: ignore[arg-type]
        surrogate_uncertainty=modifier,
        luminosities=lumis,
        n_toys=toys,
        n_generated=1_000_000,
        n_training=30_000,
        n_limit_toys=20,
        seed=1,
        processes=args.processes,
        progress=False,
    )
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_start
    load_end = os.getloadavg()
    fits = [r for r in result.toys if isinstance(r, CoverageToy)]
    failed = sum(r.status != "ok" for r in result.toys)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.processes} processes")
    print(f"load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f} (1 min)")
    print(f"modifier: {', '.join(modifier.modifier_names())}; explained variance {np.round(modifier.explained, 3)}")
    idle = cpu / args.processes
    print(
        f"{toys} toys × {len(lumis)} luminosities × {len(result.templates)} templates = {len(fits)} toy fits "
        f"+ limits: {seconds:.0f} s wall, {cpu:.0f} CPU-seconds (all processes), i.e. {idle:.0f} s on {args.processes} "
        f"idle cores (target ≤ {TARGET_SECONDS:.0f} s"
        f"{'' if args.quick else ': ' + ('met' if min(seconds, idle) <= TARGET_SECONDS else 'MISSED')}), "
        f"{failed} failed"
    )
    print(result.table())
    print(
        "generated + modifier within 68 ± 3 % and 95 ± 2 % at every luminosity: "
        f"{result.within('generated+modifier')}; generated without: {result.within('generated')}"
    )
    if args.json:
        figures = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "idle_seconds_estimate": idle,
            "target_seconds": TARGET_SECONDS,
            "toys": toys,
            "luminosities": lumis,
            "processes": args.processes,
            "toy_fits": len(fits),
            "failed": failed,
            "load_average_start": load_start[0],
            "load_average_end": load_end[0],
            "coverage": result.to_dict(),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
