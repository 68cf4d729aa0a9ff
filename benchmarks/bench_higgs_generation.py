"""Selected events per CPU second of the HIGGS-like benchmark (Pythia 8 + FastJet + detector + selection), with the
semileptonic W pair generated directly (``ONE_LEPTONIC_W``, the default) against generating every W pair and
rejecting the non-semileptonic ones at generator level (the behaviour before), in one process.

    python benchmarks/bench_higgs_generation.py [--json out.json] [--events 400]

Per process (t t̄, signal) and mode: one chunk of ``--events`` selected events, the same seed; the figures are
selected events per CPU second of the event loop (initialisation excluded), the selection efficiency, and where
the loop's time goes (Pythia's ``next`` against the selection: particle loop, isolation, FastJet, detector).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

from mcsurrogate.generators.higgs_benchmark import (
    DEFAULT_DETECTOR,
    ONE_LEPTONIC_W,
    BenchmarkSelector,
    signal_settings,
    ttbar_settings,
)
from mcsurrogate.generators.pythia import run_pythia


class _TimedSelector:
    """A BenchmarkSelector that adds up its own CPU time (run in this process: one worker)."""

    def __init__(self, select: BenchmarkSelector) -> None:
        self.select, self.seconds = select, 0.0

    def __call__(self, event: Any) -> dict[str, float] | None:
        t = time.process_time()
        try:
            return self.select(event)
        finally:
            self.seconds += time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--events", type=int, default=400, help="selected events per process and mode")
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": platform.platform(), "events": args.events, "processes": {}}
    print(f"{'process':<8}{'mode':<22}{'efficiency':>11}{'selected/CPU s':>16}{'selection share':>17}")
    for name, settings in (("ttbar", ttbar_settings), ("signal", signal_settings)):
        rows = {}
        for mode, alternate in (("every W pair", ()), ("ONE_LEPTONIC_W", ONE_LEPTONIC_W)):
            select = _TimedSelector(BenchmarkSelector(DEFAULT_DETECTOR, 1))
            _, stats = run_pythia(
                settings(),
                args.events,
                seed=1,
                select=select,
                chunk_size=args.events,
                progress=False,
                alternate=alternate,
            )
            rows[mode] = {
                "tried": stats.tried,
                "efficiency": stats.accepted / stats.tried,
                "selected_per_cpu_s": stats.events_per_cpu_second,
                "loop_cpu_s": stats.loop_cpu_seconds,
                "selection_cpu_s": select.seconds,
                "selection_share": select.seconds / stats.loop_cpu_seconds,
            }
            r = rows[mode]
            print(
                f"{name:<8}{mode:<22}{r['efficiency']:>11.3f}{r['selected_per_cpu_s']:>16.3g}"
                f"{r['selection_share']:>17.2f}"
            )
        speedup = rows["ONE_LEPTONIC_W"]["selected_per_cpu_s"] / rows["every W pair"]["selected_per_cpu_s"]
        out["processes"][name] = {"modes": rows, "speedup": speedup}
        print(f"{name:<8}{'speed-up':<22}{speedup:>27.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
