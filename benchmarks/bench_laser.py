"""Latent-space refinement on a small HIGGS-like setup (issue 34): the held-out C2ST of the flow, the reweighted flow
and the refined (unweighted) flow at equal event counts, and the cost of the refinement in events/s.

    python benchmarks/bench_laser.py [--held-out 4000] [--train 8000] [--floor 3000] [--epochs 20] [--json out.json]

t t̄ events of the HIGGS-like benchmark (18 continuous features, Pythia 8 + the benchmark detector, cached in
``--cache`` by :func:`~mcsurrogate.workflows.sample_cache.cached_sample`; generated on the first run, ~50 selected
events/s per process): ``--train`` events train a ``--flow`` surrogate (Gauss-rank preprocessing) for ``--epochs``
epochs, the reweighting is fitted against the same training events (:func:`fit_surrogate_reweighting`, its defaults),
and ``--held-out`` other MC events are compared by the C2ST (boosted trees, one repeat, bootstrap interval) with as
many events of each candidate:

* ``flow``: plain samples;
* ``reweighted``: plain samples (another seed) with the reweighting's weights (Kish efficiency printed);
* ``reweighted_distilled``: the same events weighted with the MLP that the refinement distils from the trees (the
  weights HMC samples: ``refined`` should match this row, and differs from ``reweighted`` by the distillation);
* ``reweighted_unweighted``: the tree-weighted flow as unweighted events (hit-or-miss,
  :func:`~mcsurrogate.event_weights.unweight`, from a pool of plain samples): the refinement's target at the refined
  events' count, the comparison at equal effective size (a weighted row's classifier learns from its Kish-reduced
  statistics, so its AUC is not comparable with an unweighted row's at equal counts);
* ``refined``: :meth:`Reweighting.refine` events, unweighted (HMC diagnostics printed: their ESS is what they are
  worth).

Beside the C2ST, for each candidate (and ``mc_floor``: ``--floor`` further MC events of the cache, what a perfect
generator gives at these sizes):

* **W1 ratios**: the 1-D Wasserstein distance of each of the 18 features to the held-out MC over its MC-vs-MC
  baseline at the comparison's sizes (:func:`~mcsurrogate.validation.divergences.compare_features`, weights included;
  the baseline of a weighted candidate uses its Kish size): max and median over the features, each in the JSON;
* **spurious signal in m_bb**: the signal strength μ̂ ± σ and signed Z fitted
  (:func:`~mcsurrogate.stats.measure_spurious_signal`, template statistics included) when the data are the held-out
  MC's m_bb alone and the background model is the candidate's m_bb histogram (weighted for the reweighted rows) with a
  free normalisation, in the amplification study's bins (25 over 0-500 GeV). The signal is a Gaussian at 125 GeV of
  width ``--mbb-resolution`` × 125 GeV (12 %: a stated choice, no truth-matched H → b b̄ sample is cached; the
  benchmark detector's jet-energy smearing alone gives about 5.5 % for two central 62.5 GeV jets, real b-jet response
  about doubles it); μ = 1 is an excess of ``--signal-excess`` (5 %) of the held-out MC events within ±1 σ of 125 GeV.

Costs: plain sampling events/s, and the refinement's events/s (HMC, warm-up included) and its seconds of weight
distillation. torch uses one thread (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held-out", type=int, default=4000, help="held-out MC events = events per candidate")
    ap.add_argument("--train", type=int, default=8000, help="training MC events")
    ap.add_argument("--flow", default="maf", help="flow family (default: maf)")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--chains", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--thin", type=int, default=25, help="keep every THIN-th draw of each chain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-seed", type=int, default=2024, help="the Pythia run's seed")
    ap.add_argument("--cache", default="cache/higgs_benchmark")
    ap.add_argument(
        "--mlp-only", action="store_true", help="refine with the distilled MLP's weights alone (refine(exact=False))"
    )
    ap.add_argument(
        "--floor",
        type=int,
        default=3000,
        help="further MC events (after the held-out and training ones) for the perfect-generator floor; 0: none",
    )
    ap.add_argument("--mbb-resolution", type=float, default=0.12, help="relative m_bb resolution of the signal")
    ap.add_argument("--signal-excess", type=float, default=0.05, help="mu = 1: this fraction of the MC within ±1 sigma")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from mcsurrogate.amplification import CONTINUOUS_FEATURES
    from mcsurrogate.records import feature_matrix
    from mcsurrogate.workflows.cut_analysis import FIT_VARIABLE
    from mcsurrogate.workflows.refinement_study import higgs_refinement_study
    from mcsurrogate.workflows.sample_cache import cached_sample

    features = list(CONTINUOUS_FEATURES)
    n_held = args.held_out
    n_total = n_held + args.train + args.floor
    events, info = cached_sample("ttbar", n_total, args.sample_seed, Path(args.cache), 1)
    held_out = feature_matrix(events[:n_held], features)
    train = events[n_held : n_held + args.train]
    flow = {"model": args.flow, "blocks": args.blocks, "hidden": args.hidden}
    study = higgs_refinement_study(
        train,
        held_out,
        features=features,
        flow=flow,
        epochs=args.epochs,
        refine={"chains": args.chains, "warmup": args.warmup, "thin": args.thin, "exact": not args.mlp_only},
        floor=feature_matrix(events[n_held + args.train :], features) if args.floor else None,
        mbb_resolution=args.mbb_resolution,
        signal_excess=args.signal_excess,
        seed=args.seed,
        device="cpu",
    )
    candidates, refined, costs, rows, spurious = (
        study.candidates,
        study.refined,
        study.costs,
        study.rows,
        study.spurious,
    )
    print(
        f"trained {args.flow} {args.blocks}x{args.hidden} on {len(train)} events in {study.seconds['train']:.0f} s",
        flush=True,
    )
    if len(candidates["reweighted_unweighted"].events) < n_held:
        print(
            f"note: hit-or-miss kept {len(candidates['reweighted_unweighted'].events)} of {n_held} events", flush=True
        )
    d = refined.hmc
    sample_rate = costs["flow_events_per_second"]
    report = {
        "setup": {
            "samples": str(info.file),
            "held_out_per_class": n_held,
            "training_events": len(train),
            "flow": flow,
            "epochs": args.epochs,
            "chains": args.chains,
            "warmup": args.warmup,
            "thin": args.thin,
            "exact": not args.mlp_only,
            "seed": args.seed,
            "floor_events": len(events) - n_held - args.train if args.floor else 0,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            "torch_threads": torch.get_num_threads(),
        },
        "candidates": rows,
        "spurious_signal_m_bb_gev": spurious,
        "reweighting_fit_seconds": study.seconds["reweighting_fit"],
        "flow_sampling_events_per_second": sample_rate,
        "refinement": refined.to_dict(),
        "refinement_cost_ratio": sample_rate / refined.events_per_second,
    }
    for name, r in rows.items():
        c = r["c2st"]
        print(
            f"C2ST AUC {name:>22}: {c['auc']:.4f} [{c['auc_ci'][0]:.4f}, {c['auc_ci'][1]:.4f}], Kish {r['kish_efficiency']:.3f}"
        )
    for name, r in rows.items():
        w = r["w1_ratio"]
        print(
            f"W1 / MC-vs-MC baseline {name:>22}: max {w['max']:.2f} ({w['max_feature']}), median {w['median']:.2f}, "
            f"{len(w['flagged_features'])} of {len(features)} features above baseline + 3 SD"
        )
    print(
        f"spurious signal in {FIT_VARIABLE}: Gaussian at {spurious['setup']['signal_mass']:g} GeV, sigma "
        f"{spurious['setup']['signal_sigma']:g} GeV, mu = 1 is "
        f"{spurious['setup']['signal_yield']:.1f} events ({spurious['setup']['mu_1_excess']})"
    )
    for name in candidates:
        r = spurious[name]
        print(f"spurious signal {name:>22}: mu = {r['mu']:+.2f} ± {r['sigma']:.2f}, Z = {r['z_signed']:+.2f}")
    a = refined.agreement
    print(
        f"distilled weight vs trees: log-w correlation {a.correlation:.3f}, RMS {a.rms_log_weight:.3f}, "
        f"Kish {a.kish_efficiency_mlp:.3f} vs {a.kish_efficiency_trees:.3f} ({a.seconds:.1f} s)"
    )
    print(
        f"HMC: {d.chains} chains x {d.draws} draws after {d.warmup}, {d.leapfrog_steps} leapfrog steps of "
        f"{d.step_size:.3f}, acceptance {d.acceptance_rate:.2f} (integrator {d.integrator_acceptance_rate:.2f}), "
        f"{d.divergences} divergences, min ESS {d.ess_min:.0f} (second moment {min(d.ess_second_moment):.0f}) for "
        f"{len(refined.events)} events, max R-hat {d.rhat_max:.3f}; "
        f"ESS of the tree log-weight {refined.ess_log_weight or float('nan'):.0f}"
    )
    print(
        f"cost: refined {refined.events_per_second:.3g} events/s vs plain sampling {sample_rate:.3g} events/s "
        f"({report['refinement_cost_ratio']:.3g}x slower)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, allow_nan=False))


if __name__ == "__main__":
    main()
