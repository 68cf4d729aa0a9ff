"""Core commands: ``demo``, ``train``, ``sample``, ``distill``, ``info``.

Every flag is checked when it is parsed (:mod:`mcsurrogate.cli.arguments`); every output location is checked
(writable, not there already unless ``--overwrite``) and locked against a second writer before any reading,
training or sampling starts (:mod:`mcsurrogate.files`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import check_writable, output_lock, refuse_existing
from .arguments import device, event_count, non_negative_int, positive_float, positive_int

#: the preprocessing presets of mcsurrogate.preprocessing.PRESETS (literal: the parser imports no torch; tested)
PREPROCESSING_CHOICES = ("identity", "standardize", "logit", "gauss-rank", "minmax")

FLOW_CHOICES = (
    "maf",
    "made-mog",
    "maf-made-mog",
    "rqs-ar",
    "rqs-coupling",
    "realnvp",
    "glow",
    "flow-matching",
)  # flows.FLOW_FAMILIES without importing torch (test_cli pins the two equal)


#: the choices of ``mcsurrogate distill`` (literal: the parser imports no torch; tested against the library's)
DISTILL_ACTIVATIONS = ("relu", "gelu", "elu", "silu", "tanh")
DISTILL_PRECISIONS = ("float32", "bfloat16")


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {p} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"config file {p} is not valid JSON: {exc}") from exc
    valid = {"flow", "training", "preprocessing", "condition_preprocessing", "targets", "conditions", "event_transform"}
    unknown = sorted(set(data) - valid) if isinstance(data, dict) else ["<not an object>"]
    if unknown:
        raise InputError(f"config file {p}: unknown key(s) {unknown}; valid keys: {sorted(valid)}")
    return data


def checkpoint_dir_for(out: Path) -> Path:
    """Where ``train --out OUT`` keeps its checkpoints until the model is saved: ``OUT.checkpoints``."""
    return out.with_name(out.name + ".checkpoints")


_OVERWRITE_HINT = "choose another --out or pass --overwrite"


def claim_output(
    stack: contextlib.ExitStack, path: str | Path, overwrite: bool, purpose: str, *, directory: bool = False
) -> Path:
    """Check that the output ``path`` can be written and is not there already (unless ``overwrite``), then lock it
    for the rest of the command (``stack``): a second command writing the same output fails at once."""
    out = check_writable(path, directory=directory)
    refuse_existing(out, overwrite, _OVERWRITE_HINT)
    stack.enter_context(output_lock(out, purpose=purpose))
    return refuse_existing(out, overwrite, _OVERWRITE_HINT)  # again: it may have appeared before the lock


def add_weight_arguments(p: argparse.ArgumentParser) -> None:
    """The event-weight flags of ``train`` and ``train-response`` (:meth:`Surrogate.fit`'s ``weights=`` and friends)."""
    p.add_argument(
        "--weights",
        metavar="COLUMN",
        help="event-weight column: the weighted NLL is trained, the preprocessing fitted with the weights, the Kish "
        "effective size recorded (default: unweighted)",
    )
    p.add_argument(
        "--drop-nonfinite-weights",
        action="store_true",
        help="drop (and count) events whose weight is NaN/inf instead of failing (default: fail)",
    )
    p.add_argument(
        "--negative-weights",
        choices=("signed", "cell-resampling"),
        default="signed",
        help="train negative weights as they are, or make them non-negative by cell resampling first (default: signed)",
    )
    p.add_argument(
        "--bootstrap-seed",
        type=non_negative_int,
        help="train a bootstrap replica: training weights × Poisson(1) draws of this seed (default: none)",
    )


def weight_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :meth:`Surrogate.fit` / ``train_response`` that the weight flags give."""
    return {
        "weights": args.weights,
        "drop_nonfinite_weights": args.drop_nonfinite_weights,
        "negative_weights": args.negative_weights,
        "bootstrap_seed": args.bootstrap_seed,
    }


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    targets = _columns(args.targets) or cfg.get("targets", [])
    conditions = _columns(args.conditions) or cfg.get("conditions", [])
    if not targets:
        raise InputError("no target columns: pass --targets a,b,c (or 'targets' in --config)")
    with contextlib.ExitStack() as stack:
        out, ckpt = Path(args.out), checkpoint_dir_for(Path(args.out))
        claim_output(stack, out, args.overwrite, f"mcsurrogate train, checkpoints in {ckpt}", directory=True)
        return _train(args, cfg, targets, conditions, out, ckpt)


def _train(
    args: argparse.Namespace, cfg: dict[str, Any], targets: list[str], conditions: list[str], out: Path, ckpt: Path
) -> int:
    from ..io import read_events
    from ..surrogate import Surrogate

    flow = dict(cfg.get("flow", {}))
    for key, value in (("model", args.model), ("blocks", args.blocks), ("hidden", args.hidden)):
        if value is not None:
            flow[key] = value
    flow.setdefault("model", "maf")
    training = dict(cfg.get("training", {}))
    for key, value in (
        ("epochs", args.epochs),
        ("seed", args.seed),
        ("device", args.device),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
    ):
        if value is not None:
            training[key] = value
    events = read_events(args.data, tree=args.tree, columns=None)
    model = Surrogate(
        targets,
        conditions or None,
        flow=flow,
        training=training,
        preprocessing=args.preprocessing or cfg.get("preprocessing", "standardize"),
        condition_preprocessing=cfg.get("condition_preprocessing", "standardize"),
        event_transform=cfg.get("event_transform"),
    )
    print(f"training {flow['model']} on {len(events)} events: targets {targets}, conditions {conditions or 'none'}")
    print(f"checkpoints in {ckpt} (re-run the same command to resume after an interruption)")
    model.fit(
        events,
        nonfinite="drop" if args.drop_nonfinite else "raise",
        checkpoint_dir=ckpt,
        resume=not args.no_resume,
        **weight_options(args),
    )
    dropped = model.metrics["data"].get("dropped_nonfinite")
    if dropped:
        print(f"dropped events with non-finite values, per column: {dropped}")
    if args.weights:
        print(f"training split: {model.info()['training_size']}")
    model.save(out, overwrite=args.overwrite)
    shutil.rmtree(ckpt, ignore_errors=True)
    res = model.result
    assert res is not None
    print(
        f"saved {out}: best epoch {res.best_epoch}/{len(res.history)} ({res.selection} {res.best_metric:.5g}), "
        f"test NLL {model.metrics['test_nll_flow_space']:.4f}, {res.train_events_per_second:.3g} events/s on {res.device}"
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ..io import file_format

    file_format(args.output)  # a wrong suffix is refused before the work too
    if args.save_reweighting and not args.reweight_against:
        raise InputError("--save-reweighting saves the weights that --reweight-against fits: pass both")
    if args.reweight_against and args.reweighting:
        raise InputError("pass --reweight-against (fit the weights) or --reweighting (load them), not both")
    if args.refine and (args.reweight_against or args.reweighting):
        raise InputError("--refine writes unweighted refined events: pass it without --reweight-against/--reweighting")
    with contextlib.ExitStack() as stack:
        if args.save_reweighting:
            claim_output(stack, args.save_reweighting, args.overwrite, "mcsurrogate sample", directory=True)
        claim_output(stack, args.output, args.overwrite, "mcsurrogate sample")
        return _sample(args)


def _sample(args: argparse.Namespace) -> int:
    import awkward as ak

    from ..io import EventWriter, read_events
    from ..surrogate import Surrogate

    model = Surrogate.load(args.model, device=args.device)
    conditions = None
    if args.conditions_from:
        conditions = read_events(args.conditions_from, tree=args.tree)
    elif model.conditional:
        raise InputError(f"{args.model} is conditional: pass --conditions-from FILE with columns {model.conditions}")
    if conditions is None and args.n is None:
        raise InputError("pass -n N, the number of events to generate")
    if args.refine:
        return _refine(args, model, conditions)
    reweighting = None
    if args.reweight_against or args.reweighting:
        from ..refinement import Reweighting, fit_surrogate_reweighting

        if "weight" in model.targets + model.conditions:
            raise InputError(f"{args.model} has a column named 'weight': reweighting would overwrite it")
        if args.reweighting:
            reweighting = Reweighting.load(args.reweighting)
            expected = list(model.targets) + list(model.conditions)
            if reweighting.features != expected:
                raise InputError(
                    f"--reweighting {args.reweighting} was fitted on the features {reweighting.features}; "
                    f"{args.model} generates {expected}"
                )
            print(f"reweighting from {args.reweighting}: Kish efficiency {reweighting.kish_efficiency:.3f} at its fit")
        else:
            training = read_events(args.reweight_against)
            # the fit's generated events use another seed than the written ones
            reweighting = fit_surrogate_reweighting(model, training, seed=args.seed + 1_000_003)
            print(
                f"reweighting against {args.reweight_against}: Kish efficiency "
                f"{reweighting.kish_efficiency:.3f} on {reweighting.n_generated} fit events"
            )
            if args.save_reweighting:
                print(f"saved {reweighting.save(args.save_reweighting, overwrite=args.overwrite)}")
    n_written = 0
    with EventWriter(args.output, tree=args.out_tree, overwrite=args.overwrite) as writer:
        for batch in model.sample_batches(args.n, conditions, seed=args.seed, batch_size=args.batch_size):
            if reweighting is not None:
                batch = ak.with_field(batch, reweighting.weights(batch), "weight")
            writer.write(batch)
            n_written += len(batch)
    print(f"wrote {n_written} events to {args.output}")
    return 0


def _refine(args: argparse.Namespace, model: Any, conditions: Any) -> int:
    """``sample --refine``: unweighted events by latent-space refinement (mcsurrogate.laser) with a saved
    reweighting; a conditional surrogate's events, one per row of ``--conditions-from``, each from its own chain."""
    from ..io import EventWriter
    from ..refinement import Reweighting

    reweighting = Reweighting.load(args.refine)
    result = reweighting.refine(
        model,
        args.n,
        seed=args.seed,
        conditions=conditions,
        chains=args.hmc_chains,
        warmup=args.hmc_warmup,
        thin=args.hmc_thin,
    )
    d, a = result.hmc, result.agreement
    print(
        f"refined with {args.refine}: {d.chains} HMC chains, acceptance {d.acceptance_rate:.2f} "
        f"(integrator {d.integrator_acceptance_rate:.2f}), "
        f"min ESS {d.ess_min:.0f} (second moment {min(d.ess_second_moment):.0f}), max split-R-hat {d.rhat_max:.3f}, "
        f"{d.divergences} divergences, {result.events_per_second:.3g} events/s; distilled weight vs trees: "
        f"log-w correlation {a.correlation:.3f}, Kish {a.kish_efficiency_mlp:.3f} vs {a.kish_efficiency_trees:.3f}"
    )
    with EventWriter(args.output, tree=args.out_tree, overwrite=args.overwrite) as writer:
        writer.write(result.events)
    print(f"wrote {len(result.events)} events to {args.output}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        out = claim_output(stack, args.out, args.overwrite, "mcsurrogate distill", directory=True)
        return _distill(args, out)


def _distill(args: argparse.Namespace, out: Path) -> int:
    from ..io import read_events
    from ..response.surrogate import DEFAULT_LAYOUT, distill_response
    from ..surrogate import Surrogate

    model = Surrogate.load(args.model, device=args.device)
    config = {
        key: value
        for key, value in (
            ("hidden", args.hidden),
            ("layers", args.layers),
            ("pairs", args.pairs),
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("seed", args.seed),
            ("precision", args.precision),
            ("activation", args.activation),
        )
        if value is not None
    }
    if not model.conditional:
        if args.conditions_from:
            raise InputError(f"{args.model} is unconditional: distil it without --conditions-from")
        distilled = model.distill(None, config)
    else:
        if not args.conditions_from:
            raise InputError(
                f"{args.model} is conditional: pass --conditions-from FILE with columns {model.conditions} "
                f"(or, for a response model, truth events with {DEFAULT_LAYOUT.collection!r} and {DEFAULT_LAYOUT.pileup!r})"
            )
        events = read_events(args.conditions_from, tree=args.tree)
        if set(model.conditions) <= set(events.fields) or DEFAULT_LAYOUT.collection not in events.fields:
            distilled = model.distill(events, config)
        else:  # truth photons and pile-up, as `mcsurrogate apply` takes them
            distilled = distill_response(model, events, config)
    distilled.save(out, overwrite=args.overwrite)
    rep = distilled.metrics["distillation"]
    rel = [
        m / max(s, 1e-12) ** 2
        for m, s in zip(rep["validation_mse_per_feature"], rep["teacher_std_per_feature"], strict=True)
    ]
    print(
        f"saved {out}: {rep['n_parameters']} student parameters; held-out squared error / teacher variance per target "
        + ", ".join(f"{t} {r:.1e}" for t, r in zip(distilled.targets, rel, strict=True))
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("onnx" if Path(args.output).suffix.lower() == ".onnx" else "torchscript")
    with contextlib.ExitStack() as stack:
        dest = claim_output(stack, args.output, args.overwrite, "mcsurrogate export")
        claim_output(stack, dest.with_suffix(".json"), args.overwrite, "mcsurrogate export (sidecar)")
        from ..export import export_onnx, export_torchscript
        from ..surrogate import Surrogate

        model = Surrogate.load(args.model, device="cpu")
        if fmt == "onnx":
            path = export_onnx(model, dest, opset=args.opset, overwrite=args.overwrite)
        else:
            path = export_torchscript(model, dest, overwrite=args.overwrite)
    print(f"wrote {path} ({fmt}) and its sidecar {path.with_suffix('.json')}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..surrogate import Surrogate

    model = Surrogate.load(args.model, device="cpu")
    info = model.info()
    if args.json:
        print(json.dumps(info, indent=2, default=float))
        return 0
    train = info["metrics"].get("training", {})
    print(f"model directory: {args.model}")
    print(f"  flow:          {info['flow']['model']} ({info['n_parameters']} parameters, {info['size_mb']:.2f} MB)")
    sampler = info.get("distilled_sampler")
    if sampler:
        print(
            f"  sampler:       distilled, {sampler['layers']} × {sampler['hidden']} {sampler['activation']}, "
            f"{sampler.get('precision', 'float32')} (log_prob stays the flow's)"
        )
    print(f"  targets:       {', '.join(info['targets'])}")
    print(f"  conditions:    {', '.join(info['conditions']) or '(none: unconditional)'}")
    transform = info.get("event_transform")
    if transform:
        print(f"  event transform: {transform['kind']}; the flow learns {', '.join(model.flow_columns)}")
    chains = info["preprocessing"].get("chains", info["preprocessing"])
    print(f"  preprocessing: {json.dumps(chains)[:300]}")
    if train:
        print(
            f"  training:      best epoch {train.get('best_epoch')} of {len(train.get('history', []))}, "
            f"{train.get('selection')} = {train.get('best_metric'):.5g}, device {train.get('device')}"
        )
    if info.get("training_size"):
        print(f"  training size: {info['training_size']}")
    split = info["metrics"].get("split")
    if split:
        print(f"  split:         {split}; test NLL (flow space) {info['metrics'].get('test_nll_flow_space')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    out = args.out
    if out is None:  # the default name: never overwrite an earlier demo, take the next free one
        out, k = "mcsurrogate-demo", 1
        while Path(out).exists():
            k += 1
            out = f"mcsurrogate-demo-{k}"
    with contextlib.ExitStack() as stack:
        claim_output(stack, out, args.overwrite, "mcsurrogate demo", directory=True)
        print(
            "mcsurrogate demo: H→γγ photon detector response (paper A, baseline scenario) on the packaged "
            "Pythia 8 gg→H truth sample"
        )
        report = run_demo(out, n_events=args.events, epochs=args.epochs, seed=args.seed, overwrite=args.overwrite)
    print()
    for line in report["verdict"]:
        print(f"  {line}")
    print(f"\nreport: {out}/summary.md, {out}/report.json, figures {out}/*.png; model: {out}/model")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train and validate a photon-response surrogate on the packaged sample",
        description="The main job on the embedded default: smear the packaged H→γγ truth photons, "
        "train a response surrogate, validate it on a held-out split, write a report.",
    )
    p.add_argument("--out", help="report directory (default: mcsurrogate-demo, or -2, -3 … if it exists)")
    p.add_argument(
        "--events", type=event_count, help="use only the first N packaged events (default: all of them, 200 000)"
    )
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the demo preset's, 12)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the smearing and training (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report directory")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a surrogate on a ROOT or Parquet file",
        description="Train a normalizing-flow surrogate of TARGETS (given CONDITIONS) on DATA. The model directory "
        "--out is locked while it trains: a second train into the same --out is refused at once.",
    )
    p.add_argument("data", metavar="DATA", help="ROOT (file.root or file.root:tree) or Parquet file")
    p.add_argument("--targets", help="comma-separated target columns (default: 'targets' of --config)")
    p.add_argument(
        "--conditions",
        help="comma-separated condition columns (default: 'conditions' of --config, else none: an unconditional model)",
    )
    p.add_argument("--tree", help="TTree name in a ROOT file (default: the file's only tree)")
    p.add_argument("--model", choices=FLOW_CHOICES, help="flow family (default: --config's, else maf)")
    p.add_argument("--blocks", type=positive_int, help="flow blocks (default: --config's, else 5)")
    p.add_argument("--hidden", type=positive_int, help="hidden width, units per layer (default: --config's, else 128)")
    p.add_argument(
        "--epochs", type=positive_int, help="training epochs, at most (early stopping; default: --config's, else 50)"
    )
    p.add_argument("--batch-size", type=positive_int, help="events per optimiser step (default: --config's, else 512)")
    p.add_argument("--lr", type=positive_float, help="initial learning rate (default: --config's, else 0.001)")
    p.add_argument(
        "--preprocessing",
        choices=PREPROCESSING_CHOICES,
        help="transform of the targets before the flow (default: --config's, else standardize)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        help="seed of the split, initialisation and batches (default: --config's, else 0)",
    )
    p.add_argument(
        "--device",
        type=device,
        help="auto, cpu, cuda, cuda:N or mps (default: --config's, else auto: CUDA when present)",
    )
    p.add_argument(
        "--config",
        help="JSON file with 'flow', 'training', 'preprocessing', 'event_transform' sections (default: none; flags win)",
    )
    p.add_argument("--drop-nonfinite", action="store_true", help="drop events with NaN/inf instead of failing")
    add_weight_arguments(p)
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an interrupted run")
    p.add_argument("--out", required=True, help="model directory to write (checkpoints in OUT.checkpoints meanwhile)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sample",
        help="generate events from a trained surrogate",
        description="Generate events with a trained surrogate and write them to ROOT or Parquet.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory written by train, train-response or distill")
    p.add_argument(
        "-n", type=event_count, help="number of events, e.g. 1e6 (unconditional models; default: one per condition)"
    )
    p.add_argument(
        "--conditions-from", help="file with the condition columns: one generated event per row (default: none)"
    )
    p.add_argument("--tree", help="TTree of --conditions-from (default: the file's only tree)")
    p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root")
    p.add_argument("--out-tree", default="events", help="TTree name in a ROOT output (default: events)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the generated noise (default: 0)")
    p.add_argument(
        "--batch-size", type=positive_int, default=100_000, help="events generated per batch (default: 100000)"
    )
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--reweight-against",
        metavar="TRAINING_FILE",
        help="the model's training MC (file.root[:tree] or .parquet): add a 'weight' column, w(x) = p_MC/p_gen "
        "of classifiers trained on it (ELSA's first step, mcsurrogate.refinement; default: no weights)",
    )
    p.add_argument(
        "--save-reweighting",
        metavar="DIR",
        help="with --reweight-against: save the fitted reweighting (Reweighting.save, no pickle) for --reweighting "
        "(default: not saved)",
    )
    p.add_argument(
        "--reweighting",
        metavar="DIR",
        help="add a 'weight' column from a saved reweighting of this model instead of fitting one (default: none)",
    )
    p.add_argument(
        "--refine",
        metavar="REWEIGHTING_DIR",
        help="write unweighted events refined in the flow's latent space with a saved reweighting (ELSA's LASER, "
        "Hamiltonian Monte Carlo; a conditional model refines one event per --conditions-from row, each from its own "
        "chain; default: plain sampling)",
    )
    p.add_argument(
        "--hmc-chains", type=positive_int, default=512, help="with --refine: HMC chains run together (default: 512)"
    )
    p.add_argument(
        "--hmc-thin",
        type=positive_int,
        default=25,
        help="with --refine: keep every N-th draw of a chain, so that events are nearly independent; a conditional "
        "model's rows each run N iterations (default: 25)",
    )
    p.add_argument(
        "--hmc-warmup",
        type=non_negative_int,
        default=200,
        help="with --refine: warm-up iterations adapting the step size, discarded (default: 200)",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "distill",
        help="distil a trained surrogate into a one-pass sampler (fast sampling)",
        description="Fit a dense network to MODEL's noise → sample map at the conditions of a file (e.g. the "
        "training events) and save a copy of the model that samples with it; its density stays the flow's. "
        "Validate its samples as you would the flow's.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory of the flow to distil")
    p.add_argument(
        "--conditions-from",
        help="file with the condition columns (or truth photons and mu); required for a conditional model (default: none)",
    )
    p.add_argument("--tree", help="TTree of --conditions-from (default: the file's only tree)")
    p.add_argument("--hidden", type=positive_int, help="hidden width of the student, units (default: 256)")
    p.add_argument("--layers", type=positive_int, help="hidden layers of the student (default: 3)")
    p.add_argument("--pairs", type=event_count, help="teacher samples to fit (default: 2 000 000)")
    p.add_argument("--epochs", type=positive_int, help="passes over the pairs (default: 20)")
    p.add_argument("--batch-size", type=positive_int, help="pairs per optimiser step (default: 4096)")
    p.add_argument("--seed", type=non_negative_int, help="seed of the pairs and the student (default: 0)")
    p.add_argument(
        "--activation",
        choices=DISTILL_ACTIVATIONS,
        help="activation of the student's hidden layers (default: relu; silu fits as well and samples ~1.8× slower "
        "in bfloat16)",
    )
    p.add_argument(
        "--precision",
        choices=DISTILL_PRECISIONS,
        help="arithmetic of the student when sampling (default: float32; bfloat16 ~2× faster on CPUs with AMX or "
        "AVX512-BF16 and on GPUs, slower elsewhere)",
    )
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser(
        "export",
        help="export a model's sampler to TorchScript or ONNX (+ a JSON sidecar)",
        description="Trace the flow's sampler (noise [, preprocessed conditions] → preprocessed targets, float32, "
        "CPU) to a TorchScript or ONNX file, checked against the flow; the preprocessing goes to OUTPUT's .json "
        "sidecar. See docs/export.md.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory (train, train-response or distill)")
    p.add_argument("-o", "--output", required=True, help="file to write, e.g. sampler.pt or sampler.onnx")
    p.add_argument(
        "--format",
        choices=("torchscript", "onnx"),
        help="export format (default: onnx for a .onnx OUTPUT, torchscript otherwise)",
    )
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT and its sidecar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="describe a model directory")
    p.add_argument("model", metavar="MODEL_DIR", help="model directory to describe")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=cmd_info)
