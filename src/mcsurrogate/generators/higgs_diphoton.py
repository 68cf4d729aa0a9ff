"""pp → H → γγ at √s = 13 TeV with Pythia 8: paper A's truth sample.

Selection at truth level: the two photons from the Higgs decay, followed through their recoil copies to the
final state (photons from hadron decays, present with hadronisation on, never enter), each with E_T > 20 GeV and
|η| < 2.5, ordered by E_T. μ ~ Uniform(0, 40) per event, shared by both photons, drawn with numpy from the seed.
In ~5 % of events Pythia's QED shower would let one Higgs photon branch into a fermion pair (γ → ℓℓ, qq̄, with the
other photon as recoiler); ``TimeShower:QEDshowerByGamma = off`` keeps both decay photons intact, so no event is
lost or distorted by that branching.

Speed settings: ISR is on (the Higgs needs its p_T). Hadronisation never touches the Higgs photons, and
multi-parton interactions only compete with ISR for phase space; together they make generation ~9× slower, so both
are off by default (``mpi=True`` / ``hadronization=True`` switch them on; docs/generation.md lists the measured
events/s of each setting). No isolation is applied at truth level, so the hadronic activity is not needed.

``all_photons_pt_min=X`` (GeV) adds a jagged collection ``all_photons``: every final-state photon with E_T > X and
|η| < 2.5, ordered by E_T, with ``from_higgs`` marking the two decay photons. With hadronisation on it holds the
π⁰ → γγ (and η, ω …) photons of the event too: the truth of an object-level detector response (issue 31) with a
real photon multiplicity. The event selection stays paper A's (the two Higgs photons).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import awkward as ak
import numpy as np

from .. import records as _records  # noqa: F401  (registers the vector behaviours)
from ..arguments import check_float
from ..errors import InputError
from .pythia import GenerationStats, iterate_pythia

__all__ = [
    "ETA_MAX",
    "PT_MIN",
    "generate_higgs_diphoton",
    "higgs_diphoton_settings",
    "higgs_photons",
    "iterate_higgs_diphoton",
    "photon_record_with_mu",
    "select_higgs_photons",
]

PT_MIN = 20.0  # GeV
ETA_MAX = 2.5


def higgs_diphoton_settings(
    process: Literal["ggH", "ttH"] = "ggH", *, mpi: bool = False, hadronization: bool = False, ecm: float = 13000.0
) -> list[str]:
    """Pythia 8 settings: ``ggH`` (gg → H, the default) or ``ttH`` (gg/qq̄ → tt̄H); H → γγ forced; ISR on."""
    procs = {"ggH": ["HiggsSM:gg2H = on"], "ttH": ["HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on"]}
    if process not in procs:
        raise InputError(f"unknown Higgs production {process!r}; choose ggH or ttH")
    return [
        f"Beams:eCM = {ecm}",
        *procs[process],
        "25:onMode = off",
        "25:onIfMatch = 22 22",
        "PartonLevel:ISR = on",
        "TimeShower:QEDshowerByGamma = off",
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        f"HadronLevel:all = {'on' if hadronization else 'off'}",
    ]


def higgs_photons(event: Any) -> list[Any]:
    """The final-state copies of the Higgs-decay products of a Pythia event (the first Higgs of the record)."""
    higgs = next((i for i in range(event.size()) if event[i].id() == 25), None)
    if higgs is None:
        return []
    last = event[event[higgs].iBotCopyId()]
    return [event[event[d].iBotCopyId()] for d in last.daughterList()]


def select_higgs_photons(event: Any, *, all_photons_pt_min: float | None = None) -> dict[str, Any] | None:
    """The two Higgs-decay photons passing E_T > 20 GeV, |η| < 2.5, ordered by E_T; ``None`` otherwise.

    ``all_photons_pt_min`` (GeV): also every final-state photon with E_T above it and |η| < 2.5 (``all_photons``,
    ordered by E_T, ``from_higgs`` true for the decay photons)."""
    decay = [p for p in higgs_photons(event) if p.id() == 22 and p.isFinal()]
    photons = [(p.pT(), p.eta(), p.phi()) for p in decay]
    if len(photons) != 2 or any(pt <= PT_MIN or abs(eta) >= ETA_MAX for pt, eta, _ in photons):
        return None
    photons.sort(reverse=True)
    record: dict[str, Any] = {"photons": [{"pt": pt, "eta": eta, "phi": phi} for pt, eta, phi in photons]}
    if all_photons_pt_min is not None:
        mine = {p.index() for p in decay}
        found = sorted(
            (
                (p.pT(), p.eta(), p.phi(), p.index() in mine)
                for p in event.particles()  # a list of copies: faster to walk than the event itself
                if p.id() == 22 and p.isFinal() and p.pT() > all_photons_pt_min and abs(p.eta()) < ETA_MAX
            ),
            reverse=True,
        )
        record["all_photons"] = [
            {"pt": pt, "eta": eta, "phi": phi, "from_higgs": higgs} for pt, eta, phi, higgs in found
        ]
    return record


_ALL_PHOTONS_TYPE = ak.types.from_datashape(
    "var * {pt: float64, eta: float64, phi: float64, from_higgs: bool}", highlevel=False
)


def photon_record_with_mu(chunk: ak.Array, seed: int, index: int) -> ak.Array:
    """The event record of a chunk of selected events: ``photons`` (float64 vector Momentum4D, mass 0), ``all_photons``
    where the chunk has them, and pile-up ``mu`` ~ Uniform(0, 40) seeded by (``seed``, chunk ``index``)."""
    mu = np.random.default_rng([seed, index, 25]).uniform(0.0, 40.0, len(chunk))
    ph = ak.values_astype(chunk.photons, np.float64)
    photons = ak.zip({"pt": ph.pt, "eta": ph.eta, "phi": ph.phi, "mass": ph.pt * 0.0}, with_name="Momentum4D")
    out = {"photons": photons, "mu": mu}
    if "all_photons" in chunk.fields:
        ap = ak.enforce_type(chunk.all_photons, _ALL_PHOTONS_TYPE)
        out["all_photons"] = ak.zip(
            {"pt": ap.pt, "eta": ap.eta, "phi": ap.phi, "mass": ap.pt * 0.0, "from_higgs": ap.from_higgs},
            with_name="Momentum4D",
        )
    return ak.zip(out, depth_limit=1)


def iterate_higgs_diphoton(
    n_events: int,
    *,
    seed: int,
    process: Literal["ggH", "ttH"] = "ggH",
    mpi: bool = False,
    hadronization: bool = False,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
    all_photons_pt_min: float | None = None,
) -> Any:
    """Yield selected H → γγ events chunk by chunk: ``photons`` (vector Momentum4D: pt [GeV], eta, phi [rad],
    mass 0) and ``mu``; with ``all_photons_pt_min`` (GeV) also ``all_photons``, every final-state photon above it
    (module docstring)."""
    if all_photons_pt_min is not None:
        all_photons_pt_min = check_float(all_photons_pt_min, "all_photons_pt_min", minimum=0.0)
    chunks = iterate_pythia(
        higgs_diphoton_settings(process, mpi=mpi, hadronization=hadronization),
        n_events,
        seed=seed,
        select=functools.partial(select_higgs_photons, all_photons_pt_min=all_photons_pt_min),
        n_workers=n_workers,
        chunk_size=chunk_size,
        progress=progress,
        stats=stats,
    )
    for index, chunk in enumerate(chunks):
        yield photon_record_with_mu(chunk, seed, index)


def generate_higgs_diphoton(
    n_events: int,
    *,
    seed: int,
    process: Literal["ggH", "ttH"] = "ggH",
    mpi: bool = False,
    hadronization: bool = False,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    all_photons_pt_min: float | None = None,
) -> tuple[ak.Array, GenerationStats]:
    """Generate ``n_events`` selected H → γγ events; returns ``(events, stats)`` (``all_photons_pt_min``: see
    :func:`iterate_higgs_diphoton`)."""
    stats = GenerationStats()
    parts = list(
        iterate_higgs_diphoton(
            n_events,
            seed=seed,
            process=process,
            mpi=mpi,
            hadronization=hadronization,
            n_workers=n_workers,
            chunk_size=chunk_size,
            progress=progress,
            stats=stats,
            all_photons_pt_min=all_photons_pt_min,
        )
    )
    return ak.concatenate(parts), stats
