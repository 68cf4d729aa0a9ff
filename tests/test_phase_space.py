"""RamboOnDiet with ELSA's massive tweak (mcsurrogate.phase_space): exact inverse, conservation, the phase-space
density checked against finite-difference Jacobians of the map itself and against the known n-body volumes, domain
errors, and the column-level preprocessing around a real (tiny) Surrogate."""

from __future__ import annotations

import json
import math

import awkward as ak
import numpy as np
import pytest
from scipy import integrate

from mcsurrogate.errors import InputError
from mcsurrogate.phase_space import (
    PhaseSpacePreprocessor,
    hypercube_dimension,
    massless_volume,
    rambo_on_diet,
    rambo_on_diet_inverse,
)

CASES = [
    (2, None),
    (3, None),
    (4, None),
    (6, None),
    (2, [10.0, 30.0]),
    (3, [4.8, 0.0, 20.0]),
    (4, [4.8, 0.0, 0.1057, 80.4]),
    (6, [4.8, 0.1057, 0.0, 4.8, 0.1057, 0.0]),
]


def _random_system(rng: np.random.Generator, n_events: int, threshold: float, spread: float = 500.0) -> np.ndarray:
    """Mass above ``threshold`` (GeV), rapidity, px, py: boosted systems as at a hadron collider."""
    return np.stack(
        [
            threshold + rng.uniform(1.0, spread, n_events),
            rng.normal(0.0, 2.0, n_events),
            rng.normal(0.0, 50.0, n_events),
            rng.normal(0.0, 50.0, n_events),
        ],
        axis=1,
    )


def _system_four_momentum(system: np.ndarray) -> np.ndarray:
    mass, y, px, py = system.T
    mt = np.sqrt(mass**2 + px**2 + py**2)
    return np.stack([mt * np.cosh(y), px, py, mt * np.sinh(y)], axis=1)


def _lambda(a: float, b: float, c: float) -> float:
    return a * a + b * b + c * c - 2 * (a * b + a * c + b * c)


def _two_body_volume(s: float, m1: float, m2: float) -> float:
    """(π/2) λ^(1/2)(s, m1², m2²)/s: the measure Π d³p/(2E) δ⁴(P − Σp), no 2π factors."""
    return math.pi / 2 * math.sqrt(max(_lambda(s, m1 * m1, m2 * m2), 0.0)) / s


@pytest.mark.parametrize(("n", "masses"), CASES)
def test_round_trips_are_exact_and_momentum_is_conserved(n: int, masses: list[float] | None) -> None:
    rng = np.random.default_rng(n)
    u = rng.uniform(size=(2000, hypercube_dimension(n)))
    system = _random_system(rng, len(u), sum(masses or [0.0]))
    point = rambo_on_diet(u, system, masses)
    p = point.momenta
    scale = p[..., 0].sum(axis=1)  # the lab energy of each event
    # conservation: the momenta sum to the system's four-momentum; each lies on its mass shell
    np.testing.assert_allclose(p.sum(axis=1), _system_four_momentum(system), rtol=0, atol=1e-12 * scale.max())
    m = np.zeros(n) if masses is None else np.asarray(masses)
    shell = p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1)
    np.testing.assert_allclose(shell, np.broadcast_to(m**2, shell.shape), rtol=0, atol=1e-9 * scale.max() ** 2)
    # hypercube -> momenta -> hypercube
    back = rambo_on_diet_inverse(p, masses)
    np.testing.assert_allclose(back.u, u, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.system, system, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(back.log_weight, point.log_weight, rtol=0, atol=1e-9)
    # momenta -> hypercube -> momenta
    again = rambo_on_diet(back.u, back.system, masses).momenta
    assert np.max(np.abs(again - p) / scale[:, None, None]) < 1e-9


def test_per_event_masses_round_trip() -> None:
    rng = np.random.default_rng(7)
    masses = np.stack([np.full(500, 4.8), rng.uniform(60, 100, 500), np.zeros(500)], axis=1)  # a varying W mass
    u = rng.uniform(size=(500, 5))
    system = _random_system(rng, 500, 110.0)
    point = rambo_on_diet(u, system, masses)
    back = rambo_on_diet_inverse(point.momenta, masses)
    np.testing.assert_allclose(back.u, u, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.system, system, rtol=1e-9)


def _numerical_log_det(x: np.ndarray, n: int, masses: list[float] | None) -> np.ndarray:
    """log |det ∂(p⃗_1 … p⃗_n)/∂(u, M, y, p_x, p_y)| of the map itself, by central differences."""

    def lab_three_momenta(z: np.ndarray) -> np.ndarray:
        d = hypercube_dimension(n)
        return rambo_on_diet(z[:, :d], z[:, d:], masses).momenta[..., 1:].reshape(len(z), -1)

    jac = np.empty((len(x), 3 * n, 3 * n))
    for k in range(3 * n):
        h = 1e-6 * np.maximum(np.abs(x[:, k]), 1.0)
        up, down = x.copy(), x.copy()
        up[:, k] += h
        down[:, k] -= h
        jac[:, :, k] = (lab_three_momenta(up) - lab_three_momenta(down)) / (2 * h[:, None])
    sign, log_det = np.linalg.slogdet(jac)
    assert np.all(sign != 0)
    return log_det


@pytest.mark.parametrize(("n", "masses"), [c for c in CASES if c[0] <= 4])
def test_log_weight_is_the_jacobian_of_the_map(n: int, masses: list[float] | None) -> None:
    """Π d³p_i = Π (2E_i) · M · W(u) · d^(3n-4)u dM dy dp_x dp_y, with W = exp(log_weight), at random points."""
    rng = np.random.default_rng(10 + n)
    u = rng.uniform(0.02, 0.98, size=(60, hypercube_dimension(n)))
    system = _random_system(rng, 60, sum(masses or [0.0]), spread=300.0)
    point = rambo_on_diet(u, system, masses)
    expected = point.log_weight + np.log(system[:, 0]) + np.sum(np.log(2 * point.momenta[..., 0]), axis=1)
    np.testing.assert_allclose(_numerical_log_det(np.concatenate([u, system], axis=1), n, masses), expected, atol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_massless_volume_is_recovered_from_the_maps_jacobian(n: int) -> None:
    """V_n = (π/2)^(n-1) s^(n-2) / ((n-1)! (n-2)!) as the Monte Carlo mean, over uniform u, of the map's own
    (finite-difference) Jacobian divided by M Π 2E_i: RamboOnDiet is flat and its weight is V_n."""
    rng = np.random.default_rng(20 + n)
    mass = 91.2
    u = rng.uniform(0.01, 0.99, size=(300, hypercube_dimension(n)))
    system = np.tile([mass, 0.7, 15.0, -20.0], (len(u), 1))
    point = rambo_on_diet(u, system)
    density = np.exp(
        _numerical_log_det(np.concatenate([u, system], axis=1), n, None)
        - np.log(mass)
        - np.sum(np.log(2 * point.momenta[..., 0]), axis=1)
    )
    v_n = (math.pi / 2) ** (n - 1) * mass ** (2 * n - 4) / (math.factorial(n - 1) * math.factorial(n - 2))
    error = density.std(ddof=1) / math.sqrt(len(density))
    assert abs(density.mean() - v_n) <= 4 * error + 1e-6 * v_n
    np.testing.assert_allclose(np.exp(point.log_weight), v_n, rtol=1e-12)
    assert massless_volume(n, mass) == pytest.approx(v_n, rel=1e-12)


def test_massive_two_body_volume_is_the_analytic_one() -> None:
    """Φ_2 = (π/2) λ^(1/2)(s, m1², m2²)/s (this module's convention: no (2π) factors; the PDG's dΦ_n with
    (2π)^(4-3n) differs by that constant) as the mean of the weight over uniform u, and the map's Jacobian."""
    rng = np.random.default_rng(30)
    for m1, m2, mass in [(10.0, 30.0, 100.0), (4.8, 0.0, 20.0), (80.4, 80.4, 170.0), (173.0, 173.0, 1000.0)]:
        u = rng.uniform(0.02, 0.98, size=(50, 2))
        system = np.tile([mass, -1.2, 40.0, 5.0], (len(u), 1))
        point = rambo_on_diet(u, system, [m1, m2])
        np.testing.assert_allclose(np.exp(point.log_weight), _two_body_volume(mass**2, m1, m2), rtol=1e-12)
        jac = np.exp(
            _numerical_log_det(np.concatenate([u, system], axis=1), 2, [m1, m2])
            - np.log(mass)
            - np.sum(np.log(2 * point.momenta[..., 0]), axis=1)
        )
        np.testing.assert_allclose(jac, _two_body_volume(mass**2, m1, m2), rtol=1e-6)


def test_massive_three_body_volume_by_monte_carlo() -> None:
    """The weight is no longer constant for massive particles: its Monte Carlo mean over uniform u must equal
    Φ_3 = ∫ ds₂₃ Φ_2(M²; m1, √s₂₃) Φ_2(s₂₃; m2, m3) (recursive factorisation, by quadrature)."""
    masses, mass = [4.8, 80.4, 30.0], 173.0
    m1, m2, m3 = masses
    exact, _ = integrate.quad(
        lambda s23: _two_body_volume(mass**2, m1, math.sqrt(s23)) * _two_body_volume(s23, m2, m3),
        (m2 + m3) ** 2,
        (mass - m1) ** 2,
        epsabs=0,
        epsrel=1e-10,
    )
    rng = np.random.default_rng(40)
    u = rng.uniform(size=(100_000, 5))
    w = np.exp(rambo_on_diet(u, np.tile([mass, 0.3, 0.0, 0.0], (len(u), 1)), masses).log_weight)
    error = w.std(ddof=1) / math.sqrt(len(w))
    assert w.std() > 0.05 * w.mean()  # a real Monte Carlo integral: the weight varies over the hypercube
    assert abs(w.mean() - exact) < 4 * error, (w.mean(), exact, error)
    # and it is not the massless volume
    assert abs(massless_volume(3, mass) - exact) > 20 * error


# -- domain errors -------------------------------------------------------------------------------------------------
def test_points_outside_the_domain_raise_input_errors_naming_them() -> None:
    u = np.full((2, 5), 0.5)
    system = np.tile([100.0, 0.0, 0.0, 0.0], (2, 1))
    bad_u = u.copy()
    bad_u[1, 3] = 1.5
    with pytest.raises(InputError, match=r"u must lie in \[0, 1\].*u\[1, 3\] = 1.5"):
        rambo_on_diet(bad_u, system)
    with pytest.raises(InputError, match="u has 4 columns; n particles need 3n - 4"):
        rambo_on_diet(np.full((2, 4), 0.5), system)
    with pytest.raises(InputError, match=r"system must have shape \(2, 4\)"):
        rambo_on_diet(u, system[:, :3])
    with pytest.raises(InputError, match=r"system mass must exceed the sum of the particle masses.*rows \[0, 1\]"):
        rambo_on_diet(u, system, masses=[60.0, 30.0, 20.0])
    with pytest.raises(InputError, match="masses must be finite and ≥ 0"):
        rambo_on_diet(u, system, masses=[-1.0, 0.0, 0.0])
    with pytest.raises(InputError, match=r"masses must have shape \(3,\) or \(2, 3\)"):
        rambo_on_diet(u, system, masses=[1.0, 2.0])
    nan_u = u.copy()
    nan_u[0, 0] = np.nan
    with pytest.raises(InputError, match=r"u \(hypercube variables\) holds 1 non-finite value"):
        rambo_on_diet(nan_u, system)

    p = rambo_on_diet(u, system, masses=[4.8, 0.0, 0.0]).momenta
    with pytest.raises(InputError, match=r"off their mass shell.*particle 0 of event 0, has mass 4\.8 GeV.*masses="):
        rambo_on_diet_inverse(p)  # massive momenta read as massless
    with pytest.raises(InputError, match=r"shape \(events, n ≥ 2, 4\)"):
        rambo_on_diet_inverse(p[..., :3])
    collinear = np.array([[[10.0, 0, 0, 10.0], [5.0, 0, 0, 5.0]]])  # massless and collinear: zero system mass
    with pytest.raises(InputError, match="system mass must exceed"):
        rambo_on_diet_inverse(collinear)


# -- the column-level preprocessing --------------------------------------------------------------------------------
OBJECTS = ["bbar", "mum", "nubar", "b", "mup", "nu"]  # the top's decay products last: m_t, m_W are cluster masses
MASSES = [4.8, 0.1057, 0.0, 4.8, 0.1057, 0.0]


def _columns(p: np.ndarray, objects: list[str], **extra: np.ndarray) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for j, o in enumerate(objects):
        pt = np.hypot(p[:, j, 1], p[:, j, 2])
        cols[f"{o}_pt"], cols[f"{o}_eta"] = pt, np.arcsinh(p[:, j, 3] / pt)
        cols[f"{o}_phi"] = np.arctan2(p[:, j, 2], p[:, j, 1])
    return {**cols, **extra}


def test_preprocessor_round_trip_carries_other_fields_and_is_strict_json() -> None:
    rng = np.random.default_rng(50)
    masses = np.stack([np.full(300, 4.8), rng.uniform(0.1, 5.0, 300), np.zeros(300)], axis=1)
    p = rambo_on_diet(rng.uniform(size=(300, 5)), _random_system(rng, 300, 10.0), masses).momenta
    events = ak.zip(
        _columns(p, ["b", "j", "nu"], j_mass=masses[:, 1], b_mass=masses[:, 0], weight=rng.uniform(size=300))
    )
    pre = PhaseSpacePreprocessor(["b", "j", "nu"], [4.8, None, 0.0])
    flat = pre.forward(events)
    assert flat.fields == ["weight", *pre.output_columns]
    assert all(np.all(np.isfinite(np.asarray(flat[c]))) for c in flat.fields)
    back = pre.inverse(flat)
    assert set(back.fields) == {"weight", *(f"{o}_{v}" for o in ("b", "j", "nu") for v in ("pt", "eta", "phi", "mass"))}
    for c in events.fields:
        np.testing.assert_allclose(np.asarray(back[c]), np.asarray(events[c]), rtol=1e-9, atol=1e-9)
    text = json.dumps(pre.to_dict(), allow_nan=False)
    assert PhaseSpacePreprocessor.from_dict(json.loads(text)) == pre
    with pytest.raises(InputError, match=r"unknown phase-space preprocessing parameter\(s\) \['scale'\]"):
        PhaseSpacePreprocessor.from_dict({**pre.to_dict(), "scale": 2})
    with pytest.raises(InputError, match="the events lack the pt column 'nu_pt'"):
        pre.forward({k: v for k, v in _columns(p, ["b", "j", "nu"], j_mass=masses[:, 1]).items() if k != "nu_pt"})
    with pytest.raises(InputError, match=r"column 'b_mass' differs from the fixed mass 4\.8 GeV"):
        pre.forward(ak.with_field(events, np.full(300, 5.0), "b_mass"))
    with pytest.raises(InputError, match="system_pt='zero' needs"):
        PhaseSpacePreprocessor(["b", "j", "nu"], [4.8, None, 0.0], system_pt="zero").forward(events)


def test_preprocessor_log_abs_det_matches_finite_differences() -> None:
    rng = np.random.default_rng(60)
    objects, masses = ["a", "b", "c"], [4.8, 0.0, 20.0]
    p = rambo_on_diet(rng.uniform(0.05, 0.95, size=(40, 5)), _random_system(rng, 40, 25.0, 300.0), masses).momenta
    pre = PhaseSpacePreprocessor(objects, masses)
    physical = [f"{o}_{v}" for o in objects for v in ("pt", "eta", "phi")]
    x = np.stack([_columns(p, objects)[c] for c in physical], axis=1)

    def forward(z: np.ndarray) -> np.ndarray:
        out = pre.forward({c: z[:, k] for k, c in enumerate(physical)})
        return np.stack([np.asarray(out[c]) for c in pre.output_columns], axis=1)

    jac = np.empty((len(x), 9, 9))
    for k in range(9):
        h = 1e-6 * np.maximum(np.abs(x[:, k]), 1.0)
        up, down = x.copy(), x.copy()
        up[:, k] += h
        down[:, k] -= h
        jac[:, :, k] = (forward(up) - forward(down)) / (2 * h[:, None])
    expected = np.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(pre.log_abs_det(_columns(p, objects)), expected, atol=1e-6)


def test_any_real_output_maps_to_a_physical_event() -> None:
    """What a flow generates (any real numbers) comes back conserving momentum (p_T = 0 exactly in 'zero' mode),
    on the mass shell and above threshold."""
    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    rng = np.random.default_rng(70)
    noise = {c: rng.normal(0, 3, 1000) for c in pre.output_columns}
    events = pre.inverse(noise)
    pt = np.stack([np.asarray(events[f"{o}_pt"]) for o in OBJECTS], axis=1)
    phi = np.stack([np.asarray(events[f"{o}_phi"]) for o in OBJECTS], axis=1)
    np.testing.assert_allclose(np.sum(pt * np.cos(phi), axis=1), 0.0, atol=1e-9 * pt.sum(axis=1).max())
    np.testing.assert_allclose(np.sum(pt * np.sin(phi), axis=1), 0.0, atol=1e-9 * pt.sum(axis=1).max())
    assert all(np.all(np.asarray(events[f"{o}_mass"]) == m) for o, m in zip(OBJECTS, MASSES, strict=True))
    np.testing.assert_allclose(
        np.stack([np.asarray(pre.forward(events)[c]) for c in pre.output_columns], axis=1),
        np.stack([noise[c] for c in pre.output_columns], axis=1),
        rtol=1e-7,
        atol=1e-7,
    )


def test_surrogate_trained_on_phase_space_columns_generates_conserving_events() -> None:
    """The hook end to end with a real (tiny) flow: forward before fit, inverse after sample."""
    from mcsurrogate import Surrogate

    rng = np.random.default_rng(80)
    n_events = 600
    system = np.stack([350 + rng.exponential(100, n_events), rng.normal(0, 1, n_events)], axis=1)
    system = np.concatenate([system, np.zeros((n_events, 2))], axis=1)
    p = rambo_on_diet(rng.beta(2, 3, size=(n_events, 14)), system, MASSES).momenta
    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    model = Surrogate(
        pre.output_columns,
        flow={"model": "maf", "blocks": 1, "hidden": 8},
        preprocessing="gauss-rank",
        training={"epochs": 1, "batch_size": 256},
    )
    model.fit(pre.forward(_columns(p, OBJECTS)), progress=False)
    generated = pre.inverse(model.sample(500, seed=1))
    pt = np.stack([np.asarray(generated[f"{o}_pt"]) for o in OBJECTS], axis=1)
    phi = np.stack([np.asarray(generated[f"{o}_phi"]) for o in OBJECTS], axis=1)
    assert len(generated) == 500 and np.all(pt > 0)
    assert np.max(np.abs(np.sum(pt * np.cos(phi), axis=1))) < 1e-9 * pt.sum(axis=1).max()
