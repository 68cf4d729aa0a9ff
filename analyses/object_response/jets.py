"""Object-level detector response for jets (issue 31), end to end: generator-level jets of semileptonic t t̄ (Pythia 8,
FastJet anti-k_t 0.4, p_T > 20 GeV, with flavour and μ), the HIGGS-like benchmark's parametric jet detector (p_T scale,
b-tag, efficiency 70–98 %) as the reference, an ObjectResponse trained on its matched truth–reco jets, and the
comparison on held-out t t̄ and on the benchmark's signal process (never trained on).

    nice -n 10 python analyses/object_response/jets.py --out analyses/object_response/results/jets [--small]

Everything is :mod:`mcsurrogate.response.jet_study`: `load_or_generate_truth_jets`, `run_jet_study`, `write_jet_report`.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import awkward as ak
import numpy as np
import torch

from mcsurrogate import __version__
from mcsurrogate.response.jet_study import load_or_generate_truth_jets, run_jet_study, write_jet_report


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("analyses/object_response/results/jets"))
    ap.add_argument("--cache", type=Path, default=Path("cache/object_response"), help="generated truth is kept here")
    ap.add_argument("--events", type=int, default=50_000, help="t t̄ truth events (80 %% train, 20 %% test)")
    ap.add_argument("--other-events", type=int, default=20_000, help="signal truth events (generalisation)")
    ap.add_argument("--epochs", type=int, default=2, help="flow epochs")
    ap.add_argument("--train-passes", type=int, default=16, help="reference-detector passes over the training truth")
    ap.add_argument("--efficiency-passes", type=int, default=32, help="… for the efficiency classifier")
    ap.add_argument("--oversample", type=int, default=6, help="detector passes over each test truth event, each side")
    ap.add_argument("--efficiency-epochs", type=int, default=8, help="epochs of the efficiency classifier")
    ap.add_argument("--preset", default="affine-spline", help="ObjectResponse preset (affine-spline or demo)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--workers", type=int, default=1, help="Pythia processes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="a few-minute check: 3000 events, demo flow")
    return ap.parse_args()


def main() -> None:
    args = parse()
    # a line per epoch of every network (flow, efficiency, tags) in the batch log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    if args.small:
        args.events, args.other_events, args.epochs, args.preset = 3_000, 1_000, 1, "demo"
        args.train_passes, args.efficiency_passes = 2, 4
    samples = {}
    truth = {}
    for name, process, n, seed in (
        ("ttbar", "ttbar", args.events, args.seed),
        ("signal", "signal", args.other_events, args.seed + 1),
    ):
        path = args.cache / f"{process}_truth_jets_n{n}_seed{seed}.parquet"
        truth[name], samples[name] = load_or_generate_truth_jets(
            path, n, seed=seed, process=process, n_workers=args.workers
        )
        print(f"[{time.perf_counter() - t_start:7.0f} s] {name}: {samples[name]}", flush=True)
    result = run_jet_study(
        truth["ttbar"],
        {"signal": truth["signal"]},
        train_passes=args.train_passes,
        efficiency_passes=args.efficiency_passes,
        oversample=args.oversample,
        preset=args.preset,
        training={"epochs": args.epochs},
        efficiency={"batch_size": 4096, "epochs": args.efficiency_epochs},
        seed=args.seed,
        progress=False,
    )
    print(f"[{time.perf_counter() - t_start:7.0f} s] {result.evaluation.headline()}", flush=True)
    meta = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "seeds": {"truth ttbar": args.seed, "truth signal": args.seed + 1, "study": args.seed},
        "versions": {
            "mcsurrogate": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "awkward": ak.__version__,
            "pythia8": _version("pythia8mc"),
            "fastjet": _version("fastjet"),
        },
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{args.threads} (load average {os.getloadavg()[0]:.1f} at the end)",
        "wall_seconds": time.perf_counter() - t_start,
        "cpu_seconds_this_process": time.process_time(),
        "samples": samples,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    write_jet_report(result, args.out, meta)
    print(f"wrote {args.out} in {meta['wall_seconds'] / 60:.1f} min")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # provenance only
        return "unknown"


if __name__ == "__main__":
    main()
