"""Paper A's reference detector smearing of photons (E_T, η, φ), vectorised and seeded.

Resolution of each response, per photon:
``σ_ET = 1.5 GeV · R(E_T) R(η) R(μ)``, ``σ_η = 0.0005 · …``, ``σ_φ = 0.0003 · …`` with the quartic factors
``R(x) = (p0 + p1 x + p2 x² + p3 x³ + p4 x⁴) / C`` of the paper. The paper does not give the scale of x;
mcsurrogate maps each variable's physical range linearly onto x ∈ [0, 6] and clips (E_T ∈ [20, 200] GeV,
|η| ∈ [0, 2.5], μ ∈ [0, 40]: :class:`PolynomialMapping`), where all nine polynomials stay positive
(factors ~0.6 – 2.6).

Scenarios: ``baseline`` Δ ~ N(0, σ) independent per photon; ``correlation`` Δ₂ ← ρΔ₁ + √(1−ρ²)Δ₂ per observable
(ρ, not the paper's misprinted ρ²); ``asymmetric`` Δ ~ 0.84 N(0, σ) + 0.16 N(−3σ, 3σ).

Any number of objects per event (:func:`object_responses`): the correlation scenario draws, per event and
observable, one shared normal g and per object z_k = √ρ·g + √(1−ρ)·e_k, so that every two objects of an event have
correlation ρ; for two objects this is the same joint distribution as paper A's Δ₂ ← ρΔ₁ + √(1−ρ²)Δ₂, and it stays
ρ whichever objects a detector loses (ρ ≥ 0 here: an equal correlation of more than two objects must be ≥ −1/(n−1)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import awkward as ak
import numpy as np

from ..errors import InputError

__all__ = [
    "BASE_WIDTH",
    "POLYNOMIALS",
    "PolynomialMapping",
    "SmearingConfig",
    "object_responses",
    "resolution",
    "smear_photons",
    "smear_responses",
]

#: base widths of the responses: GeV for E_T, absolute for η and φ (radians)
BASE_WIDTH = {"pt": 1.5, "eta": 0.0005, "phi": 0.0003}

#: (response, variable) → (p0, p1, p2, p3, p4, C), paper A Table
POLYNOMIALS: dict[tuple[str, str], tuple[float, ...]] = {
    ("pt", "pt"): (1.81, -0.56, 0.28, -0.044, 0.0024, 1.46),
    ("pt", "eta"): (1.74, 1.04, -0.59, 0.10, -0.0057, 1.64),
    ("pt", "mu"): (1.74, 0.058, 0.0041, -0.0031, 0.00031, 1.74),
    ("eta", "pt"): (0.00048, -6.7e-5, 1.5e-5, -1.7e-6, 7.8e-8, 0.00032),
    ("eta", "eta"): (0.00066, -0.00023, 5.5e-5, -6.3e-6, 3.3e-7, 0.00030),
    ("eta", "mu"): (0.00033, 2.5e-5, -9.7e-6, 2.0e-6, -1.5e-7, 0.00033),
    ("phi", "pt"): (0.0014, -0.00021, 1.0e-5, 1.6e-6, -1.6e-7, 0.00054),
    ("phi", "eta"): (0.00091, 0.00025, -0.00016, 3.0e-5, -1.6e-6, 0.00078),
    ("phi", "mu"): (0.00076, -9.2e-6, 2.1e-5, -3.6e-6, 1.9e-7, 0.00076),
}

FIELDS = ("pt", "eta", "phi")


@dataclass(frozen=True)
class PolynomialMapping:
    """Linear map of each variable's range onto the polynomials' x ∈ [x_low, x_high] (clipped).

    E_T in GeV, |η| (the detector is symmetric in η), μ the mean number of pile-up interactions.
    """

    pt_range: tuple[float, float] = (20.0, 200.0)
    abs_eta_range: tuple[float, float] = (0.0, 2.5)
    mu_range: tuple[float, float] = (0.0, 40.0)
    x_low: float = 0.0
    x_high: float = 6.0

    def x(self, variable: str, values: np.ndarray) -> np.ndarray:
        lo, hi = {"pt": self.pt_range, "eta": self.abs_eta_range, "mu": self.mu_range}[variable]
        v = np.abs(values) if variable == "eta" else np.asarray(values, dtype=np.float64)
        t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
        return self.x_low + t * (self.x_high - self.x_low)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolynomialMapping:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


DEFAULT_MAPPING = PolynomialMapping()


def factor(
    response: str, variable: str, values: np.ndarray, mapping: PolynomialMapping = DEFAULT_MAPPING
) -> np.ndarray:
    """One quartic factor R(x) of the ``response`` width as a function of ``variable``."""
    *p, c = POLYNOMIALS[(response, variable)]
    return np.polynomial.polynomial.polyval(mapping.x(variable, values), p) / c


def resolution(
    kind: Literal["pt", "eta", "phi"],
    pt: np.ndarray,
    eta: np.ndarray,
    mu: np.ndarray,
    *,
    mapping: PolynomialMapping = DEFAULT_MAPPING,
) -> np.ndarray:
    """σ of the ``kind`` response for photons of truth E_T ``pt`` (GeV), ``eta`` and pile-up ``mu``."""
    if kind not in BASE_WIDTH:
        raise InputError(f"unknown response {kind!r}; choose one of {list(BASE_WIDTH)}")
    return (
        BASE_WIDTH[kind]
        * factor(kind, "pt", pt, mapping)
        * factor(kind, "eta", eta, mapping)
        * factor(kind, "mu", mu, mapping)
    )


@dataclass(frozen=True)
class SmearingConfig:
    """Reference smearing scenario: ``baseline``, ``correlation`` (with ``rho``) or ``asymmetric``
    (``core_fraction`` N(0, σ) + tail N(``tail_shift``·σ, ``tail_width``·σ))."""

    scenario: Literal["baseline", "correlation", "asymmetric"] = "baseline"
    rho: float = 0.5
    core_fraction: float = 0.84
    tail_shift: float = -3.0
    tail_width: float = 3.0
    mapping: PolynomialMapping = field(default_factory=PolynomialMapping)

    def __post_init__(self) -> None:
        if self.scenario not in ("baseline", "correlation", "asymmetric"):
            raise InputError(f"unknown smearing scenario {self.scenario!r}; choose baseline, correlation or asymmetric")
        if not -1.0 <= self.rho <= 1.0:
            raise InputError(f"correlation rho must be in [-1, 1], got {self.rho}")
        if not 0.0 < self.core_fraction <= 1.0:
            raise InputError(f"core_fraction must be in (0, 1], got {self.core_fraction}")
        if not self.tail_width > 0.0:
            raise InputError(f"tail_width (in units of σ) must be positive, got {self.tail_width}")

    @property
    def designed_rho(self) -> float:
        """The correlation this scenario builds in between the responses of two objects of an event (0 unless
        ``correlation``)."""
        return self.rho if self.scenario == "correlation" else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mapping"] = self.mapping.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SmearingConfig:
        d = dict(d)
        if "mapping" in d:
            d["mapping"] = PolynomialMapping.from_dict(d["mapping"])
        return cls(**d)


def _truth_arrays(truth: ak.Array, collection: str, pileup: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    for name in (collection, pileup):
        if name not in truth.fields:
            raise InputError(f"truth records lack the field {name!r} (fields: {truth.fields})")
    counts = ak.to_numpy(ak.num(truth[collection], axis=1))
    if (counts < 2).any():
        raise InputError(
            f"{int((counts < 2).sum())} truth events have fewer than two {collection}; select events first"
        )
    lead = truth[collection][:, :2]
    kin = {f: ak.to_numpy(lead[f]).astype(np.float64) for f in FIELDS}  # (n, 2)
    mu = ak.to_numpy(truth[pileup]).astype(np.float64)
    bad = {f: int((~np.isfinite(v)).any(axis=1).sum()) for f, v in kin.items()}
    bad[pileup] = int((~np.isfinite(mu)).sum())
    if any(bad.values()):
        raise InputError(f"NaN/inf in the truth kinematics, events per field: { {k: v for k, v in bad.items() if v} }")
    return kin, mu


def smear_responses(
    pt: np.ndarray, eta: np.ndarray, mu: np.ndarray, config: SmearingConfig, *, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Responses Δ of two photons, shape (n, 2, 3) ordered (photon, [E_T, η, φ]); ``pt``/``eta`` shape (n, 2)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = len(mu)
    if np.shape(pt) != (n, 2) or np.shape(eta) != (n, 2) or np.ndim(mu) != 1:
        raise InputError(
            f"need pt and eta of shape (n, 2) and mu of shape (n,); got {np.shape(pt)}, {np.shape(eta)}, {np.shape(mu)}"
        )
    sigma = np.stack([resolution(k, pt, eta, mu[:, None], mapping=config.mapping) for k in FIELDS], axis=-1)  # type: ignore[arg-type]
    z = rng.standard_normal((n, 2, 3))
    if config.scenario == "correlation":
        z[:, 1] = config.rho * z[:, 0] + np.sqrt(1.0 - config.rho**2) * z[:, 1]
    elif config.scenario == "asymmetric":
        tail = rng.random((n, 2, 3)) >= config.core_fraction
        z = np.where(tail, config.tail_shift + config.tail_width * z, z)
    return z * sigma


def smear_photons(
    truth: ak.Array,
    config: SmearingConfig | None = None,
    *,
    seed: int | np.random.Generator = 0,
    collection: str = "photons",
    pileup: str = "mu",
    truth_collection: str = "truth_photons",
) -> ak.Array:
    """Reco photons = truth + Δ for the two leading photons of each event (φ wrapped to (−π, π]).

    Returns records with ``collection`` (reco, vector Momentum4D, massless), ``truth_collection`` and ``pileup``.
    """
    from ..records import objects_from_blocks
    from .surrogate import wrap_phi

    config = config or SmearingConfig()
    kin, mu = _truth_arrays(truth, collection, pileup)
    delta = smear_responses(kin["pt"], kin["eta"], mu, config, seed=seed)
    reco = {f: kin[f] + delta[:, :, j] for j, f in enumerate(FIELDS)}
    reco["phi"] = wrap_phi(reco["phi"])
    return ak.zip(
        {collection: objects_from_blocks(reco), truth_collection: objects_from_blocks(kin), pileup: mu},
        depth_limit=1,
    )


def object_responses(
    pt: np.ndarray,
    eta: np.ndarray,
    mu: np.ndarray,
    counts: np.ndarray,
    config: SmearingConfig,
    *,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Responses Δ (E_T [GeV], η, φ [rad]) of any number of objects per event, shape (n_objects, 3).

    ``pt``, ``eta`` and ``mu`` (the event's pile-up, repeated per object) are flat arrays over all objects, event by
    event; ``counts`` the objects per event. Scenarios as in the module docstring; the correlation between objects is
    the shared-component one (ρ between every two objects of an event). Draws (n_objects, 3) normals, then (events,
    3) normals, then (asymmetric) (n_objects, 3) uniforms.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pt, eta, mu = (np.asarray(a, dtype=np.float64) for a in (pt, eta, mu))
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if pt.shape != (n,) or eta.shape != (n,) or mu.shape != (n,) or (counts < 0).any():
        raise InputError(
            f"need flat pt, eta and mu of one length, the sum of the non-negative counts ({n}); "
            f"got shapes {pt.shape}, {eta.shape}, {mu.shape}"
        )
    if config.scenario == "correlation" and config.rho < 0:
        raise InputError(f"the per-object correlation scenario needs rho ≥ 0 (shared component), got {config.rho}")
    sigma = np.stack([resolution(k, pt, eta, mu, mapping=config.mapping) for k in FIELDS], axis=-1)  # type: ignore[arg-type]
    z = rng.standard_normal((n, 3))
    shared = rng.standard_normal((len(counts), 3))
    if config.scenario == "correlation":
        z = np.sqrt(config.rho) * np.repeat(shared, counts, axis=0) + np.sqrt(1.0 - config.rho) * z
    elif config.scenario == "asymmetric":
        tail = rng.random((n, 3)) >= config.core_fraction
        z = np.where(tail, config.tail_shift + config.tail_width * z, z)
    return z * sigma
