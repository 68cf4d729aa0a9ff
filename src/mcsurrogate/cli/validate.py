"""``mcsurrogate validate REFERENCE CANDIDATE``: the validation suite on two files, as a report folder.

Every flag is checked when it is parsed (:mod:`mcsurrogate.cli.arguments`); options that depend on each other
(permutations against the level) and the weight columns are checked before anything slow runs.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import output_directory
from .arguments import event_count, non_negative_int, open_fraction, positive_int


def at_least_two(text: str) -> int:
    """An integer ≥ 2 (replicates whose spread is an SD)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 2, got {value}")
    return value


def size_range(text: str) -> tuple[int, int]:
    """``MIN,MAX`` event counts with MIN ≤ MAX (``20000,5e4``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two event counts), got {text!r}")
    low, high = event_count(parts[0]), event_count(parts[1])
    if not 2 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 2 ≤ MIN ≤ MAX, got {text!r}")
    return low, high


def _flat_numeric(path: str) -> list[str]:
    from ..io import read_events
    from ..records import numeric_fields

    return numeric_fields(read_events(path, entry_stop=1))


def _matrix(path: str, features: list[str], weights: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    import awkward as ak

    from ..io import read_events
    from ..records import feature_matrix
    from ..validation.samples import check_weights

    events = read_events(path, columns=features + ([weights] if weights and weights not in features else []))
    try:
        x = feature_matrix(events, features)
        w = ak.to_numpy(events[weights]).astype(float) if weights else None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: every validated column must be one number per event (flat)") from exc
    bad = ~np.isfinite(x)
    if bad.any():
        counts = {f: int(k) for f, k in zip(features, bad.sum(axis=0), strict=False) if k}
        raise InputError(f"{path}: NaN/inf values per column {counts}; remove or fill them first")
    if weights:
        check_weights(w, len(x), f"{path}: the weights in column {weights!r}")
    return x, w


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n):
        yield


def cmd_validate(args: argparse.Namespace) -> int:
    from ..validation.c2st import minimum_permutations

    need = minimum_permutations(args.level)
    if args.permutations < need:
        raise InputError(
            f"--permutations {args.permutations}: the smallest p-value it can give, 1/{args.permutations + 1}, "
            f"cannot reach --level {args.level:g}; use at least {need}"
        )
    # --out is checked (writable; empty unless --overwrite) and locked before any file is read; a failure before the
    # first figure is written leaves no empty folder behind
    with output_directory(args.out, overwrite=args.overwrite) as out:
        return _validate_into(args, out)


def _validate_into(args: argparse.Namespace, out: Path) -> int:
    from ..validation.report import validate, write_report

    w_ref_col = args.reference_weights or args.weights
    w_can_col = args.candidate_weights or args.weights
    weight_columns = {c for c in (args.weights, args.reference_weights, args.candidate_weights) if c}
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
    else:
        in_ref, in_can = _flat_numeric(args.reference), _flat_numeric(args.candidate)
        features = [f for f in in_ref if f in in_can and f not in weight_columns]
        only = sorted((set(in_ref) ^ set(in_can)) - weight_columns)
        if not features:
            raise InputError(
                f"{args.reference} and {args.candidate} share no flat numeric column; "
                f"reference has {in_ref}, candidate has {in_can}"
            )
        if only:
            print(f"note: columns in only one file are skipped: {only}")
    corner = [c.strip() for c in args.corner.split(",") if c.strip()] if args.corner else None
    if corner is not None and (not corner or set(corner) - set(features)):
        raise InputError(
            f"--corner {args.corner!r}: {sorted(set(corner) - set(features)) or 'no feature'} not among the "
            f"validated features {features}"
        )
    t0, cpu0 = time.perf_counter(), time.process_time()
    ref, wr = _matrix(args.reference, features, w_ref_col)
    can, wc = _matrix(args.candidate, features, w_can_col)
    read_s, read_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    with _threads(args.threads):
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
            n_bootstrap=args.bootstrap,
            n_repeats=args.repeats,
            level=args.level,
            max_events=args.max_events,
            density_ratio=not args.no_density_ratio,
            physics_distances=not args.no_physics_distances,
            physics_scaling=args.physics_scaling,
            kpd_degree=args.kpd_degree,
            physics_options={
                "n_min": args.fpd_sizes[0] if args.fpd_sizes else None,
                "n_max": args.fpd_sizes[1] if args.fpd_sizes else None,
                "subset_size": args.kpd_subset_size,
            },
            seed=args.seed,
        )
        report.timings = {"read": read_s, **report.timings}
        report.cpu_timings = {"read": read_cpu, **report.cpu_timings}
        figures = write_report(report, ref, can, out, corner_features=corner)
    print(report.verdict())
    print(
        "seconds per section (wall / CPU): "
        + ", ".join(f"{k} {v:.1f} / {report.cpu_timings[k]:.1f}" for k, v in report.timings.items())
    )
    print(f"wrote {out / 'report.json'}, {out / 'index.html'} and {len(figures)} figures")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="divergences, C2ST, density ratio, FPD/KPD and correlations: generated vs MC",
        description="Compare CANDIDATE (generated) with REFERENCE (MC), feature by feature and jointly; "
        "writes report.json (every number), PNG figures and index.html. Event weights enter every number.",
    )
    p.add_argument("reference", help="MC sample (ROOT or Parquet)")
    p.add_argument("candidate", help="generated sample (ROOT or Parquet)")
    p.add_argument(
        "--features", help="comma-separated columns (default: every flat numeric column in both, weights excluded)"
    )
    p.add_argument("--weights", help="event-weight column in both files (default: unweighted)")
    p.add_argument(
        "--reference-weights",
        help="event-weight column of the reference when it differs from --weights (default: --weights)",
    )
    p.add_argument(
        "--candidate-weights",
        help="event-weight column of the candidate when it differs from --weights (e.g. 'weight' written by "
        "`sample --reweight-against`; default: --weights)",
    )
    p.add_argument(
        "--classifier",
        default="hgb",
        choices=("hgb", "mlp"),
        help="C2ST and density-ratio classifier: boosted trees or a 64 × 64 MLP (default: hgb)",
    )
    p.add_argument(
        "--bins",
        type=positive_int,
        default=50,
        help="quantile bins of the reference for χ², KL, Hellinger (default 50)",
    )
    p.add_argument(
        "--resamples",
        type=at_least_two,
        default=20,
        help="bootstrap and MC-vs-MC baseline replicates of the 1-D divergences, ≥ 2 (default 20)",
    )
    p.add_argument(
        "--permutations",
        type=positive_int,
        default=200,
        help="label permutations of the C2ST p-value; its smallest value is 1/(1 + permutations), so at least "
        "1/level − 1 (19 at level 0.05) (default 200)",
    )
    p.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=200,
        help="bootstrap resamplings of the C2ST's held-out events (the test-set SD; the interval itself with "
        "--repeats 1) (default 200)",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=5,
        help="C2ST classifiers on random half/half splits; ≥ 2 puts their training variance into the interval "
        "(default 5)",
    )
    p.add_argument(
        "--level",
        type=open_fraction,
        default=0.05,
        help="test size of the C2ST decision; its interval is at 1 − level (default 0.05)",
    )
    p.add_argument(
        "--max-events",
        type=event_count,
        default=1_000_000,
        help="events per sample in the classifier tests, e.g. 1e6 (default 1000000)",
    )
    p.add_argument(
        "--no-density-ratio", action="store_true", help="skip the density ratio and the reweighted C2ST (default: run)"
    )
    p.add_argument("--no-physics-distances", action="store_true", help="skip FPD and KPD (default: run)")
    p.add_argument(
        "--physics-scaling",
        default="max_abs",
        choices=("max_abs", "standard", "none"),
        help="feature scaling of FPD/KPD: jetnet's division by the reference's max |x|, the reference's mean "
        "and SD, or none (default: max_abs)",
    )
    p.add_argument(
        "--fpd-sizes",
        type=size_range,
        help="MIN,MAX events of the FPD subsets extrapolated to N → ∞ (default: jetnet's 20000,50000, capped at "
        "the smaller sample)",
    )
    p.add_argument(
        "--kpd-subset-size",
        type=event_count,
        help="events per KPD subset (default: jetnet's 5000, capped at the smaller sample)",
    )
    p.add_argument(
        "--kpd-degree", type=positive_int, default=4, help="degree of KPD's polynomial kernel (default 4, jetnet's)"
    )
    p.add_argument("--corner", help="comma-separated features for the corner plot (default: the first five)")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="OpenMP/BLAS threads; 1 on a machine shared with other jobs, where threads spin-wait for each other "
        "(default: one per core)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--out", required=True, help="report directory (required)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out directory (default: refuse)")
    p.set_defaults(func=cmd_validate)
