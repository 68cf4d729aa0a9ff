"""Run Pythia 8 (``pythia8mc``, extra ``generate``) with any settings, chunked, seeded and parallel over processes.

Events are generated in chunks; chunk ``c`` uses the Pythia seed derived from ``(seed, c)``, so the output for a
given ``seed`` and ``chunk_size`` is the same whatever the number of worker processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError, require_extra

__all__ = ["ChunkResult", "GenerationStats", "iterate_pythia", "pythia_seed", "run_pythia"]

#: a selection: Pythia event → record (dict of numbers / lists of dicts) or ``None`` to reject the event
Selector = Callable[[Any], "dict[str, Any] | None"]

QUIET = ("Print:quiet = on", "Next:numberCount = 0", "Next:numberShowEvent = 0", "Next:numberShowInfo = 0",
         "Next:numberShowProcess = 0")


def pythia_seed(seed: int, chunk: int) -> int:
    """Pythia's seed (1 … 900 000 000) for ``chunk`` of a run with ``seed``."""
    return int(np.random.default_rng([seed, chunk, 8]).integers(1, 900_000_000))


@dataclass
class GenerationStats:
    """Counts and timing of a run."""

    tried: int = 0
    accepted: int = 0
    failed: int = 0
    seconds: float = 0.0
    cross_section_mb: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tried": self.tried, "accepted": self.accepted, "failed": self.failed, "seconds": self.seconds,
                "accepted_per_second": self.events_per_second,
                "sigma_gen_mb": float(np.mean(self.cross_section_mb)) if self.cross_section_mb else None}


@dataclass
class ChunkResult:
    index: int
    events: ak.Array
    tried: int
    failed: int
    seconds: float
    sigma_mb: float


def _run_chunk(args: tuple[Sequence[str], int, int, int, Selector]) -> ChunkResult:
    settings, seed, chunk, n_accept, select = args
    pythia8 = require_extra("pythia8mc", "generate")
    t0 = time.perf_counter()
    p = pythia8.Pythia("", False)
    for line in (*QUIET, *settings, "Random:setSeed = on", f"Random:seed = {pythia_seed(seed, chunk)}"):
        if not p.readString(line):
            raise InputError(f"Pythia 8 rejected the setting {line!r}")
    if not p.init():
        raise InputError("Pythia 8 failed to initialise with these settings: " + "; ".join(settings))
    records, tried, failed = [], 0, 0
    max_tries = 1000 * n_accept + 1000
    while len(records) < n_accept:
        tried += 1
        if tried > max_tries:
            raise InputError(f"the selection accepted {len(records)} of {tried} events: too few; loosen it")
        if not p.next():
            failed += 1
            continue
        rec = select(p.event)
        if rec is not None:
            records.append(rec)
    sigma = float(p.infoPython().sigmaGen()) if hasattr(p, "infoPython") else float("nan")
    return ChunkResult(chunk, ak.Array(records), tried, failed, time.perf_counter() - t0, sigma)


def iterate_pythia(
    settings: Sequence[str],
    n_events: int,
    *,
    seed: int,
    select: Selector,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
) -> Iterator[ak.Array]:
    """Yield selected events chunk by chunk, in chunk order (bounded memory). ``select`` must be a top-level
    function (it is sent to worker processes)."""
    if n_events < 1 or chunk_size < 1:
        raise InputError(f"n_events and chunk_size must be positive, got {n_events} and {chunk_size}")
    require_extra("pythia8mc", "generate")
    sizes = [min(chunk_size, n_events - start) for start in range(0, n_events, chunk_size)]
    tasks = [(list(settings), seed, c, size, select) for c, size in enumerate(sizes)]
    stats = stats if stats is not None else GenerationStats()
    t0 = time.perf_counter()
    bar = tqdm(total=n_events, disable=(None if progress is None else not progress), desc="pythia", unit="ev")
    n_workers = max(1, min(n_workers, len(tasks), os.cpu_count() or 1))
    pool = None
    try:
        if n_workers == 1:
            results: Iterator[ChunkResult] = map(_run_chunk, tasks)
        else:
            pool = mp.get_context("spawn").Pool(n_workers)
            results = pool.imap(_run_chunk, tasks)
        for res in results:
            stats.tried += res.tried
            stats.failed += res.failed
            stats.accepted += len(res.events)
            stats.cross_section_mb.append(res.sigma_mb)
            bar.update(len(res.events))
            yield res.events
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
    finally:
        if pool is not None:  # interrupted or failed: stop the workers now
            pool.terminate()
        bar.close()
        stats.seconds = time.perf_counter() - t0


def run_pythia(
    settings: Sequence[str],
    n_events: int,
    *,
    seed: int,
    select: Selector,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
) -> tuple[ak.Array, GenerationStats]:
    """Generate ``n_events`` accepted events with Pythia 8 ``settings``; returns ``(events, stats)``."""
    stats = GenerationStats()
    chunks = list(iterate_pythia(settings, n_events, seed=seed, select=select, n_workers=n_workers,
                                 chunk_size=chunk_size, progress=progress, stats=stats))
    return ak.concatenate(chunks), stats
