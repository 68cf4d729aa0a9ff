"""The statistical floor of the object study's bars: what a perfect surrogate scores, draw after draw.

    nice -n 10 python analyses/object_response/statistical_floor.py --out analyses/object_response/results

For the baseline and ρ = 1.0 scenarios, on held-out gg → H truth and on tt̄H truth (the samples `run.py` cached, its
test split): ``--draws`` times the reference detector (6 passes) against an independent set of 6 passes of its own,
evaluated as `run.py` evaluates the surrogate (`object_study.statistical_floor`). Writes ``statistical_floor.json``:
each draw's headline numbers and, per bar, how many draws meet it. The issue's width bar (ratios 0.98–1.02 in the
bins measured to 1 %) is the one this shows to be below the floor.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mcsurrogate.response import PhotonDetector, SmearingConfig
from mcsurrogate.response.object_study import load_study_truth, split_study_events, statistical_floor

SCENARIOS = {"baseline": SmearingConfig("baseline"), "rho1.0": SmearingConfig("correlation", rho=1.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("analyses/object_response/results"))
    ap.add_argument("--cache", type=Path, default=Path("cache/object_response"))
    ap.add_argument("--events", type=int, default=100_000, help="as run.py's (its 20 %% test split is used)")
    ap.add_argument("--other-events", type=int, default=20_000)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ggh, tth, _ = load_study_truth(args.cache, args.events, args.other_events, seed=args.seed)
    samples = {"test": split_study_events(ggh, seed=args.seed)[1], "ttH": tth}  # run.py's held-out split
    result: dict[str, object] = {"draws": args.draws, "seed": args.seed, "floors": {}}
    for name, smearing in SCENARIOS.items():
        for sample, truth in samples.items():
            floor = statistical_floor(truth, PhotonDetector(smearing), draws=args.draws, seed=args.seed)
            result["floors"][f"{name}/{sample}"] = floor  # type: ignore[index]
            print(f"{name}/{sample}: draws meeting each bar {floor['met']}; χ²/bin ranges {floor['range']}", flush=True)
    result["wall_seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "statistical_floor.json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.out / 'statistical_floor.json'} in {result['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
