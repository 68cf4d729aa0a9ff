"""Sampling beyond one machine: a surrogate's events as a dask-awkward array, one task per partition.

:func:`sample_partitions` describes ``n_events`` generated events split into ``n_partitions`` partitions; nothing
runs until the array is computed, written (:func:`write_partitioned`, one Parquet file per partition) or
histogrammed (``hist.dask``). Partition ``i`` draws its noise from ``numpy.random.default_rng([seed, i])``, so a
result is reproducible for a fixed (seed, n_events, n_partitions) whatever the scheduler, the number of workers
or the order in which partitions run. Workers load the model from its directory once per process; nothing is
pickled to disk.

The same code runs on a laptop (threads or processes), on a ``dask.distributed.LocalCluster``, on a batch system
through ``dask-jobqueue`` (``HTCondorCluster``/``SLURMCluster``), or on coffea-casa: only the client changes
(see ``docs/columnar.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .errors import InputError, require_extra
from .files import check_writable, refuse_existing
from .surrogate import Surrogate

__all__ = ["partition_sizes", "sample_partition", "sample_partitions", "write_partitioned"]


def partition_sizes(n_events: int, n_partitions: int) -> list[int]:
    """Sizes of ``n_partitions`` near-equal partitions adding up to ``n_events``."""
    if n_events < 1 or n_partitions < 1:
        raise InputError(f"n_events and n_partitions must be positive; got {n_events} and {n_partitions}")
    if n_partitions > n_events:
        raise InputError(f"{n_partitions} partitions for {n_events} events: use at most one partition per event")
    base, extra = divmod(n_events, n_partitions)
    return [base + (1 if i < extra else 0) for i in range(n_partitions)]


def _load(model: str) -> Surrogate:
    from .response.columnar import load_cached_surrogate

    return load_cached_surrogate(model)


def sample_partition(model: Surrogate | str | os.PathLike[str], index: int, size: int, seed: int = 0) -> ak.Array:
    """Partition ``index`` of :func:`sample_partitions`: ``size`` events from ``default_rng([seed, index])``."""
    surrogate = model if isinstance(model, Surrogate) else _load(str(Path(model)))
    if surrogate.conditional:
        raise InputError(
            "sample_partitions needs an unconditional surrogate; a conditional one is applied to "
            "events with mcsurrogate.response.columnar.add_surrogate_objects"
        )
    return surrogate.sample(size, seed=np.random.default_rng([seed, index]), progress=False)


@dataclass(frozen=True)
class _Partition:
    model: str
    seed: int

    def __call__(self, item: tuple[int, int]) -> ak.Array:
        return sample_partition(self.model, item[0], item[1], self.seed)


def sample_partitions(model: str | os.PathLike[str], n_events: int, n_partitions: int, *, seed: int = 0) -> Any:
    """A lazy ``dask_awkward.Array`` of ``n_events`` events sampled from the saved surrogate at ``model``."""
    dak: Any = require_extra("dask_awkward", "dask")
    path = str(Path(model).resolve())
    if not Path(path).is_dir():
        raise InputError(f"{model}: not a model directory (save the surrogate with Surrogate.save first)")
    sizes = partition_sizes(n_events, n_partitions)
    empty = sample_partition(path, 0, 0, seed)
    meta = ak.Array(empty.layout.to_typetracer(forget_length=True), behavior=empty.behavior)
    return dak.from_map(
        _Partition(path, seed),
        list(enumerate(sizes)),
        label="mcsurrogate-sample",
        meta=meta,  # type: ignore[attr-defined]
        divisions=tuple(np.r_[0, np.cumsum(sizes)].tolist()),
    )


def write_partitioned(
    array: Any, out_dir: str | os.PathLike[str], *, overwrite: bool = False, compute: bool = True
) -> Any:
    """Write a dask-awkward array as one Parquet file per partition into ``out_dir`` (``part*.parquet``).

    Refuses a non-empty ``out_dir`` (:class:`~mcsurrogate.errors.OutputExistsError`) unless ``overwrite``, and one
    that cannot be written (:class:`~mcsurrogate.errors.OutputError`). With ``compute=False`` returns the dask object to
    compute later (e.g. together with histograms, in one pass).
    """
    dak: Any = require_extra("dask_awkward", "dask")
    out = check_writable(out_dir, directory=True)
    refuse_existing(out, overwrite, "choose another directory or pass overwrite=True", empty_directory_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return dak.to_parquet(array, str(out), compute=compute)  # type: ignore[attr-defined]
