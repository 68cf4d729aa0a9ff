"""Events/s of truth generation (Pythia 8, each MPI/hadronisation setting), the reference smearing, and the
response surrogate applied to truth events — the surrogate path against the Pythia + smearing path, in one process.

    python benchmarks/bench_generation_smearing.py [--json out.json] [--events 300] [--model MODEL_DIR]

Pythia: one process, one chunk per setting; accepted events per CPU second of the event loop (initialisation
excluded: what large samples cost per event and core, robust against other programs sharing the CPU) and the
wall-clock rate. Smearing: 10⁶ events (the packaged sample repeated), best of three runs; the surrogate path:
10⁵ truth events, best of three runs.
Without ``--model`` a small response surrogate (demo preset, 2 epochs) is trained on the packaged sample first; a
distilled model is timed in each sampling precision (float32, bfloat16).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import awkward as ak

from mcsurrogate.data_files import load_default_truth
from mcsurrogate.flows.distilled import PRECISIONS, DistilledFlow
from mcsurrogate.generators import generate_higgs_diphoton
from mcsurrogate.response import SmearingConfig, apply_response, smear_photons, smear_responses, train_response
from mcsurrogate.surrogate import Surrogate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--events", type=int, default=300, help="Pythia events per setting")
    ap.add_argument("--model", help="a trained response surrogate directory")
    args = ap.parse_args()
    out: dict = {"machine": platform.platform(), "pythia": {}}
    print(f"{'path':<44}{'events/s':>12}")
    for mpi, had in ((False, False), (True, False), (False, True), (True, True)):
        t = time.perf_counter()
        _, stats = generate_higgs_diphoton(
            args.events, seed=1, mpi=mpi, hadronization=had, chunk_size=args.events, progress=False
        )
        rate = args.events / (time.perf_counter() - t)
        key = f"pythia mpi={'on' if mpi else 'off'} hadronization={'on' if had else 'off'}"
        out["pythia"][key] = {
            "accepted_per_s": rate,
            "accepted_per_cpu_s": stats.events_per_cpu_second,
            "init_cpu_s": stats.init_cpu_seconds,
            "acceptance": stats.accepted / stats.tried,
        }
        print(
            f"{key + ' (per CPU s)':<44}{stats.events_per_cpu_second:>12.3g}"
            f"   wall-clock {rate:.3g} (initialisation {stats.init_cpu_seconds:.1f} CPU s)"
        )
    truth = load_default_truth()
    big = ak.concatenate([truth] * (1 + 1_000_000 // len(truth)))[:1_000_000]
    pt, eta = (ak.to_numpy(big.photons[f]) for f in ("pt", "eta"))
    mu = big.mu.to_numpy()
    out["smearing"] = {}

    def best_rate(run: Callable[[], object], n: int, repeats: int = 3) -> float:
        """Events/s of the fastest of ``repeats`` runs (the first pays the page faults of fresh arrays)."""
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        return n / min(times)

    for scenario in ("baseline", "correlation", "asymmetric"):
        rate = best_rate(
            lambda scenario=scenario: smear_responses(pt, eta, mu, SmearingConfig(scenario), seed=2), len(mu)
        )
        out["smearing"][f"responses {scenario}"] = rate
        print(f"{'reference smearing, numpy, ' + scenario:<44}{rate:>12.3g}")
    smear_rate = best_rate(lambda: smear_photons(big, SmearingConfig("baseline"), seed=2), len(big))
    out["smearing"]["smear_photons baseline"] = smear_rate
    print(f"{'reference smearing (awkward records)':<44}{smear_rate:>12.3g}")
    smeared = smear_photons(truth, SmearingConfig("baseline"), seed=2)
    model = (
        Surrogate.load(args.model)
        if args.model
        else train_response(smeared[:50_000], "demo", training={"epochs": 2, "device": "cpu"}, progress=False)
    )
    sub = truth[:100_000]

    def apply_rate_now() -> float:
        apply_response(model, sub[:1000], seed=0)  # warm-up
        return best_rate(lambda: apply_response(model, sub, seed=3), len(sub))

    apply_rate = apply_rate_now()
    print(f"{'surrogate: reco = truth + sampled response':<44}{apply_rate:>12.3g}")
    variants = []
    if isinstance(model.model, DistilledFlow):  # a distilled sampler: time it in each precision
        saved = model.model.precision
        out[f"surrogate_apply_per_s_{saved}"] = apply_rate
        for precision in PRECISIONS:
            variants.append(precision)
            if precision != saved:
                model.model.precision = precision
                rate = apply_rate_now()
                out[f"surrogate_apply_per_s_{precision}"] = rate
                print(f"{'… the distilled sampler in ' + precision:<44}{rate:>12.3g}")
        model.model.precision = saved
    # Pythia's initialisation is paid once per chunk: per event, large samples cost the event loop's CPU time
    slow = out["pythia"]["pythia mpi=off hadronization=off"]["accepted_per_cpu_s"]
    full = out["pythia"]["pythia mpi=on hadronization=on"]["accepted_per_cpu_s"]
    reference_rate = 1 / (1 / full + 1 / smear_rate)
    print(f"surrogate vs Pythia (MPI + hadronisation) + smearing, per event: {apply_rate / reference_rate:.3g}×")
    for variant in variants:
        ratio = out[f"surrogate_apply_per_s_{variant}"] / reference_rate
        out[f"speedup_vs_full_pythia_and_smearing_{variant}"] = ratio
        print(f"  … distilled sampler in {variant}: {ratio:.3g}×")
    print(
        f"surrogate vs Pythia (fast settings) + smearing, per event:       {apply_rate / (1 / (1 / slow + 1 / smear_rate)):.3g}×"
    )
    out |= {
        "smearing_per_s": smear_rate,
        "surrogate_apply_per_s": apply_rate,
        "speedup_vs_full_pythia_and_smearing": apply_rate / reference_rate,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
