"""Weighted Monte Carlo end to end (issue 29): train a flow on Pythia 8's biased, weighted H(→ γγ) + jet sample and
compare it with a flow trained on an unweighted sample of the same Kish effective size, against unbiased MC.

    nice -n 10 python analyses/weighted_mc/run.py --out analyses/weighted_mc/results [--cache DIR] [--small]

The workflow is :mod:`mcsurrogate.workflows.weighted_mc` (its docstring says what is generated, trained and
compared); this script parses the sizes and seeds (``--seeds``: the whole study, samples and flows, once per seed;
the bars are judged on the seeds' means), runs it on one core (``--threads``: torch and the C2ST's OpenMP), prints
the comparison and writes ``report.json``, ``pt_gg.png``, ``summary.png`` and ``README.md`` (command, seeds,
versions, machine, wall time) into ``--out``. ``--small``: a smoke run of a few minutes (3 000-event samples,
3 epochs). Pythia samples are cached in ``--cache`` (default ``cache/weighted_mc``) and re-used by a run with the
same sizes and seeds.
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

import torch
from threadpoolctl import threadpool_limits

from mcsurrogate import __version__
from mcsurrogate.errors import sigterm_raises
from mcsurrogate.workflows.weighted_mc import WeightedMCConfig, run_weighted_mc, write_readme


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = WeightedMCConfig()
    ap.add_argument("--out", type=Path, default=Path("analyses/weighted_mc/results"))
    ap.add_argument("--cache", type=Path, default=Path("cache/weighted_mc"), help="where the Pythia samples are kept")
    ap.add_argument("--n-biased", type=int, default=defaults.n_biased, help="events of the biased, weighted sample")
    ap.add_argument("--n-reference", type=int, default=defaults.n_reference, help="unbiased reference events")
    ap.add_argument(
        "--n-tail-reference", type=int, default=defaults.n_tail_reference, help="biased events of the tail reference"
    )
    ap.add_argument("--n-generated", type=int, default=defaults.n_generated, help="events generated per flow")
    ap.add_argument("--bias-power", type=float, default=defaults.bias_power, help="the p̂_T bias power")
    ap.add_argument("--tail-pt", type=float, default=defaults.tail_pt, help="start of the p_T^γγ tail (GeV)")
    ap.add_argument("--epochs", type=int, default=defaults.training["epochs"], help="epochs of the weighted flow")
    ap.add_argument(
        "--seeds",
        type=_seeds,
        default=(0, 10, 20),
        help="comma-separated study seeds, 4 or more apart: each takes Pythia seeds s … s+3 (default: 0,10,20)",
    )
    ap.add_argument("--workers", type=int, default=defaults.workers, help="Pythia processes")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenMP threads (1: the machine is shared)")
    ap.add_argument("--small", action="store_true", help="3 000-event samples and 3 epochs: a smoke run")
    return ap.parse_args(argv)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.small:
        args.n_biased = args.n_reference = args.n_tail_reference = 3_000
        args.n_generated, args.epochs = 10_000, 3
    defaults = WeightedMCConfig()
    config = WeightedMCConfig(
        n_biased=args.n_biased,
        n_reference=args.n_reference,
        n_tail_reference=args.n_tail_reference,
        n_generated=args.n_generated,
        bias_power=args.bias_power,
        tail_pt=args.tail_pt,
        training=defaults.training | {"epochs": args.epochs},
        workers=args.workers,
    )
    seeds = args.seeds
    with sigterm_raises():
        report = run_weighted_mc(config, args.out, args.cache, seeds=seeds)
    meta = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "versions": {
            "mcsurrogate": __version__,
            "python": platform.python_version(),
            **{p: _version(p) for p in ("torch", "nflows", "numpy", "scikit-learn", "pythia8mc")},
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s), {args.workers} Pythia "
        f"process(es); shared with other jobs (load average {os.getloadavg()[0]:.1f} at the end)",
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }
    write_readme(report, args.out, meta)
    print(f"\n{'seed':<6}{'flow':<18}{'C2ST AUC':>10}{'W1 tail [GeV]':>15}{'chi2/ndf tail':>15}{'tail fraction':>15}")
    for seed, run in report["runs"].items():
        for name, row in run["comparison"]["rows"].items():
            auc = f"{row['c2st_auc']:.4f}" if "c2st_auc" in row else "-"
            print(
                f"{seed:<6}{name:<18}{auc:>10}{row['w1_tail_gev']:>15.2f}{row['chi2'] / row['chi2_ndf']:>15.2f}"
                f"{row['tail_fraction']:>15.4f}"
            )
    summary = report["summary"]
    difference = summary["c2st_auc_difference"]
    print(
        f"mean C2ST AUC weighted − matched = {difference['mean']:+.4f} over {len(seeds)} seeds (bar ≤ 0.01: "
        f"{'met' if summary['bar_c2st_within_0.01'] else 'not met'}); mean tail W1 weighted / matched "
        f"{summary['weighted']['w1_tail_gev']['mean']:.2f} / {summary['matched']['w1_tail_gev']['mean']:.2f} GeV, "
        f"χ² {summary['weighted']['chi2']['mean']:.1f} / {summary['matched']['chi2']['mean']:.1f}; "
        f"{meta['wall_seconds'] / 60:.1f} min wall, {meta['cpu_seconds'] / 60:.1f} min CPU"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
