"""``mcsurrogate validate REFERENCE CANDIDATE``: the validation suite on two files, as a report folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputExistsError


def _flat_numeric(path: str) -> list[str]:
    import awkward as ak

    from ..io import read_events

    head = read_events(path, entry_stop=1)
    out = []
    for name in ak.fields(head):
        t = str(ak.type(head[name]).content)
        if t in ("float64", "float32", "int64", "int32", "int16", "uint8", "bool", "?float64", "?float32"):
            out.append(name)
    return out


def _matrix(path: str, features: list[str], weights: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    import awkward as ak

    from ..io import read_events
    from ..records import feature_matrix

    events = read_events(path, columns=features + ([weights] if weights else []))
    try:
        x = feature_matrix(events, features)
        w = ak.to_numpy(events[weights]).astype(float) if weights else None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: every validated column must be one number per event (flat)") from exc
    bad = ~np.isfinite(x)
    if bad.any():
        counts = {f: int(k) for f, k in zip(features, bad.sum(axis=0), strict=False) if k}
        raise InputError(f"{path}: NaN/inf values per column {counts}; remove or fill them first")
    return x, w


def cmd_validate(args: argparse.Namespace) -> int:
    from ..validation.report import validate, write_report

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputExistsError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
    else:
        in_ref, in_can = _flat_numeric(args.reference), _flat_numeric(args.candidate)
        features = [f for f in in_ref if f in in_can and f not in (args.weights, args.candidate_weights)]
        only = sorted(set(in_ref) ^ set(in_can))
        if not features:
            raise InputError(
                f"{args.reference} and {args.candidate} share no flat numeric column; "
                f"reference has {in_ref}, candidate has {in_can}"
            )
        if only:
            print(f"note: columns in only one file are skipped: {only}")
    ref, wr = _matrix(args.reference, features, args.weights)
    can, wc = _matrix(args.candidate, features, args.candidate_weights or args.weights)
    report = validate(
        ref,
        can,
        features,
        weights_reference=wr,
        weights_candidate=wc,
        bins=args.bins,
        n_resamples=args.resamples,
        classifier=args.classifier,
        n_permutations=args.permutations,
        max_events=args.max_events,
        seed=args.seed,
    )
    corner = [c.strip() for c in args.corner.split(",")] if args.corner else None
    figures = write_report(report, ref, can, out, corner_features=corner)
    print(report.verdict())
    print(f"wrote {out / 'report.json'}, {out / 'index.html'} and {len(figures)} figures")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="divergences, C2ST, density ratio, FPD/KPD and correlations: generated vs MC",
        description="Compare CANDIDATE (generated) with REFERENCE (MC), feature by feature and jointly; "
        "writes report.json (every number), PNG figures and index.html.",
    )
    p.add_argument("reference", help="MC sample (ROOT or Parquet)")
    p.add_argument("candidate", help="generated sample")
    p.add_argument("--features", help="comma-separated columns (default: every flat numeric column in both)")
    p.add_argument("--weights", help="event-weight column (in both files)")
    p.add_argument(
        "--candidate-weights",
        help="event-weight column of the candidate when it differs from --weights (e.g. 'weight' written by "
        "`sample --reweight-against`)",
    )
    p.add_argument("--classifier", default="hgb", choices=("hgb", "mlp"))
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--resamples", type=int, default=5, help="MC-vs-MC baseline resamplings (default 5)")
    p.add_argument("--permutations", type=int, default=200, help="label permutations for the C2ST p-value")
    p.add_argument("--max-events", type=int, default=1_000_000, help="events per sample in the classifier tests")
    p.add_argument("--corner", help="features for the corner plot (default: the first five)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_validate)
