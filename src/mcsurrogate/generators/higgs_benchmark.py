"""A HIGGS-like benchmark (Baldi, Sadowski & Whiteson 2014) from first principles: Pythia 8 + FastJet + a
parametric detector model, √s = 13 TeV.

* ``signal``: gg → H⁰ (425 GeV) → W∓ H± (325 GeV), H± → W± h (125 GeV), h → b b̄;
* ``ttbar``: t t̄ → W⁺b W⁻b̄;

in both, exactly one W → ℓν (ℓ = e, μ) and the other W → q q̄'. Pythia cannot force "one W leptonic, the other
hadronic" for a pair of opposite-charge W's, so both W's may decay to e ν, μ ν or q q̄' (τ ν closed) and the
selection keeps the events with exactly one leptonic W at generator level (2 · 0.242 · 0.758 = 36.7 % of them).

Each event is then passed through :class:`DetectorModel` (lepton efficiencies and resolutions, anti-k_t R = 0.4
jets from the visible final state, jet energy resolution, b-tagging by ΔR matching to B hadrons, E_T^miss from the
smeared objects), selected (exactly one isolated lepton with p_T > 25 GeV, |η| < 2.5; at least four jets with
p_T > 25 GeV, |η| < 2.5) and reduced to the 21 low-level and 7 high-level features of the UCI HIGGS data set
(:data:`FEATURES`). Masses and momenta in GeV, angles in radians; docs/higgs_benchmark.md has every choice.

The detector's random numbers come from a numpy Generator seeded by ``seed`` and a hash of the event's final-state
momenta, so the output depends only on ``(seed, chunk_size)``, never on the number of worker processes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import vector

from ..errors import InputError, require_extra
from ..io import EventWriter, available_columns, count_events, iterate_events
from .pythia import GenerationStats, iterate_pythia

__all__ = [
    "DEFAULT_DETECTOR",
    "FEATURES",
    "HIGH_LEVEL_FEATURES",
    "JET_ETA_MAX",
    "JET_PT_MIN",
    "LEPTON_ETA_MAX",
    "LEPTON_PT_MIN",
    "LOW_LEVEL_FEATURES",
    "M_TOP",
    "M_W",
    "N_JETS_MIN",
    "ONE_LEPTONIC_W",
    "BenchmarkSelector",
    "DetectorModel",
    "TruthJetSelector",
    "exact_w_mass",
    "generate_higgs_benchmark",
    "high_level_features",
    "iterate_higgs_benchmark",
    "iterate_truth_jets",
    "leptonic_w_count",
    "neutrino_pz",
    "signal_settings",
    "ttbar_settings",
]

log = logging.getLogger(__name__)

Process = Literal["signal", "ttbar"]

#: selection thresholds (reconstructed objects)
LEPTON_PT_MIN = 25.0  # GeV
LEPTON_ETA_MAX = 2.5
JET_PT_MIN = 25.0  # GeV
JET_ETA_MAX = 2.5
N_JETS_MIN = 4
#: masses used by the reconstruction (GeV): the W-mass constraint on the neutrino and the top-pairing target
M_W = 80.385  # Pythia's 24:m0
M_TOP = 173.0  # Pythia's 6:m0

LOW_LEVEL_FEATURES: tuple[str, ...] = (
    "lepton_pt",
    "lepton_eta",
    "lepton_phi",
    "met",
    "met_phi",
    *(f"jet{i}_{q}" for i in range(1, 5) for q in ("pt", "eta", "phi", "btag")),
)
HIGH_LEVEL_FEATURES: tuple[str, ...] = ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")
#: the 28 output columns, in the UCI HIGGS order
FEATURES: tuple[str, ...] = LOW_LEVEL_FEATURES + HIGH_LEVEL_FEATURES

_NEUTRINOS = frozenset((12, 14, 16))
_LEPTONS = frozenset((11, 13))
#: an event whose isolated leptons all have generator-level p_T below this fraction of LEPTON_PT_MIN is rejected
#: before jet clustering: reaching 25 GeV from below 20 GeV would be a > 8σ upward fluctuation for e and μ
_EARLY_LEPTON_FRACTION = 0.8


# -- Pythia settings ------------------------------------------------------------------------------------
_W_DECAYS = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13")  # W → q q̄', e ν, μ ν (τ ν closed)


def _common(mpi: bool, ecm: float) -> list[str]:
    return [
        f"Beams:eCM = {ecm}",
        *_W_DECAYS,
        "PartonLevel:ISR = on",
        "PartonLevel:FSR = on",
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        "HadronLevel:all = on",
    ]


def signal_settings(*, mpi: bool = False, ecm: float = 13000.0) -> list[str]:
    """Pythia 8 settings (no seed) for gg → H⁰(425 GeV) → W∓ H±(325 GeV), H± → W± h(125 GeV), h → b b̄.

    ``HiggsBSM:gg2H2`` makes the heavy CP-even H⁰ (PDG 35) through the top/bottom loop. H⁰ → W∓H± needs
    ``HiggsH2:coup2HchgW = 1`` (Pythia's default is 0); the H⁰ couplings to WW and ZZ are set to 0 (the 2HDM
    alignment limit, where the H⁰WW and H⁰ W H± couplings go as cos(β−α) and sin(β−α)), and the A⁰ (36) is moved
    to 1 TeV: this only narrows the H⁰ (Γ ≈ 5 GeV instead of 36 GeV), whose decays are forced anyway. Hadronisation
    is on; multi-parton interactions (``mpi``) are off by default: they add soft activity (jets, isolation, E_T^miss)
    and cost time, and the HIGGS benchmark has no pile-up.
    """
    return [
        *_common(mpi, ecm),
        "Higgs:useBSM = on",
        "HiggsBSM:gg2H2 = on",
        "35:m0 = 425",
        "37:m0 = 325",
        "36:m0 = 1000",
        "HiggsH2:coup2HchgW = 1",
        "HiggsH2:coup2W = 0",
        "HiggsH2:coup2Z = 0",
        "35:onMode = off",
        "35:onIfMatch = 24 37",  # both W+ H- and W- H+ (Pythia matches |id|)
        "37:onMode = off",
        "37:onIfMatch = 24 25",
        "25:onMode = off",
        "25:onIfMatch = 5 -5",
    ]


def ttbar_settings(*, mpi: bool = False, ecm: float = 13000.0) -> list[str]:
    """Pythia 8 settings (no seed) for t t̄ production (gg → t t̄ and q q̄ → t t̄, m_t = 173 GeV), W → e ν, μ ν or
    q q̄'; the semileptonic events are chosen by :func:`leptonic_w_count` in the selection. ``mpi`` as in
    :func:`signal_settings`."""
    return [*_common(mpi, ecm), "Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]


_SETTINGS = {"signal": signal_settings, "ttbar": ttbar_settings}

#: The two charge assignments of a semileptonic W pair, given after either process's settings as the
#: ``alternate`` variants of :func:`~mcsurrogate.generators.pythia.iterate_pythia`: W⁺ → e ν, μ ν with
#: W⁻ → q q̄', then the reverse. Both processes hold exactly one W⁺ and one W⁻, so generating the two in turn gives
#: the "exactly one W → e ν / μ ν" events without generating (and rejecting) the other 63 % of them.
ONE_LEPTONIC_W: tuple[tuple[str, ...], ...] = (
    ("24:onMode = off", "24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5"),
    ("24:onMode = off", "24:onPosIfAny = 1 2 3 4 5", "24:onNegIfAny = 11 13"),
)


# -- detector model -------------------------------------------------------------------------------------
def _binned(table: tuple[tuple[float, ...], ...], abs_eta: np.ndarray, column: int) -> np.ndarray:
    """``table`` rows are (|η| upper edge, values…): the value of ``column`` in each particle's |η| bin (the last
    bin continues beyond its edge)."""
    edges = np.array([row[0] for row in table])
    index = np.minimum(np.searchsorted(edges, abs_eta, side="left"), len(table) - 1)
    return np.array([row[column] for row in table])[index]


@dataclass(frozen=True)
class DetectorModel:
    """A parametric ATLAS-like detector (values from Delphes' ``delphes_card_ATLAS.tcl`` unless noted).

    Leptons (e, μ; final-state, isolated at generator level): reconstructed with p_T > ``lepton_pt_min`` and
    |η| < ``lepton_eta_max``, identified with ``electron_efficiency`` / ``muon_efficiency`` (|η| ≤ 1.5, > 1.5).
    Electrons: σ_E/E = ``electron_stochastic``/√E ⊕ ``electron_constant`` (ECAL). Muons: σ_pT/pT = a ⊕ b·p_T in the
    |η| bins of ``muon_pt_resolution`` rows (|η| edge, a, b [1/GeV]). Isolation: Σp_T of the other visible particles
    with p_T > ``isolation_pt_min`` within ΔR < ``isolation_dr``, divided by the lepton p_T, below
    ``electron_isolation`` / ``muon_isolation``.

    Jets: anti-k_t R = ``jet_r`` on the visible final-state particles with |η| < ``jet_eta_max`` (neutrinos and the
    isolated leptons left out); jets with generator p_T > ``jet_pt_min`` are objects, the rest is the soft term.
    Energy resolution σ_E = √((c·E)² + a²·E + N²) in the |η| bins of ``jet_energy_resolution`` rows (|η| edge, a [√GeV],
    c, N [GeV]) (Delphes' ATLAS HCAL); the four-momentum is scaled, so η and φ are kept and the scale is clipped at 0.
    b-tagging (|η| < ``btag_eta_max``): a jet within ΔR < ``btag_match_dr`` of a B hadron with p_T >
    ``btag_hadron_pt_min`` is a b jet, else of such a C hadron a c jet, else light; tagged with probability
    ``btag_efficiency``, ``c_mistag``, ``light_mistag`` (constant: a 70 % working point, not Delphes' p_T-dependent
    formulas).

    E_T^miss = −(Σ smeared jets + Σ smeared isolated leptons, identified or not + soft term), the soft term's x and
    y components smeared with σ = ``met_soft_resolution`` · √ΣE_T^soft.
    """

    lepton_pt_min: float = 10.0  # GeV
    lepton_eta_max: float = 2.5
    electron_efficiency: tuple[float, float] = (0.95, 0.85)
    muon_efficiency: tuple[float, float] = (0.95, 0.85)
    lepton_efficiency_eta_edge: float = 1.5
    electron_stochastic: float = 0.101  # √GeV
    electron_constant: float = 0.0017
    muon_pt_resolution: tuple[tuple[float, float, float], ...] = (
        (0.5, 0.010, 1.0e-4),
        (1.5, 0.015, 1.5e-4),
        (2.5, 0.025, 3.5e-4),
    )
    isolation_dr: float = 0.5
    isolation_pt_min: float = 0.5  # GeV
    electron_isolation: float = 0.12
    muon_isolation: float = 0.25
    jet_r: float = 0.4
    jet_eta_max: float = 4.9
    jet_pt_min: float = 10.0  # GeV
    jet_energy_resolution: tuple[tuple[float, float, float, float], ...] = (
        (1.7, 0.5205, 0.0302, 1.59),
        (3.2, 0.706, 0.050, 0.0),
        (4.9, 1.0, 0.0942, 0.0),
    )
    btag_eta_max: float = 2.5
    btag_match_dr: float = 0.3
    btag_hadron_pt_min: float = 5.0  # GeV
    btag_efficiency: float = 0.70
    c_mistag: float = 0.20
    light_mistag: float = 0.01
    met_soft_resolution: float = 0.5  # √GeV

    def __post_init__(self) -> None:
        probabilities = [*self.electron_efficiency, *self.muon_efficiency]
        probabilities += [self.btag_efficiency, self.c_mistag, self.light_mistag]
        if any(not 0.0 <= p <= 1.0 for p in probabilities):
            raise InputError(f"efficiencies and mistag rates must lie in [0, 1]: {self}")
        if len(self.electron_efficiency) != 2 or len(self.muon_efficiency) != 2:
            raise InputError("electron_efficiency and muon_efficiency are (|η| ≤ edge, |η| > edge) pairs")
        for name in ("muon_pt_resolution", "jet_energy_resolution"):
            table = getattr(self, name)
            edges = [row[0] for row in table]
            if not table or edges != sorted(edges) or any(v < 0 for row in table for v in row):
                raise InputError(f"{name} needs rows (|η| edge, …) with increasing edges and non-negative values")
        positive = ("jet_r", "jet_eta_max", "isolation_dr", "btag_match_dr", "lepton_eta_max")
        non_negative = ("lepton_pt_min", "jet_pt_min", "isolation_pt_min", "btag_hadron_pt_min", "met_soft_resolution")
        if any(getattr(self, n) <= 0 for n in positive) or any(getattr(self, n) < 0 for n in non_negative):
            raise InputError(f"need positive {positive} and non-negative {non_negative}: {self}")

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-friendly values (tuples become lists)."""
        return {f.name: _as_lists(getattr(self, f.name)) for f in fields(self)}

    # -- leptons --
    def lepton_efficiency(self, pdg_id: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Identification probability of leptons with PDG ``pdg_id`` (±11, ±13) at ``eta``."""
        pdg, abs_eta = np.abs(np.asarray(pdg_id)), np.abs(np.asarray(eta, dtype=np.float64))
        barrel = abs_eta <= self.lepton_efficiency_eta_edge
        e_eff = np.where(barrel, self.electron_efficiency[0], self.electron_efficiency[1])
        mu_eff = np.where(barrel, self.muon_efficiency[0], self.muon_efficiency[1])
        eff = np.where(pdg == 11, e_eff, np.where(pdg == 13, mu_eff, 0.0))
        return np.where(abs_eta < self.lepton_eta_max, eff, 0.0)

    def lepton_resolution(self, pdg_id: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Relative resolution σ/p (electrons: of the energy E = p_T cosh η [GeV]; muons: of p_T [GeV])."""
        pdg = np.abs(np.asarray(pdg_id))
        pt, eta = np.asarray(pt, dtype=np.float64), np.asarray(eta, dtype=np.float64)
        energy = np.maximum(pt * np.cosh(eta), 1e-9)
        electron = np.hypot(self.electron_stochastic / np.sqrt(energy), self.electron_constant)
        abs_eta = np.abs(eta)
        muon = np.hypot(_binned(self.muon_pt_resolution, abs_eta, 1), _binned(self.muon_pt_resolution, abs_eta, 2) * pt)
        return np.where(pdg == 11, electron, muon)

    def smear_leptons(
        self, pdg_id: np.ndarray, pt: np.ndarray, eta: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, identified)``: the factor (≥ 0) multiplying each lepton's four-momentum, and whether it is
        identified. Draws ``len(pt)`` uniforms, then ``len(pt)`` normals."""
        identified = rng.random(len(pt)) < self.lepton_efficiency(pdg_id, eta)
        scale = np.maximum(1.0 + self.lepton_resolution(pdg_id, pt, eta) * rng.standard_normal(len(pt)), 0.0)
        return scale, identified

    # -- jets --
    def jet_resolution(self, energy: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Relative jet energy resolution σ_E/E at ``energy`` [GeV] and ``eta``."""
        energy = np.maximum(np.asarray(energy, dtype=np.float64), 1e-9)
        abs_eta = np.abs(np.asarray(eta, dtype=np.float64))
        a, c, n = (_binned(self.jet_energy_resolution, abs_eta, k) for k in (1, 2, 3))
        return np.sqrt((c * energy) ** 2 + a**2 * energy + n**2) / energy

    def smear_jets(self, pt: np.ndarray, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The factor (≥ 0) multiplying each jet's four-momentum (E = p_T cosh η for the resolution, massless
        approximation). Draws ``len(pt)`` normals."""
        pt, eta = np.asarray(pt, dtype=np.float64), np.asarray(eta, dtype=np.float64)
        sigma = self.jet_resolution(pt * np.cosh(eta), eta)
        return np.maximum(1.0 + sigma * rng.standard_normal(len(pt)), 0.0)

    def btag_probability(self, flavour: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Tagging probability of jets of ``flavour`` (5 = b, 4 = c, anything else light) at ``eta``."""
        flavour = np.asarray(flavour)
        p = np.where(flavour == 5, self.btag_efficiency, np.where(flavour == 4, self.c_mistag, self.light_mistag))
        return np.where(np.abs(np.asarray(eta, dtype=np.float64)) < self.btag_eta_max, p, 0.0)

    def btag(self, flavour: np.ndarray, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Whether each jet is b-tagged (bool). Draws ``len(flavour)`` uniforms."""
        return rng.random(len(flavour)) < self.btag_probability(flavour, eta)

    def smear_soft_term(self, px: float, py: float, sum_et: float, rng: np.random.Generator) -> tuple[float, float]:
        """The soft term (p_x, p_y) [GeV] with Gaussian noise σ = met_soft_resolution · √ΣE_T. Draws 2 normals."""
        dx, dy = rng.standard_normal(2) * self.met_soft_resolution * math.sqrt(max(sum_et, 0.0))
        return px + float(dx), py + float(dy)


def _as_lists(value: Any) -> Any:
    return [_as_lists(v) for v in value] if isinstance(value, tuple) else value


DEFAULT_DETECTOR = DetectorModel()


# -- generator level ------------------------------------------------------------------------------------
def leptonic_w_count(event: Any) -> tuple[int, int]:
    """``(n_leptonic, n_w)``: the W bosons of the hard process of a Pythia event (status ±22, resonance decays
    included), and how many of them decay (last copy) to e ν or μ ν. Walks down from the primary resonances
    (status ±22 among the first entries) through the resonance decays, so only a few dozen entries are read."""
    size = event.size()
    stack = [i for i in range(min(size, 10)) if event[i].statusAbs() == 22]
    seen: set[int] = set()
    n_w = n_leptonic = 0
    while stack:
        i = event[stack.pop()].iBotCopyId()
        if i in seen:
            continue
        seen.add(i)
        particle = event[i]
        daughters = particle.daughterList()
        if particle.idAbs() == 24:
            n_w += 1
            n_leptonic += any(event[d].idAbs() in _LEPTONS for d in daughters)
        else:
            stack.extend(d for d in daughters if event[d].statusAbs() == 22)
    return n_leptonic, n_w


def _heavy_flavour(pid_abs: int) -> int:
    """5 for a hadron with a b quark, 4 for one with a c quark (and no b), 0 otherwise (PDG numbering)."""
    n = pid_abs % 10000
    q1, q2, q3 = (n // 1000) % 10, (n // 100) % 10, (n // 10) % 10
    if pid_abs < 100 or q3 == 0:  # not a hadron (quarks, leptons, diquarks …)
        return 0
    quarks = (q1, q2, q3)
    return 5 if 5 in quarks else 4 if 4 in quarks else 0


def _delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 1e9)
    return pt, eta, np.arctan2(py, px)


def _event_rng(seed: int, px: np.ndarray, pz: np.ndarray) -> np.random.Generator:
    """A Generator seeded by ``seed`` and a hash of the event's final-state momenta (reproducible, and the same
    whichever worker process sees the event)."""
    digest = hashlib.blake2b(px.tobytes() + pz.tobytes(), digest_size=16).digest()
    words = np.frombuffer(digest, dtype=np.uint64).tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, 0x48494747, *words]))


@dataclass(frozen=True)
class BenchmarkSelector:
    """The ``select`` of :func:`~mcsurrogate.generators.pythia.iterate_pythia`: Pythia event → the low-level
    features (plus the four jet masses, for :func:`high_level_features`) of a selected event, or ``None``.

    Picklable (sent to worker processes). Steps: exactly one W → e ν / μ ν at generator level; final-state
    particles; isolated lepton candidates; anti-k_t jets (fastjet) and their b/c/light labels; the detector
    (:class:`DetectorModel`, random numbers from :func:`_event_rng`); the selection."""

    detector: DetectorModel
    seed: int

    def __call__(self, event: Any) -> dict[str, float] | None:
        n_leptonic, n_w = leptonic_w_count(event)
        if n_leptonic != 1 or n_w != 2:
            return None
        det = self.detector
        final: list[tuple[float, float, float, float, int]] = []
        hadrons: list[tuple[int, float, float, float]] = []
        for p in event.particles():  # a list of copies: faster to walk than the event itself
            if p.isFinal():
                final.append((p.px(), p.py(), p.pz(), p.e(), p.id()))
            elif p.idAbs() > 100:
                hadron_flavour = _heavy_flavour(p.idAbs())
                if hadron_flavour:
                    hadrons.append((hadron_flavour, p.px(), p.py(), p.pz()))
        arr = np.array(final, dtype=np.float64)
        px, py, pz, pid = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 4].astype(np.int64)
        pt, eta, phi = _pt_eta_phi(px, py, pz)
        visible = ~np.isin(np.abs(pid), list(_NEUTRINOS)) & (np.abs(eta) < det.jet_eta_max)

        # isolated lepton candidates (generator level)
        cand = np.flatnonzero(
            np.isin(np.abs(pid), list(_LEPTONS)) & (pt > det.lepton_pt_min) & (np.abs(eta) < det.lepton_eta_max)
        )
        iso_pool = visible & (pt > det.isolation_pt_min)
        isolated = []
        for i in cand:
            near = iso_pool & (_delta_r(eta, phi, eta[i], phi[i]) < det.isolation_dr)
            near[i] = False
            limit = det.electron_isolation if abs(pid[i]) == 11 else det.muon_isolation
            if pt[near].sum() < limit * pt[i]:
                isolated.append(i)
        leptons = np.array(isolated, dtype=np.int64)
        if not len(leptons) or pt[leptons].max() < _EARLY_LEPTON_FRACTION * LEPTON_PT_MIN:
            return None

        # jets
        fastjet: Any = require_extra("fastjet", "generate")
        to_cluster = visible.copy()
        to_cluster[leptons] = False
        jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, det.jet_r)
        inputs = [fastjet.PseudoJet(*row) for row in arr[to_cluster, :4].tolist()]
        jets = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(0.0)
        j4 = np.array([(j.px(), j.py(), j.pz(), j.E()) for j in jets], dtype=np.float64).reshape(-1, 4)
        jpt, jeta, jphi = _pt_eta_phi(j4[:, 0], j4[:, 1], j4[:, 2])
        jmass = np.sqrt(np.maximum(j4[:, 3] ** 2 - jpt**2 - j4[:, 2] ** 2, 0.0))
        hard = jpt > det.jet_pt_min
        soft_px, soft_py = float(j4[~hard, 0].sum()), float(j4[~hard, 1].sum())
        soft_sumet = float(jpt[~hard].sum())
        jpt, jeta, jphi, jmass = jpt[hard], jeta[hard], jphi[hard], jmass[hard]
        flavour = np.zeros(len(jpt), dtype=np.int64)
        if hadrons:
            h = np.array(hadrons, dtype=np.float64)
            hpt, heta, hphi = _pt_eta_phi(h[:, 1], h[:, 2], h[:, 3])
            keep = hpt > det.btag_hadron_pt_min
            for label in (4, 5):  # b overrides c
                sel = keep & (h[:, 0] == label)
                if sel.any():
                    dr = _delta_r(jeta[:, None], jphi[:, None], heta[sel][None, :], hphi[sel][None, :])
                    flavour[(dr < det.btag_match_dr).any(axis=1)] = label

        # detector
        rng = _event_rng(self.seed, px, pz)
        l_scale, l_id = det.smear_leptons(pid[leptons], pt[leptons], eta[leptons], rng)
        j_scale = det.smear_jets(jpt, jeta, rng)
        tagged = det.btag(flavour, jeta, rng)
        soft_x, soft_y = det.smear_soft_term(soft_px, soft_py, soft_sumet, rng)
        lpt = pt[leptons] * l_scale
        lphi = phi[leptons]
        jpt, jmass = jpt * j_scale, jmass * j_scale
        met_x = -(np.sum(lpt * np.cos(lphi)) + np.sum(jpt * np.cos(jphi)) + soft_x)
        met_y = -(np.sum(lpt * np.sin(lphi)) + np.sum(jpt * np.sin(jphi)) + soft_y)

        # selection
        good_l = np.flatnonzero(l_id & (lpt > LEPTON_PT_MIN) & (np.abs(eta[leptons]) < LEPTON_ETA_MAX))
        if len(good_l) != 1:
            return None
        good_j = np.flatnonzero((jpt > JET_PT_MIN) & (np.abs(jeta) < JET_ETA_MAX))
        if len(good_j) < N_JETS_MIN:
            return None
        lead = good_j[np.argsort(-jpt[good_j], kind="stable")[:4]]
        k = leptons[good_l[0]]
        record = {
            "lepton_pt": float(lpt[good_l[0]]),
            "lepton_eta": float(eta[k]),
            "lepton_phi": float(phi[k]),
            "met": math.hypot(met_x, met_y),
            "met_phi": math.atan2(met_y, met_x),
        }
        for n, j in enumerate(lead, start=1):
            record[f"jet{n}_pt"] = float(jpt[j])
            record[f"jet{n}_eta"] = float(jeta[j])
            record[f"jet{n}_phi"] = float(jphi[j])
            record[f"jet{n}_btag"] = float(tagged[j])
            record[f"jet{n}_mass"] = float(jmass[j])
        return record


@dataclass(frozen=True)
class TruthJetSelector:
    """A ``select`` for :func:`~mcsurrogate.generators.pythia.iterate_pythia` that keeps the generator-level jets of
    an event, as a full simulation's truth record does (``GenJet``): anti-k_t R = ``detector.jet_r`` on the
    final-state particles except neutrinos (|η| < ``detector.jet_eta_max``), jets with p_T > ``pt_min`` (GeV) and
    |η| < ``eta_max``, ordered by p_T, each with its ``flavour`` (5 b, 4 c, 0 light: ΔR to B/C hadrons as in
    :class:`BenchmarkSelector`). Events with fewer than ``min_jets`` such jets are rejected. Picklable."""

    detector: DetectorModel = DEFAULT_DETECTOR
    pt_min: float = 20.0
    eta_max: float = JET_ETA_MAX
    min_jets: int = 1

    def __call__(self, event: Any) -> dict[str, Any] | None:
        det = self.detector
        final: list[tuple[float, float, float, float, int]] = []
        hadrons: list[tuple[int, float, float, float]] = []
        for p in event.particles():
            if p.isFinal():
                final.append((p.px(), p.py(), p.pz(), p.e(), p.id()))
            elif p.idAbs() > 100:
                hadron_flavour = _heavy_flavour(p.idAbs())
                if hadron_flavour:
                    hadrons.append((hadron_flavour, p.px(), p.py(), p.pz()))
        arr = np.array(final, dtype=np.float64)
        _, eta, _ = _pt_eta_phi(arr[:, 0], arr[:, 1], arr[:, 2])
        visible = ~np.isin(np.abs(arr[:, 4].astype(np.int64)), list(_NEUTRINOS)) & (np.abs(eta) < det.jet_eta_max)
        fastjet: Any = require_extra("fastjet", "generate")
        jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, det.jet_r)
        inputs = [fastjet.PseudoJet(*row) for row in arr[visible, :4].tolist()]
        jets = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(self.pt_min)
        j4 = np.array([(j.px(), j.py(), j.pz(), j.E()) for j in jets], dtype=np.float64).reshape(-1, 4)
        jpt, jeta, jphi = _pt_eta_phi(j4[:, 0], j4[:, 1], j4[:, 2])
        jmass = np.sqrt(np.maximum(j4[:, 3] ** 2 - jpt**2 - j4[:, 2] ** 2, 0.0))
        keep = (jpt > self.pt_min) & (np.abs(jeta) < self.eta_max)
        if keep.sum() < self.min_jets:
            return None
        jpt, jeta, jphi, jmass = jpt[keep], jeta[keep], jphi[keep], jmass[keep]
        flavour = np.zeros(len(jpt), dtype=np.int64)
        if hadrons:
            h = np.array(hadrons, dtype=np.float64)
            hpt, heta, hphi = _pt_eta_phi(h[:, 1], h[:, 2], h[:, 3])
            ok = hpt > det.btag_hadron_pt_min
            for label in (4, 5):  # b overrides c
                sel = ok & (h[:, 0] == label)
                if sel.any():
                    dr = _delta_r(jeta[:, None], jphi[:, None], heta[sel][None, :], hphi[sel][None, :])
                    flavour[(dr < det.btag_match_dr).any(axis=1)] = label
        order = np.argsort(-jpt, kind="stable")
        return {
            "jets": [
                {
                    "pt": float(jpt[i]),
                    "eta": float(jeta[i]),
                    "phi": float(jphi[i]),
                    "mass": float(jmass[i]),
                    "flavour": int(flavour[i]),
                }
                for i in order
            ]
        }


_TRUTH_JETS_TYPE = ak.types.from_datashape(
    "var * {pt: float64, eta: float64, phi: float64, mass: float64, flavour: int64}", highlevel=False
)


def iterate_truth_jets(
    process: Process,
    n_events: int,
    *,
    seed: int,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
    selector: TruthJetSelector | None = None,
    mpi: bool = False,
    ecm: float = 13000.0,
) -> Iterator[ak.Array]:
    """Yield events of ``process`` (``"signal"`` or ``"ttbar"``, semileptonic as in :func:`iterate_higgs_benchmark`)
    chunk by chunk with their truth ``jets`` (:class:`TruthJetSelector`; vector Momentum4D: pt [GeV], eta, phi [rad],
    mass [GeV], ``flavour``) and a pile-up ``mu`` ~ Uniform(0, 40) per event (numpy, from the seed and the chunk):
    the input of :func:`~mcsurrogate.response.reference_detector.reconstruct_jets`."""
    if process not in _SETTINGS:
        raise InputError(f"unknown process {process!r}; choose 'signal' or 'ttbar'")
    selector = TruthJetSelector() if selector is None else selector
    if not isinstance(selector, TruthJetSelector):
        raise InputError(f"selector must be a TruthJetSelector, got {type(selector).__name__}")
    require_extra("fastjet", "generate")
    chunks = iterate_pythia(
        _SETTINGS[process](mpi=mpi, ecm=ecm),
        n_events,
        seed=int(seed),
        select=selector,
        n_workers=n_workers,
        chunk_size=chunk_size,
        progress=progress,
        stats=stats,
        alternate=ONE_LEPTONIC_W,
    )
    return (_truth_jet_records(chunk, int(seed), index) for index, chunk in enumerate(chunks))


def _truth_jet_records(chunk: ak.Array, seed: int, index: int) -> ak.Array:
    jets = ak.enforce_type(chunk.jets, _TRUTH_JETS_TYPE)
    mu = np.random.default_rng([seed, index, 6]).uniform(0.0, 40.0, len(chunk))
    return ak.zip({"jets": ak.with_name(jets, "Momentum4D"), "mu": mu}, depth_limit=1)


# -- reconstruction ------------------------------------------------------------------------------------
def neutrino_pz(
    lepton_px: np.ndarray,
    lepton_py: np.ndarray,
    lepton_pz: np.ndarray,
    met_x: np.ndarray,
    met_y: np.ndarray,
    m_w: float = M_W,
) -> np.ndarray:
    """The neutrino p_z [GeV] from m(ℓν) = ``m_w`` (massless lepton and neutrino, ν p_T = E_T^miss): of the two
    solutions the one with the smaller |p_z|; the real part when they are complex."""
    lpx, lpy, lpz = (np.asarray(a, dtype=np.float64) for a in (lepton_px, lepton_py, lepton_pz))
    mx, my = np.asarray(met_x, dtype=np.float64), np.asarray(met_y, dtype=np.float64)
    pt2 = np.maximum(lpx**2 + lpy**2, 1e-12)
    energy = np.sqrt(pt2 + lpz**2)
    mu = 0.5 * m_w**2 + lpx * mx + lpy * my
    centre = mu * lpz / pt2
    root = energy * np.sqrt(np.maximum(mu**2 - pt2 * (mx**2 + my**2), 0.0)) / pt2
    return np.where(np.abs(centre - root) < np.abs(centre + root), centre - root, centre + root)


def exact_w_mass(m_lv: np.ndarray, *, atol: float = 1e-6) -> np.ndarray:
    """m(ℓν) [GeV] with the values within ``atol`` GeV of m_W set to m_W exactly.

    Whenever the W-mass constraint has a real solution, m(ℓν) is m_W by construction, but the four-vector sum
    returns it with float rounding (a spread of ~10⁻¹³ GeV over a few dozen distinct values). A classifier two-sample
    test separates that rounding pattern from any other (a generator's, or another sample's), and a Gauss-rank
    preprocessing only treats the constraint as the atom it is when the value is one number. Idempotent: applying
    it to features computed since this function existed changes nothing."""
    m = np.asarray(m_lv, dtype=np.float64)
    return np.where(np.abs(m - M_W) <= atol, M_W, m)


def _p4(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> Any:
    return vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": mass})


def high_level_features(events: Any) -> dict[str, np.ndarray]:
    """The 7 HIGGS masses [GeV] of events holding the low-level columns and ``jet1_mass`` … ``jet4_mass``:

    * b candidates b₁, b₂: the two b-tagged jets among the leading four (the higher-p_T ones if more than two are
      tagged; filled with the leading untagged jets if fewer); the other two jets j, j' are the W → q q̄' candidate;
    * ν: p_T = E_T^miss, p_z from the W-mass constraint (:func:`neutrino_pz`); the lepton is taken massless;
    * ``m_jj`` = m(j j'); ``m_lv`` = m(ℓ ν) (= m_W exactly whenever the constraint has a real solution:
      :func:`exact_w_mass`);
    * ``m_jjj`` = m(j j' b_h), ``m_jlv`` = m(ℓ ν b_ℓ), with (b_h, b_ℓ) the assignment of b₁, b₂ minimising
      (m_jjj − m_t)² + (m_jlv − m_t)², m_t = 173 GeV;
    * ``m_bb`` = m(b₁ b₂); ``m_wbb`` = m(ℓ ν b₁ b₂) (the leptonic W); ``m_wwbb`` = m(ℓ ν j j' b₁ b₂).
    """
    col = {
        name: np.asarray(ak.to_numpy(events[name]) if isinstance(events, ak.Array) else events[name], dtype=np.float64)
        for name in (*LOW_LEVEL_FEATURES, *(f"jet{i}_mass" for i in range(1, 5)))
    }
    n = len(col["lepton_pt"])
    zero = np.zeros(n)
    jets = {
        q: np.stack([col[f"jet{i}_{q}"] for i in range(1, 5)], axis=1) for q in ("pt", "eta", "phi", "mass", "btag")
    }
    order = np.argsort(jets["btag"] < 0.5, axis=1, kind="stable")  # tagged first, p_T order kept within
    ranked = {q: np.take_along_axis(v, order, axis=1) for q, v in jets.items()}
    b1, b2, w1, w2 = (_p4(*(ranked[q][:, i] for q in ("pt", "eta", "phi", "mass"))) for i in range(4))

    lepton = _p4(col["lepton_pt"], col["lepton_eta"], col["lepton_phi"], zero)
    met_x, met_y = col["met"] * np.cos(col["met_phi"]), col["met"] * np.sin(col["met_phi"])
    nu_z = neutrino_pz(lepton.px, lepton.py, lepton.pz, met_x, met_y)
    neutrino = vector.array({"px": met_x, "py": met_y, "pz": nu_z, "mass": zero})

    w_had = w1 + w2
    w_lep = lepton + neutrino
    jjj = [(w_had + b1).mass, (w_had + b2).mass]
    jlv = [(w_lep + b2).mass, (w_lep + b1).mass]
    first = (jjj[0] - M_TOP) ** 2 + (jlv[0] - M_TOP) ** 2 <= (jjj[1] - M_TOP) ** 2 + (jlv[1] - M_TOP) ** 2
    bb = b1 + b2
    return {
        "m_jj": np.asarray(w_had.mass, dtype=np.float64),
        "m_jjj": np.where(first, jjj[0], jjj[1]),
        "m_lv": exact_w_mass(w_lep.mass),
        "m_jlv": np.where(first, jlv[0], jlv[1]),
        "m_bb": np.asarray(bb.mass, dtype=np.float64),
        "m_wbb": np.asarray((w_lep + bb).mass, dtype=np.float64),
        "m_wwbb": np.asarray((w_lep + w_had + bb).mass, dtype=np.float64),
    }


def _features(chunk: ak.Array) -> ak.Array:
    high = high_level_features(chunk)
    columns = {name: ak.to_numpy(chunk[name]) for name in LOW_LEVEL_FEATURES}
    columns.update(high)
    return ak.zip({name: np.ascontiguousarray(columns[name], dtype=np.float64) for name in FEATURES}, depth_limit=1)


# -- generation -----------------------------------------------------------------------------------------
def iterate_higgs_benchmark(
    process: Process,
    n_events: int,
    *,
    seed: int,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    stats: GenerationStats | None = None,
    detector: DetectorModel = DEFAULT_DETECTOR,
    mpi: bool = False,
    ecm: float = 13000.0,
    first_chunk: int = 0,
) -> Iterator[ak.Array]:
    """Yield ``n_events`` selected events of ``process`` (``"signal"`` or ``"ttbar"``) chunk by chunk: flat
    records with the 28 :data:`FEATURES` (float64; GeV, radians; b-tags 0 or 1). ``stats`` collects the counts
    (``tried`` = Pythia events, ``accepted`` = selected events) and the time; events/s is
    ``stats.events_per_second``. The output depends only on ``(seed, chunk_size, detector, mpi, ecm)``;
    ``first_chunk = k`` continues a run of ``k * chunk_size`` events (see :func:`~mcsurrogate.generators.pythia.iterate_pythia`)."""
    if process not in _SETTINGS:
        raise InputError(f"unknown process {process!r}; choose 'signal' or 'ttbar'")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if n_events < 1 or chunk_size < 1:
        raise InputError(f"n_events and chunk_size must be positive, got {n_events} and {chunk_size}")
    if not isinstance(detector, DetectorModel):
        raise InputError(f"detector must be a DetectorModel, got {type(detector).__name__}")
    require_extra("fastjet", "generate")
    require_extra("pythia8mc", "generate")
    chunks = iterate_pythia(
        _SETTINGS[process](mpi=mpi, ecm=ecm),
        n_events,
        seed=int(seed),
        select=BenchmarkSelector(detector, int(seed)),
        n_workers=n_workers,
        chunk_size=chunk_size,
        progress=progress,
        stats=stats,
        alternate=ONE_LEPTONIC_W,
        first_chunk=first_chunk,
    )
    return (_features(chunk) for chunk in chunks)  # a plain function: bad arguments raise at the call


def generate_higgs_benchmark(
    process: Process,
    n_events: int,
    dest: str | os.PathLike[str],
    *,
    seed: int,
    n_workers: int = 1,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    detector: DetectorModel = DEFAULT_DETECTOR,
    mpi: bool = False,
    ecm: float = 13000.0,
    tree: str = "events",
    overwrite: bool = False,
    continue_from: str | os.PathLike[str] | None = None,
) -> tuple[Path, GenerationStats]:
    """Generate ``n_events`` selected events (see :func:`iterate_higgs_benchmark`) and stream them to ``dest``
    (``.parquet`` or ``.root``, TTree ``tree``), atomically; returns ``(path, stats)`` and logs the selection
    efficiency and the selected events per second.

    ``continue_from``: a file this function wrote earlier with the same ``process``, ``seed``, ``chunk_size`` and
    detector settings, holding ``k * chunk_size < n_events`` events. ``dest`` then gets its events followed by the
    chunks from ``k`` on: the same events as one run of ``n_events``, for the price of the missing ones (``stats``
    counts only those). ``dest`` may be ``continue_from`` itself (with ``overwrite=True``): it is replaced only
    once the longer file is complete. The seed and settings of ``continue_from`` cannot be read back from it:
    keeping them is the caller's part (a file name that says them, as the HIGGS analysis's cache does)."""
    n_before = 0
    if continue_from is not None:
        n_before = count_events(continue_from)
        if n_before % chunk_size or n_before >= n_events:
            raise InputError(
                f"{continue_from}: continue_from needs whole chunks of a shorter run; it holds {n_before} events, "
                f"chunk_size is {chunk_size} and n_events {n_events}"
            )
        missing = sorted(set(FEATURES) - set(available_columns(continue_from)))
        if missing:
            raise InputError(f"{continue_from}: not a HIGGS-benchmark sample, no column(s) {', '.join(missing)}")
    stats = GenerationStats()
    with EventWriter(dest, tree=tree, overwrite=overwrite) as writer:
        if continue_from is not None:
            for chunk in iterate_events(continue_from, columns=FEATURES):
                writer.write(chunk)
        for chunk in iterate_higgs_benchmark(
            process,
            n_events - n_before,
            seed=seed,
            n_workers=n_workers,
            chunk_size=chunk_size,
            progress=progress,
            stats=stats,
            detector=detector,
            mpi=mpi,
            ecm=ecm,
            first_chunk=n_before // chunk_size,
        ):
            writer.write(chunk)
    log.info(
        "%s: %d selected of %d generated events (%.2f %%), %.1f selected events/s (%.1f per CPU second)",
        process,
        stats.accepted,
        stats.tried,
        100.0 * stats.accepted / max(stats.tried, 1),
        stats.events_per_second,
        stats.events_per_cpu_second,
    )
    return writer.dest, stats
