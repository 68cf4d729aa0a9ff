"""Objects/s of the object-level response through the columnar path (`add_surrogate_objects` with an
ObjectResponse: efficiency + autoregressive per-object response, keyed noise, jagged output), against the reference
photon detector on the same truth in the same run, and where the time goes.

    python benchmarks/bench_object_response.py [--json out.json] [--events 200000] [--threads 2] [--model DIR]

Truth: NanoAOD-like events (run, luminosityBlock, event; ``GenPhoton`` with 0–5 photons, E_T 10 GeV + exponential;
``Pileup.nTrueInt``). ``--model``: a saved ObjectResponse (e.g. the analysis' affine-spline one); without it one is
trained first (reference detector, ``demo`` preset: the per-object flow's speed depends on its size; the distilled
sampler's does not). Either is also distilled into the one-pass student (float32 and bfloat16; at the benchmark's own
training conditions: a speed figure, not a quality one). Each path: best of ``--repeat`` runs, eager with one torch
thread and with ``--threads``, and through dask-awkward (``--partitions`` partitions, threaded scheduler with
``--threads`` workers, one torch thread each). Rates count truth objects in.

The machine may be shared: beside each wall time the CPU seconds of this process (all its threads) are printed, and
``objects per CPU-second`` is what an idle core would give; the load average is recorded before and after. The
breakdown (CPU seconds, one thread) splits one eager call into truth bookkeeping (ranking, ΔR to the nearest object),
keyed noise, the efficiency classifier, the response flow (rank by rank; of it, the pull scale σ̂ of the
reconstructed objects before their event's last and the width calibration's factor of every reconstructed object
are also timed alone) and building the jagged reco collection.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
from scipy.special import ndtri

from mcsurrogate.response import ObjectResponse, PhotonDetector, SmearingConfig, reconstruct_photons
from mcsurrogate.response.columnar import add_surrogate_objects, event_uniforms
from mcsurrogate.response.objects import TruthObjects


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


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeat`` calls (CPU: this process, all threads)."""
    runs = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    return min(runs)


def breakdown(events: ak.Array, model: ObjectResponse, repeat: int) -> dict[str, float]:
    """CPU seconds of the stages of one eager ``add_surrogate_objects`` call (one torch thread; best of ``repeat``)."""
    objects = events.GenPhoton
    mu = ak.to_numpy(events.Pileup.nTrueInt).astype(np.float64)
    t = TruthObjects.from_events(objects, mu, model.layout.dr_cap)
    ids = [
        ak.to_numpy(events[k]).astype(np.int64).view(np.uint64)[t.event] for k in ("run", "luminosityBlock", "event")
    ]

    def noise() -> tuple[np.ndarray, np.ndarray]:
        u = event_uniforms(np.stack([*ids, t.rank.astype(np.uint64)], axis=1), 1 + model.response.noise_features, 1)
        return u[:, 0], ndtri(u[:, 1:]).astype(np.float32)

    u, z = noise()
    x = t.efficiency_features(model.efficiency.features)
    found, delta = model.sample_flat(t, u, z)
    feeds = found & t.feeds_later
    stages = {
        "truth bookkeeping (TruthObjects.from_events)": lambda: TruthObjects.from_events(objects, mu, 5.0),
        "keyed noise (event_uniforms, ndtri)": noise,
        "efficiency classifier": lambda: model.efficiency.probability(x),
        "efficiency + response flow (sample_flat)": lambda: model.sample_flat(t, u, z),
        "pull scale σ̂ of the objects before their event's last (part of sample_flat)": lambda: model.scale.sigma(
            t.kin["pt"][feeds], t.kin["eta"][feeds], t.mu[feeds]
        ),
        "width calibration factor of every reconstructed object (part of sample_flat)": lambda: (
            None
            if model.width_calibration is None
            else model.width_calibration.sigma(t.kin["pt"][found], t.kin["eta"][found], t.mu[found])
        ),
        "jagged reco collection (reco_objects, with_field)": lambda: ak.with_field(
            events, model.reco_objects(t, found, delta), "SmearedPhoton"
        ),
        "total (add_surrogate_objects)": lambda: add_surrogate_objects(events, model, seed=1),
    }
    out = {name: best(fn, repeat)[1] for name, fn in stages.items()}
    flow = out.pop("efficiency + response flow (sample_flat)") - out["efficiency classifier"]
    out = {k: v for k, v in out.items() if not k.startswith("total")} | {
        "response flow (sample_flat without the efficiency)": flow,
        "total (add_surrogate_objects)": out["total (add_surrogate_objects)"],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2, help="cores to use (torch threads, dask workers)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--model", help="a saved ObjectResponse directory (else one is trained here)")
    ap.add_argument("--train-events", type=int, default=30_000)
    ap.add_argument("--distill-pairs", type=int, default=300_000)
    ap.add_argument(
        "--students",
        default="128:float32,128:bfloat16,256:bfloat16",
        help="distilled samplers timed, as hidden units (3 layers) : precision, comma-separated (ObjectResponse.distill "
        "makes 3 × 128 unless told otherwise; 3 × 256 was its size before)",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    out: dict[str, Any] = {
        "machine": f"{platform.platform()}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "events": args.events,
        "load_average_before": os.getloadavg()[0],
        "paths": {},
        "breakdown_cpu_seconds": {},
    }
    events = truth_events(args.events, seed=2)
    n_objects = int(ak.sum(ak.num(events.GenPhoton)))
    out["objects"] = n_objects
    print(f"{n_objects} truth objects in {args.events} events; load average {out['load_average_before']:.1f}")
    print(f"{'path':<62}{'objects/s':>11}{'CPU s':>8}{'obj/CPU-s':>11}{'× ref':>7}")

    def record(name: str, wall: float, cpu: float, ref_rate: float | None = None) -> float:
        rate = n_objects / wall
        out["paths"][name] = {
            "objects_per_s": rate,
            "seconds": wall,
            "cpu_seconds": cpu,
            "objects_per_cpu_second": n_objects / cpu,
            "ratio_to_reference": rate / ref_rate if ref_rate else 1.0,
        }
        print(
            f"{name:<62}{rate:>11.3g}{cpu:>8.2f}{n_objects / cpu:>11.3g}{rate / (ref_rate or rate):>7.2f}", flush=True
        )
        return rate

    detector = PhotonDetector(SmearingConfig("baseline"))
    truth = ak.zip(
        {"photons": events.GenPhoton, "mu": ak.values_astype(events.Pileup.nTrueInt, np.float64)}, depth_limit=1
    )
    ref_rate = record(
        "reference detector (reconstruct_photons)",
        *best(lambda: reconstruct_photons(truth, detector, seed=1), args.repeat),
    )

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
    for student in args.students.split(","):
        hidden, precision = student.split(":")
        t = time.perf_counter()
        models[f"distilled 3 × {hidden} ReLU, {precision}"] = base.distill(
            train, {"hidden": int(hidden), "pairs": args.distill_pairs, "epochs": 4, "precision": precision}
        )
        out[f"distill_seconds_{hidden}_{precision}"] = time.perf_counter() - t

    for name, model in models.items():
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            record(
                f"{name}: eager, {threads} thread{'s' if threads > 1 else ''}",
                *best(lambda m=model: add_surrogate_objects(events, m, seed=1), args.repeat),
                ref_rate,
            )
        torch.set_num_threads(1)
        try:
            import dask
            import dask_awkward as dak

            lazy_events = dak.from_awkward(events, npartitions=args.partitions)

            def run_dask(m: ObjectResponse = model, lazy: Any = lazy_events) -> None:
                with dask.config.set(scheduler="threads", num_workers=args.threads):
                    add_surrogate_objects(lazy, m, seed=1).SmearedPhoton.pt.compute()

            record(
                f"{name}: dask, {args.partitions} partitions, {args.threads} workers",
                *best(run_dask, args.repeat),
                ref_rate,
            )
        except ImportError:  # pragma: no cover - dask is an extra
            pass
        parts = breakdown(events, model, args.repeat)
        out["breakdown_cpu_seconds"][name] = parts
        total = parts["total (add_surrogate_objects)"]
        print(f"  where the CPU time goes ({name}, one thread):")
        for stage, sec in parts.items():
            print(f"    {stage:<58}{sec:>7.3f} s {sec / total:>6.1%}")
    out["load_average_after"] = os.getloadavg()[0]
    out["target_objects_per_s"] = 1e6
    print(f"load average after: {out['load_average_after']:.1f}; target 1e6 objects/s on 2 cores")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
