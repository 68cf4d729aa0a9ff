"""The HIGGS-like benchmark's sample cache: Pythia 8 runs kept as ``{process}_n{N}_seed{S}_chunk{C}.parquet`` (with
a ``.json`` beside each saying how it was made), re-used by every study of paper B that asks for the same process,
seed and chunk size.

A cached run of at least N events is re-used: its first N events are exactly what a run of N would give, because
the generator's output depends only on ``(seed, chunk_size)``
(:func:`~mcsurrogate.generators.higgs_benchmark.generate_higgs_benchmark`). A smaller one is continued, not redone,
:data:`EXTEND_STEP` events a step; each step writes a complete cache file and then deletes the smaller one, so an
interrupted generation keeps all but its last step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak

from ..errors import InputError
from ..files import atomic_write_text
from ..io import read_events

if TYPE_CHECKING:
    from ..generators.higgs_benchmark import Process

__all__ = ["CHUNK_SIZE", "EXTEND_STEP", "SampleInfo", "cached_sample"]

log = logging.getLogger(__name__)

#: events per generator chunk: part of a cached run's identity (its events depend on it)
CHUNK_SIZE = 5_000
#: events per step when a smaller cached run is continued
EXTEND_STEP = 100_000


@dataclass(frozen=True)
class SampleInfo:
    """Where a cached sample came from: the process (``"ttbar"`` or ``"signal"``), its generator seed and chunk
    size, the events asked for, the cache file they were read from, whether that file was there before the call,
    and, when this call generated events, the generator's statistics of each step it ran (``generation_steps``:
    selection efficiency, events per second, ...)."""

    process: Process
    seed: int
    chunk_size: int
    n_events: int
    file: str
    cached: bool
    generation_steps: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.generation_steps is None:
            del d["generation_steps"]
        return d


def _cached_runs(process: str, seed: int, cache: Path) -> list[tuple[int, Path]]:
    """The cache files of ``process`` with this seed and :data:`CHUNK_SIZE`, by increasing size."""
    pattern = re.compile(rf"{process}_n(\d+)_seed{seed}_chunk{CHUNK_SIZE}\.parquet$")
    return sorted((int(m.group(1)), p) for p in cache.glob(f"{process}_n*.parquet") if (m := pattern.search(p.name)))


def _cache_path(cache: Path, process: str, n: int, seed: int) -> Path:
    return cache / f"{process}_n{n}_seed{seed}_chunk{CHUNK_SIZE}.parquet"


def _previous_steps(path: Path | None) -> list[dict[str, Any]]:
    """The generation steps recorded beside the cache file ``path`` (none when it has no ``.json``)."""
    if path is None or not path.with_suffix(".json").exists():
        return []
    before = json.loads(path.with_suffix(".json").read_text())
    steps: list[dict[str, Any]] = before.get(
        "generation_steps", [before["generation"]] if "generation" in before else []
    )
    return steps


def cached_sample(process: Process, n: int, seed: int, cache: Path, workers: int = 2) -> tuple[ak.Array, SampleInfo]:
    """The first ``n`` events of the cached run of ``process`` (``"ttbar"`` or ``"signal"``) with this generator
    ``seed`` in the folder ``cache``, generating (``workers`` Pythia processes) or continuing one when none is large
    enough. Returns the events (the HIGGS features, GeV and radians) and where they came from.

    ``m_lv`` is set to the exact W mass where the generator put it there
    (:func:`~mcsurrogate.generators.higgs_benchmark.exact_w_mass`): caches written before that function hold it with
    float rounding, which a C2ST (and the signal classifier) tells apart from generated values; newer caches are
    unchanged by it."""
    from ..generators.higgs_benchmark import exact_w_mass

    if process not in ("ttbar", "signal"):
        raise InputError(f"process must be 'ttbar' or 'signal', got {process!r}")
    if n < 1:
        raise InputError(f"the number of {process} events must be at least 1, got {n}")
    cache = Path(cache)
    found = _cached_runs(process, seed, cache) if cache.is_dir() else []
    usable = [(size, p) for size, p in found if size >= n]
    if usable:
        size, path = usable[0]
        log.info("%s: re-using the first %d of %d cached events in %s", process, n, size, path)
        info = SampleInfo(process, seed, CHUNK_SIZE, n, path.name, cached=True)
    else:
        path, steps = _generate(process, n, seed, cache, workers, found)
        info = SampleInfo(process, seed, CHUNK_SIZE, n, path.name, cached=False, generation_steps=steps)
    events = read_events(path)[:n]
    events = ak.with_field(events, exact_w_mass(ak.to_numpy(events["m_lv"])), "m_lv")
    return events, info


def _generate(
    process: Process, n: int, seed: int, cache: Path, workers: int, found: list[tuple[int, Path]]
) -> tuple[Path, list[dict[str, Any]]]:
    """Generate (or continue the largest complete cached run of ``found``) up to ``n`` events rounded up to whole
    chunks, :data:`EXTEND_STEP` at a time. Returns the last cache file and every generation step's statistics."""
    from ..generators.higgs_benchmark import generate_higgs_benchmark

    cache.mkdir(parents=True, exist_ok=True)
    target = -(-n // CHUNK_SIZE) * CHUNK_SIZE
    previous = [(size, p) for size, p in found if size % CHUNK_SIZE == 0]
    size, path_before = previous[-1] if previous else (0, None)
    steps = _previous_steps(path_before)
    path = path_before
    while size < target:
        step_to = min(target, size + EXTEND_STEP)
        path = _cache_path(cache, process, step_to, seed)
        log.info(
            "%s: generating events %d to %d with Pythia 8 (%d workers) into %s", process, size, step_to, workers, path
        )
        path, stats = generate_higgs_benchmark(
            process,
            step_to,
            path,
            seed=seed,
            n_workers=workers,
            chunk_size=CHUNK_SIZE,
            continue_from=path_before,
        )
        steps.append(stats.to_dict())
        step_info = SampleInfo(process, seed, CHUNK_SIZE, step_to, path.name, cached=False, generation_steps=steps)
        atomic_write_text(path.with_suffix(".json"), json.dumps(step_info.to_dict(), indent=2))
        if path_before is not None:
            path_before.unlink()
            path_before.with_suffix(".json").unlink(missing_ok=True)
        size, path_before = step_to, path
    assert path is not None  # target >= CHUNK_SIZE > 0 = size at the start, or a previous run was found
    return path, steps
