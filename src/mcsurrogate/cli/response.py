"""Detector-response and generation commands: ``generate``, ``smear``, ``train-response``, ``apply``."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputExistsError
from ..files import atomic_write_text

#: the names of mcsurrogate.response.surrogate.PRESETS, repeated here so that parsing the command line needs no torch
RESPONSE_PRESETS = ("paper-a", "spline", "spline-ar", "affine-spline", "demo")


def _write_generated(args: argparse.Namespace, chunks: Iterator[Any], stats: Any, meta: dict[str, Any]) -> None:
    """Stream ``chunks`` to ``args.output`` and write the run's metadata (command, seed, versions, counts) beside it."""
    from importlib.metadata import version

    from .. import __version__
    from ..io import EventWriter

    out = Path(args.output)
    meta_path = out.with_suffix(".json")
    if meta_path.exists() and not args.overwrite:
        raise OutputExistsError(f"{meta_path} (the metadata of {out.name}) exists already; pass --overwrite")
    with EventWriter(out, overwrite=args.overwrite) as writer:
        for chunk in chunks:
            writer.write(chunk)
    meta |= {
        "n_events": stats.accepted,
        "seed": args.seed,
        "chunk_size": args.chunk_size,
        "pythia8mc_version": version("pythia8mc"),
        "mcsurrogate_version": __version__,
        "stats": stats.to_dict(),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    print(
        f"wrote {stats.accepted} events to {out} ({stats.events_per_second:.0f} events/s, "
        f"{stats.accepted / max(stats.tried, 1):.1%} of the tried events accepted); metadata in {meta_path}"
    )


def cmd_generate_higgs(args: argparse.Namespace) -> int:
    from ..generators import GenerationStats, higgs_diphoton_settings, iterate_higgs_diphoton

    stats = GenerationStats()
    chunks = iterate_higgs_diphoton(
        args.n,
        seed=args.seed,
        process=args.process,
        mpi=args.mpi,
        hadronization=args.hadronization,
        n_workers=args.workers,
        chunk_size=args.chunk_size,
        stats=stats,
    )
    meta = {
        "description": f"pp -> H -> gamma gamma ({args.process}) at 13 TeV, Pythia 8, truth photons from the Higgs "
        "decay with E_T > 20 GeV and |eta| < 2.5 ordered by E_T; mu ~ Uniform(0, 40)",
        "command": f"mcsurrogate generate higgs-diphoton -n {args.n} --seed {args.seed} --process {args.process}"
        f"{' --mpi' if args.mpi else ''}{' --hadronization' if args.hadronization else ''}"
        f" --chunk-size {args.chunk_size} -o {Path(args.output).name}",
        "process": args.process,
        "settings": higgs_diphoton_settings(args.process, mpi=args.mpi, hadronization=args.hadronization),
    }
    _write_generated(args, chunks, stats, meta)
    return 0


def cmd_generate_benchmark(args: argparse.Namespace) -> int:
    from ..generators import GenerationStats
    from ..generators.higgs_benchmark import (
        DEFAULT_DETECTOR,
        FEATURES,
        ONE_LEPTONIC_W,
        iterate_higgs_benchmark,
        signal_settings,
        ttbar_settings,
    )

    stats = GenerationStats()
    chunks = iterate_higgs_benchmark(
        args.process,
        args.n,
        seed=args.seed,
        n_workers=args.workers,
        chunk_size=args.chunk_size,
        stats=stats,
        mpi=args.mpi,
    )
    settings = signal_settings if args.process == "signal" else ttbar_settings
    meta = {
        "description": (
            "HIGGS-like benchmark at 13 TeV: gg -> H0 (425 GeV) -> W H+- (325 GeV), H+- -> W h, h -> b b"
            if args.process == "signal"
            else "HIGGS-like benchmark at 13 TeV: t tbar, one W -> l nu (l = e, mu)"
        )
        + "; Pythia 8 + FastJet anti-kt 0.4 + parametric detector; exactly one lepton, >= 4 jets; 28 features",
        "command": f"mcsurrogate generate higgs-benchmark --process {args.process} -n {args.n} --seed {args.seed}"
        f"{' --mpi' if args.mpi else ''} --chunk-size {args.chunk_size} -o {Path(args.output).name}",
        "process": args.process,
        "features": list(FEATURES),
        "settings": settings(mpi=args.mpi),
        "alternating_settings": [list(v) for v in ONE_LEPTONIC_W],  # generated in turn after "settings"
        "detector": DEFAULT_DETECTOR.to_dict(),
    }
    _write_generated(args, chunks, stats, meta)
    return 0


def cmd_generate_pythia(args: argparse.Namespace) -> int:
    from ..generators import GenerationStats, iterate_final_state, read_settings

    settings = read_settings(args.settings)
    stats = GenerationStats()
    chunks = iterate_final_state(
        settings,
        args.n,
        seed=args.seed,
        pdg_ids=args.pdg_ids,
        pt_min=args.pt_min,
        eta_max=args.eta_max,
        min_count=args.min_count,
        n_workers=args.workers,
        chunk_size=args.chunk_size,
        stats=stats,
    )
    meta = {
        "description": f"Pythia 8 with the settings of {Path(args.settings).name}; final-state particles with |PDG id| "
        f"in {list(args.pdg_ids)}, p_T > {args.pt_min} GeV, |eta| < {args.eta_max}, ordered by p_T; "
        f"events with fewer than {args.min_count} such particles rejected",
        "command": f"mcsurrogate generate pythia --settings {Path(args.settings).name} -n {args.n} --seed {args.seed}"
        f" --pdg-ids {' '.join(map(str, args.pdg_ids))} --pt-min {args.pt_min} --eta-max {args.eta_max}"
        f" --min-count {args.min_count} --chunk-size {args.chunk_size} -o {Path(args.output).name}",
        "settings": settings,
    }
    _write_generated(args, chunks, stats, meta)
    return 0


def cmd_smear(args: argparse.Namespace) -> int:
    from ..io import read_events, write_events
    from ..response.smearing import SmearingConfig, smear_photons

    if args.rho is not None and args.scenario != "correlation":
        raise InputError("--rho applies to --scenario correlation only")
    config = SmearingConfig(scenario=args.scenario, rho=0.5 if args.rho is None else args.rho)
    truth = read_events(args.truth, tree=args.tree)
    reco = smear_photons(truth, config, seed=args.seed)
    write_events(reco, args.output, overwrite=args.overwrite)
    print(
        f"smeared {len(reco)} events ({args.scenario}{'' if args.scenario != 'correlation' else f', rho={config.rho}'})"
        f" -> {args.output}"
    )
    return 0


def cmd_train_response(args: argparse.Namespace) -> int:
    from ..io import read_events
    from ..response.surrogate import train_response
    from .core import checkpoint_dir_for

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists already; choose another --out or pass --overwrite")
    training = {
        k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("device", args.device)) if v is not None
    }
    smeared = read_events(args.smeared, tree=args.tree)
    ckpt = checkpoint_dir_for(out)
    model = train_response(smeared, args.preset, training=training, checkpoint_dir=str(ckpt))
    model.save(out, overwrite=args.overwrite)
    shutil.rmtree(ckpt, ignore_errors=True)
    res = model.result
    assert res is not None
    print(
        f"saved {out}: {args.preset} preset, best epoch {res.best_epoch}/{len(res.history)} "
        f"({res.selection} {res.best_metric:.5g})"
    )
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from ..io import read_events, write_events
    from ..response.surrogate import apply_response
    from ..surrogate import Surrogate

    model = Surrogate.load(args.model, device=args.device)
    truth = read_events(args.truth, tree=args.tree)
    reco = apply_response(model, truth, seed=args.seed, batch_size=args.batch_size)
    write_events(reco, args.output, overwrite=args.overwrite)
    print(f"smeared {len(reco)} events with {args.model} -> {args.output}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="truth-level event generation with Pythia 8 (extra 'generate')")
    gsub = gen.add_subparsers(dest="generator", metavar="PROCESS", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", type=int, required=True, help="accepted (selected) events to write")
        p.add_argument("--seed", type=int, required=True, help="Pythia seeds are derived from it per chunk")
        p.add_argument("--workers", type=int, default=1, help="processes; the events do not depend on it")
        p.add_argument("--chunk-size", type=int, default=10_000, help="events per chunk (the events depend on it)")
        p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root (metadata in OUT.json)")
        p.add_argument("--overwrite", action="store_true")

    p = gsub.add_parser("higgs-diphoton", help="pp -> H -> gamma gamma at 13 TeV (paper A's truth sample)")
    p.add_argument("--process", choices=("ggH", "ttH"), default="ggH")
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (slower; Higgs photons unchanged)")
    p.add_argument("--hadronization", action="store_true", help="hadronisation on (slower; Higgs photons unchanged)")
    common(p)
    p.set_defaults(func=cmd_generate_higgs)

    p = gsub.add_parser(
        "higgs-benchmark",
        help="HIGGS-like signal or semileptonic t tbar with FastJet jets and a detector model (paper B)",
    )
    p.add_argument("--process", choices=("ttbar", "signal"), required=True)
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (about 4x slower)")
    common(p)
    p.set_defaults(func=cmd_generate_benchmark)

    p = gsub.add_parser("pythia", help="any Pythia 8 settings file; writes the final-state photons and leptons")
    p.add_argument("--settings", required=True, help="file of Pythia settings, one 'Key = value' a line (! comments)")
    p.add_argument("--pdg-ids", type=int, nargs="+", default=[11, 13, 22], help="|PDG ids| kept (default 11 13 22)")
    p.add_argument("--pt-min", type=float, default=0.0, help="p_T threshold in GeV")
    p.add_argument("--eta-max", type=float, default=float("inf"), help="|eta| limit")
    p.add_argument("--min-count", type=int, default=0, help="reject events with fewer particles passing")
    common(p)
    p.set_defaults(func=cmd_generate_pythia)

    p = sub.add_parser("smear", help="paper A's reference photon smearing of a truth sample")
    p.add_argument("truth", metavar="TRUTH")
    p.add_argument("--scenario", choices=("baseline", "correlation", "asymmetric"), default="baseline")
    p.add_argument("--rho", type=float, help="correlation between the two photons' responses (correlation scenario)")
    p.add_argument("--tree")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_smear)

    p = sub.add_parser("train-response", help="train a photon-response surrogate on smeared events")
    p.add_argument("smeared", metavar="SMEARED", help="output of 'mcsurrogate smear' (reco + truth photons, mu)")
    p.add_argument("--preset", choices=RESPONSE_PRESETS, default="affine-spline")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--tree")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_train_response)

    p = sub.add_parser("apply", help="smear truth events with a response surrogate: reco = truth + sampled response")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("truth", metavar="TRUTH")
    p.add_argument("--tree")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=100_000)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_apply)
