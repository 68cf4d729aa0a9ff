"""Detector-response and generation commands: ``generate``, ``smear``, ``train-response``, ``apply``.

Every flag is checked when it is parsed; every output is checked and locked before the work (see
:mod:`mcsurrogate.cli.core`).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_write_json, refuse_existing
from .arguments import correlation, device, event_count, non_negative_float, non_negative_int, positive_int
from .core import add_weight_arguments, checkpoint_dir_for, claim_output, weight_options

#: the names of mcsurrogate.response.surrogate.PRESETS, repeated here so that parsing the command line needs no torch
RESPONSE_PRESETS = ("paper-a", "spline", "spline-ar", "affine-spline", "demo")


def _write_generated(args: argparse.Namespace, chunks: Iterator[Any], stats: Any, meta: dict[str, Any]) -> None:
    """Stream ``chunks`` to ``args.output`` and write the run's metadata (command, seed, versions, counts) beside it."""
    from importlib.metadata import version

    from .. import __version__
    from ..io import EventWriter

    out = Path(args.output)
    meta_path = out.with_suffix(".json")
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
    atomic_write_json(meta_path, meta)
    print(
        f"wrote {stats.accepted} events to {out} ({stats.events_per_second:.0f} events/s, "
        f"{stats.accepted / max(stats.tried, 1):.1%} of the tried events accepted); metadata in {meta_path}"
    )


@contextlib.contextmanager
def _claimed_generation(args: argparse.Namespace) -> Iterator[None]:
    """The event file ``-o`` and its metadata ``.json`` beside it, checked and locked before the generator starts."""
    from ..io import file_format

    file_format(args.output)
    with contextlib.ExitStack() as stack:
        out = claim_output(stack, args.output, args.overwrite, "mcsurrogate generate")
        refuse_existing(out.with_suffix(".json"), args.overwrite, f"(the metadata of {out.name}) pass --overwrite")
        yield


def cmd_generate_higgs(args: argparse.Namespace) -> int:
    with _claimed_generation(args):
        return _generate_higgs(args)


def _generate_higgs(args: argparse.Namespace) -> int:
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
    with _claimed_generation(args):
        return _generate_benchmark(args)


def _generate_benchmark(args: argparse.Namespace) -> int:
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
    with _claimed_generation(args):
        return _generate_pythia(args)


def _generate_pythia(args: argparse.Namespace) -> int:
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
    with contextlib.ExitStack() as stack:
        claim_output(stack, args.output, args.overwrite, "mcsurrogate smear")
        truth = read_events(args.truth, tree=args.tree)
        reco = smear_photons(truth, config, seed=args.seed)
        write_events(reco, args.output, overwrite=args.overwrite)
    print(
        f"smeared {len(reco)} events ({args.scenario}{'' if args.scenario != 'correlation' else f', rho={config.rho}'})"
        f" -> {args.output}"
    )
    return 0


def cmd_train_response(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        out, ckpt = Path(args.out), checkpoint_dir_for(Path(args.out))
        claim_output(stack, out, args.overwrite, f"mcsurrogate train-response, checkpoints in {ckpt}", directory=True)
        return _train_response(args, out, ckpt)


def _train_response(args: argparse.Namespace, out: Path, ckpt: Path) -> int:
    from ..io import read_events
    from ..response.surrogate import train_response

    training = {
        k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("device", args.device)) if v is not None
    }
    smeared = read_events(args.smeared, tree=args.tree)
    model = train_response(smeared, args.preset, training=training, checkpoint_dir=str(ckpt), **weight_options(args))
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

    with contextlib.ExitStack() as stack:
        claim_output(stack, args.output, args.overwrite, "mcsurrogate apply")
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
        p.add_argument("-n", type=event_count, required=True, help="accepted (selected) events to write, e.g. 1e5")
        p.add_argument(
            "--seed", type=non_negative_int, required=True, help="Pythia seeds are derived from it per chunk"
        )
        p.add_argument(
            "--workers", type=positive_int, default=1, help="processes; the events do not depend on it (default: 1)"
        )
        p.add_argument(
            "--chunk-size",
            type=positive_int,
            default=10_000,
            help="events per chunk (the events depend on it; default: 10000)",
        )
        p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root (metadata in OUT.json)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output and its metadata")

    p = gsub.add_parser("higgs-diphoton", help="pp -> H -> gamma gamma at 13 TeV (paper A's truth sample)")
    p.add_argument("--process", choices=("ggH", "ttH"), default="ggH", help="production process (default: ggH)")
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (slower; Higgs photons unchanged)")
    p.add_argument("--hadronization", action="store_true", help="hadronisation on (slower; Higgs photons unchanged)")
    common(p)
    p.set_defaults(func=cmd_generate_higgs)

    p = gsub.add_parser(
        "higgs-benchmark",
        help="HIGGS-like signal or semileptonic t tbar with FastJet jets and a detector model (paper B)",
    )
    p.add_argument("--process", choices=("ttbar", "signal"), required=True, help="the process to generate")
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (about 4x slower)")
    common(p)
    p.set_defaults(func=cmd_generate_benchmark)

    p = gsub.add_parser("pythia", help="any Pythia 8 settings file; writes the final-state photons and leptons")
    p.add_argument("--settings", required=True, help="file of Pythia settings, one 'Key = value' a line (! comments)")
    p.add_argument("--pdg-ids", type=int, nargs="+", default=[11, 13, 22], help="|PDG ids| kept (default: 11 13 22)")
    p.add_argument(
        "--pt-min", type=non_negative_float, default=0.0, help="p_T threshold in GeV (default: 0, no threshold)"
    )
    p.add_argument("--eta-max", type=non_negative_float, default=float("inf"), help="|eta| limit (default: none)")
    p.add_argument(
        "--min-count",
        type=non_negative_int,
        default=0,
        help="reject events with fewer particles passing (default: 0, keep every event)",
    )
    common(p)
    p.set_defaults(func=cmd_generate_pythia)

    p = sub.add_parser("smear", help="paper A's reference photon smearing of a truth sample")
    p.add_argument("truth", metavar="TRUTH", help="truth events with 'photons' and 'mu' (ROOT or Parquet)")
    p.add_argument(
        "--scenario",
        choices=("baseline", "correlation", "asymmetric"),
        default="baseline",
        help="paper A's smearing scenario (default: baseline)",
    )
    p.add_argument(
        "--rho",
        type=correlation,
        help="correlation between the two photons' responses, in [-1, 1] (correlation scenario; default: 0.5)",
    )
    p.add_argument("--tree", help="TTree of TRUTH (default: the file's only tree)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the smearing (default: 0)")
    p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_smear)

    p = sub.add_parser("train-response", help="train a photon-response surrogate on smeared events")
    p.add_argument("smeared", metavar="SMEARED", help="output of 'mcsurrogate smear' (reco + truth photons, mu)")
    p.add_argument(
        "--preset", choices=RESPONSE_PRESETS, default="affine-spline", help="response model (default: affine-spline)"
    )
    p.add_argument("--epochs", type=positive_int, help="training epochs, at most (default: the preset's)")
    p.add_argument("--seed", type=non_negative_int, help="seed of the split, initialisation and batches (default: 0)")
    p.add_argument("--device", type=device, help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--tree", help="TTree of SMEARED (default: the file's only tree)")
    add_weight_arguments(p)
    p.add_argument("--out", required=True, help="model directory to write (checkpoints in OUT.checkpoints meanwhile)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_train_response)

    p = sub.add_parser("apply", help="smear truth events with a response surrogate: reco = truth + sampled response")
    p.add_argument("model", metavar="MODEL_DIR", help="response model directory (train-response)")
    p.add_argument("truth", metavar="TRUTH", help="truth events with 'photons' and 'mu' (ROOT or Parquet)")
    p.add_argument("--tree", help="TTree of TRUTH (default: the file's only tree)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampled response (default: 0)")
    p.add_argument(
        "--batch-size", type=positive_int, default=100_000, help="photons smeared per batch (default: 100000)"
    )
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_apply)
