"""Weighted truth samples from Pythia 8's biased phase-space sampling (issue 29).

With ``PhaseSpace:bias2Selection = on`` Pythia picks the p̂_T of a 2 → 2 process with an extra factor
``(p̂_T / bias2SelectionRef)^bias2SelectionPow``: high-p_T events are generated far more often than their cross
section says, and each carries the compensating weight ``info.weight()`` ∝ ``(ref / p̂_T)^POWER``. The weighted
sample describes the physical distribution with many more events in the tail, at the price of a Kish effective
size (Σw)²/Σw² below its event count.

Pythia biases 2 → 2 processes only, and gg → H has no p̂_T; the Higgs sample here is therefore H + jet at leading
order — gg → Hg, qg → Hq, qq̄ → Hg through the top loop (``HiggsSM:*(l:t)``) with p̂_T > ``pt_hat_min`` — with paper
A's decay, shower and selection (:func:`~mcsurrogate.generators.higgs_diphoton.higgs_diphoton_settings`,
:func:`~mcsurrogate.generators.higgs_diphoton.select_higgs_photons`): the two Higgs photons with E_T > 20 GeV and
|η| < 2.5, and μ ~ Uniform(0, 40). Without ``bias_power`` the same process is generated unbiased (every weight 1),
the reference a weighted sample is compared with.

Every event holds its weight in ``weight_column`` (``weight``); :func:`weight_provenance` describes it (settings,
bias, sums of weights, Kish effective size, cross section) for the metadata written beside the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import awkward as ak
import numpy as np

from ..arguments import check_float
from ..errors import InputError
from ..validation.samples import kish_size
from .higgs_diphoton import higgs_diphoton_settings, photon_record_with_mu, select_higgs_photons
from .pythia import GenerationStats, iterate_pythia

__all__ = [
    "BIAS_REF",
    "PT_HAT_MIN",
    "bias_settings",
    "generate_higgs_jet_diphoton",
    "higgs_jet_settings",
    "iterate_higgs_jet_diphoton",
    "weight_provenance",
]

#: p̂_T (GeV) at which the bias factor is 1
BIAS_REF = 20.0
#: the H + jet processes' p̂_T threshold (GeV)
PT_HAT_MIN = 20.0

_HIGGS_JET = ("HiggsSM:gg2Hg(l:t) = on", "HiggsSM:qg2Hq(l:t) = on", "HiggsSM:qqbar2Hg(l:t) = on")


def bias_settings(power: float, ref: float = BIAS_REF) -> list[str]:
    """Pythia settings that over-sample a 2 → 2 process by ``(p̂_T / ref)^power`` (``ref`` in GeV); the event weight
    ``info.weight()`` compensates."""
    power = check_float(power, "bias power", above=0.0)
    ref = check_float(ref, "bias reference p_T", above=0.0)
    return [
        "PhaseSpace:bias2Selection = on",
        f"PhaseSpace:bias2SelectionPow = {power}",
        f"PhaseSpace:bias2SelectionRef = {ref}",
    ]


def higgs_jet_settings(
    *,
    bias_power: float | None = None,
    bias_ref: float = BIAS_REF,
    pt_hat_min: float = PT_HAT_MIN,
    mpi: bool = False,
    hadronization: bool = False,
    ecm: float = 13000.0,
) -> list[str]:
    """pp → H + jet, H → γγ: paper A's settings with the 2 → 2 H + jet processes (p̂_T > ``pt_hat_min`` GeV) in place
    of gg → H, biased by ``(p̂_T / bias_ref)^bias_power`` when ``bias_power`` is given."""
    pt_hat_min = check_float(pt_hat_min, "pt_hat_min", above=0.0)
    paper_a = higgs_diphoton_settings("ggH", mpi=mpi, hadronization=hadronization, ecm=ecm)
    base = [line for line in paper_a if not line.startswith("HiggsSM:")]
    extra = [] if bias_power is None else bias_settings(bias_power, bias_ref)
    return [*base, *_HIGGS_JET, f"PhaseSpace:pTHatMin = {pt_hat_min}", *extra]


def iterate_higgs_jet_diphoton(
    n_events: int,
    *,
    seed: int,
    bias_power: float | None = None,
    bias_ref: float = BIAS_REF,
    pt_hat_min: float = PT_HAT_MIN,
    weight_column: str = "weight",
    mpi: bool = False,
    hadronization: bool = False,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
) -> Iterator[ak.Array]:
    """Yield selected H(→ γγ) + jet events chunk by chunk: ``photons`` (vector Momentum4D: pt [GeV], eta, phi [rad],
    mass 0), ``mu`` and the event weight ``weight_column`` (float64; 1 without ``bias_power``)."""
    if not isinstance(weight_column, str) or not weight_column or weight_column in ("photons", "mu"):
        raise InputError(f"weight_column must be a new field name (not 'photons' or 'mu'), got {weight_column!r}")
    chunks = iterate_pythia(
        higgs_jet_settings(
            bias_power=bias_power, bias_ref=bias_ref, pt_hat_min=pt_hat_min, mpi=mpi, hadronization=hadronization
        ),
        n_events,
        seed=seed,
        select=select_higgs_photons,
        n_workers=n_workers,
        chunk_size=chunk_size,
        progress=progress,
        stats=stats,
        weight_field=weight_column,
    )
    for index, chunk in enumerate(chunks):
        out = photon_record_with_mu(chunk, seed, index)
        yield ak.with_field(out, ak.values_astype(chunk[weight_column], np.float64), weight_column)


def weight_provenance(
    weights: np.ndarray,
    *,
    bias_power: float | None,
    bias_ref: float = BIAS_REF,
    pt_hat_min: float = PT_HAT_MIN,
    weight_column: str = "weight",
    stats: GenerationStats | None = None,
) -> dict[str, Any]:
    """What the weight column is, for the metadata beside the events (strict JSON): its origin, the bias, the
    settings, Σw, Σw², Kish's effective size and Pythia's cross section."""
    w = np.asarray(weights, dtype=np.float64)
    sigma = stats.to_dict()["sigma_gen_mb"] if stats is not None else None
    return {
        "weight_column": weight_column,
        "origin": "Pythia 8 event weight info.weight()"
        + (
            f", compensating PhaseSpace:bias2Selection's (pTHat / {bias_ref} GeV)^{bias_power} over-sampling: the "
            "weighted events describe the physical distribution"
            if bias_power is not None
            else " (unbiased generation: every weight 1)"
        ),
        "bias_power": bias_power,
        "bias_ref_gev": bias_ref,
        "pt_hat_min_gev": pt_hat_min,
        "settings": higgs_jet_settings(bias_power=bias_power, bias_ref=bias_ref, pt_hat_min=pt_hat_min),
        "n_events": len(w),
        "sum_weights": float(w.sum()),
        "sum_weights_squared": float(np.sum(w**2)),
        "kish_effective_size": kish_size(w, len(w)) if len(w) else 0.0,
        "sigma_gen_mb": sigma,
    }


def generate_higgs_jet_diphoton(
    n_events: int,
    *,
    seed: int,
    bias_power: float | None = None,
    bias_ref: float = BIAS_REF,
    pt_hat_min: float = PT_HAT_MIN,
    weight_column: str = "weight",
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
) -> tuple[ak.Array, GenerationStats, dict[str, Any]]:
    """Generate ``n_events`` selected H(→ γγ) + jet events (weighted with ``bias_power``); returns ``(events, stats,
    provenance)`` with :func:`weight_provenance`'s description of the weight column."""
    stats = GenerationStats()
    parts = list(
        iterate_higgs_jet_diphoton(
            n_events,
            seed=seed,
            bias_power=bias_power,
            bias_ref=bias_ref,
            pt_hat_min=pt_hat_min,
            weight_column=weight_column,
            n_workers=n_workers,
            chunk_size=chunk_size,
            progress=progress,
            stats=stats,
        )
    )
    events = ak.concatenate(parts)
    provenance = weight_provenance(
        events[weight_column].to_numpy(),
        bias_power=bias_power,
        bias_ref=bias_ref,
        pt_hat_min=pt_hat_min,
        weight_column=weight_column,
        stats=stats,
    )
    return events, stats, provenance
