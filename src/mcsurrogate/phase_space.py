"""Phase-space parametrisation of a final state: RamboOnDiet with ELSA's tweak for massive particles.

RamboOnDiet (Plätzer, arXiv:1308.2922) is a bijection between the unit hypercube ``[0, 1]^(3n-4)`` and the
phase space of ``n`` massless particles of total momentum ``P``: a chain of two-body decays
``P = Q_1 → p_1 + Q_2, Q_2 → p_2 + Q_3, …, Q_(n-1) → p_(n-1) + p_n`` in which ``n - 2`` variables set the cluster
masses ``M_i = √(Q_i²)`` and ``2 (n - 1)`` set the decay angles (cos θ, φ) of each ``p_i`` in the rest frame of
``Q_i``. Its phase-space density per unit hypercube volume is the constant massless volume
``V_n(M) = (π/2)^(n-1) M^(2n-4) / ((n-1)! (n-2)!)``.

ELSA (Nachman & Winterhalder, Eur. Phys. J. C 83 (2023) 843, arXiv:2305.07696) covers massive final states with a
tweak (its authors' public code, ``RamboOnDietHadron``): in the rest frame of the system, the massless momenta
``p_i`` are made massive by RAMBO's rescaling ``k_i = (√(m_i² + ξ² |p_i|²), ξ p⃗_i)`` with the one ``ξ ∈ (0, 1]``
that keeps ``Σ E_i = M``, and the system is then boosted to the lab. The rescaling is a bijection (its inverse is
``ξ = Σ |k⃗_i| / M``, ``p⃗_i = k⃗_i / ξ``) whose Jacobian is RAMBO's massive weight (Kleiss, Stirling & Ellis 1986)
``ξ^(2n-3) · Π |k⃗_i|/E_i · M / Σ (|k⃗_i|²/E_i)``; ELSA's code leaves it out (a flow does not need it), here it is
part of :attr:`PhaseSpacePoint.log_weight` so that the map is also a density transform. Where ELSA's hadron-collider
version has the system at rest in the transverse plane (two momentum fractions), the system here is any
four-momentum, given by 4 variables (:data:`SYSTEM_VARIABLES`: mass, rapidity, p_x, p_y; the lab boost is the pure
boost along ``P``).

Conventions: four-momenta ``(E, p_x, p_y, p_z)`` in GeV, arrays shaped ``(events, n, 4)``; the phase-space measure
is ``dΦ_n = Π d³p_i / (2 E_i) · δ⁴(P − Σ p_i)`` with no factors of 2π, so the massless volume is ``V_n`` above and
the two-body volume is ``(π/2) λ^(1/2)(M², m_1², m_2²) / M²``; the measure of the system is
``d⁴P = M dM dy dp_x dp_y``. The hypercube layout: ``u[:, :n-2]`` the mass variables, then
``(cos θ, φ)`` pairs ``u[:, n-2+2i], u[:, n-1+2i]`` of particle ``i``. The particle order matters: the cluster
``Q_i`` holds particles ``i … n-1``, so a resonance's decay products listed last (``…, b, μ⁺, ν``) make its mass
(m_t, m_W) one of the cluster masses.

:class:`PhaseSpacePreprocessor` applies the map to named columns (objects' ``pt``, ``eta``, ``phi``, ``mass``): as a
surrogate's event transform (``Surrogate(pre.input_columns, event_transform=pre)``: the flow learns its output
columns, samples and ``log_prob`` are in the physical ones), or by hand; its outputs are unbounded (logits of ``u``,
the log of the system's mass above threshold), so every point a flow generates maps back to a physical event that
conserves momentum and keeps each mass on its shell.

>>> import numpy as np
>>> u = np.random.default_rng(1).uniform(size=(3, 5))  # 3 events, n = 3 particles: 3n - 4 = 5 variables
>>> system = np.array([[200.0, 0.5, 10.0, -5.0]] * 3)  # mass, rapidity, px, py (GeV)
>>> point = rambo_on_diet(u, system, masses=[4.8, 0.0, 0.0])
>>> bool(np.allclose(point.momenta.sum(axis=1)[:, 1:3], [10.0, -5.0]))
True
>>> back = rambo_on_diet_inverse(point.momenta, masses=[4.8, 0.0, 0.0])
>>> bool(np.allclose(back.u, u, atol=1e-12) and np.allclose(back.system, system))
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import awkward as ak
import numpy as np
from scipy.special import expit, logit

from .arguments import check_choice, check_columns, check_float, check_int, check_string, describe
from .errors import InputError, refuse_unknown_fields

__all__ = [
    "SYSTEM_VARIABLES",
    "PhaseSpacePoint",
    "PhaseSpacePreprocessor",
    "hypercube_dimension",
    "massless_volume",
    "rambo_on_diet",
    "rambo_on_diet_inverse",
]

#: the 4 variables of the system's total four-momentum: invariant mass (GeV), rapidity, p_x and p_y (GeV)
SYSTEM_VARIABLES = ("mass", "rapidity", "px", "py")

_NEWTON_ITERATIONS = 200


class PhaseSpacePoint(NamedTuple):
    """Both sides of the map, per event.

    ``momenta`` (events, n, 4): (E, p_x, p_y, p_z) in GeV, lab frame. ``u`` (events, 3n-4): the hypercube
    variables. ``system`` (events, 4): :data:`SYSTEM_VARIABLES`. ``log_weight`` (events,): ``log dΦ_n/d^(3n-4)u``,
    the phase-space density per unit hypercube volume at fixed total momentum (Lorentz invariant; GeV^(2n-4));
    the full change of variables is ``Π d³p_i = Π (2 E_i) · M · exp(log_weight) · d^(3n-4)u dM dy dp_x dp_y``.
    """

    momenta: np.ndarray
    u: np.ndarray
    system: np.ndarray
    log_weight: np.ndarray


def hypercube_dimension(n: int) -> int:
    """``3n - 4``: the number of hypercube variables of ``n ≥ 2`` particles at fixed total momentum."""
    n = check_int(n, "n (particles)", minimum=2)
    return 3 * n - 4


def massless_volume(n: int, mass: float | np.ndarray) -> float | np.ndarray:
    """The massless ``n``-body phase-space volume ``(π/2)^(n-1) M^(2n-4) / ((n-1)! (n-2)!)`` at system mass ``M``
    (GeV; measure ``Π d³p_i/(2E_i) δ⁴(P − Σp_i)``, no 2π factors)."""
    n = check_int(n, "n (particles)", minimum=2)
    return np.exp(_log_massless_volume(n, np.asarray(mass, dtype=np.float64)))


def _log_massless_volume(n: int, mass: np.ndarray) -> np.ndarray:
    return (n - 1) * math.log(math.pi / 2) + (2 * n - 4) * np.log(mass) - math.lgamma(n) - math.lgamma(n - 1)


# -- input checks ------------------------------------------------------------------------------------------------
def _float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array, got {describe(value)}") from exc
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name} holds {int(bad.sum())} non-finite value(s), the first at index {first}")
    return arr


def _particle_masses(masses: Any, n_events: int, n: int) -> np.ndarray:
    """Masses as an (events, n) array (GeV, finite, ≥ 0); ``None``: massless."""
    if masses is None:
        return np.zeros((n_events, n))
    m = np.asarray(masses, dtype=np.float64) if not isinstance(masses, str) else None
    if m is None or m.ndim not in (1, 2):
        raise InputError(
            f"masses must be a list of n = {n} masses (GeV) or an (events, n) array, got {describe(masses)}"
        )
    if m.shape[-1] != n or (m.ndim == 2 and m.shape[0] != n_events):
        raise InputError(f"masses must have shape ({n},) or ({n_events}, {n}) for {n} particles, got {m.shape}")
    bad = ~np.isfinite(m) | (m < 0)
    if bad.any():
        raise InputError(f"masses must be finite and ≥ 0 GeV; {int(bad.sum())} are not (first: {float(m[bad][0]):g})")
    return np.broadcast_to(m, (n_events, n)).copy()


def _first_rows(mask: np.ndarray, k: int = 3) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:k]]


# -- kinematics --------------------------------------------------------------------------------------------------
def _boost(p: np.ndarray, q: np.ndarray, mq: np.ndarray) -> np.ndarray:
    """Pure boost of ``p`` (..., 4) from the rest frame of ``q`` (mass ``mq``) to the frame where ``q`` has momentum
    ``q`` (both (..., 4)); ``q = (q_0, −q⃗)`` boosts into the rest frame instead."""
    e = (q[..., 0] * p[..., 0] + np.einsum("...i,...i->...", q[..., 1:], p[..., 1:])) / mq
    out = np.empty(np.broadcast_shapes(p.shape, q.shape))
    out[..., 0] = e
    out[..., 1:] = p[..., 1:] + q[..., 1:] * ((p[..., 0] + e) / (q[..., 0] + mq))[..., None]
    return out


def _reversed(q: np.ndarray) -> np.ndarray:
    out = q.copy()
    out[..., 1:] *= -1
    return out


def _mass_cdf(v: np.ndarray, k: int) -> np.ndarray:
    """RamboOnDiet's mass variable: ``(k+1) v^k − k v^(k+1)`` of the squared ratio ``v = (M_(i+1)/M_i)²``."""
    return (k + 1) * v**k - k * v ** (k + 1)


def _mass_cdf_inverse(r: np.ndarray, k: int) -> np.ndarray:
    """The ``v ∈ [0, 1]`` with ``_mass_cdf(v, k) = r`` (bracketed Newton; closed form for k = 1)."""
    if k == 1:
        return r / (1.0 + np.sqrt(1.0 - r))
    lo, hi = np.zeros_like(r), np.ones_like(r)
    v = (r / (k + 1)) ** (1.0 / k)  # a lower bound: (k+1) v^k ≥ r
    for _ in range(_NEWTON_ITERATIONS):
        f = _mass_cdf(v, k) - r
        lo = np.where(f <= 0, v, lo)
        hi = np.where(f >= 0, v, hi)
        slope = k * (k + 1) * v ** (k - 1) * (1.0 - v)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = v - f / slope
        outside = ~((new >= lo) & (new <= hi))
        new = np.where(outside, 0.5 * (lo + hi), new)
        done = bool(np.all(np.abs(new - v) <= 1e-15 * new))
        v = new
        if done:
            break
    return v


def _cos_variable(p: np.ndarray) -> np.ndarray:
    """``(1 + cos θ)/2`` of 3-vectors ``p`` (..., 3), accurate near both poles."""
    norm = np.linalg.norm(p, axis=-1)
    pt2 = p[..., 0] ** 2 + p[..., 1] ** 2
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        north = 1.0 - pt2 / (2 * norm * (norm + z))
        south = pt2 / (2 * norm * (norm - z))
    return np.where(z >= 0, north, south)


def _phi_variable(p: np.ndarray) -> np.ndarray:
    """``φ / 2π`` in [0, 1) of 3-vectors ``p`` (..., 3)."""
    b = np.arctan2(p[..., 1], p[..., 0]) / (2 * np.pi)
    return np.where(b < 0, b + 1.0, b)


def _massless_chain(u: np.ndarray, mass: np.ndarray, n: int) -> np.ndarray:
    """RamboOnDiet: hypercube ``u`` (events, 3n-4) → massless momenta (events, n, 4) summing to (mass, 0⃗)."""
    events = len(mass)
    p = np.empty((events, n, 4))
    q = np.zeros((events, 4))
    q[:, 0] = mass
    mq = mass.copy()
    for i in range(n - 1):
        m_next = mq * np.sqrt(_mass_cdf_inverse(u[:, i], n - 2 - i)) if i < n - 2 else np.zeros(events)
        k = (mq - m_next) * (mq + m_next) / (2 * mq)  # two-body momentum of a massless p_i and Q_(i+1)
        a, b = u[:, n - 2 + 2 * i], u[:, n - 1 + 2 * i]
        cos, sin, phi = 2 * a - 1, 2 * np.sqrt(a * (1 - a)), 2 * np.pi * b
        rest = np.stack([k, k * sin * np.cos(phi), k * sin * np.sin(phi), k * cos], axis=-1)
        rest_next = np.concatenate([np.sqrt(k**2 + m_next**2)[:, None], -rest[:, 1:]], axis=-1)
        p[:, i] = _boost(rest, q, mq)
        q = _boost(rest_next, q, mq)
        mq = m_next
    p[:, n - 1] = q
    p[:, n - 1, 0] = np.linalg.norm(q[:, 1:], axis=-1)  # exactly massless
    return p


def _massless_chain_inverse(p: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Massless momenta (events, n, 4) in their rest frame, total mass ``mass`` → hypercube ``u`` (events, 3n-4)."""
    events, n, _ = p.shape
    u = np.empty((events, 3 * n - 4))
    clusters = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # Q_i = Σ_(j ≥ i) p_j
    q = np.zeros((events, 4))
    q[:, 0] = mass
    mq = mass
    for i in range(n - 1):
        if i > 0:
            q = clusters[:, i]
            m_i = np.sqrt(np.maximum(q[:, 0] ** 2 - np.sum(q[:, 1:] ** 2, axis=-1), 0.0))
            u[:, i - 1] = _mass_cdf(np.clip(m_i / mq, 0.0, 1.0) ** 2, n - 1 - i)
            mq = m_i
        rest = _boost(p[:, i], _reversed(q), mq)
        u[:, n - 2 + 2 * i] = _cos_variable(rest[:, 1:])
        u[:, n - 1 + 2 * i] = _phi_variable(rest[:, 1:])
    return u


def _rescale_factor(e: np.ndarray, m: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """RAMBO's ``ξ ∈ (0, 1]`` with ``Σ √(m_i² + ξ² e_i²) = M`` (Newton from ξ = 1: the sum is convex and
    increasing in ξ, so the iterates fall monotonically onto the root)."""
    xi = np.ones(len(mass))
    for _ in range(_NEWTON_ITERATIONS):
        energies = np.sqrt(m**2 + (xi[:, None] * e) ** 2)
        f = energies.sum(axis=1) - mass
        slope = np.sum(xi[:, None] * e**2 / energies, axis=1)
        step = f / slope
        xi = xi - step
        if np.max(np.abs(step) / xi, initial=0.0) <= 1e-15:
            break
    return xi


def _log_massive_weight(k_abs: np.ndarray, energies: np.ndarray, mass: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """log of RAMBO's massive weight ``ξ^(2n-3) Π |k_i|/E_i · M / Σ |k_i|²/E_i`` (rest-frame |k⃗_i|, E_i)."""
    n = k_abs.shape[1]
    with np.errstate(divide="ignore"):
        return (
            (2 * n - 3) * np.log(xi)
            + np.sum(np.log(k_abs / energies), axis=1)
            + np.log(mass)
            - np.log(np.sum(k_abs**2 / energies, axis=1))
        )


def _light_cone(p: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E + p_z, E − p_z)`` of on-shell momenta ``p`` (..., 4) with masses ``m``, without cancellation."""
    mt2 = m**2 + p[..., 1] ** 2 + p[..., 2] ** 2
    big = p[..., 0] + np.abs(p[..., 3])
    with np.errstate(divide="ignore", invalid="ignore"):
        small = mt2 / big
    forward = p[..., 3] >= 0
    return np.where(forward, big, small), np.where(forward, small, big)


def _boost_z(p: np.ndarray, m: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boost on-shell momenta ``p`` (events, n, 4) along z by rapidity ``y`` (events,), on the light cone."""
    plus, minus = _light_cone(p, m)
    plus, minus = plus * np.exp(y)[:, None], minus * np.exp(-y)[:, None]
    out = p.copy()
    out[..., 0], out[..., 3] = 0.5 * (plus + minus), 0.5 * (plus - minus)
    return out


def _transverse_boost(p: np.ndarray, mass: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Pure boost of ``p`` (events, n, 4) that takes (mass, 0⃗) to (m_T, px, py, 0)."""
    q = np.stack([np.sqrt(mass**2 + px**2 + py**2), px, py, np.zeros_like(px)], axis=-1)
    return _boost(p, q[:, None, :], mass[:, None])


def _invariant_mass(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """√(Σ p_i)² of on-shell momenta (events, n, 4) with masses ``m`` as a sum of non-negative pair terms
    ``2 p_i·p_j = 2 (m_i² E_j² + m_j² |p_i|²)/(E_i E_j + |p_i||p_j|) + |p_i||p_j| |p̂_i − p̂_j|²`` (no cancellation
    for boosted or collinear particles)."""
    a = np.linalg.norm(p[..., 1:], axis=-1)
    e = p[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(a[..., None] > 0, p[..., 1:] / a[..., None], 0.0)
    mass2 = np.sum(m**2, axis=1)
    n = p.shape[1]
    for i in range(n):
        for j in range(i + 1, n):
            with np.errstate(divide="ignore", invalid="ignore"):
                mass2 = mass2 + 2 * (m[:, i] ** 2 * e[:, j] ** 2 + m[:, j] ** 2 * a[:, i] ** 2) / (
                    e[:, i] * e[:, j] + a[:, i] * a[:, j]
                )
            mass2 = mass2 + a[:, i] * a[:, j] * np.sum((unit[:, i] - unit[:, j]) ** 2, axis=-1)
    return np.sqrt(mass2)


def _to_lab(rest: np.ndarray, m: np.ndarray, system: np.ndarray) -> np.ndarray:
    """Rest-frame momenta → lab: the transverse pure boost to (m_T, p_x, p_y, 0), then the boost along z by y."""
    mass, y, px, py = system.T
    lab = _boost_z(_transverse_boost(rest, mass, px, py), m, y)
    lab[..., 0] = np.sqrt(m**2 + np.sum(lab[..., 1:] ** 2, axis=-1))  # exactly on the mass shell
    return lab


def _to_rest(lab: np.ndarray, m: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lab momenta with invariant mass ``mass`` → (rest-frame momenta, system (events, 4)), the inverse of
    :func:`_to_lab`."""
    plus, minus = _light_cone(lab, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log(plus.sum(axis=1) / minus.sum(axis=1))
    px, py = lab[..., 1].sum(axis=1), lab[..., 2].sum(axis=1)
    rest = _transverse_boost(_boost_z(lab, m, -y), mass, -px, -py)
    return rest, np.stack([mass, y, px, py], axis=-1)


# -- the map -----------------------------------------------------------------------------------------------------
def rambo_on_diet(u: Any, system: Any, masses: Any = None) -> PhaseSpacePoint:
    """Hypercube → four-momenta: ``u`` (events, 3n-4) in [0, 1] and the system's :data:`SYSTEM_VARIABLES`
    (events, 4: mass in GeV above the sum of the masses, rapidity, p_x and p_y in GeV) → :class:`PhaseSpacePoint`
    with ``momenta`` (events, n, 4) that sum to the system's four-momentum and lie on their mass shells.

    ``masses``: ``None`` (massless), ``n`` masses in GeV, or an (events, n) array. ``n`` is ``(d + 4)/3`` for
    ``d`` hypercube variables. Values outside the domain raise :class:`~mcsurrogate.errors.InputError` naming them.
    """
    u = _float_array(u, "u (hypercube variables)", 2)
    system = _float_array(system, "system (mass, rapidity, px, py)", 2)
    events, d = u.shape
    if (d + 4) % 3 or d < 2:
        raise InputError(f"u has {d} columns; n particles need 3n - 4 (2, 5, 8, 11, …)")
    n = (d + 4) // 3
    if system.shape != (events, 4):
        raise InputError(f"system must have shape ({events}, 4) (columns {list(SYSTEM_VARIABLES)}), got {system.shape}")
    outside = (u < 0) | (u > 1)
    if outside.any():
        row, col = (int(i) for i in np.argwhere(outside)[0])
        raise InputError(
            f"u must lie in [0, 1]; {int(outside.sum())} value(s) do not, the first u[{row}, {col}] = {float(u[row, col]):g}"
        )
    m = _particle_masses(masses, events, n)
    mass = system[:, 0]
    below = ~(mass > m.sum(axis=1))
    if below.any():
        raise InputError(
            f"the system mass must exceed the sum of the particle masses; {int(below.sum())} event(s) do not "
            f"(rows {_first_rows(below)}, e.g. mass {float(mass[below][0]):g} GeV ≤ {float(m.sum(axis=1)[below][0]):g} GeV)"
        )
    p = _massless_chain(u, mass, n)
    log_weight = _log_massless_volume(n, mass)
    if np.any(m > 0):
        e = p[..., 0]
        xi = _rescale_factor(e, m, mass)
        k = p * xi[:, None, None]
        k[..., 0] = np.sqrt(m**2 + (xi[:, None] * e) ** 2)
        log_weight = log_weight + _log_massive_weight(xi[:, None] * e, k[..., 0], mass, xi)
        p = k
    return PhaseSpacePoint(_to_lab(p, m, system), u, system, log_weight)


def rambo_on_diet_inverse(momenta: Any, masses: Any = None, *, mass_shell_tolerance: float = 1e-6) -> PhaseSpacePoint:
    """Four-momenta → hypercube: ``momenta`` (events, n, 4) as (E, p_x, p_y, p_z) in GeV → :class:`PhaseSpacePoint`
    with ``u`` (events, 3n-4) in [0, 1] and ``system`` (events, 4, :data:`SYSTEM_VARIABLES`); the exact inverse of
    :func:`rambo_on_diet` with the same ``masses`` (``None``: massless).

    Each energy must match its mass shell, ``|E − √(m² + p⃗²)| ≤ mass_shell_tolerance · √(m² + p⃗²)``; the map then
    uses the on-shell energies. Momenta off their shell, a system at or below threshold, or a degenerate event (a
    particle with no momentum in its cluster's frame) raise :class:`~mcsurrogate.errors.InputError` naming the rows.
    """
    p = _float_array(momenta, "momenta (E, px, py, pz)", 3)
    tol = check_float(mass_shell_tolerance, "mass_shell_tolerance", minimum=0.0)
    events, n, four = p.shape
    if four != 4 or n < 2:
        raise InputError(f"momenta must have shape (events, n ≥ 2, 4) as (E, px, py, pz), got {p.shape}")
    m = _particle_masses(masses, events, n)
    shell = np.sqrt(m**2 + np.sum(p[..., 1:] ** 2, axis=-1))
    off = np.abs(p[..., 0] - shell) > tol * shell
    if off.any():
        row, col = (int(i) for i in np.argwhere(off)[0])
        got = math.sqrt(max(p[row, col, 0] ** 2 - shell[row, col] ** 2 + m[row, col] ** 2, 0.0))
        raise InputError(
            f"momenta of {int(off.sum())} particle(s) are off their mass shell (tolerance {tol:g}); the first, "
            f"particle {col} of event {row}, has mass {got:.6g} GeV where {m[row, col]:.6g} GeV is expected: pass "
            "its masses= (None means massless)"
        )
    p = p.copy()
    p[..., 0] = shell
    mass = _invariant_mass(p, m)
    below = ~(mass > m.sum(axis=1))
    if below.any():
        raise InputError(
            f"the system mass must exceed the sum of the particle masses; {int(below.sum())} event(s) do not "
            f"(rows {_first_rows(below)})"
        )
    rest, system = _to_rest(p, m, mass)
    log_weight = _log_massless_volume(n, mass)
    if np.any(m > 0):
        k_abs = np.linalg.norm(rest[..., 1:], axis=-1)
        xi = k_abs.sum(axis=1) / mass
        log_weight = log_weight + _log_massive_weight(k_abs, np.sqrt(m**2 + k_abs**2), mass, xi)
        rest = rest / xi[:, None, None]
        rest[..., 0] = k_abs / xi[:, None]
    u = _massless_chain_inverse(rest, mass)
    bad = ~np.all(np.isfinite(u), axis=1)
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} event(s) are degenerate (a particle without momentum in its cluster's rest frame, or "
            f"a cluster of zero mass): rows {_first_rows(bad)}"
        )
    return PhaseSpacePoint(p, np.clip(u, 0.0, 1.0), system, log_weight)


# -- column-level preprocessing ----------------------------------------------------------------------------------
@dataclasses.dataclass
class PhaseSpacePreprocessor:
    """Event-level preprocessing of a final state given as objects' ``pt`` (GeV), ``eta``, ``phi`` (rad) and
    ``mass`` (GeV) columns: replaces them by the RamboOnDiet variables (through a logit) and the system's momentum,
    and back. Give it to a surrogate as ``Surrogate(pre.input_columns, event_transform=pre)`` (the flow learns
    :attr:`output_columns`, with any per-column preprocessing, e.g. Gauss-rank, on top; samples come back in
    :attr:`input_columns`), or apply :meth:`forward` before :meth:`Surrogate.fit <mcsurrogate.Surrogate.fit>` and
    :meth:`inverse` after :meth:`~mcsurrogate.Surrogate.sample` by hand. Fields of the events that the map does not
    use (weights, conditions) are carried along unchanged.

    ``objects``: column prefixes in RamboOnDiet's order (``"b1"`` → ``b1_pt``, ``b1_eta``, ``b1_phi``,
    ``b1_mass``); list a resonance's decay products last. ``masses``: per object a fixed mass in GeV (its mass
    column, if the events have one, must agree; :meth:`inverse` writes it) or ``None``: the mass varies per event
    and its column passes through as an output column; ``None`` for the whole list: all massless.
    ``system_pt``: ``"free"`` (the system's p_x, p_y are outputs) or ``"zero"`` (a final state at rest in the
    transverse plane, as a leading-order 2 → n process: |Σ p⃗_T| ≤ ``zero_pt_tolerance`` · M is checked, dropped,
    and restored as 0). Output columns: ``{prefix}_logit_u00 …`` (3n − 4), ``{prefix}_log_excess_mass``
    (log of M − Σ m_i in GeV), ``{prefix}_rapidity``, ``{prefix}_px``, ``{prefix}_py`` (``"free"`` only), then the
    pass-through mass columns. Every point of that real space maps back to a physical event.

    >>> pre = PhaseSpacePreprocessor(["j1", "j2", "j3"], system_pt="zero")
    >>> pre.output_columns
    ['ps_logit_u00', 'ps_logit_u01', 'ps_logit_u02', 'ps_logit_u03', 'ps_logit_u04', 'ps_log_excess_mass', 'ps_rapidity']
    >>> PhaseSpacePreprocessor.from_dict(pre.to_dict()) == pre
    True
    """

    objects: list[str]
    masses: list[float | None] | None = None
    system_pt: Literal["free", "zero"] = "free"
    prefix: str = "ps"
    zero_pt_tolerance: float = 1e-6
    mass_shell_tolerance: float = 1e-6

    SCHEMA = 1
    #: hypercube values are clipped to [clip, 1 − clip] before the logit (a value of exactly 0 or 1 has measure 0)
    CLIP = 1e-15

    def __post_init__(self) -> None:
        self.objects = check_columns(self.objects, "objects (column prefixes)")
        if len(self.objects) < 2:
            raise InputError(f"objects must name at least 2 objects, got {self.objects}")
        if self.masses is None:
            self.masses = [0.0] * len(self.objects)
        if isinstance(self.masses, str) or not isinstance(self.masses, Sequence):
            raise InputError(f"masses must be a list (a mass in GeV or None per object), got {describe(self.masses)}")
        if len(self.masses) != len(self.objects):
            raise InputError(f"masses has {len(self.masses)} entries for {len(self.objects)} objects {self.objects}")
        self.masses = [
            None if m is None else check_float(m, f"masses[{o!r}] (GeV)", minimum=0.0)
            for o, m in zip(self.objects, self.masses, strict=True)
        ]
        check_choice(self.system_pt, "system_pt", ("free", "zero"))
        self.prefix = check_string(self.prefix, "prefix")
        self.zero_pt_tolerance = check_float(self.zero_pt_tolerance, "zero_pt_tolerance", minimum=0.0)
        self.mass_shell_tolerance = check_float(self.mass_shell_tolerance, "mass_shell_tolerance", minimum=0.0)
        clash = sorted(set(self.output_columns[: self._n_mapped]) & set(self.input_columns))
        if clash:
            raise InputError(f"prefix {self.prefix!r} gives output columns that are input columns: {clash}")

    # -- columns
    @property
    def n(self) -> int:
        """The number of objects."""
        return len(self.objects)

    @property
    def _varying(self) -> list[str]:
        assert self.masses is not None
        return [o for o, m in zip(self.objects, self.masses, strict=True) if m is None]

    @property
    def input_columns(self) -> list[str]:
        """The physical columns :meth:`forward` reads (and :meth:`inverse` writes, with every object's mass)."""
        cols = [f"{o}_{v}" for o in self.objects for v in ("pt", "eta", "phi")]
        return cols + [f"{o}_mass" for o in self._varying]

    @property
    def _n_mapped(self) -> int:
        return 3 * self.n - 4 + (4 if self.system_pt == "free" else 2)

    @property
    def output_columns(self) -> list[str]:
        """The columns :meth:`forward` writes: a surrogate's targets."""
        p = self.prefix
        cols = [f"{p}_logit_u{j:02d}" for j in range(3 * self.n - 4)] + [f"{p}_log_excess_mass", f"{p}_rapidity"]
        if self.system_pt == "free":
            cols += [f"{p}_px", f"{p}_py"]
        return cols + [f"{o}_mass" for o in self._varying]

    # -- helpers
    @staticmethod
    def _fields(events: Any) -> dict[str, Any]:
        if isinstance(events, ak.Array):
            if not events.fields:
                raise InputError("events must be a flat record array (fields = columns), got one without fields")
            return {f: events[f] for f in events.fields}
        if isinstance(events, Mapping):
            return dict(events)
        raise InputError(f"events must be an awkward record array or a mapping of columns, got {describe(events)}")

    @staticmethod
    def _column(fields: Mapping[str, Any], name: str, role: str) -> np.ndarray:
        if name not in fields:
            raise InputError(f"the events lack the {role} column {name!r}; they have {sorted(fields)}")
        try:
            col = np.asarray(ak.to_numpy(fields[name]) if isinstance(fields[name], ak.Array) else fields[name])
            col = col.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"column {name!r} must be a flat numeric column, got {describe(fields[name])}") from exc
        if col.ndim != 1:
            raise InputError(f"column {name!r} must be one number per event, got shape {col.shape}")
        bad = ~np.isfinite(col)
        if bad.any():
            raise InputError(f"column {name!r} holds {int(bad.sum())} non-finite value(s) (rows {_first_rows(bad)})")
        return col

    def _event_masses(self, fields: Mapping[str, Any], n_events: int, *, check_fixed: bool) -> np.ndarray:
        assert self.masses is not None
        m = np.empty((n_events, self.n))
        for j, (o, fixed) in enumerate(zip(self.objects, self.masses, strict=True)):
            name = f"{o}_mass"
            if fixed is None:
                m[:, j] = self._column(fields, name, "mass")
                if np.any(m[:, j] < 0):
                    raise InputError(f"column {name!r} holds negative masses (rows {_first_rows(m[:, j] < 0)})")
                continue
            m[:, j] = fixed
            if check_fixed and name in fields:
                given = self._column(fields, name, "mass")
                off = np.abs(given - fixed) > self.mass_shell_tolerance * max(fixed, 1.0)
                if off.any():
                    raise InputError(
                        f"column {name!r} differs from the fixed mass {fixed} GeV of object {o!r} in "
                        f"{int(off.sum())} event(s) (rows {_first_rows(off)}, e.g. {float(given[off][0]):g}); give "
                        "masses=None for that object to pass its mass through"
                    )
        return m

    def _momenta(self, fields: Mapping[str, Any], m: np.ndarray) -> np.ndarray:
        n_events = len(m)
        p = np.empty((n_events, self.n, 4))
        for j, o in enumerate(self.objects):
            pt = self._column(fields, f"{o}_pt", "pt")
            eta = self._column(fields, f"{o}_eta", "eta")
            phi = self._column(fields, f"{o}_phi", "phi")
            if np.any(pt <= 0):
                raise InputError(f"column {o + '_pt'!r} must be > 0 GeV (rows {_first_rows(pt <= 0)})")
            p[:, j, 1], p[:, j, 2], p[:, j, 3] = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        p[..., 0] = np.sqrt(m**2 + np.sum(p[..., 1:] ** 2, axis=-1))
        return p

    @staticmethod
    def _rows(fields: Mapping[str, Any]) -> int:
        lengths = {len(v) for v in fields.values()}
        if len(lengths) > 1:
            raise InputError(f"the event columns have different lengths {sorted(lengths)}")
        return lengths.pop() if lengths else 0

    def _carry(self, fields: Mapping[str, Any], consumed: Sequence[str], new: Mapping[str, np.ndarray]) -> ak.Array:
        out = {k: v for k, v in fields.items() if k not in set(consumed) and k not in new}
        out.update(new)
        return ak.zip(out, depth_limit=1)

    def _point(self, events: Any) -> tuple[dict[str, Any], PhaseSpacePoint, np.ndarray]:
        fields = self._fields(events)
        n_events = self._rows(fields)
        m = self._event_masses(fields, n_events, check_fixed=True)
        point = rambo_on_diet_inverse(self._momenta(fields, m), m, mass_shell_tolerance=self.mass_shell_tolerance)
        if self.system_pt == "zero":
            pt = np.hypot(point.system[:, 2], point.system[:, 3])
            moving = pt > self.zero_pt_tolerance * point.system[:, 0]
            if moving.any():
                raise InputError(
                    f"system_pt='zero' needs |Σ p_T| ≤ {self.zero_pt_tolerance:g} × the system mass; "
                    f"{int(moving.sum())} event(s) exceed it (rows {_first_rows(moving)}, e.g. |Σ p_T| = "
                    f"{pt[moving][0]:.6g} GeV): use system_pt='free'"
                )
        return fields, point, m

    # -- the map
    def forward(self, events: Any) -> ak.Array:
        """Physical columns → :attr:`output_columns` (a flat record array; the other fields carried along)."""
        fields, point, m = self._point(events)
        u = np.clip(point.u, self.CLIP, 1 - self.CLIP)
        cols = self.output_columns
        new: dict[str, np.ndarray] = {c: logit(u[:, j]) for j, c in enumerate(cols[: 3 * self.n - 4])}
        new[cols[3 * self.n - 4]] = np.log(point.system[:, 0] - m.sum(axis=1))
        new[cols[3 * self.n - 3]] = point.system[:, 1]
        if self.system_pt == "free":
            new[cols[3 * self.n - 2]], new[cols[3 * self.n - 1]] = point.system[:, 2], point.system[:, 3]
        for o in self._varying:
            new[f"{o}_mass"] = m[:, self.objects.index(o)]
        consumed = [f"{o}_{v}" for o in self.objects for v in ("pt", "eta", "phi", "mass")]
        return self._carry(fields, consumed, new)

    def inverse(self, events: Any) -> ak.Array:
        """:attr:`output_columns` → physical columns ``{object}_pt, _eta, _phi, _mass`` (every object), the other
        fields carried along. Any real values map to a physical event; masses must be ≥ 0."""
        fields = self._fields(events)
        n_events = self._rows(fields)
        cols = self.output_columns
        m = self._event_masses(fields, n_events, check_fixed=False)
        u = expit(np.stack([self._column(fields, c, "phase-space") for c in cols[: 3 * self.n - 4]], axis=1))
        excess = np.exp(self._column(fields, cols[3 * self.n - 4], "phase-space"))
        y = self._column(fields, cols[3 * self.n - 3], "phase-space")
        if self.system_pt == "free":
            px = self._column(fields, cols[3 * self.n - 2], "phase-space")
            py = self._column(fields, cols[3 * self.n - 1], "phase-space")
        else:
            px = py = np.zeros(n_events)
        system = np.stack([m.sum(axis=1) + excess, y, px, py], axis=-1)
        p = rambo_on_diet(u, system, m).momenta
        pt = np.hypot(p[..., 1], p[..., 2])
        new: dict[str, np.ndarray] = {}
        for j, o in enumerate(self.objects):
            new[f"{o}_pt"] = pt[:, j]
            new[f"{o}_eta"] = np.arcsinh(p[:, j, 3] / pt[:, j])
            new[f"{o}_phi"] = np.arctan2(p[:, j, 2], p[:, j, 1])
            new[f"{o}_mass"] = m[:, j]
        return self._carry(fields, cols, new)

    def log_abs_det(self, events: Any) -> np.ndarray:
        """``log |∂ forward / ∂ physical|`` per event, so that a density of the output columns ``q`` gives the
        density of the physical columns (each object's pt [GeV], eta, phi [rad]; the varying masses on both
        sides) as ``log p = log q(forward(x)) + log_abs_det(x)``. With ``system_pt="zero"`` the physical density is
        with respect to ``Π dp_T dη dφ · δ²(Σ p⃗_T)``."""
        _, point, m = self._point(events)
        p = point.momenta
        pt = np.hypot(p[..., 1], p[..., 2])
        eta = np.arcsinh(p[..., 3] / pt)
        mass = point.system[:, 0]
        u = np.clip(point.u, self.CLIP, 1 - self.CLIP)
        log_old_per_new = (
            np.sum(np.log(2 * p[..., 0]) - 2 * np.log(pt) - np.log(np.cosh(eta)), axis=1)
            + np.log(mass)
            + np.log(mass - m.sum(axis=1))
            + point.log_weight
            + np.sum(np.log(u) + np.log1p(-u), axis=1)
        )
        return -log_old_per_new

    # -- JSON
    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON state (no pickle): ``{"schema", "kind", objects, masses, system_pt, prefix, tolerances}``."""
        return {"schema": self.SCHEMA, "kind": "phase-space", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseSpacePreprocessor:
        """Rebuild from :meth:`to_dict`; unknown keys, another ``kind`` or a newer schema raise
        :class:`~mcsurrogate.errors.InputError`."""
        if not isinstance(data, Mapping):
            raise InputError(f"phase-space preprocessing must be a JSON object, got {describe(data)}")
        d = dict(data)
        schema = check_int(d.pop("schema", cls.SCHEMA), "phase-space preprocessing schema", minimum=1)
        if schema > cls.SCHEMA:
            raise InputError(f"phase-space preprocessing schema {schema} is newer than this mcsurrogate reads")
        kind = d.pop("kind", "phase-space")
        if kind != "phase-space":
            raise InputError(f"expected kind 'phase-space', got {kind!r}")
        refuse_unknown_fields(cls, d, "phase-space preprocessing")
        if "objects" not in d:
            raise InputError("phase-space preprocessing JSON lacks 'objects'")
        return cls(**d)
