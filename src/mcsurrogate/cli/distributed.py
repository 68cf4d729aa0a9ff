"""``mcsurrogate sample-dask``: sample a saved surrogate into partitioned Parquet with dask."""

from __future__ import annotations

import argparse
import time

from ..files import check_writable, output_lock, refuse_existing
from .arguments import event_count, non_negative_int, positive_int


def cmd_sample_dask(args: argparse.Namespace) -> int:
    out = check_writable(args.out, directory=True)
    hint = "choose another --out or pass --overwrite"
    refuse_existing(out, args.overwrite, hint, empty_directory_ok=True)
    with output_lock(out, purpose="mcsurrogate sample-dask"):
        refuse_existing(out, args.overwrite, hint, empty_directory_ok=True)
        return _sample_dask(args)


def _sample_dask(args: argparse.Namespace) -> int:
    import dask

    from ..distributed import sample_partitions, write_partitioned

    n = args.n
    array = sample_partitions(args.model, n, args.partitions, seed=args.seed)
    client = None
    if args.scheduler:
        from dask.distributed import Client

        client = Client(args.scheduler)
    t0 = time.perf_counter()
    try:
        task = write_partitioned(array, args.out, overwrite=args.overwrite, compute=False)
        if client is None:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                dask.compute(task, scheduler=args.local_scheduler)
        else:
            from dask.distributed import progress

            future = client.compute(task)
            progress(future)
            future.result()
    finally:
        if client is not None:
            client.close()
    seconds = time.perf_counter() - t0
    print(f"{n:,} events in {args.partitions} partitions → {args.out} ({seconds:.1f} s, {n / seconds:.3g} events/s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample-dask",
        help="sample a surrogate into partitioned Parquet with dask (laptop or cluster)",
        description="Partition i uses numpy.random.default_rng([seed, i]): the output is reproducible "
        "for fixed -n, --partitions and --seed, whatever the scheduler.",
    )
    p.add_argument("model", help="saved (unconditional) surrogate directory, readable by every worker")
    p.add_argument("-n", type=event_count, required=True, help="number of events, a whole number (e.g. 1e9)")
    p.add_argument(
        "--partitions", type=positive_int, required=True, help="number of partitions (= output files), at most -n"
    )
    p.add_argument("--out", required=True, help="output directory of part*.parquet files (new or empty)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="partition i draws from default_rng([seed, i]) (default: 0)"
    )
    p.add_argument("--scheduler", help="address of a dask.distributed scheduler (default: none, run locally)")
    p.add_argument(
        "--local-scheduler",
        default="processes",
        choices=("processes", "threads", "sync"),
        help="local dask scheduler when no --scheduler is given (default: processes)",
    )
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out directory")
    p.set_defaults(func=cmd_sample_dask)
