"""Objects/s of the object-level response through the columnar path (`add_surrogate_objects` with an
ObjectResponse: efficiency + autoregressive per-object response, keyed noise, jagged output), against the reference
photon detector on the same truth in the same run.

    python benchmarks/bench_object_response.py [--json out.json] [--events 200000] [--threads 2] [--model DIR]

Truth: NanoAOD-like events (run, luminosityBlock, event; ``GenPhoton`` with 0–5 photons, E_T 10 GeV + exponential;
``Pileup.nTrueInt``). ``--model``: a saved ObjectResponse (e.g. the analysis' affine-spline one); without it one is
trained first (reference detector, ``demo`` preset: the per-object flow's speed depends on its size; the distilled
sampler's does not). Either is also distilled into the one-pass student (float32 and bfloat16; at the benchmark's own
training conditions: a speed figure, not a quality one). Each path: best of ``--repeat`` runs, eager (one chunk, what one dask partition
does) and through dask-awkward (``--partitions`` partitions, threaded scheduler). Rates count truth objects in.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from mcsurrogate.response import ObjectResponse, PhotonDetector, SmearingConfig, reconstruct_photons
from mcsurrogate.response.columnar import add_surrogate_objects


def truth_events(n: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n)
    k = int(counts.sum())
    photons = ak.unflatten(
        ak.zip(
            {"pt": 10 + rng.exponential(30, k), "eta": rng.uniform(-2.4, 2.4, k), "phi": rng.uniform(-np.pi, np.pi, k)}
        ),
        counts,
    )
    return ak.zip(
        {
            "GenPhoton": photons,
            "Pileup": ak.zip({"nTrueInt": rng.uniform(0, 40, n).astype(np.float32)}),
            "run": np.ones(n, np.int64),
            "luminosityBlock": np.ones(n, np.int64),
            "event": np.arange(n, dtype=np.int64),
        },
        depth_limit=1,
    )


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--model", help="a saved ObjectResponse directory (else one is trained here)")
    ap.add_argument("--train-events", type=int, default=30_000)
    ap.add_argument("--distill-pairs", type=int, default=300_000)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {
        "machine": platform.platform(),
        "torch_threads": args.threads,
        "events": args.events,
        "paths": {},
    }
    events = truth_events(args.events, seed=2)
    n_objects = int(ak.sum(ak.num(events.GenPhoton)))
    out["objects"] = n_objects
    print(f"{n_objects} truth objects in {args.events} events, torch threads {args.threads}")
    print(f"{'path':<52}{'objects/s':>12}{'× reference':>13}")

    detector = PhotonDetector(SmearingConfig("baseline"))
    truth = ak.zip(
        {"photons": events.GenPhoton, "mu": ak.values_astype(events.Pileup.nTrueInt, np.float64)}, depth_limit=1
    )
    t_ref = best(lambda: reconstruct_photons(truth, detector, seed=1), args.repeat)
    ref_rate = n_objects / t_ref
    out["paths"]["reference detector (reconstruct_photons)"] = {"objects_per_s": ref_rate, "seconds": t_ref}
    print(f"{'reference detector (reconstruct_photons)':<52}{ref_rate:>12.3g}{1.0:>13.2f}")

    train_truth = truth_events(args.train_events, seed=1)
    train = reconstruct_photons(
        ak.zip(
            {"photons": train_truth.GenPhoton, "mu": ak.values_astype(train_truth.Pileup.nTrueInt, np.float64)},
            depth_limit=1,
        ),
        detector,
        seed=3,
    )
    if args.model:
        base = ObjectResponse.load(args.model, device="cpu")
        models = {f"flow of {args.model}": base}
    else:
        t = time.perf_counter()
        base = ObjectResponse.fit(
            train, preset="demo", training={"epochs": 2, "device": "cpu"}, efficiency={"device": "cpu"}
        )
        out["train_seconds"] = time.perf_counter() - t
        models = {"demo flow": base}
    for precision in ("float32", "bfloat16"):
        t = time.perf_counter()
        models[f"distilled 3 × 256 ReLU, {precision}"] = base.distill(
            train, {"pairs": args.distill_pairs, "epochs": 4, "precision": precision}
        )
        out[f"distill_seconds_{precision}"] = time.perf_counter() - t

    for name, model in models.items():
        t_eager = best(lambda m=model: add_surrogate_objects(events, m, seed=1), args.repeat)
        rate = n_objects / t_eager
        out["paths"][f"{name}: eager"] = {
            "objects_per_s": rate,
            "seconds": t_eager,
            "ratio_to_reference": rate / ref_rate,
        }
        print(f"{name + ': eager':<52}{rate:>12.3g}{rate / ref_rate:>13.2f}")
        try:
            import dask
            import dask_awkward as dak

            lazy_events = dak.from_awkward(events, npartitions=args.partitions)

            def run_dask(m: ObjectResponse = model, lazy: Any = lazy_events) -> None:
                with dask.config.set(scheduler="threads", num_workers=args.threads):
                    add_surrogate_objects(lazy, m, seed=1).SmearedPhoton.pt.compute()

            t_dask = best(run_dask, args.repeat)
            rate = n_objects / t_dask
            out["paths"][f"{name}: dask, {args.partitions} partitions"] = {
                "objects_per_s": rate,
                "seconds": t_dask,
                "ratio_to_reference": rate / ref_rate,
            }
            print(f"{name + f': dask ({args.partitions} partitions)':<52}{rate:>12.3g}{rate / ref_rate:>13.2f}")
        except ImportError:  # pragma: no cover - dask is an extra
            pass
    out["target_objects_per_s"] = 1e6
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
