"""ELSA's refinement compared on two tasks (issue 34): a surrogate's plain events, the same reweighted by classifier
weights, the reweighted events made unweighted by hit-or-miss (the comparison at equal effective size), and LASER's
refined unweighted events (Hamiltonian Monte Carlo in the flow's latent space), against held-out MC.

    python analyses/laser_refinement/run.py --out analyses/laser_refinement/results [--tasks higgs,response] [--small]

* ``higgs``: the HIGGS-like benchmark's 18 features (t t̄, Pythia 8 + the benchmark detector, from ``--cache``;
  generated on the first run): a MAF (Gauss-rank preprocessing) on ``--higgs-train`` events, its reweighting fitted
  on the same events, ``--higgs-held-out`` other MC events compared with as many events of each candidate; the
  spurious signal in m_bb (a Gaussian at 125 GeV of width 12 % × 125 GeV, μ = 1 an excess of 5 % of the MC under
  the peak).
* ``response``: paper A's asymmetric-tail scenario (the packaged gg → H truth, the reference smearing with a 16 %
  tail): a response surrogate (``--preset``) for each of ``--epochs`` on 80 % of the truth events, the reweighting on the
  training responses + truth (conditional: w(Δ | truth)), and on the held-out 10 % one event of each candidate per
  truth event (LASER: one HMC chain per truth event); the tail fractions below the reference's core mean − 2 σ_core,
  the C2ST over responses + truth and the W1 ratios of the six responses.

Writes ``report.json`` (every number) and ``report.md`` (the tables). torch uses ``--threads`` threads (1 on a shared
machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcsurrogate import __version__
from mcsurrogate.files import atomic_write_text


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports/laser_refinement"))
    ap.add_argument("--tasks", default="higgs,response")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--thin", type=int, default=25, help="HMC iterations between kept draws (per row: conditional)")
    ap.add_argument("--chains", type=int, default=512, help="HMC chains run together")
    ap.add_argument("--cache", type=Path, default=Path("cache/higgs_benchmark"))
    ap.add_argument("--sample-seed", type=int, default=2024, help="the HIGGS-like Pythia run's seed")
    ap.add_argument("--higgs-train", type=int, default=11000)
    ap.add_argument("--higgs-held-out", type=int, default=4000)
    ap.add_argument("--higgs-epochs", type=int, default=20)
    ap.add_argument("--events", type=int, default=200_000, help="response task: truth events (packaged sample)")
    ap.add_argument("--preset", default="affine-spline", help="response task: the response surrogate's preset")
    ap.add_argument(
        "--epochs",
        default="1,8",
        help="response task: training epochs, one model for each of a comma-separated list (default 1,8: a model the "
        "reweighting has something to correct, and one it has not)",
    )
    ap.add_argument("--small", action="store_true", help="a few-minute check of the whole chain")
    return ap.parse_args()


def higgs_task(args: argparse.Namespace) -> dict[str, Any]:
    from mcsurrogate.amplification import CONTINUOUS_FEATURES
    from mcsurrogate.records import feature_matrix
    from mcsurrogate.workflows.refinement_study import higgs_refinement_study
    from mcsurrogate.workflows.sample_cache import cached_sample

    features = list(CONTINUOUS_FEATURES)
    n_held = args.higgs_held_out
    events, info = cached_sample("ttbar", n_held + args.higgs_train, args.sample_seed, args.cache, 1)
    train = events[n_held:]
    flow = {"model": "maf", "blocks": 4, "hidden": 64}
    study = higgs_refinement_study(
        train,
        feature_matrix(events[:n_held], features),
        features=features,
        flow=flow,
        epochs=args.higgs_epochs,
        refine={"chains": args.chains, "thin": args.thin},
        seed=args.seed,
        device="cpu",
    )
    costs = study.costs
    return {
        "setup": {
            "samples": str(info.file),
            "features": features,
            "held_out_per_class": n_held,
            "training_events": len(train),
            "flow": flow,
            "epochs": args.higgs_epochs,
            "reweighting_kish_efficiency_at_fit": study.reweighting.kish_efficiency,
        },
        "candidates": study.rows,
        "spurious_signal_m_bb_gev": study.spurious,
        "refinement": study.refined.to_dict(),
        "costs": costs
        | {"refinement_cost_ratio": costs["flow_events_per_second"] / costs["refined_events_per_second"]},
        "seconds": study.seconds,
    }


def response_task(args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.records import feature_matrix
    from mcsurrogate.refinement import fit_surrogate_reweighting
    from mcsurrogate.response.smearing import smear_photons
    from mcsurrogate.response.study import SCENARIOS
    from mcsurrogate.response.surrogate import DEFAULT_LAYOUT, response_table, train_response
    from mcsurrogate.training import split_indices
    from mcsurrogate.workflows.refinement_study import (
        compare_candidates,
        refinement_candidates,
        tail_fractions,
    )

    truth = load_default_truth()[: args.events]
    smeared = smear_photons(truth, SCENARIOS["asymmetric"], seed=args.seed + 100)
    split = split_indices(len(smeared), (0.8, 0.1, 0.1), args.seed)
    t = time.perf_counter()
    model = train_response(
        smeared[split.train],
        args.preset,
        training={"epochs": epochs, "seed": args.seed},
        validation=smeared[split.validation],
        progress=False,
    )
    seconds = {"train": time.perf_counter() - t}
    targets, conditions = list(model.targets), list(model.conditions)
    features = targets + conditions
    table_train = response_table(smeared[split.train], DEFAULT_LAYOUT)
    t = time.perf_counter()
    rw = fit_surrogate_reweighting(model, table_train, seed=args.seed + 1)
    seconds["reweighting_fit"] = time.perf_counter() - t
    test = feature_matrix(response_table(smeared[split.test], DEFAULT_LAYOUT), features)
    t = time.perf_counter()
    candidates, refined, costs = refinement_candidates(
        model,
        rw,
        conditions=test[:, len(targets) :],
        seed=args.seed,
        refine={"chains": args.chains, "thin": args.thin},
    )
    seconds["candidates"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = compare_candidates(test, candidates, features, seed=args.seed, w1_features=targets)
    seconds["compare"] = time.perf_counter() - t
    tails = tail_fractions(test, candidates, targets)
    return {
        "setup": {
            "scenario": "asymmetric",
            "truth_events": len(truth),
            "test_events": len(test),
            "preset": args.preset,
            "epochs": epochs,
            "targets": targets,
            "conditions": conditions,
            "reweighting_kish_efficiency_at_fit": rw.kish_efficiency,
        },
        "candidates": rows,
        "tail_fractions": tails,
        "refinement": refined.to_dict(),
        "costs": costs
        | {"refinement_cost_ratio": costs["flow_events_per_second"] / costs["refined_events_per_second"]},
        "seconds": seconds,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# LASER and reweighting compared (analyses/laser_refinement/run.py)", ""]
    for task, r in report["tasks"].items():
        lines += [
            f"## {task}",
            "",
            "| candidate | events | Kish eff. | C2ST AUC [95 % interval] | W1/baseline max (feature), median |",
            "|---|---|---|---|---|",
        ]
        for name, row in r["candidates"].items():
            c, w = row["c2st"], row["w1_ratio"]
            lines.append(
                f"| {name} | {row['events']} | {row['kish_efficiency']:.3f} | {c['auc']:.4f} "
                f"[{c['auc_ci'][0]:.4f}, {c['auc_ci'][1]:.4f}] | {w['max']:.2f} ({w['max_feature']}), {w['median']:.2f} |"
            )
        h = r["refinement"]["hmc"]
        lines += [
            "",
            (
                f"Refinement: {r['costs']['refined_events_per_second']:.3g} refined events/s vs "
                f"{r['costs']['flow_events_per_second']:.3g} plain ({r['costs']['refinement_cost_ratio']:.3g}× the cost); "
                f"HMC acceptance {h['acceptance_rate']:.2f}, {h['leapfrog_steps']} leapfrog steps of {h['step_size']:.3f}, "
                f"{h['divergences']} divergences, max R-hat {h['rhat_max']:.3f}."
            ),
            "",
        ]
        if "tail_fractions" in r:
            cols = r["tail_fractions"]["columns"]
            names = [k for k in next(iter(cols.values())) if k not in ("cut", "reference")]
            lines += [
                "Fraction below the reference's core mean − 2 σ_core, ratio to the reference (± its error):",
                "",
                "| response | reference | " + " | ".join(names) + " |",
                "|---|---|" + "---|" * len(names),
            ]
            for col, t in cols.items():
                cells = [
                    f"{t[k]['ratio_to_reference']:.3f} ± {t[k]['ratio_error']:.3f}"
                    if t[k]["ratio_error"] is not None
                    else "–"
                    for k in names
                ]
                ref = t["reference"]
                lines.append(f"| {col} | {ref['fraction']:.4f} ± {ref['error']:.4f} | " + " | ".join(cells) + " |")
            lines.append("")
        if "spurious_signal_m_bb_gev" in r:
            s = r["spurious_signal_m_bb_gev"]
            lines += ["Spurious signal in m_bb (μ̂ ± σ, signed Z):", ""]
            lines += [
                f"- {k}: {v['mu']:+.2f} ± {v['sigma']:.2f}, Z = {v['z_signed']:+.2f}"
                for k, v in s.items()
                if k != "setup"
            ]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    if args.small:
        args.events, args.epochs, args.preset = 20_000, "2", "demo"
        args.higgs_train, args.higgs_held_out, args.higgs_epochs = 3000, 1000, 3
    t_start = time.perf_counter()
    chosen = args.tasks.split(",")
    unknown = sorted(set(chosen) - {"higgs", "response"})
    if unknown:
        raise SystemExit(f"--tasks: unknown {unknown}; choose among higgs, response")
    runs: dict[str, Callable[[], dict[str, Any]]] = {}
    if "higgs" in chosen:
        runs["higgs"] = lambda: higgs_task(args)
    if "response" in chosen:
        for e in (int(v) for v in args.epochs.split(",")):
            runs[f"response_{e}_epochs"] = lambda e=e: response_task(args, e)
    report: dict[str, Any] = {"tasks": {}}
    for name, run in runs.items():
        print(f"[{time.perf_counter() - t_start:7.0f} s] task {name}", flush=True)
        report["tasks"][name] = run()
        for cand, row in report["tasks"][name]["candidates"].items():
            c = row["c2st"]
            print(f"    {cand:>22}: C2ST {c['auc']:.4f} [{c['auc_ci'][0]:.4f}, {c['auc_ci'][1]:.4f}]", flush=True)
    report["meta"] = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": {
            "mcsurrogate": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "wall_seconds": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
    atomic_write_text(args.out / "report.md", markdown(report))
    print(f"wrote {args.out} in {report['meta']['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
