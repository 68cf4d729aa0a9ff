"""Detector-response and generation commands: ``generate``, ``smear``, ``train-response``, ``apply``.

Every flag is checked when it is parsed; every output is checked and locked before the work (see
:mod:`mcsurrogate.cli.core`).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_write_json, refuse_existing
from .arguments import (
    correlation,
    device,
    event_count,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from .core import add_weight_arguments, checkpoint_dir_for, claim_output, weight_options

#: the names of mcsurrogate.response.surrogate.PRESETS, repeated here so that parsing the command line needs no torch
RESPONSE_PRESETS = ("paper-a", "spline", "spline-ar", "affine-spline", "flow-matching", "demo")


def _response_fields(text: str) -> tuple[str, ...]:
    """``--fields``: distinct names among pt, eta, phi, comma-separated."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names or len(set(names)) != len(names) or not set(names) <= {"pt", "eta", "phi"}:
        raise argparse.ArgumentTypeError(f"expected distinct names among pt,eta,phi, comma-separated; got {text!r}")
    return names


def _field_names(text: str) -> tuple[str, ...]:
    """``--tags``/``--tag-inputs``: distinct field names, comma-separated."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct field names, comma-separated; got {text!r}")
    return names


def _write_generated(
    args: argparse.Namespace,
    chunks: Iterator[Any],
    stats: Any,
    meta: dict[str, Any],
    late_meta: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Stream ``chunks`` to ``args.output`` and write the run's metadata (command, seed, versions, counts) beside it;
    ``late_meta()``: metadata known only once every chunk is written (e.g. the weights' sums)."""
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
    if late_meta is not None:
        meta |= late_meta()
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


def cmd_generate_higgs_jet(args: argparse.Namespace) -> int:
    with _claimed_generation(args):
        return _generate_higgs_jet(args)


def _generate_higgs_jet(args: argparse.Namespace) -> int:
    import numpy as np

    from ..generators import GenerationStats
    from ..generators.biased import iterate_higgs_jet_diphoton, weight_provenance

    stats = GenerationStats()
    weights: list[Any] = []

    def kept(chunks: Iterator[Any]) -> Iterator[Any]:
        for chunk in chunks:
            weights.append(chunk["weight"].to_numpy())
            yield chunk

    chunks = iterate_higgs_jet_diphoton(
        args.n,
        seed=args.seed,
        bias_power=args.bias_pt,
        bias_ref=args.bias_ref,
        pt_hat_min=args.pt_hat_min,
        mpi=args.mpi,
        hadronization=args.hadronization,
        n_workers=args.workers,
        chunk_size=args.chunk_size,
        stats=stats,
    )
    bias = "" if args.bias_pt is None else f" --bias-pt {args.bias_pt} --bias-ref {args.bias_ref}"
    meta = {
        "description": "pp -> H + jet, H -> gamma gamma at 13 TeV, Pythia 8 (2 -> 2 processes, pTHat > "
        f"{args.pt_hat_min} GeV), truth photons as higgs-diphoton; mu ~ Uniform(0, 40); event weight 'weight'"
        + ("" if args.bias_pt is None else f", biased by (pTHat / {args.bias_ref} GeV)^{args.bias_pt}"),
        "command": f"mcsurrogate generate higgs-jet-diphoton -n {args.n} --seed {args.seed}{bias}"
        f" --pt-hat-min {args.pt_hat_min}{' --mpi' if args.mpi else ''}"
        f"{' --hadronization' if args.hadronization else ''} --chunk-size {args.chunk_size} -o {Path(args.output).name}",
    }

    def provenance() -> dict[str, Any]:
        w = np.concatenate(weights) if weights else np.zeros(0)
        kwargs = {"bias_power": args.bias_pt, "bias_ref": args.bias_ref, "pt_hat_min": args.pt_hat_min}
        return {"weights": weight_provenance(w, stats=stats, **kwargs)}

    _write_generated(args, kept(chunks), stats, meta, provenance)
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


#: the ObjectResponse flow presets (mcsurrogate.response.objects.object_preset), for --truth/--reco
OBJECT_PRESETS = ("affine-spline", "demo")
#: the flags of the object-level path only, with their defaults (None: not given)
_OBJECT_ONLY = ("pileup", "fields", "max_dr", "efficiency_epochs", "no_width_calibration", "tags", "tag_inputs")


def _object_path(args: argparse.Namespace) -> bool:
    """Whether ``train-response`` takes the object-level path (``--truth``/``--reco``): checks the flags that go
    with it before any file is read."""
    given = [f"--{n}" for n in ("truth", "reco") if getattr(args, n) is not None]
    if len(given) == 1:
        raise InputError(
            f"{given[0]} needs {'--reco' if given[0] == '--truth' else '--truth'} too: the object-level response "
            "is trained on a truth collection matched to a reco collection"
        )
    if not given:
        extra = [f"--{n.replace('_', '-')}" for n in _OBJECT_ONLY if getattr(args, n) is not None]
        if extra:
            raise InputError(f"{', '.join(extra)} apply to the object-level path only (give --truth and --reco)")
        return False
    if args.truth == args.reco:
        raise InputError(f"--truth and --reco name the same collection {args.truth!r}: give the truth and the reco one")
    if args.preset not in OBJECT_PRESETS:
        raise InputError(
            f"--preset {args.preset} is a two-photon preset; the object-level response (--truth/--reco) has "
            f"{', '.join(OBJECT_PRESETS)}"
        )
    weights = [f for f, v in (("--weights", args.weights), ("--bootstrap-seed", args.bootstrap_seed)) if v is not None]
    weights += ["--drop-nonfinite-weights"] if args.drop_nonfinite_weights else []
    weights += ["--negative-weights"] if args.negative_weights != "signed" else []
    if weights:
        raise InputError(f"{', '.join(weights)}: event weights are not supported by the object-level response yet")
    return True


def _require_collections(source: str, tree: str | None, names: dict[str, str]) -> None:
    """Each ``names`` key (a field) a top-level column of ``source``, or InputError naming it and where it came
    from (the value: the flag or the model)."""
    from ..io import available_columns

    columns = available_columns(source, tree=tree)
    for name, origin in names.items():
        if name not in columns:
            raise InputError(f"{source} has no collection or column {name!r} ({origin}); it has {columns}")


def cmd_train_response(args: argparse.Namespace) -> int:
    if (args.train_smearings > 1) != (args.smearing is not None):
        raise InputError(
            "--train-smearings K > 1 smears the training truth K - 1 more times with the reference smearing: give it "
            "as --smearing (the scenario SMEARED was made with); --smearing alone does nothing"
        )
    if args.rho is not None and args.smearing != "correlation":
        raise InputError("--rho applies to --smearing correlation only")
    object_path = _object_path(args)
    if object_path and args.train_smearings > 1:
        raise InputError("--train-smearings applies to the two-photon path (without --truth/--reco)")
    if object_path:
        _require_collections(
            args.smeared,
            args.tree,
            {args.truth: "--truth", args.reco: "--reco", args.pileup or "mu": "--pileup, default mu"},
        )
    with contextlib.ExitStack() as stack:
        out, ckpt = Path(args.out), checkpoint_dir_for(Path(args.out))
        claim_output(stack, out, args.overwrite, f"mcsurrogate train-response, checkpoints in {ckpt}", directory=True)
        return _train_response(args, out, ckpt)


def _train_response(args: argparse.Namespace, out: Path, ckpt: Path) -> int:
    from ..io import read_events
    from ..response.surrogate import train_response

    if args.truth is not None:
        return _train_object_response(args, out)

    training = {
        k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("device", args.device)) if v is not None
    }
    smeared = read_events(args.smeared, tree=args.tree)
    validation = None
    if args.train_smearings > 1:
        smeared, validation = _training_passes(smeared, args)
    model = train_response(
        smeared,
        args.preset,
        training=training,
        validation=validation,
        checkpoint_dir=str(ckpt),
        **weight_options(args),
    )
    model.save(out, overwrite=args.overwrite)
    shutil.rmtree(ckpt, ignore_errors=True)
    res = model.result
    assert res is not None
    print(
        f"saved {out}: {args.preset} preset, best epoch {res.best_epoch}/{len(res.history)} "
        f"({res.selection} {res.best_metric:.5g})"
    )
    return 0


def _training_passes(smeared: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """``--train-smearings K``: the events split 90/10 into training and validation by truth event (seeded), then each
    truth smeared K − 1 more times with the reference smearing ``--smearing``/``--rho`` (run_scenario's
    ``train_smearings``): K detector passes per truth event to learn from."""
    from ..response.smearing import SmearingConfig, smear_photons
    from ..response.study import detector_passes
    from ..training import split_indices

    config = SmearingConfig(scenario=args.smearing, rho=0.5 if args.rho is None else args.rho)
    seed = args.seed or 0
    split = split_indices(len(smeared), (0.9, 0.1, 0.0), seed)

    def resmear(truth: Any, s: int) -> Any:
        return smear_photons(truth, config, seed=s)

    return (
        detector_passes(smeared[split.train], args.train_smearings, seed + 2000, resmear),
        detector_passes(smeared[split.validation], args.train_smearings, seed + 3000, resmear),
    )


def _train_object_response(args: argparse.Namespace, out: Path) -> int:
    from ..io import read_events
    from ..response.objects import ObjectLayout, ObjectResponse

    layout = ObjectLayout(
        truth=args.truth,
        reco=args.reco,
        pileup=args.pileup or "mu",
        fields=tuple(args.fields or ("pt", "eta", "phi")),
        max_dr=0.1 if args.max_dr is None else args.max_dr,
        tags=tuple(args.tags or ()),
        tag_inputs=tuple(args.tag_inputs or ()),
    )
    events = read_events(args.smeared, tree=args.tree, columns=[layout.truth, layout.reco, layout.pileup])
    training = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    efficiency = {k: v for k, v in (("epochs", args.efficiency_epochs), ("device", args.device)) if v is not None}
    model = ObjectResponse.fit(
        events,
        layout,
        preset=args.preset,
        training=training,
        efficiency=efficiency,
        tag_classifier=efficiency,
        calibrate_widths=not args.no_width_calibration,
        seed=0 if args.seed is None else args.seed,
    )
    model.save(out, overwrite=args.overwrite)
    m = model.metrics
    res = model.response.result
    best = f", best epoch {res.best_epoch}/{len(res.history)}" if res is not None else ""
    print(
        f"saved {out}: object-level response of {layout.truth} -> {layout.reco} ({args.preset} preset{best}); "
        f"{m['n_truth_objects']} truth objects in {m['n_events']} events, efficiency {m['efficiency_overall']:.3f}, "
        f"{m['n_fakes']} unmatched reco objects (fakes, not modelled)"
        + "".join(
            f"; tag {name}: {t['n_train'] + t['n_validation']} matched objects, ECE {t['reliability_validation']['ece']:.4f}"
            for name, t in m.get("tags", {}).items()
        )
    )
    return 0


def _is_object_model(path: str) -> bool:
    return (Path(path) / "object_response.json").is_file()


def cmd_apply(args: argparse.Namespace) -> int:
    from ..io import read_events, write_events
    from ..response.surrogate import apply_response
    from ..surrogate import Surrogate

    if _is_object_model(args.model):
        return _apply_objects(args)
    with contextlib.ExitStack() as stack:
        claim_output(stack, args.output, args.overwrite, "mcsurrogate apply")
        model = Surrogate.load(args.model, device=args.device)
        given = [flag for flag, v in (("--truth", args.truth_collection), ("--reco", args.reco)) if v is not None]
        if given:
            raise InputError(
                f"{' and '.join(given)}: {args.model} is a two-photon response (it reads 'photons' and 'mu'); train "
                "an object-level model with 'mcsurrogate train-response SMEARED --truth COLLECTION --reco COLLECTION'"
            )
        truth = read_events(args.truth, tree=args.tree)
        reco = apply_response(model, truth, seed=args.seed, batch_size=args.batch_size)
        write_events(reco, args.output, overwrite=args.overwrite)
    print(f"smeared {len(reco)} events with {args.model} -> {args.output}")
    return 0


def _apply_objects(args: argparse.Namespace) -> int:
    import awkward as ak

    from ..io import available_columns, read_events, write_events
    from ..response.objects import ObjectResponse

    with contextlib.ExitStack() as stack:
        claim_output(stack, args.output, args.overwrite, "mcsurrogate apply")
        model = ObjectResponse.load(args.model, device=args.device)
        truth = args.truth_collection or model.layout.truth
        out_name = args.reco or model.layout.reco
        _require_collections(
            args.truth,
            args.tree,
            {
                truth: "--truth" if args.truth_collection else f"the truth collection {args.model} was trained on",
                model.layout.pileup: f"the pile-up field {args.model} was trained with",
            },
        )
        if out_name in available_columns(args.truth, tree=args.tree):
            raise InputError(
                f"--reco {out_name}: {args.truth} has a collection {out_name!r} already; name the new one with --reco"
            )
        events = read_events(args.truth, tree=args.tree)
        result = model.add_reco(events, truth=truth, out=out_name, seed=args.seed, batch_size=args.batch_size)
        write_events(result, args.output, overwrite=args.overwrite)
    n_truth, n_reco = int(ak.sum(ak.num(result[truth]))), int(ak.sum(ak.num(result[out_name])))
    print(
        f"reconstructed {n_reco} of {n_truth} truth objects ({truth} -> {out_name}) in {len(result)} events with "
        f"{args.model} -> {args.output}"
    )
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
        "higgs-jet-diphoton",
        help="pp -> H + jet, H -> gamma gamma with an event weight; --bias-pt over-samples high pTHat (weighted MC)",
    )
    p.add_argument(
        "--bias-pt",
        type=positive_float,
        metavar="POWER",
        help="PhaseSpace:bias2Selection: over-sample by (pTHat / --bias-ref)^POWER, the weight compensates "
        "(default: unbiased, every weight 1)",
    )
    p.add_argument(
        "--bias-ref", type=positive_float, default=20.0, help="GeV at which the bias factor is 1 (default: 20)"
    )
    p.add_argument("--pt-hat-min", type=positive_float, default=20.0, help="pTHat threshold in GeV (default: 20)")
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (slower; Higgs photons unchanged)")
    p.add_argument("--hadronization", action="store_true", help="hadronisation on (slower; Higgs photons unchanged)")
    common(p)
    p.set_defaults(func=cmd_generate_higgs_jet)

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

    p = sub.add_parser(
        "train-response",
        help="train a response surrogate: two photons (paper A's preset) or any collection (--truth/--reco)",
        description="Without --truth/--reco: the two-photon response of 'mcsurrogate smear' output (reco and truth "
        "photons, mu). With them: the object-level response of any collection, from truth objects matched to reco "
        "objects by Delta R (one-to-one, nearest first): an efficiency classifier and a per-object response flow, "
        "autoregressive over the objects of an event (mcsurrogate.response.ObjectResponse).",
    )
    p.add_argument(
        "smeared",
        metavar="SMEARED",
        help="events with reco and truth objects (ROOT or Parquet): 'mcsurrogate smear' output, or with --truth/--reco "
        "any file holding both collections (a full simulation's)",
    )
    p.add_argument(
        "--truth",
        metavar="COLLECTION",
        help="object-level path: the truth collection, a list of pt [GeV], eta, phi [rad] records per event (default: none, the two-photon preset)",
    )
    p.add_argument(
        "--reco",
        metavar="COLLECTION",
        help="object-level path: the reco collection matched to --truth (default: none, the two-photon preset)",
    )
    p.add_argument("--pileup", metavar="FIELD", help="object-level path: the per-event pile-up field (default: mu)")
    p.add_argument(
        "--fields",
        type=_response_fields,
        help="object-level path: the responses reco - truth modelled, of pt,eta,phi (others copied from truth; "
        "default: pt,eta,phi)",
    )
    p.add_argument("--max-dr", type=positive_float, help="object-level path: Delta R matching cone (default: 0.1)")
    p.add_argument(
        "--efficiency-epochs",
        type=positive_int,
        help="object-level path: efficiency-classifier epochs, at most (default: 10, early stopping)",
    )
    p.add_argument(
        "--tags",
        type=_field_names,
        help="object-level path: 0/1 fields of the reco objects to learn and draw per reconstructed object, "
        "comma-separated (e.g. btag; default: none)",
    )
    p.add_argument(
        "--tag-inputs",
        type=_field_names,
        help="object-level path, with --tags: truth fields the tags' classifiers read beside pt, eta and pile-up, "
        "comma-separated (e.g. flavour; the truth collection must hold them when applied too; default: none)",
    )
    p.add_argument(
        "--no-width-calibration",
        action="store_const",
        const=True,
        help="object-level path: sample the response flow's widths as they come, without the closure calibration on "
        "the training pairs (default: calibrated; ObjectResponse.with_width_calibration)",
    )
    p.add_argument(
        "--preset",
        choices=RESPONSE_PRESETS,
        default="affine-spline",
        help="response model (default: affine-spline; with --truth/--reco: affine-spline or demo)",
    )
    p.add_argument("--epochs", type=positive_int, help="training epochs, at most (default: the preset's)")
    p.add_argument("--seed", type=non_negative_int, help="seed of the split, initialisation and batches (default: 0)")
    p.add_argument("--device", type=device, help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--tree", help="TTree of SMEARED (default: the file's only tree)")
    p.add_argument(
        "--train-smearings",
        type=positive_int,
        default=1,
        metavar="K",
        help="two-photon path: K detector passes per truth event: the truth smeared K - 1 more times with the "
        "reference smearing --smearing (split 90/10 by truth event first; default: 1, the file's smearing only)",
    )
    p.add_argument(
        "--smearing",
        choices=("baseline", "correlation", "asymmetric"),
        help="with --train-smearings: the reference smearing scenario of SMEARED, as given to 'mcsurrogate smear' "
        "(default: none; required with --train-smearings > 1)",
    )
    p.add_argument(
        "--rho", type=correlation, help="with --train-smearings and --smearing correlation: rho (default: 0.5)"
    )
    add_weight_arguments(p)
    p.add_argument("--out", required=True, help="model directory to write (checkpoints in OUT.checkpoints meanwhile)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_train_response)

    p = sub.add_parser(
        "apply",
        help="smear truth events with a response surrogate: reco = truth + sampled response",
        description="A two-photon model writes reco and truth photons and mu (as 'mcsurrogate smear'); an object-level "
        "model (train-response --truth/--reco) writes the input events with one more jagged collection: the "
        "reconstructed objects of the truth collection, efficiency applied, any number per event.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="response model directory (train-response)")
    p.add_argument(
        "truth",
        metavar="TRUTH",
        help="truth events (ROOT or Parquet): 'photons' and 'mu' for a two-photon model; the truth collection and "
        "pile-up field for an object-level one",
    )
    p.add_argument(
        "--truth",
        dest="truth_collection",
        metavar="COLLECTION",
        help="object-level model: the truth collection to reconstruct (default: the one it was trained on)",
    )
    p.add_argument(
        "--reco",
        metavar="COLLECTION",
        help="object-level model: the name of the reco collection written (default: the one it was trained on)",
    )
    p.add_argument("--tree", help="TTree of TRUTH (default: the file's only tree)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampled response (default: 0)")
    p.add_argument(
        "--batch-size", type=positive_int, default=100_000, help="photons smeared per batch (default: 100000)"
    )
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_apply)
