"""Run Pythia 8 (``pythia8mc``, extra ``generate``) with any settings, chunked, seeded and parallel over processes.

Events are generated in chunks; chunk ``c`` uses the Pythia seed derived from ``(seed, c)``, so the output for a
given ``seed`` and ``chunk_size`` is the same whatever the number of worker processes.
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError, require_extra

__all__ = [
    "FINAL_STATE_IDS",
    "ChunkResult",
    "GenerationStats",
    "iterate_final_state",
    "iterate_pythia",
    "pythia_seed",
    "read_settings",
    "run_pythia",
    "select_final_state",
]

#: a selection: Pythia event → record (dict of numbers / lists of dicts) or ``None`` to reject the event
Selector = Callable[[Any], "dict[str, Any] | None"]

QUIET = (
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
)


def pythia_seed(seed: int, chunk: int, variant: int = 0) -> int:
    """Pythia's seed (1 … 900 000 000) for ``chunk`` of a run with ``seed`` (and for the Pythia instance of
    alternating settings number ``variant`` > 0, see :func:`iterate_pythia`)."""
    key = [seed, chunk, 8] if variant == 0 else [seed, chunk, 8, variant]
    return int(np.random.default_rng(key).integers(1, 900_000_000))


@dataclass
class GenerationStats:
    """Counts and timing of a run: ``seconds`` is wall-clock (Pythia initialisation included); ``init_cpu_seconds``
    and ``loop_cpu_seconds`` are the CPU time of the workers' initialisations and event loops, summed over chunks
    (the per-core cost, insensitive to other programs sharing the CPU)."""

    tried: int = 0
    accepted: int = 0
    failed: int = 0
    seconds: float = 0.0
    init_cpu_seconds: float = 0.0
    loop_cpu_seconds: float = 0.0
    cross_section_mb: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        """Accepted events per wall-clock second."""
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def events_per_cpu_second(self) -> float:
        """Accepted events per CPU second of the event loop (initialisation excluded)."""
        return self.accepted / self.loop_cpu_seconds if self.loop_cpu_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tried": self.tried,
            "accepted": self.accepted,
            "failed": self.failed,
            "seconds": self.seconds,
            "init_cpu_seconds": self.init_cpu_seconds,
            "loop_cpu_seconds": self.loop_cpu_seconds,
            "accepted_per_second": self.events_per_second,
            "accepted_per_cpu_second": self.events_per_cpu_second,
            "sigma_gen_mb": float(np.mean(self.cross_section_mb)) if self.cross_section_mb else None,
        }


@dataclass
class ChunkResult:
    """One chunk's selected events, counts and timing (sent back by a worker process)."""

    index: int
    events: ak.Array
    tried: int
    failed: int
    init_cpu_seconds: float
    loop_cpu_seconds: float
    sigma_mb: float


def _start_pythia(settings: Sequence[str], seed: int) -> Any:
    pythia8: Any = require_extra("pythia8mc", "generate")
    p = pythia8.Pythia("", False)
    for line in (*QUIET, *settings, "Random:setSeed = on", f"Random:seed = {seed}"):
        if not p.readString(line):
            raise InputError(f"Pythia 8 rejected the setting {line!r}")
    if not p.init():
        raise InputError("Pythia 8 failed to initialise with these settings: " + "; ".join(settings))
    return p


def _run_chunk(
    args: tuple[Sequence[str], Sequence[Sequence[str]], int, int, int, Selector, str | None],
) -> ChunkResult:
    settings, alternate, seed, chunk, n_accept, select, weight_field = args
    t0 = time.process_time()
    variants = alternate or [[]]  # iterate_pythia sends lists
    instances = [_start_pythia([*settings, *v], pythia_seed(seed, chunk, k)) for k, v in enumerate(variants)]
    t1 = time.process_time()
    records: list[Any] = []
    tried, failed = 0, 0
    max_tries = 1000 * n_accept + 1000
    while len(records) < n_accept:
        p = instances[tried % len(instances)]  # alternate between the variants event by event
        tried += 1
        if tried > max_tries:
            raise InputError(f"the selection accepted {len(records)} of {tried} events: too few; loosen it")
        if not p.next():
            failed += 1
            continue
        rec = select(p.event)
        if rec is not None:
            if weight_field is not None:  # the event weight of weighted generation (biased sampling, LHE weights)
                rec[weight_field] = float(p.infoPython().weight())
            records.append(rec)
    sigmas = [float(p.infoPython().sigmaGen()) for p in instances if hasattr(p, "infoPython")]
    sigma = float(np.sum(sigmas)) if sigmas else float("nan")  # the chunk stands for the union of the variants
    return ChunkResult(chunk, ak.Array(records), tried, failed, t1 - t0, time.process_time() - t1, sigma)


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
    alternate: Sequence[Sequence[str]] = (),
    first_chunk: int = 0,
    weight_field: str | None = None,
) -> Iterator[ak.Array]:
    """Yield selected events chunk by chunk, in chunk order (bounded memory). ``select`` must be a top-level
    function (it is sent to worker processes). Chunk ``c`` is seeded by ``(seed, c)`` alone, so a run that starts at
    ``first_chunk = k`` continues one of ``k * chunk_size`` events with the same seed and chunk size: together they
    are the events of a single longer run.

    ``alternate``: settings variants of equal cross section (for instance the two charge assignments of a forced
    decay). Each chunk then runs one Pythia per variant (``settings`` followed by the variant's lines, seeded by
    :func:`pythia_seed` with the variant's number) and takes the events from them in turn, so every chunk holds
    equally many generated events of each variant; its cross section is the sum of the variants'.

    ``weight_field``: a field of each record that receives Pythia's event weight (``info.weight()``), for weighted
    generation such as biased phase-space sampling (:mod:`mcsurrogate.generators.biased`)."""
    if n_events < 1 or chunk_size < 1:
        raise InputError(f"n_events and chunk_size must be positive, got {n_events} and {chunk_size}")
    if isinstance(first_chunk, bool) or not isinstance(first_chunk, (int, np.integer)) or first_chunk < 0:
        raise InputError(f"first_chunk must be a non-negative integer, got {first_chunk!r}")
    if isinstance(alternate, str) or any(isinstance(v, str) for v in alternate):
        raise InputError("alternate must be a sequence of settings lists (one list of strings per variant)")
    require_extra("pythia8mc", "generate")
    sizes = [min(chunk_size, n_events - start) for start in range(0, n_events, chunk_size)]
    variants = [list(v) for v in alternate]
    tasks = [
        (list(settings), variants, seed, c, size, select, weight_field)
        for c, size in enumerate(sizes, start=int(first_chunk))
    ]
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
            stats.init_cpu_seconds += res.init_cpu_seconds
            stats.loop_cpu_seconds += res.loop_cpu_seconds
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
    alternate: Sequence[Sequence[str]] = (),
) -> tuple[ak.Array, GenerationStats]:
    """Generate ``n_events`` accepted events with Pythia 8 ``settings`` (and ``alternate`` variants, see
    :func:`iterate_pythia`); returns ``(events, stats)``."""
    stats = GenerationStats()
    chunks = list(
        iterate_pythia(
            settings,
            n_events,
            seed=seed,
            select=select,
            n_workers=n_workers,
            chunk_size=chunk_size,
            progress=progress,
            stats=stats,
            alternate=alternate,
        )
    )
    return ak.concatenate(chunks), stats


#: |PDG id| kept by :func:`select_final_state` by default: electrons, muons, photons
FINAL_STATE_IDS = (11, 13, 22)

_FINAL_STATE_TYPE = ak.types.from_datashape(
    "{particles: var * {pt: float64, eta: float64, phi: float64, mass: float64, pdg_id: int32}}", highlevel=False
)


def read_settings(path: str | os.PathLike[str]) -> list[str]:
    """Pythia 8 settings from a ``.cmnd``-style file: one ``Key = value`` a line; blank lines and lines that do not
    start with a letter or digit (``!``, ``#`` comments) are skipped, as Pythia does. The seed is mcsurrogate's job:
    a file that sets ``Random:seed`` or ``Random:setSeed`` is refused."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Pythia settings file {path} does not exist")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    settings = [line for line in lines if line and line[0].isalnum()]
    seeded = [line for line in settings if line.replace(" ", "").lower().startswith(("random:seed", "random:setseed"))]
    if seeded:
        raise InputError(f"{path} sets the random seed ({seeded[0]!r}); remove it and pass seed= / --seed instead")
    if not settings:
        raise InputError(f"{path} holds no Pythia settings")
    return settings


def select_final_state(
    event: Any,
    *,
    pdg_ids: Sequence[int] = FINAL_STATE_IDS,
    pt_min: float = 0.0,
    eta_max: float = math.inf,
    min_count: int = 0,
) -> dict[str, Any] | None:
    """Every final-state particle with ``|id|`` in ``pdg_ids``, p_T > ``pt_min`` (GeV) and |η| < ``eta_max``,
    ordered by p_T: ``{"particles": [{pt, eta, phi, mass, pdg_id}, ...]}``; ``None`` when fewer than
    ``min_count`` pass. Photons from hadron decays and the leptons of heavy-flavour decays are included: this is a
    generic dump, not an isolation-based selection. Bind the options with ``functools.partial`` to make it a
    ``select`` for :func:`iterate_pythia`."""
    wanted = set(pdg_ids)
    found = [
        (p.pT(), p.eta(), p.phi(), p.m(), p.id())
        for p in event
        if p.isFinal() and p.idAbs() in wanted and p.pT() > pt_min and abs(p.eta()) < eta_max
    ]
    if len(found) < min_count:
        return None
    found.sort(reverse=True)
    return {
        "particles": [{"pt": pt, "eta": eta, "phi": phi, "mass": m, "pdg_id": pid} for pt, eta, phi, m, pid in found]
    }


def iterate_final_state(
    settings: Sequence[str],
    n_events: int,
    *,
    seed: int,
    pdg_ids: Sequence[int] = FINAL_STATE_IDS,
    pt_min: float = 0.0,
    eta_max: float = math.inf,
    min_count: int = 0,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
) -> Iterator[ak.Array]:
    """Run any Pythia 8 ``settings`` and yield, chunk by chunk, the events' final-state ``particles`` selected by
    :func:`select_final_state` (vector ``Momentum4D``: pt [GeV], eta, phi [rad], mass [GeV], plus ``pdg_id``)."""
    if min_count < 0 or pt_min < 0 or eta_max <= 0:
        raise InputError(f"need min_count ≥ 0, pt_min ≥ 0 and eta_max > 0; got {min_count}, {pt_min}, {eta_max}")
    select = functools.partial(
        select_final_state, pdg_ids=tuple(pdg_ids), pt_min=pt_min, eta_max=eta_max, min_count=min_count
    )
    for chunk in iterate_pythia(
        settings,
        n_events,
        seed=seed,
        select=select,
        n_workers=n_workers,
        chunk_size=chunk_size,
        progress=progress,
        stats=stats,
    ):
        typed = ak.enforce_type(chunk, _FINAL_STATE_TYPE)
        yield ak.zip({"particles": ak.with_name(typed.particles, "Momentum4D")}, depth_limit=1)
