"""m_γγ from surrogate-smeared generator photons in a coffea processor, eager and with dask.

    python analyses/coffea_hgg/run.py --out reports/coffea_hgg [--model MODEL_DIR] [--events 50000] [--partitions 4]

Without ``--model`` a small response surrogate (``demo`` preset) is trained on the packaged truth sample smeared
with the baseline reference smearing. The next ``--events`` truth events, which the model never saw, are written
as a NanoAOD-like ROOT file (``run``, ``luminosityBlock``, ``event``, ``GenPhoton_*``, ``Pileup_nTrueInt``) and
read back with coffea's NanoEvents; the processor runs once eagerly and once as a dask graph of ``--partitions``
partitions. The two histograms must be identical (the surrogate noise is keyed to the event numbers). Writes
``mgg.png`` and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
from processor import DiphotonMassProcessor  # beside this script (python puts the script's folder on sys.path)

from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import sigterm_raises
from mcsurrogate.io import write_events
from mcsurrogate.response import SmearingConfig, smear_photons, train_response


def nanoaod_like(truth: ak.Array, first_event: int = 0) -> ak.Array:
    """Truth records (photons, mu) as NanoAOD-style event records with event identifiers."""
    n = len(truth)
    return ak.zip(
        {
            "run": np.ones(n, np.int64),
            "luminosityBlock": np.ones(n, np.int64),
            "event": np.arange(first_event, first_event + n, dtype=np.int64),
            "GenPhoton": ak.zip(
                {
                    "pt": truth.photons.pt,
                    "eta": truth.photons.eta,
                    "phi": truth.photons.phi,
                    "mass": truth.photons.pt * 0.0,
                }
            ),
            "Pileup_nTrueInt": ak.values_astype(truth.mu, np.float32),
        },
        depth_limit=1,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/coffea_hgg")
    ap.add_argument("--model", help="saved response surrogate (default: train a small one)")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--train-events", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args(argv)
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = load_default_truth()
    t0 = time.perf_counter()
    model_dir = args.model
    if model_dir is None:
        smeared = smear_photons(truth[: args.train_events], SmearingConfig("baseline"), seed=1)
        model = train_response(smeared, "demo", training={"epochs": 5})
        model_dir = str(out / "model")
        model.save(model_dir, overwrite=True)
    sample = truth[args.train_events : args.train_events + args.events]
    nano = out / "nano_like.root"
    write_events(nanoaod_like(sample, args.train_events), nano, tree="Events", overwrite=True)
    proc = DiphotonMassProcessor(model_dir)
    t1 = time.perf_counter()
    eager = proc.process(
        NanoEventsFactory.from_root({str(nano): "Events"}, schemaclass=NanoAODSchema, mode="virtual").events()
    )
    t2 = time.perf_counter()
    import dask

    lazy = proc.process(
        NanoEventsFactory.from_root(
            {str(nano): "Events"}, schemaclass=NanoAODSchema, mode="dask", steps_per_file=args.partitions
        ).events()
    )
    (computed,) = dask.compute(lazy)
    t3 = time.perf_counter()
    h_eager, h_dask = eager["mgg"], computed["mgg"]
    identical = bool(np.array_equal(h_eager.values(), h_dask.values()))
    import mplhep
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    for level, colour in (("truth", "black"), ("surrogate", "tab:red")):
        mplhep.histplot(h_eager[level, :], ax=ax, label=level, color=colour)
    ax.set_ylabel("events")
    ax.legend()
    mplhep.label.exp_label(exp="mcsurrogate", llabel="", rlabel="coffea processor", ax=ax, loc=0)
    fig.savefig(out / "mgg.png", dpi=90, bbox_inches="tight")
    sur = h_eager["surrogate", :]
    centres = sur.axes[0].centers
    mean = float(np.sum(sur.values() * centres) / sur.values().sum())
    report = {
        "events": int(eager["events"]),
        "model": model_dir,
        "partitions": args.partitions,
        "eager_dask_identical": identical,
        "surrogate_mgg_mean_in_range_gev": mean,
        "mgg_edges": sur.axes[0].edges.tolist(),
        "mgg_truth": h_eager["truth", :].values().tolist(),
        "mgg_surrogate": sur.values().tolist(),
        "seconds": {"training": t1 - t0, "eager": t2 - t1, "dask": t3 - t2},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(
        f"{report['events']} events; eager and dask histograms identical: {identical}; "
        f"processor {t2 - t1:.1f} s eager, {t3 - t2:.1f} s dask ({args.partitions} partitions)"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    with sigterm_raises():  # a batch kill unwinds: half-written outputs are deleted, exit code 143
        sys.exit(main())
