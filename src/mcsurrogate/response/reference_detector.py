"""A reference detector with efficiency and any multiplicity, to train and validate object-level responses on.

It writes what a full simulation writes: a truth collection (every generator object above threshold) and a reco
collection (the objects the detector found, with measured kinematics, ordered by reco E_T), with no link between
them; :func:`~mcsurrogate.response.matching.match_objects` finds the pairs, as an analyst does with NanoAOD.

Photons (:func:`reconstruct_photons`): truth photons closer than ``merge_dr`` (ΔR, default 0.05: a calorimeter
cluster does not resolve them, e.g. the two photons of an energetic π⁰) are first merged into one truth object
(four-momenta summed; :func:`merge_close`); the truth collection written is the merged one. Each truth object is then
identified with probability ε(E_T, η, μ, ΔR) of
:class:`ParametricEfficiency`, independently; identified photons get paper A's responses
(:func:`~mcsurrogate.response.smearing.object_responses`, any scenario, correlations between all objects of the
event) and are kept if their reco E_T is above ``reco_pt_min``.

Jets (:func:`reconstruct_jets`): the HIGGS-like benchmark's parametric detector
(:class:`~mcsurrogate.generators.higgs_benchmark.DetectorModel`): four-momentum scaled by 1 + σ_E/E · N(0, 1)
(η, φ kept), b-tagging by flavour, and the same kind of parametric efficiency (:data:`JET_EFFICIENCY`).

The efficiency (a documented choice, smooth in every variable, 60–95 % for photons over E_T ≥ 10 GeV, |η| < 2.5,
μ ≤ 40 before the isolation factor)::

    ε = plateau − pt_drop · exp(−max(E_T − pt_ref, 0) / pt_scale) − eta_drop · (|η| / eta_max)² − mu_drop · μ / mu_max
    ε ← ε · (1 − iso_drop · exp(−(ΔR_nearest / iso_radius)²))       clipped to [0, 1]

with ΔR_nearest the distance to the nearest other truth object of the collection (π⁰ photon pairs, close jets).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from ..arguments import check_float, check_records, check_seed, describe
from ..errors import InputError
from .matching import nearest_other
from .smearing import FIELDS, SmearingConfig, object_responses

__all__ = [
    "JET_EFFICIENCY",
    "PHOTON_EFFICIENCY",
    "ParametricEfficiency",
    "PhotonDetector",
    "merge_close",
    "reconstruct_jets",
    "reconstruct_photons",
]


@dataclass(frozen=True)
class ParametricEfficiency:
    """The identification efficiency of the module docstring (E_T in GeV, ΔR in η–φ)."""

    plateau: float = 0.95
    pt_drop: float = 0.15
    pt_ref: float = 10.0
    pt_scale: float = 20.0
    eta_drop: float = 0.10
    eta_max: float = 2.5
    mu_drop: float = 0.10
    mu_max: float = 40.0
    iso_drop: float = 0.3
    iso_radius: float = 0.2

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_float(getattr(self, f.name), f"ParametricEfficiency.{f.name}", minimum=0.0)
        for name in ("pt_scale", "eta_max", "mu_max", "iso_radius"):
            check_float(getattr(self, name), f"ParametricEfficiency.{name}", above=0.0)
        if self.plateau > 1.0 or self.iso_drop > 1.0:
            raise InputError(
                f"ParametricEfficiency: plateau and iso_drop must be ≤ 1, got {self.plateau}, {self.iso_drop}"
            )

    def __call__(
        self, pt: np.ndarray, eta: np.ndarray, mu: np.ndarray, dr_nearest: np.ndarray | float = np.inf
    ) -> np.ndarray:
        """ε for objects of truth E_T ``pt`` (GeV), ``eta``, event pile-up ``mu`` and ΔR to the nearest other object."""
        pt, eta, mu = (np.asarray(a, dtype=np.float64) for a in (pt, eta, mu))
        eps = (
            self.plateau
            - self.pt_drop * np.exp(-np.maximum(pt - self.pt_ref, 0.0) / self.pt_scale)
            - self.eta_drop * (np.abs(eta) / self.eta_max) ** 2
            - self.mu_drop * mu / self.mu_max
        )
        dr = np.asarray(dr_nearest, dtype=np.float64)
        eps = eps * (1.0 - self.iso_drop * np.exp(-((dr / self.iso_radius) ** 2)))
        return np.asarray(np.clip(eps, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParametricEfficiency:
        return cls(**d)


#: photon identification: 60–95 % over E_T ≥ 10 GeV, |η| < 2.5, μ ≤ 40 (isolated photons)
PHOTON_EFFICIENCY = ParametricEfficiency()
#: jets: 70–98 % over p_T ≥ 20 GeV (a jet-vertex-tagger-like loss at low p_T and high μ), merging below ΔR ~ 0.4
JET_EFFICIENCY = ParametricEfficiency(
    plateau=0.98, pt_drop=0.18, pt_ref=20.0, pt_scale=15.0, eta_drop=0.04, mu_drop=0.06, iso_drop=0.5, iso_radius=0.4
)


@dataclass(frozen=True)
class PhotonDetector:
    """The reference photon detector: paper A's smearing ``smearing`` (any scenario), the identification
    ``efficiency``, a reco threshold ``reco_pt_min`` (GeV: photons measured at or below it are not reconstructed) and
    the ΔR ``merge_dr`` below which truth photons are merged (0: never)."""

    smearing: SmearingConfig = field(default_factory=SmearingConfig)
    efficiency: ParametricEfficiency = PHOTON_EFFICIENCY
    reco_pt_min: float = 0.0
    merge_dr: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.smearing, SmearingConfig):
            raise InputError(f"PhotonDetector.smearing must be a SmearingConfig, got {describe(self.smearing)}")
        if not isinstance(self.efficiency, ParametricEfficiency):
            raise InputError(
                f"PhotonDetector.efficiency must be a ParametricEfficiency, got {describe(self.efficiency)}"
            )
        check_float(self.reco_pt_min, "PhotonDetector.reco_pt_min", minimum=0.0)
        check_float(self.merge_dr, "PhotonDetector.merge_dr", minimum=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "smearing": self.smearing.to_dict(),
            "efficiency": self.efficiency.to_dict(),
            "reco_pt_min": self.reco_pt_min,
            "merge_dr": self.merge_dr,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhotonDetector:
        return cls(
            SmearingConfig.from_dict(d["smearing"]),
            ParametricEfficiency.from_dict(d["efficiency"]),
            float(d["reco_pt_min"]),
            float(d.get("merge_dr", 0.0)),
        )


def _truth_objects(
    events: ak.Array, collection: str, pileup: str, needed: tuple[str, ...]
) -> tuple[ak.Array, np.ndarray]:
    check_records(events, "truth")
    for name in (collection, pileup):
        if name not in events.fields:
            raise InputError(f"the truth events have no field {name!r} (fields: {events.fields})")
    objects = events[collection]
    if objects.ndim != 2 or not objects.fields:
        raise InputError(f"truth field {collection!r} must hold a list of objects per event, got type {objects.type}")
    missing = [f for f in needed if f not in objects.fields]
    if missing:
        raise InputError(f"the truth objects {collection!r} lack field(s) {missing}; fields: {objects.fields}")
    mu = np.asarray(ak.to_numpy(events[pileup]), dtype=np.float64)
    if mu.ndim != 1 or not np.isfinite(mu).all():
        raise InputError(f"pile-up field {pileup!r} must hold one finite number per event")
    order = ak.argsort(objects.pt, axis=1, ascending=False, stable=True)
    return objects[order], mu


def merge_close(objects: ak.Array, merge_dr: float) -> ak.Array:
    """Objects (fields pt [GeV], eta, phi, optional mass [GeV]; any count per event) with those closer than
    ``merge_dr`` in ΔR merged: every object joins the highest-p_T object of its event within ``merge_dr`` of it that
    comes before it in p_T order (chains followed to their first object), and each group becomes one object with the
    summed four-momentum, the other fields of its leading member and ``n_merged`` (how many objects it holds).
    Returned ordered by p_T, as vector Momentum4D records. Vectorised over events (``ak.argcombinations``)."""
    objects = objects[ak.argsort(objects.pt, axis=1, ascending=False, stable=True)]
    counts = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else np.zeros(0, np.int64)
    pt, eta, phi = (_flat(objects[f]) for f in FIELDS)
    mass = _flat(objects["mass"]) if "mass" in objects.fields else np.zeros(len(pt))
    n = len(pt)
    parent = np.arange(n)
    if merge_dr > 0 and n:
        pairs = ak.argcombinations(objects.pt, 2)
        n_pairs = np.asarray(ak.to_numpy(ak.num(pairs)), dtype=np.int64)
        i = np.asarray(ak.to_numpy(ak.flatten(pairs["0"])), dtype=np.int64) + np.repeat(starts, n_pairs)
        j = np.asarray(ak.to_numpy(ak.flatten(pairs["1"])), dtype=np.int64) + np.repeat(starts, n_pairs)
        close = np.hypot(eta[i] - eta[j], (phi[i] - phi[j] + np.pi) % (2 * np.pi) - np.pi) < merge_dr
        np.minimum.at(parent, j[close], i[close])
        while True:  # follow the chains to their first object
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    root = parent == np.arange(n)
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    p4 = [
        np.bincount(parent, w, minlength=n)[root]
        for w in (pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), energy)
    ]
    px, py, pz, e = p4
    new_pt = np.hypot(px, py)
    new = {
        "pt": new_pt,
        "eta": np.arcsinh(pz / np.maximum(new_pt, 1e-12)),
        "phi": np.arctan2(py, px),
        "mass": np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)),
    }
    extra = {f: ak.flatten(objects[f])[np.flatnonzero(root)] for f in objects.fields if f not in new}
    new_counts = np.bincount(np.repeat(np.arange(len(counts)), counts)[root], minlength=len(counts))
    merged = ak.unflatten(
        ak.zip(new | extra | {"n_merged": np.bincount(parent, minlength=n)[root]}, with_name="Momentum4D"),
        new_counts,
    )
    return merged[ak.argsort(merged.pt, axis=1, ascending=False, stable=True)]


def _flat(values: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(values, axis=1)), dtype=np.float64)


def _jagged(columns: dict[str, np.ndarray], counts: np.ndarray, order_by: str = "pt") -> ak.Array:
    """Lists of vector ``Momentum4D`` records from flat columns and counts, ordered by decreasing ``order_by``."""
    objects = ak.unflatten(ak.zip(columns, with_name="Momentum4D"), counts)
    return objects[ak.argsort(objects[order_by], axis=1, ascending=False, stable=True)]


def reconstruct_photons(
    truth: ak.Array,
    detector: PhotonDetector | None = None,
    *,
    seed: int | np.random.Generator = 0,
    collection: str = "photons",
    pileup: str = "mu",
    reco_collection: str = "photons",
    truth_collection: str = "truth_photons",
) -> ak.Array:
    """Pass every truth photon of ``truth[collection]`` (any number per event) through the reference detector.

    Returns records with ``reco_collection`` (the reconstructed photons: vector Momentum4D, massless, ordered by reco
    E_T, no truth link), ``truth_collection`` (all truth photons, ordered by truth E_T, their extra fields kept) and
    ``pileup``. With ``detector.merge_dr`` > 0 the truth photons closer than it are merged first (:func:`merge_close`;
    the truth collection written is the merged one, with ``n_merged``). Random numbers, in this order: the responses
    (:func:`object_responses`), then one uniform per photon for the identification.
    """
    detector = PhotonDetector() if detector is None else detector
    if not isinstance(detector, PhotonDetector):
        raise InputError(f"detector must be a PhotonDetector, got {describe(detector)}")
    rng = check_seed(seed)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    objects, mu = _truth_objects(truth, collection, pileup, FIELDS)
    bad = [f for f in FIELDS if not np.isfinite(_flat(objects[f])).all()]
    if bad:
        raise InputError(f"the truth objects {collection!r} hold NaN/inf in {bad}")
    if detector.merge_dr > 0:
        objects = merge_close(objects, detector.merge_dr)
    counts = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
    kin = {f: _flat(objects[f]) for f in FIELDS}
    mu_obj = np.repeat(mu, counts)
    delta = object_responses(kin["pt"], kin["eta"], mu_obj, counts, detector.smearing, seed=rng)
    eff = detector.efficiency(kin["pt"], kin["eta"], mu_obj, _flat(nearest_other(objects)))
    found = rng.random(len(eff)) < eff
    reco = {f: kin[f] + delta[:, j] for j, f in enumerate(FIELDS)}
    reco["phi"] = (reco["phi"] + np.pi) % (2 * np.pi) - np.pi
    found &= reco["pt"] > detector.reco_pt_min
    event = np.repeat(np.arange(len(counts)), counts)
    reco_counts = np.bincount(event[found], minlength=len(counts))
    reco_columns = {f: reco[f][found] for f in FIELDS} | {"mass": np.zeros(int(found.sum()))}
    truth_fields = {f: ak.values_astype(objects[f], np.float64) for f in (*FIELDS, "mass") if f in objects.fields}
    truth_fields.setdefault("mass", ak.zeros_like(truth_fields["pt"]))
    extra = {f: objects[f] for f in objects.fields if f not in (*FIELDS, "mass")}
    return ak.zip(
        {
            reco_collection: _jagged(reco_columns, reco_counts),
            truth_collection: ak.zip(truth_fields | extra, with_name="Momentum4D"),
            pileup: mu,
        },
        depth_limit=1,
    )


def reconstruct_jets(
    truth: ak.Array,
    detector: Any = None,
    efficiency: ParametricEfficiency = JET_EFFICIENCY,
    *,
    seed: int | np.random.Generator = 0,
    collection: str = "jets",
    pileup: str = "mu",
    reco_collection: str = "jets",
    truth_collection: str = "truth_jets",
    reco_pt_min: float = 0.0,
) -> ak.Array:
    """Pass every truth jet of ``truth[collection]`` (fields pt [GeV], eta, phi, mass [GeV], ``flavour`` 5/4/0)
    through the HIGGS-like benchmark's parametric detector (a ``DetectorModel``, its default when ``None``).

    Returns records with ``reco_collection`` (reconstructed jets: pt, eta, phi, mass, ``btag`` 0/1; ordered by reco
    p_T; no truth link), ``truth_collection`` (all truth jets, by truth p_T) and ``pileup``. Random numbers, in this
    order: one normal per jet (energy scale), one uniform per jet (efficiency), one uniform per jet (b-tag).
    """
    from ..generators.higgs_benchmark import DEFAULT_DETECTOR, DetectorModel

    detector = DEFAULT_DETECTOR if detector is None else detector
    if not isinstance(detector, DetectorModel):
        raise InputError(f"detector must be a DetectorModel, got {describe(detector)}")
    if not isinstance(efficiency, ParametricEfficiency):
        raise InputError(f"efficiency must be a ParametricEfficiency, got {describe(efficiency)}")
    reco_pt_min = check_float(reco_pt_min, "reco_pt_min", minimum=0.0)
    rng = check_seed(seed)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    objects, mu = _truth_objects(truth, collection, pileup, ("pt", "eta", "phi", "mass", "flavour"))
    counts = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
    pt, eta, phi, mass = (_flat(objects[f]) for f in ("pt", "eta", "phi", "mass"))
    flavour = np.asarray(ak.to_numpy(ak.flatten(objects.flavour)), dtype=np.int64)
    mu_obj = np.repeat(mu, counts)
    scale = detector.smear_jets(pt, eta, rng)
    eff = efficiency(pt, eta, mu_obj, _flat(nearest_other(objects)))
    found = (rng.random(len(pt)) < eff) & (pt * scale > reco_pt_min)
    tagged = detector.btag(flavour, eta, rng)
    event = np.repeat(np.arange(len(counts)), counts)
    reco_counts = np.bincount(event[found], minlength=len(counts))
    reco_columns = {
        "pt": (pt * scale)[found],
        "eta": eta[found],
        "phi": phi[found],
        "mass": (mass * scale)[found],
        "btag": tagged[found].astype(np.float64),
    }
    truth_columns = {f: ak.values_astype(objects[f], np.float64) for f in ("pt", "eta", "phi", "mass")}
    extra = {f: objects[f] for f in objects.fields if f not in truth_columns}
    return ak.zip(
        {
            reco_collection: _jagged(reco_columns, reco_counts),
            truth_collection: ak.zip(truth_columns | extra, with_name="Momentum4D"),
            pileup: mu,
        },
        depth_limit=1,
    )
