"""Core commands: ``demo``, ``train``, ``sample``, ``distill``, ``info``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputExistsError

FLOW_CHOICES = ("maf", "made-mog", "maf-made-mog", "rqs-ar", "rqs-coupling", "realnvp", "glow")


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
    valid = {"flow", "training", "preprocessing", "condition_preprocessing", "targets", "conditions"}
    unknown = sorted(set(data) - valid) if isinstance(data, dict) else ["<not an object>"]
    if unknown:
        raise InputError(f"config file {p}: unknown key(s) {unknown}; valid keys: {sorted(valid)}")
    return data


def checkpoint_dir_for(out: Path) -> Path:
    """Where ``train --out OUT`` keeps its checkpoints until the model is saved: ``OUT.checkpoints``."""
    return out.with_name(out.name + ".checkpoints")


def cmd_train(args: argparse.Namespace) -> int:
    from ..io import read_events
    from ..surrogate import Surrogate

    cfg = _load_config(args.config)
    targets = _columns(args.targets) or cfg.get("targets", [])
    conditions = _columns(args.conditions) or cfg.get("conditions", [])
    if not targets:
        raise InputError("no target columns: pass --targets a,b,c (or 'targets' in --config)")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists already; choose another --out or pass --overwrite")
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
    )
    ckpt = checkpoint_dir_for(out)
    print(f"training {flow['model']} on {len(events)} events: targets {targets}, conditions {conditions or 'none'}")
    print(f"checkpoints in {ckpt} (re-run the same command to resume after an interruption)")
    model.fit(
        events, nonfinite="drop" if args.drop_nonfinite else "raise", checkpoint_dir=ckpt, resume=not args.no_resume
    )
    dropped = model.metrics["data"].get("dropped_nonfinite")
    if dropped:
        print(f"dropped events with non-finite values, per column: {dropped}")
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
    reweighting = None
    if args.reweight_against or args.reweighting:
        from ..refinement import Reweighting, fit_surrogate_reweighting

        if "weight" in model.targets + model.conditions:
            raise InputError(f"{args.model} has a column named 'weight': reweighting would overwrite it")
        if args.reweight_against and args.reweighting:
            raise InputError("pass --reweight-against (fit the weights) or --reweighting (load them), not both")
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
            if args.save_reweighting and Path(args.save_reweighting).exists() and not args.overwrite:
                raise OutputExistsError(
                    f"{args.save_reweighting} exists already; choose another directory or --overwrite"
                )
            training = read_events(args.reweight_against)
            # the fit's generated events use another seed than the written ones
            reweighting = fit_surrogate_reweighting(model, training, seed=args.seed + 1_000_003)
            print(
                f"reweighting against {args.reweight_against}: Kish efficiency "
                f"{reweighting.kish_efficiency:.3f} on {reweighting.n_generated} fit events"
            )
            if args.save_reweighting:
                print(f"saved {reweighting.save(args.save_reweighting, overwrite=args.overwrite)}")
    elif args.save_reweighting:
        raise InputError("--save-reweighting saves the weights that --reweight-against fits: pass both")
    n_written = 0
    with EventWriter(args.output, tree=args.out_tree, overwrite=args.overwrite) as writer:
        for batch in model.sample_batches(args.n, conditions, seed=args.seed, batch_size=args.batch_size):
            if reweighting is not None:
                batch = ak.with_field(batch, reweighting.weights(batch), "weight")
            writer.write(batch)
            n_written += len(batch)
    print(f"wrote {n_written} events to {args.output}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ..io import read_events
    from ..response.surrogate import DEFAULT_LAYOUT, distill_response
    from ..surrogate import Surrogate

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists already; choose another --out or pass --overwrite")
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
    chains = info["preprocessing"].get("chains", info["preprocessing"])
    print(f"  preprocessing: {json.dumps(chains)[:300]}")
    if train:
        print(
            f"  training:      best epoch {train.get('best_epoch')} of {len(train.get('history', []))}, "
            f"{train.get('selection')} = {train.get('best_metric'):.5g}, device {train.get('device')}"
        )
    split = info["metrics"].get("split")
    if split:
        print(f"  split:         {split}; test NLL (flow space) {info['metrics'].get('test_nll_flow_space')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    print(
        "mcsurrogate demo: H→γγ photon detector response (paper A, baseline scenario) on the packaged "
        "Pythia 8 gg→H truth sample"
    )
    out = args.out
    if out is None:  # the default name: never overwrite an earlier demo, take the next free one
        out, k = "mcsurrogate-demo", 1
        while Path(out).exists():
            k += 1
            out = f"mcsurrogate-demo-{k}"
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
    p.add_argument("--events", type=int, help="use only the first N packaged events")
    p.add_argument("--epochs", type=int, help="training epochs (default: the demo preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing report directory")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a surrogate on a ROOT or Parquet file",
        description="Train a normalizing-flow surrogate of TARGETS (given CONDITIONS) on DATA.",
    )
    p.add_argument("data", metavar="DATA", help="ROOT (file.root or file.root:tree) or Parquet file")
    p.add_argument("--targets", help="comma-separated target columns")
    p.add_argument("--conditions", help="comma-separated condition columns (omit for an unconditional model)")
    p.add_argument("--tree", help="TTree name in a ROOT file")
    p.add_argument("--model", choices=FLOW_CHOICES, help="flow family (default maf)")
    p.add_argument("--blocks", type=int, help="flow blocks")
    p.add_argument("--hidden", type=int, help="hidden width")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--preprocessing", help="standardize | logit | gauss-rank | minmax | identity")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda")
    p.add_argument("--config", help="JSON file with 'flow', 'training', 'preprocessing' sections")
    p.add_argument("--drop-nonfinite", action="store_true", help="drop events with NaN/inf instead of failing")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an interrupted run")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sample",
        help="generate events from a trained surrogate",
        description="Generate events with a trained surrogate and write them to ROOT or Parquet.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("-n", type=int, help="number of events (unconditional models)")
    p.add_argument("--conditions-from", help="file with the condition columns: one generated event per row")
    p.add_argument("--tree", help="TTree of --conditions-from")
    p.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.root")
    p.add_argument("--out-tree", default="events", help="TTree name in a ROOT output (default events)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=100_000)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--reweight-against",
        metavar="TRAINING_FILE",
        help="the model's training MC (file.root[:tree] or .parquet): add a 'weight' column, w(x) = p_MC/p_gen "
        "of classifiers trained on it (ELSA's first step, mcsurrogate.refinement)",
    )
    p.add_argument(
        "--save-reweighting",
        metavar="DIR",
        help="with --reweight-against: save the fitted reweighting (Reweighting.save, no pickle) for --reweighting",
    )
    p.add_argument(
        "--reweighting",
        metavar="DIR",
        help="add a 'weight' column from a saved reweighting of this model instead of fitting one",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "distill",
        help="distil a trained surrogate into a one-pass sampler (fast sampling)",
        description="Fit a dense network to MODEL's noise → sample map at the conditions of a file (e.g. the "
        "training events) and save a copy of the model that samples with it; its density stays the flow's. "
        "Validate its samples as you would the flow's.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("--conditions-from", help="file with the condition columns (or truth photons and mu)")
    p.add_argument("--tree", help="TTree of --conditions-from")
    p.add_argument("--hidden", type=int, help="hidden width of the student (default 256)")
    p.add_argument("--layers", type=int, help="hidden layers of the student (default 3)")
    p.add_argument("--pairs", type=int, help="teacher samples to fit (default 2 000 000)")
    p.add_argument("--epochs", type=int, help="passes over the pairs (default 20)")
    p.add_argument("--batch-size", type=int, help="pairs per optimiser step (default 4096)")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--activation",
        choices=DISTILL_ACTIVATIONS,
        help="activation of the student's hidden layers (default relu; silu fits as well and samples ~1.8× slower in "
        "bfloat16)",
    )
    p.add_argument(
        "--precision",
        choices=DISTILL_PRECISIONS,
        help="arithmetic of the student when sampling (default float32; bfloat16 ~2× faster on CPUs with AMX or "
        "AVX512-BF16 and on GPUs, slower elsewhere)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("info", help="describe a model directory")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=cmd_info)
