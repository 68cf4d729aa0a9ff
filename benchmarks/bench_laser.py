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
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats


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

    from mcsurrogate import Surrogate
    from mcsurrogate.amplification import CONTINUOUS_FEATURES
    from mcsurrogate.event_weights import unweight
    from mcsurrogate.records import feature_matrix
    from mcsurrogate.refinement import fit_surrogate_reweighting
    from mcsurrogate.stats import fill_template, measure_spurious_signal
    from mcsurrogate.stats.templates import gaussian_template
    from mcsurrogate.validation.c2st import c2st, minimum_permutations
    from mcsurrogate.validation.divergences import compare_features
    from mcsurrogate.workflows.cut_analysis import FIT_VARIABLE, fit_edges
    from mcsurrogate.workflows.sample_cache import cached_sample

    features = list(CONTINUOUS_FEATURES)
    n_held = args.held_out
    n_total = n_held + args.train + args.floor
    events, info = cached_sample("ttbar", n_total, args.sample_seed, Path(args.cache), 1)
    held_out = feature_matrix(events[:n_held], features)
    train = events[n_held : n_held + args.train]
    floor = feature_matrix(events[n_held + args.train :], features) if args.floor else None
    flow = {"model": args.flow, "blocks": args.blocks, "hidden": args.hidden}
    training = {"epochs": args.epochs, "batch_size": 512, "patience": None, "seed": args.seed, "device": "cpu"}
    model = Surrogate(features, flow=flow, preprocessing="gauss-rank", training=training)
    t = time.perf_counter()
    model.fit(train, progress=False)
    train_s = time.perf_counter() - t
    print(f"trained {args.flow} {args.blocks}x{args.hidden} on {len(train)} events in {train_s:.0f} s", flush=True)

    t = time.perf_counter()
    rw = fit_surrogate_reweighting(model, train, seed=args.seed + 1)
    rw_s = time.perf_counter() - t
    t = time.perf_counter()
    plain = model.sample_array(n_held, seed=args.seed + 2)
    sample_rate = n_held / (time.perf_counter() - t)
    other = model.sample_array(n_held, seed=args.seed + 3)
    w = rw.weights(other)
    kish = float(w.sum() ** 2 / (w**2).sum() / len(w))
    refined = rw.refine(
        model,
        n_held,
        seed=args.seed + 4,
        chains=args.chains,
        warmup=args.warmup,
        thin=args.thin,
        exact=not args.mlp_only,
    )
    x_refined = feature_matrix(refined.events, features)

    def test(candidate: np.ndarray, weights: np.ndarray | None = None) -> dict[str, Any]:
        r = c2st(
            held_out,
            candidate,
            weights_candidate=weights,
            n_permutations=minimum_permutations(0.05),
            n_repeats=1,
            n_bootstrap=50,
            seed=args.seed,
        )
        return {"auc": float(r.auc), "auc_ci": [float(r.auc_ci[0]), float(r.auc_ci[1])], "p_value": float(r.p_value)}

    w_mlp = refined.distilled_weights(other)
    # the tree-weighted flow as unweighted events (hit-or-miss): the refinement's target at the refined events' count,
    # a comparison at equal effective size (the weighted rows' classifiers learn from their Kish-reduced statistics)
    w_max = rw.clip / rw.normalisation  # the largest weight the clipped ratio can give
    pool = model.sample_array(math.ceil(1.3 * n_held * w_max / w.mean()), seed=args.seed + 5)
    kept = unweight(rw.weights(pool), seed=args.seed + 6)
    unweighted = pool[kept[:n_held]]
    if len(unweighted) < n_held:
        print(f"note: hit-or-miss kept {len(unweighted)} of the {n_held} events asked for", flush=True)
    results = {
        "flow": test(plain),
        "reweighted": test(other, w),
        "reweighted_distilled": test(other, w_mlp),
        "reweighted_unweighted": test(unweighted),
        "refined": test(x_refined),
    }
    if floor is not None:
        results["mc_floor"] = test(floor)

    # the candidates as (events, weights): W1 ratios and the spurious signal of each
    candidates: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "flow": (plain, None),
        "reweighted": (other, w),
        "reweighted_distilled": (other, w_mlp),
        "reweighted_unweighted": (unweighted, None),
        "refined": (x_refined, None),
    }
    if floor is not None:
        candidates["mc_floor"] = (floor, None)
    w1: dict[str, dict[str, Any]] = {}
    for name, (x, wx) in candidates.items():
        divergences = compare_features(held_out, x, features, weights_candidate=wx, seed=args.seed)
        ratios = {f: fd.w1_ratio for f, fd in divergences.items()}
        worst = max(ratios, key=ratios.__getitem__)
        w1[name] = {
            "max": ratios[worst],
            "max_feature": worst,
            "median": float(np.median(list(ratios.values()))),
            "flagged_features": [f for f, fd in divergences.items() if fd.flagged],
            "by_feature": ratios,
            "w1_by_feature": {f: fd.values["wasserstein"] for f, fd in divergences.items()},
            "baseline_by_feature": {f: fd.baseline_mean["wasserstein"] for f, fd in divergences.items()},
        }

    col = features.index(FIT_VARIABLE)
    edges = fit_edges()
    m_mc = held_out[:, col]
    mass, width = 125.0, args.mbb_resolution * 125.0
    under_peak = int(np.sum(np.abs(m_mc - mass) < width))
    signal_yield = args.signal_excess * under_peak / (2 * stats.norm.cdf(1.0) - 1)
    signal = gaussian_template(edges, mean=mass, sigma=width, total=signal_yield)
    mc_hist = fill_template(m_mc, bins=edges)
    spurious: dict[str, Any] = {
        "setup": {
            "variable": FIT_VARIABLE,
            "range_gev": [float(edges[0]), float(edges[-1])],
            "bins": len(edges) - 1,
            "signal_mass_gev": mass,
            "signal_sigma_gev": width,
            "signal_yield": signal_yield,
            "mu_1_excess": f"{args.signal_excess:g} of the {under_peak} held-out MC events within ±1 sigma",
            "data_events": n_held,
        }
    }
    for name, (x, wx) in candidates.items():
        generated = fill_template(x[:, col], bins=edges, weights=wx)
        spurious[name] = measure_spurious_signal(signal, generated, mc_hist).to_dict()

    d = refined.hmc
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
            "floor_events": 0 if floor is None else len(floor),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            "torch_threads": torch.get_num_threads(),
        },
        "c2st": results,
        "w1_ratio": w1,
        "spurious_signal": spurious,
        "kish_efficiency_reweighted": kish,
        "kish_efficiency_reweighted_distilled": float(w_mlp.sum() ** 2 / (w_mlp**2).sum() / len(w_mlp)),
        "reweighting_fit_seconds": rw_s,
        "flow_sampling_events_per_second": sample_rate,
        "refinement": refined.to_dict(),
        "refinement_cost_ratio": sample_rate / refined.events_per_second,
    }
    for name, r in results.items():
        print(f"C2ST AUC {name:>20}: {r['auc']:.4f} [{r['auc_ci'][0]:.4f}, {r['auc_ci'][1]:.4f}]")
    for name, r in w1.items():
        print(
            f"W1 / MC-vs-MC baseline {name:>20}: max {r['max']:.2f} ({r['max_feature']}), median {r['median']:.2f}, "
            f"{len(r['flagged_features'])} of {len(features)} features above baseline + 3 SD"
        )
    print(
        f"spurious signal in {FIT_VARIABLE}: Gaussian at {mass:g} GeV, sigma {width:g} GeV, mu = 1 is "
        f"{signal_yield:.1f} events ({args.signal_excess:g} of the {under_peak} MC events within ±1 sigma)"
    )
    for name in candidates:
        r = spurious[name]
        print(f"spurious signal {name:>20}: mu = {r['mu']:+.2f} ± {r['sigma']:.2f}, Z = {r['z_signed']:+.2f}")
    a = refined.agreement
    print(
        f"reweighted Kish efficiency {kish:.3f}; distilled weight vs trees: log-w correlation {a.correlation:.3f}, "
        f"RMS {a.rms_log_weight:.3f}, Kish {a.kish_efficiency_mlp:.3f} vs {a.kish_efficiency_trees:.3f} "
        f"({a.seconds:.1f} s)"
    )
    print(
        f"HMC: {d.chains} chains x {d.draws} draws after {d.warmup}, {d.leapfrog_steps} leapfrog steps of "
        f"{d.step_size:.3f}, acceptance {d.acceptance_rate:.2f} (integrator {d.integrator_acceptance_rate:.2f}), {d.divergences} divergences, min ESS {d.ess_min:.0f} "
        f"(second moment {min(d.ess_second_moment):.0f}) for {len(refined.events)} events, max R-hat {d.rhat_max:.3f}; "
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
