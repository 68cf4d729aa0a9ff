"""How the efficiency classifier trained on gg → H carries over to tt̄H truth, per feature set and network seed (and
HistGradientBoosting): the numbers behind the results README's note on process generalisation.

    nice -n 10 python analyses/object_response/efficiency_generalisation.py --out analyses/object_response/results

Reads the truth samples `run.py` cached (same names, same seeds); writes ``efficiency_generalisation.json``
(``efficiency_generalisation_companions0.3.json`` with ``--companions 0.3``, ``…0.3x3.json`` with
``--companion-rounds 3`` as well, ``…_passes48.json`` with ``--passes 48``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mcsurrogate.response import PhotonDetector
from mcsurrogate.response.object_study import EFFICIENCY_FEATURE_SETS, efficiency_generalisation, load_study_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("analyses/object_response/results"))
    ap.add_argument("--cache", type=Path, default=Path("cache/object_response"))
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--other-events", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--companions", type=float, default=0.0, help="as run.py's (training-sample design)")
    ap.add_argument("--companion-rounds", type=int, default=1, help="as run.py's")
    ap.add_argument("--passes", type=int, default=16, help="detector passes over the training truth")
    ap.add_argument("--seeds", default="1,2,3,4", help="network seeds, comma-separated")
    ap.add_argument("--feature-sets", default="all,without n_objects", help="of: all, without n_objects")
    args = ap.parse_args()
    sets = args.feature_sets.split(",")
    if not sets or not set(sets) <= set(EFFICIENCY_FEATURE_SETS):
        ap.error(f"--feature-sets: choose among {list(EFFICIENCY_FEATURE_SETS)}, got {sets}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ggh, tth, _ = load_study_truth(args.cache, args.events, args.other_events, seed=args.seed)
    result = efficiency_generalisation(
        ggh,
        tth,
        PhotonDetector(),
        efficiency={"batch_size": 4096, "epochs": 8},
        companions=args.companions,
        companion_rounds=args.companion_rounds,
        passes=args.passes,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        feature_sets={k: EFFICIENCY_FEATURE_SETS[k] for k in sets},
        seed=args.seed,
    )
    result["wall_seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    name = (
        "efficiency_generalisation"
        + (f"_companions{args.companions:g}" if args.companions else "")
        + (f"x{args.companion_rounds}" if args.companions and args.companion_rounds > 1 else "")
        + (f"_passes{args.passes}" if args.passes != 16 else "")
        + ".json"
    )
    (args.out / name).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    for name, per_seed in result["mlp"].items():
        print(name, {k: round(v["chi2_per_bin"], 2) for k, v in per_seed.items()})
    print(
        "HGB",
        round(result["hist_gradient_boosting"]["chi2_per_bin"], 2),
        "floor",
        round(result["reference_epsilon"]["chi2_per_bin"], 2),
    )


if __name__ == "__main__":
    main()
