"""Fast asymptotic inference on a pyhf model: μ̂ ± σ, discovery q₀ → p₀, Z₀ and CLs upper limits with bands.

Everything here evaluates pyhf's own likelihood (``model.logpdf``, numpy backend); what is different
from ``pyhf.infer`` is how the fits and the limit search are driven:

* **Batched gradients.** The model is rebuilt once with ``batch_size = 2 n + 1`` so that −2 ln L and its
  central-difference gradient over all ``n`` parameters come from *one* vectorised pyhf call
  (~0.15 ms for a 20-bin model with staterror and a normsys, against ~2 ms for the ``n + 1``
  separate calls of a numerical gradient). scipy's L-BFGS-B then minimises with that gradient.
* **Fits computed once and warm-started.** The free fit to the data, the background-only fit that
  defines the Asimov dataset and the free fit to the Asimov data do not depend on the tested μ; they
  are done once per dataset. Fixed-μ fits start from the nearest μ already fitted.
* **Expected bands without root-finding on CLs.** Under the asymptotic (Wald) approximation that pyhf
  uses, the expected CLs of band N depends on μ only through √q_μ,A:
  CLs_N = Φ(−(N + √q_μ,A)) / Φ(−N) [pyhf ``AsymptoticCalculator.expected_pvalues``]. The target value
  t_N of √q_μ,A is solved in closed form and μ is found by secant steps on √q_μ,A(μ), which is
  nearly linear in μ (μ/σ), so each band costs two or three Asimov fits.
* **Observed limit** by Brent's method on ln CLs_obs(μ) − ln α in a bracket seeded from the expected
  median, reusing the Asimov fits of the bands.

A fit that fails is retried from pyhf's suggested initial values, then with ``pyhf.infer.mle`` (pyhf's
own optimiser); if that fails too, :class:`~mcsurrogate.errors.FitError` names what was being fitted.
The test statistic is pyhf's default q̃_μ with ``calc_base_dist="normal"``; results agree with
``pyhf.infer.hypotest`` / ``pyhf.infer.intervals.upper_limits.upper_limit`` (tested, and measured by
``benchmarks/bench_pyhf_limits.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf
from scipy import optimize
from scipy.stats import norm

from ..errors import FitError, InputError

__all__ = [
    "BANDS",
    "DiscoveryResult",
    "FitResult",
    "Inference",
    "MuFit",
    "UpperLimit",
]

#: the expected-limit bands, in the order of :attr:`UpperLimit.expected` (ascending limits)
BANDS: tuple[int, ...] = (-2, -1, 0, 1, 2)
_PENALTY = 1e30


_PYHF_OPTIMIZER_LOG = logging.getLogger("pyhf.optimize.mixins")


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _pyhf_failure_log_silenced() -> Iterator[None]:
    """Drop the ERROR record (with a traceback) that pyhf's optimiser logs before it raises ``FailedMinimization``:
    the caller turns the exception into a :class:`~mcsurrogate.errors.FitError` that carries its message (a scan
    records it in the failed point's row), so the log would only repeat it."""
    drop = _DropRecords()
    _PYHF_OPTIMIZER_LOG.addFilter(drop)
    try:
        yield
    finally:
        _PYHF_OPTIMIZER_LOG.removeFilter(drop)


@dataclass(frozen=True)
class FitResult:
    """One maximum-likelihood fit: the parameters (pyhf order), −2 ln L at the minimum, and how it went."""

    parameters: np.ndarray
    twice_nll: float
    n_calls: int
    method: str


@dataclass(frozen=True)
class MuFit:
    """Fitted signal strength μ̂ with its symmetric uncertainty σ (from the Hessian of −2 ln L)."""

    mu: float
    sigma: float
    parameters: np.ndarray
    twice_nll: float


@dataclass(frozen=True)
class DiscoveryResult:
    """Discovery test of μ = 0: q₀, p₀ and Z₀ (pyhf convention, 0 when μ̂ < 0) and the signed Z.

    ``z_signed`` = sign(μ̂)·√(2 Δ ln L) is what a spurious-signal study quotes: it keeps the direction
    of a fake signal that a generated background would produce.
    """

    q0: float
    p0: float
    z0: float
    z_signed: float
    mu_hat: float


@dataclass(frozen=True)
class UpperLimit:
    """CLs upper limit on μ at confidence level 1 − ``level``.

    ``expected`` holds the expected limits for the bands −2σ, −1σ, median, +1σ, +2σ (ascending).
    """

    observed: float
    expected: tuple[float, float, float, float, float]
    level: float
    n_fits: int = 0

    @property
    def median(self) -> float:
        """Median expected limit."""
        return self.expected[2]


@dataclass
class _Dataset:
    data: np.ndarray
    free: FitResult | None = None
    fixed: dict[float, FitResult] = field(default_factory=dict)
    hessian: np.ndarray | None = None


class Inference:
    """Asymptotic inference for one pyhf model and one observed dataset.

    Parameters
    ----------
    model
        A ``pyhf.pdf.Model`` with a parameter of interest (a normfactor on the signal).
    data
        Observed main-channel counts followed by the auxiliary data (``model.config.auxdata``), as
        ``pyhf.infer`` takes them; a main-channel-only vector gets the auxdata appended.
    par_bounds, init_pars, fixed_params
        As in ``pyhf.infer.mle.fit``; default: the model's suggestions.
    """

    def __init__(
        self,
        model: Any,
        data: Sequence[float] | np.ndarray,
        *,
        par_bounds: Sequence[Sequence[float]] | None = None,
        init_pars: Sequence[float] | None = None,
        fixed_params: Sequence[bool] | None = None,
    ) -> None:
        if model.config.poi_index is None:
            raise InputError("the pyhf model has no parameter of interest; build it with poi_name='mu'")
        self.model = model
        cfg = model.config
        self.n = cfg.npars
        self.poi = cfg.poi_index
        data = np.asarray(data, dtype=float)
        if data.shape == (cfg.nmaindata,):
            data = np.concatenate([data, np.asarray(cfg.auxdata, dtype=float)])
        if data.shape != (cfg.nmaindata + cfg.nauxdata,):
            raise InputError(
                f"data has {data.size} entries; the model expects {cfg.nmaindata} main-channel counts "
                f"(+ {cfg.nauxdata} auxiliary data)"
            )
        if not np.all(np.isfinite(data)) or np.any(data[: cfg.nmaindata] < 0):
            raise InputError("observed counts must be finite and non-negative")
        self.bounds = np.array(par_bounds if par_bounds is not None else cfg.suggested_bounds(), dtype=float)
        self.init = np.array(init_pars if init_pars is not None else cfg.suggested_init(), dtype=float)
        self.fixed = np.array(fixed_params if fixed_params is not None else cfg.suggested_fixed(), dtype=bool)
        self._batched = pyhf.Model(
            model.spec,
            batch_size=2 * self.n + 1,
            poi_name=cfg.poi_name,
            modifier_settings=cfg.modifier_settings,
            validate=False,
        )
        scale = np.maximum(1.0, np.abs(self.init))
        self._step = 1e-5 * scale
        self._offsets = np.zeros((2 * self.n + 1, self.n))
        idx = np.arange(self.n)
        self._offsets[1 + idx, idx] = self._step
        self._offsets[1 + self.n + idx, idx] = -self._step
        self.n_fits = 0
        self._observed = _Dataset(data)
        self._asimov: _Dataset | None = None
        self._asimov_fit: FitResult | None = None
        self._signed: FitResult | None = None
        self._mu_min: float | None = None

    # ----------------------------------------------------------------------------------- likelihood
    def twice_nll_and_grad(self, pars: np.ndarray, data: np.ndarray) -> tuple[float, np.ndarray]:
        """−2 ln L at ``pars`` and its gradient (central differences), from one batched pyhf call."""
        rows = pars[None, :] + self._offsets
        values = -2.0 * np.asarray(self._batched.logpdf(rows, data), dtype=float)
        f = values[0]
        grad = (values[1 : 1 + self.n] - values[1 + self.n :]) / (2.0 * self._step)
        if not np.isfinite(f):
            return _PENALTY, np.zeros(self.n)
        bad = ~np.isfinite(grad)
        if bad.any():  # a step left the physical region: one-sided difference
            plus, minus = values[1 : 1 + self.n], values[1 + self.n :]
            grad = np.where(np.isfinite(plus), (plus - f) / self._step, (f - minus) / self._step)
            grad = np.where(np.isfinite(grad), grad, 0.0)
        return float(f), grad

    def _newton(
        self, data: np.ndarray, start: np.ndarray, fixed: np.ndarray, bounds: np.ndarray, hess: np.ndarray | None
    ) -> tuple[FitResult, np.ndarray] | None:
        """Projected quasi-Newton steps with backtracking, on the parameters not at an active bound.

        Starts from ``hess`` (the dataset's last Hessian) or, without one, from a finite-difference Hessian
        at the start point, and keeps it current with BFGS updates, so that a warm-started fit needs a
        handful of batched calls. Returns the fit and the updated Hessian, or ``None`` (L-BFGS-B takes
        over) when it does not converge.
        """
        x = np.clip(start, bounds[:, 0], bounds[:, 1])
        f, g = self.twice_nll_and_grad(x, data)
        calls = 1
        if f >= _PENALTY:
            return None
        if hess is None:
            hess = self.hessian(x, data, fixed)
            calls += 2 * int((~fixed).sum())
        hess = hess.copy()
        for _ in range(80):
            at_lo = (x <= bounds[:, 0] + 1e-12) & (g > 0)
            at_hi = (x >= bounds[:, 1] - 1e-12) & (g < 0)
            free = np.flatnonzero(~(fixed | at_lo | at_hi))
            if free.size == 0:
                break
            h_ff = hess[np.ix_(free, free)]
            damping = 0.0
            for _ in range(8):
                try:
                    chol = np.linalg.cholesky(h_ff + damping * np.diag(np.abs(np.diag(h_ff)) + 1e-12))
                    break
                except np.linalg.LinAlgError:
                    damping = 1e-3 if damping == 0 else damping * 10
            else:
                return None
            step = np.zeros(self.n)
            step[free] = -np.linalg.solve(chol.T, np.linalg.solve(chol, g[free]))
            decrement = float(-g @ step)
            if decrement < 1e-9:
                break
            t = 1.0
            for _ in range(16):
                trial = np.clip(x + t * step, bounds[:, 0], bounds[:, 1])
                ft, gt = self.twice_nll_and_grad(trial, data)
                calls += 1
                if ft <= f + 1e-4 * float(g @ (trial - x)):
                    break
                t *= 0.5
            else:
                if decrement < 1e-6:  # at the rounding floor of −2 ln L: converged as far as it can be
                    break
                return None
            sk, yk = trial - x, gt - g
            sy = float(sk @ yk)
            if sy > 1e-12 * float(np.linalg.norm(sk) * np.linalg.norm(yk)):
                hs = hess @ sk
                hess += np.outer(yk, yk) / sy - np.outer(hs, hs) / float(sk @ hs)
            x, f, g = trial, ft, gt
        else:
            return None
        self.n_fits += 1
        return FitResult(x, f, calls, "newton"), hess

    def _lbfgsb(self, data: np.ndarray, start: np.ndarray, fixed: np.ndarray, bounds: np.ndarray) -> FitResult:
        free = ~fixed
        x = start.copy()
        calls = 0
        hit_penalty = False

        def fg(z: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal calls, hit_penalty
            calls += 1
            x[free] = z
            f, g = self.twice_nll_and_grad(x, data)
            hit_penalty |= f >= _PENALTY
            return f, g[free]

        z0 = np.clip(start[free], bounds[free, 0], bounds[free, 1])
        res = optimize.minimize(
            fg,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds[free],
            options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-7, "maxcor": 20},
        )
        out = start.copy()
        out[free] = res.x
        f = float(res.fun)
        ok = f < _PENALTY
        if ok:
            # judge convergence by the projected gradient, not by L-BFGS-B's message: a line search that
            # ran into an unphysical region (negative expected yield) can end with a "converged" flag
            _, g = self.twice_nll_and_grad(out, data)
            at_lo = (out <= bounds[:, 0] + 1e-9) & (g > 0)
            at_hi = (out >= bounds[:, 1] - 1e-9) & (g < 0)
            projected = np.where(at_lo | at_hi | fixed, 0.0, g)
            ok = bool(np.max(np.abs(projected), initial=0.0) < (1e-2 if hit_penalty else 1e-1))
        self.n_fits += 1
        return FitResult(out, f, calls, "lbfgsb" if ok else "failed")

    def _fit(
        self,
        ds: _Dataset,
        *,
        poi_value: float | None = None,
        start: np.ndarray | None = None,
        poi_bounds: tuple[float, float] | None = None,
        what: str = "fit",
    ) -> FitResult:
        fixed = self.fixed.copy()
        bounds = self.bounds.copy()
        if poi_bounds is not None:
            bounds[self.poi] = poi_bounds
        x0 = (start if start is not None else self.init).copy()
        if poi_value is not None:
            fixed[self.poi] = True
            x0[self.poi] = poi_value
            # a fixed μ outside the suggested range (normfactor: [0, 10]) is evaluated there, not clipped to it
            bounds[self.poi] = (min(bounds[self.poi, 0], poi_value), max(bounds[self.poi, 1], poi_value))
        x0 = np.clip(x0, bounds[:, 0], bounds[:, 1])
        newton = self._newton(ds.data, x0, fixed, bounds, ds.hessian)
        if newton is not None:
            result, ds.hessian = newton
            return result
        attempts = [x0]
        if start is not None:
            fresh = np.clip(self.init.copy(), bounds[:, 0], bounds[:, 1])
            if poi_value is not None:
                fresh[self.poi] = poi_value
            attempts.append(fresh)
        for x in attempts:
            result = self._lbfgsb(ds.data, x, fixed, bounds)
            if result.method != "failed":
                return result
        # last resort: pyhf's own optimiser on the same likelihood
        kwargs = {"init_pars": list(x0), "par_bounds": [list(b) for b in bounds], "return_fitted_val": True}
        try:
            with _pyhf_failure_log_silenced():
                if poi_value is None:
                    pars, twice = pyhf.infer.mle.fit(ds.data, self.model, fixed_params=list(fixed), **kwargs)
                else:
                    pars, twice = pyhf.infer.mle.fixed_poi_fit(
                        poi_value, ds.data, self.model, fixed_params=list(self.fixed), **kwargs
                    )
        except Exception as exc:  # pyhf raises FailedMinimization
            raise FitError(
                f"{what} did not converge (L-BFGS-B from the warm start and from pyhf's suggested initial "
                f"values, then pyhf's own optimiser): {exc}"
            ) from exc
        self.n_fits += 1
        return FitResult(np.asarray(pars, dtype=float), float(twice), 0, "pyhf")

    def fit(self, *, poi_value: float | None = None, poi_bounds: tuple[float, float] | None = None) -> FitResult:
        """Maximum-likelihood fit to the observed data; with ``poi_value`` the POI is fixed there.

        Retries from pyhf's suggested initial values, then with pyhf's optimiser, then raises
        :class:`~mcsurrogate.errors.FitError`.
        """
        return self._fit(
            self._observed,
            poi_value=poi_value,
            poi_bounds=poi_bounds,
            start=self._free_fit(self._observed, "the free fit").parameters,
        )

    # ------------------------------------------------------------------------------- μ̂ and σ(μ̂)
    @property
    def mu_lower_bound(self) -> float:
        """The most negative μ that keeps every bin's expected yield positive at nominal nuisances."""
        if self._mu_min is None:
            p0 = self.init.copy()
            p0[self.poi] = 0.0
            p1 = p0.copy()
            p1[self.poi] = 1.0
            b = np.asarray(self.model.expected_actualdata(p0), dtype=float)
            s = np.asarray(self.model.expected_actualdata(p1), dtype=float) - b
            ratio = np.where(s > 0, b / np.where(s > 0, s, 1.0), np.inf)
            self._mu_min = -0.999 * float(np.min(ratio)) if np.isfinite(ratio).any() else -10.0
            self._mu_min = max(self._mu_min, -1e3)
        return self._mu_min

    def hessian(self, pars: np.ndarray, data: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        """Hessian of −2 ln L (n × n, pyhf order) by central differences of the batched gradient.

        Rows and columns of fixed parameters (default: those the model fixes) are zero except for a unit
        diagonal.
        """
        free = np.flatnonzero(~(self.fixed if fixed is None else fixed))
        h = 1e-4 * np.maximum(1.0, np.abs(pars))
        hess = np.eye(self.n)
        for i in free:
            up, down = pars.copy(), pars.copy()
            up[i] += h[i]
            down[i] -= h[i]
            column = (self.twice_nll_and_grad(up, data)[1] - self.twice_nll_and_grad(down, data)[1]) / (2 * h[i])
            hess[free, i] = column[free]
        hess[np.ix_(free, free)] = 0.5 * (hess[np.ix_(free, free)] + hess[np.ix_(free, free)].T)
        return hess

    def mu_hat(self, *, allow_negative: bool = True) -> MuFit:
        """Best-fit μ̂ ± σ on the observed data.

        With ``allow_negative`` (default) μ may go down to :attr:`mu_lower_bound`, as a spurious-signal
        or bias study needs; σ = √(2 (H⁻¹)_μμ) with H the Hessian of −2 ln L at the minimum.
        """
        res = self._signed_fit() if allow_negative else self._free_fit(self._observed, "the free fit of μ̂")
        free = list(np.flatnonzero(~self.fixed))
        hess = self.hessian(res.parameters, self._observed.data)
        try:
            k = free.index(self.poi)
            var = float(2.0 * np.linalg.inv(hess[np.ix_(free, free)])[k, k])
        except (np.linalg.LinAlgError, ValueError):
            var = float("nan")
        sigma = math.sqrt(var) if var > 0 else float("nan")
        return MuFit(float(res.parameters[self.poi]), sigma, res.parameters, res.twice_nll)

    def _signed_fit(self) -> FitResult:
        """Free fit with μ allowed below zero, started from the μ ≥ 0 fit (whose boundary it leaves)."""
        if self._signed is None:
            bounded = self._free_fit(self._observed, "the free fit to the observed data")
            lo = min(self.mu_lower_bound, self.bounds[self.poi, 0])
            if bounded.parameters[self.poi] > self.bounds[self.poi, 0] + 1e-6 or lo >= self.bounds[self.poi, 0]:
                self._signed = bounded
            else:
                self._signed = self._fit(
                    self._observed,
                    start=bounded.parameters,
                    poi_bounds=(lo, self.bounds[self.poi, 1]),
                    what="the free fit with negative μ allowed",
                )
        return self._signed

    # --------------------------------------------------------------------------------- discovery
    def discovery(self) -> DiscoveryResult:
        """Discovery test statistic q₀ = −2 ln λ(0) with p₀ = 1 − Φ(√q₀) (asymptotic, one-sided)."""
        free = self._signed_fit()
        zero = self._fixed_fit(self._observed, 0.0, "the μ = 0 fit for q₀")
        mu_hat = float(free.parameters[self.poi])
        t0 = max(zero.twice_nll - free.twice_nll, 0.0)
        q0 = t0 if mu_hat > 0 else 0.0
        z0 = math.sqrt(q0)
        return DiscoveryResult(q0, float(norm.sf(z0)), z0, math.copysign(math.sqrt(t0), mu_hat), mu_hat)

    # ---------------------------------------------------------------------------------- CLs parts
    def _free_fit(self, ds: _Dataset, what: str) -> FitResult:
        if ds.free is None:
            start = None if ds is self._observed or self._asimov_fit is None else self._asimov_fit.parameters
            ds.free = self._fit(ds, start=start, what=what)
        return ds.free

    def _fixed_fit(self, ds: _Dataset, mu: float, what: str) -> FitResult:
        key = float(mu)
        if key not in ds.fixed:
            free = self._free_fit(ds, what)
            known = sorted(ds.fixed)
            start = free.parameters.copy()
            if known:
                near = sorted(known, key=lambda m: abs(m - key))[:2]
                start = ds.fixed[near[0]].parameters.copy()
                if len(near) == 2 and near[0] != near[1]:  # linear extrapolation of the nuisances in μ
                    p0, p1 = ds.fixed[near[0]].parameters, ds.fixed[near[1]].parameters
                    start = p0 + (key - near[0]) * (p1 - p0) / (near[1] - near[0])
            ds.fixed[key] = self._fit(ds, poi_value=key, start=start, what=f"{what} at μ = {key:.6g}")
        return ds.fixed[key]

    def _asimov_dataset(self) -> _Dataset:
        if self._asimov is None:
            self._free_fit(self._observed, "the free fit to the observed data")
            self._asimov_fit = self._fixed_fit(
                self._observed, 0.0, "the background-only fit that defines the Asimov data"
            )
            self._asimov = _Dataset(np.asarray(self.model.expected_data(self._asimov_fit.parameters), dtype=float))
        return self._asimov

    def _qtilde(self, ds: _Dataset, mu: float, what: str) -> float:
        free = self._free_fit(ds, what)
        if free.parameters[self.poi] > mu:
            return 0.0
        return max(self._fixed_fit(ds, mu, what).twice_nll - free.twice_nll, 0.0)

    def sqrt_q_asimov(self, mu: float) -> float:
        """√q̃_μ on the background-only Asimov data (μ'= 0), which sets σ and the expected bands."""
        return math.sqrt(self._qtilde(self._asimov_dataset(), mu, "the fit to the Asimov data"))

    def sqrt_q_observed(self, mu: float) -> float:
        """√q̃_μ on the observed data."""
        return math.sqrt(self._qtilde(self._observed, mu, "the fit to the observed data"))

    def cls(self, mu: float) -> tuple[float, list[float]]:
        """Observed CLs at ``mu`` and the expected CLs for the bands −2σ … +2σ (pyhf ``hypotest`` order)."""
        sq, sqa = self.sqrt_q_observed(mu), self.sqrt_q_asimov(mu)
        ts = sq - sqa if sq <= sqa else (sq * sq - sqa * sqa) / (2.0 * sqa)
        observed = float(norm.cdf(-(ts + sqa)) / norm.cdf(-ts))
        expected = [float(norm.cdf(-(n + sqa)) / norm.cdf(-n)) for n in (2, 1, 0, -1, -2)]
        return observed, expected

    # -------------------------------------------------------------------------------- upper limit
    def _solve_sqrt_qa(self, target: float, points: dict[float, float], rtol: float) -> float:
        """μ with √q_μ,A(μ) = target: secant steps from the nearest evaluated points (√q_A is nearly linear in μ,
        so a few steps usually do), then Brent's method on a bracket, which cannot oscillate when the fits leave
        √q_A slightly rough or curved. ``points`` caches μ → √q_A."""

        def value(m: float) -> float:
            if m not in points:
                points[m] = self.sqrt_q_asimov(m)
            return points[m]

        for _ in range(10):
            pos = sorted((m, v) for m, v in points.items() if v > 0)
            if len(pos) >= 2:
                below = [p for p in pos if p[1] <= target]
                above = [p for p in pos if p[1] > target]
                if below and above:
                    (m0, v0), (m1, v1) = below[-1], above[0]
                else:
                    (m0, v0), (m1, v1) = sorted(pos, key=lambda p: abs(p[1] - target))[:2]
                guess = m0 + (target - v0) * (m1 - m0) / (v1 - v0) if v1 != v0 else m1 * target / v1
            else:
                m1, v1 = pos[0]
                guess = m1 * target / v1
            guess = max(guess, 1e-9)
            near = [m for m in points if abs(guess - m) <= rtol * guess and abs(points[m] - target) <= 1e-2 * target]
            if near and len(pos) >= 2:
                return float(guess)
            if abs(value(guess) - target) <= 1e-6 * max(target, 1.0):
                return float(guess)
        above_m = [m for m, v in points.items() if v > target]
        hi = min(above_m) if above_m else max(points)
        for _ in range(60):
            if value(hi) > target:
                break
            hi *= 2.0
        else:
            raise FitError(
                f"√q_A stays below {target:.4g} up to μ = {hi:.4g}: the expected limit cannot be reached; is the "
                "signal template empty or swamped by the systematic uncertainties?"
            )
        below_m = [m for m, v in points.items() if v <= target and m < hi]
        lo = max(below_m) if below_m else hi
        for _ in range(60):
            if value(lo) <= target:
                break
            lo *= 0.5
        else:
            raise FitError(f"√q_A stays above {target:.4g} down to μ = {lo:.4g}: the Asimov fits look broken")
        return float(optimize.brentq(lambda m: value(m) - target, lo, hi, xtol=1e-12, rtol=rtol))

    def upper_limit(self, level: float = 0.05, *, rtol: float = 1e-4) -> UpperLimit:
        """CLs upper limit on μ at 1 − ``level`` confidence, observed and expected ±1σ/±2σ bands."""
        if not 0 < level < 1:
            raise InputError(f"level must be in (0, 1); got {level}")
        n_before = self.n_fits
        start_mu = float(self.init[self.poi]) if self.init[self.poi] > 0 else 1.0
        points: dict[float, float] = {start_mu: self.sqrt_q_asimov(start_mu)}
        if points[start_mu] <= 0:
            raise FitError(
                f"the Asimov data give q̃_μ = 0 at μ = {start_mu}: the signal does not change the expected "
                "counts; check the signal template"
            )
        expected = []
        for n in (2, 1, 0, -1, -2):  # ascending limits
            target = -norm.ppf(level * norm.cdf(-n)) - n
            expected.append(self._solve_sqrt_qa(target, points, rtol))

        def g(mu: float) -> float:
            return math.log(max(self.cls(mu)[0], 1e-300)) - math.log(level)

        mu_hat = max(
            float(self._free_fit(self._observed, "the free fit to the observed data").parameters[self.poi]), 0.0
        )
        lo, hi = max(expected[0] * 0.5, 1e-6), expected[4] + mu_hat
        for _ in range(60):
            if g(lo) > 0:
                break
            lo *= 0.5
        else:
            raise FitError("no μ with CLs above the level was found below the expected −2σ limit")
        for _ in range(60):
            if g(hi) < 0:
                break
            hi *= 2.0
        else:
            raise FitError("no μ with CLs below the level was found; is the signal template empty?")
        observed = optimize.brentq(g, lo, hi, xtol=1e-12, rtol=rtol * 0.5)
        return UpperLimit(float(observed), tuple(expected), level, self.n_fits - n_before)  # type: ignore[arg-type]
