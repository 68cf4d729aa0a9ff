"""Invertible, per-column preprocessing, fitted on the training split only, saved as JSON.

Each :class:`Transform` maps one column (1-D float64) forward into the flow's space and back, and gives
``log |d forward/dx|`` so that densities can be reported in the data's original units. A
:class:`ColumnChain` applies transforms in order; a :class:`Preprocessor` holds one chain per column.

Fits take event weights (``fit(x, weights=w)``, signed weights allowed, summing to > 0): :class:`Standardize` uses
the weighted mean and standard deviation, :class:`GaussRank` the weighted empirical CDF (integer weights give the
fit of the sample with each row repeated that often); the range-based transforms (:class:`BoundedMinMax`,
:class:`MinMaxLogit`) take the range of every event given, whatever its weight (weights do not change a support).

>>> import numpy as np
>>> p = Preprocessor(["pt"], "logit").fit(np.array([[20.0], [35.0], [80.0], [120.0]]))
>>> bool(np.allclose(p.inverse(p.forward(np.array([[50.0]]))), 50.0))
True
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.special import expit, log_ndtr, logit, ndtr, ndtri, ndtri_exp
from scipy.stats import median_abs_deviation

from .arguments import check_columns, check_int, check_numeric_matrix, describe
from .errors import InputError
from .event_weights import check_event_weights

__all__ = [
    "PRESETS",
    "Atanh",
    "BoundedMinMax",
    "ColumnChain",
    "GaussRank",
    "Identity",
    "Log",
    "MinMaxLogit",
    "Preprocessor",
    "Scale",
    "Standardize",
    "Transform",
    "extreme_outliers",
    "make_transform",
]

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


class Transform(abc.ABC):
    """An invertible map of one column. Subclasses set ``name`` and keep their fitted state in ``to_dict``."""

    name: ClassVar[str]
    column: str = "?"

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> Transform:
        """Fit the state from training values ``x`` with event ``weights`` (``None``: unweighted); returns ``self``."""
        return self

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def inverse(self, y: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        """``log |d forward/dx|`` at ``x``, elementwise."""

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the values this transform accepts (all, unless the map has a bounded domain)."""
        return np.ones(np.shape(x), dtype=bool)

    def params(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Transform:
        args = {k: v for k, v in d.items() if k != "name"}
        try:
            return cls(**args)
        except TypeError as exc:
            raise InputError(f"bad parameters for transform {cls.name!r}: {args} ({exc})") from exc

    #: attributes set by :meth:`fit`; the transform is usable once they are all set
    _state: ClassVar[tuple[str, ...]] = ()

    @property
    def is_fitted(self) -> bool:
        return all(getattr(self, a) is not None for a in self._state)

    def _require(self, *attrs: str) -> None:
        if any(getattr(self, a) is None for a in attrs):
            raise InputError(f"transform {self.name!r} of column {self.column!r} is used before it was fitted")


class Identity(Transform):
    """y = x."""

    name = "identity"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(x))


class Scale(Transform):
    """y = x / factor (fixed, not fitted): paper A's response scales 20 GeV, 0.005, 0.01."""

    name = "scale"

    def __init__(self, factor: float) -> None:
        if not factor or not np.isfinite(factor):
            raise InputError(f"scale factor must be finite and non-zero, got {factor!r}")
        self.factor = float(factor)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) / self.factor

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) * self.factor

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        return np.full(np.shape(x), -np.log(abs(self.factor)))

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}


class Standardize(Transform):
    """y = (x − mean) / std with mean and std of the training values."""

    name = "standardize"
    _state = ("mean", "std")

    def __init__(self, mean: float | None = None, std: float | None = None) -> None:
        self.mean, self.std = mean, std

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> Standardize:
        """Mean and standard deviation of ``x``, weighted by ``weights`` (Σw x / Σw and √(Σw (x − mean)² / Σw))."""
        x = np.asarray(x, dtype=np.float64)
        if weights is None:
            mean, std = float(x.mean()), float(x.std())
        else:
            w = np.asarray(weights, dtype=np.float64)
            mean = float(np.sum(w * x) / w.sum())
            var = float(np.sum(w * (x - mean) ** 2) / w.sum())
            if var < 0:  # signed weights can make a sample's variance negative: no scale to standardise with
                raise InputError(
                    f"column {self.column!r}: its weighted variance is negative ({var:.3g}) with these signed weights; "
                    "the sample cannot be standardised (too few events for its negative weights?)"
                )
            std = math.sqrt(var)
        if not std > 0:
            raise InputError(
                f"column {self.column!r} is constant ({x[0] if len(x) else 'empty'}): it cannot be standardised or learned"
            )
        self.mean, self.std = mean, std
        return self

    def _fitted(self) -> tuple[float, float]:
        self._require("mean", "std")
        assert self.mean is not None and self.std is not None
        return self.mean, self.std

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean, std = self._fitted()
        return (np.asarray(x, dtype=np.float64) - mean) / std

    def inverse(self, y: np.ndarray) -> np.ndarray:
        mean, std = self._fitted()
        return np.asarray(y, dtype=np.float64) * std + mean

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        _, std = self._fitted()
        return np.full(np.shape(x), -np.log(std))

    def params(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}


def _padded_range(x: np.ndarray, margin: float, column: str, what: str) -> tuple[float, float]:
    """Training range widened by ``margin`` × range on each side; a constant column is an error."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        raise InputError(f"column {column!r} is constant ({lo}): it cannot be {what}")
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


class BoundedMinMax(Transform):
    """Affine map of the training range [min − margin·range, max + margin·range] onto [low, high]."""

    name = "minmax"
    _state = ("xmin", "xmax")

    def __init__(
        self,
        low: float = -1.0,
        high: float = 1.0,
        margin: float = 0.0,
        xmin: float | None = None,
        xmax: float | None = None,
    ) -> None:
        if not high > low:
            raise InputError(f"minmax needs high > low, got low={low}, high={high}")
        self.low, self.high, self.margin, self.xmin, self.xmax = float(low), float(high), float(margin), xmin, xmax

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> BoundedMinMax:
        """The range of every value of ``x``, whatever its weight."""
        self.xmin, self.xmax = _padded_range(x, self.margin, self.column, "min-max scaled")
        return self

    def _range(self) -> tuple[float, float]:
        self._require("xmin", "xmax")
        assert self.xmin is not None and self.xmax is not None
        return self.xmin, self.xmax

    def _slope(self) -> float:
        xmin, xmax = self._range()
        return (self.high - self.low) / (xmax - xmin)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.low + (np.asarray(x, dtype=np.float64) - self._range()[0]) * self._slope()

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self._range()[0] + (np.asarray(y, dtype=np.float64) - self.low) / self._slope()

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        return np.full(np.shape(x), np.log(self._slope()))

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "margin": self.margin, "xmin": self.xmin, "xmax": self.xmax}


class MinMaxLogit(Transform):
    """Paper B: min-max to [0, 1] on the training range widened by ``margin`` × range on each side (values of
    test or generated data beyond the training extremes stay inside), squeezed to [α, 1 − α], then logit."""

    name = "minmax-logit"
    _state = ("xmin", "xmax")

    def __init__(
        self, alpha: float = 1e-6, margin: float = 0.05, xmin: float | None = None, xmax: float | None = None
    ) -> None:
        if not 0 < alpha < 0.5:
            raise InputError(f"logit alpha must be in (0, 0.5), got {alpha}")
        self.alpha, self.margin, self.xmin, self.xmax = float(alpha), float(margin), xmin, xmax

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> MinMaxLogit:
        """The range of every value of ``x``, whatever its weight."""
        self.xmin, self.xmax = _padded_range(x, self.margin, self.column, "logit-transformed")
        return self

    def _u(self, x: np.ndarray) -> np.ndarray:
        self._require("xmin", "xmax")
        t = (np.asarray(x, dtype=np.float64) - self.xmin) / (self.xmax - self.xmin)  # type: ignore[operator]
        return self.alpha + (1 - 2 * self.alpha) * t

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        u = self._u(x)
        return (u > 0) & (u < 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        u = self._u(x)
        if not ((u > 0) & (u < 1)).all():
            raise InputError(
                f"column {self.column!r}: {int(((u <= 0) | (u >= 1)).sum())} values lie outside the fitted range "
                f"[{self.xmin}, {self.xmax}] (the training range widened by 'margin'); refit or raise 'margin'"
            )
        return logit(u)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        self._require("xmin", "xmax")
        t = (expit(np.asarray(y, dtype=np.float64)) - self.alpha) / (1 - 2 * self.alpha)
        return self.xmin + t * (self.xmax - self.xmin)  # type: ignore[operator]

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        u = self._u(x)
        return np.log((1 - 2 * self.alpha) / (self.xmax - self.xmin)) - np.log(u) - np.log1p(-u)  # type: ignore[operator]

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "margin": self.margin, "xmin": self.xmin, "xmax": self.xmax}


class Atanh(Transform):
    """y = atanh(x) for |x| < 1: the inverse of paper A's final tanh bijection (values outside ±1 cannot be used)."""

    name = "atanh"

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(x, dtype=np.float64)) < 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        bad = ~(np.abs(x) < 1)
        if bad.any():
            raise InputError(
                f"column {self.column!r}: {int(bad.sum())} values outside (−1, 1) cannot pass atanh; drop them first"
            )
        return np.arctanh(x)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(y, dtype=np.float64))

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        return -np.log1p(-(np.asarray(x, dtype=np.float64) ** 2))


class Log(Transform):
    """y = log(x + offset), for positive-valued columns (GeV)."""

    name = "log"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = float(offset)

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) + self.offset > 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        v = np.asarray(x, dtype=np.float64) + self.offset
        if not (v > 0).all():
            raise InputError(
                f"column {self.column!r}: {int((~(v > 0)).sum())} values with x + offset <= 0 cannot be log-transformed (offset {self.offset})"
            )
        return np.log(v)

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> Log:
        self.forward(x)
        return self

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(y, dtype=np.float64)) - self.offset

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        return -np.log(np.asarray(x, dtype=np.float64) + self.offset)

    def params(self) -> dict[str, Any]:
        return {"offset": self.offset}


class GaussRank(Transform):
    """Quantile-to-normal with an exact inverse (paper B's final preprocessing).

    The empirical CDF is piecewise linear through the training values at their mid-point probabilities
    ``F(x_k−) + P(x_k)/2`` (equal values merged into one point), sampled at ``n_quantiles`` knots from the minimum to
    the maximum; then ``y = Φ⁻¹(F(x))``. Unweighted, the knots are the quantiles of the training values at
    probabilities from ``eps`` to ``1 − eps``, ``eps = 1/(2 n_train)``. Weighted (``fit(x, weights)``), ``P`` is the
    values' share of the total weight (``eps``: half the smallest event's share), so integer weights give the fit of
    the sample with each row repeated that often; negative weights are allowed where the cumulative weight stays a
    CDF after a running maximum (a weighted sample of a positive density).

    **Atoms.** A value shared by several training events that holds a finite fraction of the weight (it fills two
    or more quantiles: a discrete column, a floor, a kinematic constraint such as m(ℓν) = m_W; a single heavy event
    is no atom) keeps two knots at the same ``x``, at ``F(a−)`` and ``F(a)``. :meth:`forward` spreads its events uniformly over that probability interval (a
    seeded dequantization, the same for the same input), so the flow sees a smooth density instead of a spike,
    and :meth:`inverse` maps the whole interval back onto the value exactly: generated samples reproduce the atom
    with its probability, not a smeared peak. There :meth:`log_abs_det` uses the atom's probability in place of
    the CDF slope (a dequantization bound on the log-probability).

    **Knots of a weighted sample.** Knots equally spaced in weighted probability leave a biased sample's tail —
    many events of small weight — with a handful of knots: the top 0.1 % of the probability of a p_T-biased sample
    can hold hundreds of events spread over a TeV, and one linear segment across them is a flat density where the
    spectrum falls steeply. ``event_knots`` adds that many knots equally spaced in *event count* (the unweighted
    quantiles of the values, each with its weighted probability: points of the same piecewise-linear CDF), so the
    knots follow the events wherever the weights put them. ``"auto"`` (default): ``n_quantiles`` event knots when
    the weights vary, none when they are constant or absent (then the two grids coincide). With ``event_knots=0``
    integer weights give exactly the fit of the sample with each row repeated.

    Outside the fitted range the CDF continues as an exponential tail matching the value and slope of the
    outermost segment (``F(x) = p₀ exp(s₀ (x − k₀) / p₀)`` below the first knot, the mirror image above the
    last), so the map is smooth, strictly monotonic and a proper density in ``x``. The tails are evaluated in
    log space (``ndtri_exp`` / ``log_ndtr``), so the map stays exactly invertible on the whole real line, also
    far beyond the training range where ``F`` itself would underflow; there ``|y|`` grows like
    ``sqrt(2 |x − k| / L)`` with the tail length ``L = p₀ / s₀`` (short for a column with a sharp edge).
    """

    name = "gauss-rank"
    _state = ("knots", "probs")

    def __init__(
        self,
        n_quantiles: int = 1000,
        subsample: int | None = 1_000_000,
        seed: int = 0,
        knots: list[float] | None = None,
        probs: list[float] | None = None,
        event_knots: int | Literal["auto"] = "auto",
    ) -> None:
        if n_quantiles < 2:
            raise InputError(f"gauss-rank needs n_quantiles >= 2, got {n_quantiles}")
        if event_knots != "auto" and (
            isinstance(event_knots, bool) or not isinstance(event_knots, int) or event_knots < 0
        ):
            raise InputError(f"gauss-rank 'event_knots' must be 'auto' or an integer >= 0, got {event_knots!r}")
        self.n_quantiles, self.subsample, self.seed = int(n_quantiles), subsample, int(seed)
        self.event_knots = event_knots
        self.knots = None if knots is None else np.asarray(knots, dtype=np.float64)
        self.probs = None if probs is None else np.asarray(probs, dtype=np.float64)

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> GaussRank:
        """Knots of the (weighted) empirical CDF of ``x``; more than ``subsample`` values: a seeded subsample."""
        x = np.asarray(x, dtype=np.float64)
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.subsample and len(x) > self.subsample:
            pick = np.random.default_rng(self.seed).choice(len(x), self.subsample, replace=False)
            x, w = x[pick], None if w is None else w[pick]
        order = np.argsort(x, kind="stable")
        xs = x[order]
        values, first, rows = np.unique(xs, return_index=True, return_counts=True)
        if w is None:
            mass, smallest = rows.astype(np.float64), 1.0
        else:
            ws = w[order]
            mass = np.add.reduceat(ws, first) if len(ws) else np.zeros(0)
            if (mass < 0).any():  # signed weights: the cumulative weight made monotonic (a running maximum)
                mass = np.diff(np.maximum.accumulate(np.maximum(np.cumsum(mass), 0.0)), prepend=0.0)
            smallest = float(ws[ws > 0].min()) if (ws > 0).any() else 0.0
            carried = mass > 0  # values without weight carry no probability; the CDF interpolates across them
            values, rows, mass = values[carried], rows[carried], mass[carried]
        if len(values) < 2:
            raise InputError(
                f"column {self.column!r} is constant"
                + (" (or its weight sits on one value)" if w is not None else "")
                + ": it cannot be Gauss-rank transformed"
            )
        total = float(mass.sum())
        upto_f = np.cumsum(mass) / total  # F(x_k)
        below_f = upto_f - mass / total  # F(x_k−)
        mid = below_f + 0.5 * mass / total  # mid-point probabilities: (k − 1/2)/n unweighted
        eps = 0.5 * smallest / total
        scale = 1 - 2 * eps
        grid = np.linspace(eps, 1 - eps, self.n_quantiles)
        # an atom: a value of several events whose probability interval, less half an event at each end, holds two
        # or more grid points (unweighted: it fills two or more quantiles of the sample)
        inside = np.searchsorted(grid, upto_f - eps, side="right") - np.searchsorted(grid, below_f + eps, side="left")
        is_atom = (rows > 1) & (inside >= 2)
        atoms = values[is_atom]
        below, upto = eps + scale * below_f[is_atom], eps + scale * upto_f[is_atom]
        tol = 1e-6 * (grid[1] - grid[0])  # the ends are knots already (unweighted, the grid's ends are theirs)
        p_inner = grid[(grid > mid[0] + tol) & (grid < mid[-1] - tol)]
        p_smooth = np.r_[mid[0], p_inner, mid[-1]]
        smooth = np.interp(p_smooth, mid, values)
        n_events = self.n_quantiles if self.event_knots == "auto" else self.event_knots
        if w is not None and n_events and np.ptp(w) > 0:  # knots by event count, on the same CDF
            counts = np.cumsum(rows) - 0.5 * rows  # unweighted mid-points, in events
            by_count = np.interp(np.linspace(counts[0], counts[-1], n_events), counts, values)[1:-1]
            merged = np.unique(np.r_[smooth, by_count])
            smooth, p_smooth = merged, np.interp(merged, values, mid)
        # a smooth knot next to an atom must fall strictly between the atoms' probability intervals
        j = np.searchsorted(atoms, smooth)
        lower = np.r_[-np.inf, upto][j]
        upper = np.r_[below, np.inf][j]
        keep = (p_smooth > lower) & (p_smooth < upper)
        k = np.r_[smooth[keep], atoms, atoms]
        p = np.r_[p_smooth[keep], below, upto]
        order = np.lexsort((p, k))
        self.knots, self.probs = k[order], p[order]
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        self._require("knots", "probs")
        assert self.knots is not None and self.probs is not None
        return self.knots, self.probs

    def _atoms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(value, F(a−), F(a))`` of every atom: the knots that appear twice."""
        k, p = self._fitted()
        i = np.flatnonzero(np.diff(k) == 0)
        return k[i], p[i], p[i + 1]

    def _tails(self) -> tuple[float, float, float, float]:
        """``(p₀, s₀, 1 − p₋₁, s₋₁)``: outermost probabilities and CDF slopes, per unit of x — of the outermost
        segments with a positive slope when the minimum or maximum is an atom, of the whole range when no segment
        has one (a purely discrete column)."""
        k, p = self._fitted()
        dk, dp = np.diff(k), np.diff(p)
        rising = np.flatnonzero((dk > 0) & (dp > 0))
        if not len(rising):
            s = (p[-1] - p[0]) / (k[-1] - k[0])
            return p[0], s, 1.0 - p[-1], s
        lo, hi = rising[0], rising[-1]
        return p[0], dp[lo] / dk[lo], 1.0 - p[-1], dp[hi] / dk[hi]

    def _log_tail(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Masks of the points below / above the knots, and ``log F`` (below) and ``log(1 − F)`` (above) there."""
        k, _ = self._fitted()
        p_lo, s_lo, q_hi, s_hi = self._tails()
        lo, hi = x < k[0], x > k[-1]
        log_u = np.log(p_lo) + s_lo * (x[lo] - k[0]) / p_lo
        log_v = np.log(q_hi) - s_hi * (x[hi] - k[-1]) / q_hi
        return lo, hi, log_u, log_v

    def _at_atoms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mask of the values sitting on an atom, and ``F(a−)``, ``F(a)`` of their atoms."""
        value, below, upto = self._atoms()
        if not len(value):
            return np.zeros(x.shape, dtype=bool), np.empty(0), np.empty(0)
        i = np.clip(np.searchsorted(value, x), 0, len(value) - 1)
        on = value[i] == x
        return on, below[i[on]], upto[i[on]]

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        k, p = self._fitted()
        u, v = np.interp(x, k, p), np.interp(x, k, 1.0 - p)  # v keeps its precision close to F = 1
        on, below, upto = self._at_atoms(x)
        if on.any():  # dequantize: uniform over the atom's probability interval, seeded
            r = np.random.default_rng(self.seed).random(int(on.sum()))
            u[on] = below + r * (upto - below)
            v[on] = (1.0 - upto) + (1.0 - r) * (upto - below)
        y = np.array(np.where(u < 0.5, ndtri(u), -ndtri(v)))
        lo, hi, log_u, log_v = self._log_tail(x)
        y[lo], y[hi] = ndtri_exp(log_u), -ndtri_exp(log_v)
        return y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        k, p = self._fitted()
        p_lo, s_lo, q_hi, s_hi = self._tails()
        x = np.array(np.interp(ndtr(y), p, k))  # an atom's probability interval maps onto its value exactly
        lo, hi = y < ndtri(p_lo), y > -ndtri(q_hi)
        x[lo] = k[0] + p_lo / s_lo * (log_ndtr(y[lo]) - np.log(p_lo))
        x[hi] = k[-1] - q_hi / s_hi * (log_ndtr(-y[hi]) - np.log(q_hi))
        return x

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        """``log F'(x) − log φ(y)``: the CDF's slope over the normal density at ``y``; on an atom its probability
        ``F(a) − F(a−)`` takes the place of the slope."""
        x = np.asarray(x, dtype=np.float64)
        k, p = self._fitted()
        p_lo, s_lo, q_hi, s_hi = self._tails()
        seg = np.clip(np.searchsorted(k, x, side="right") - 1, 0, len(k) - 2)
        with np.errstate(divide="ignore", invalid="ignore"):  # zero-width (atom) segments are replaced below
            log_slope = np.array(np.log((p[seg + 1] - p[seg]) / (k[seg + 1] - k[seg])))
        lo, hi, log_u, log_v = self._log_tail(x)
        log_slope[lo] = np.log(s_lo / p_lo) + log_u  # d/dx of p₀ exp(s₀ (x − k₀) / p₀)
        log_slope[hi] = np.log(s_hi / q_hi) + log_v
        on, below, upto = self._at_atoms(x)
        log_slope[on] = np.log(upto - below)
        y = self.forward(x)
        return log_slope + 0.5 * y * y + _LOG_SQRT_2PI

    def params(self) -> dict[str, Any]:
        return {
            "n_quantiles": self.n_quantiles,
            "subsample": self.subsample,
            "seed": self.seed,
            "event_knots": self.event_knots,
            "knots": None if self.knots is None else self.knots.tolist(),
            "probs": None if self.probs is None else self.probs.tolist(),
        }


_REGISTRY: dict[str, type[Transform]] = {
    cls.name: cls for cls in (Identity, Scale, Standardize, BoundedMinMax, MinMaxLogit, Atanh, Log, GaussRank)
}


def make_transform(d: Mapping[str, Any]) -> Transform:
    """Build a transform from its ``to_dict`` form; unknown names raise :class:`InputError` listing the known ones."""
    name = d.get("name") if isinstance(d, Mapping) else None
    if name not in _REGISTRY:
        raise InputError(f"unknown transform {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name].from_dict(d)


#: preset name → factory of a chain
PRESETS: dict[str, Any] = {
    "identity": lambda: [Identity()],
    "standardize": lambda: [Standardize()],
    "logit": lambda: [MinMaxLogit(), Standardize()],
    "gauss-rank": lambda: [GaussRank()],
    "minmax": lambda: [BoundedMinMax()],
}


class ColumnChain:
    """Transforms applied in order to one column."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    @classmethod
    def coerce(cls, chain: ColumnChain | Sequence[Transform] | str, column: str = "?") -> ColumnChain:
        """A fresh chain from a chain, a preset name or a list of transforms (or their dicts); ``column`` names the
        column in error messages."""
        if isinstance(chain, ColumnChain):
            return ColumnChain([make_transform(t.to_dict()) for t in chain.transforms])
        if isinstance(chain, str):
            if chain not in PRESETS:
                raise InputError(f"unknown preprocessing preset {chain!r}; choose one of {', '.join(PRESETS)}")
            return cls(PRESETS[chain]())
        if not isinstance(chain, Sequence):
            raise InputError(
                f"preprocessing of column {column!r} must be a preset name ({', '.join(PRESETS)}), a list of "
                f"transforms or a ColumnChain, got {describe(chain)}"
            )
        items: list[Any] = list(chain)
        bad = [t for t in items if not isinstance(t, (Transform, Mapping))]
        if bad:
            raise InputError(
                f"preprocessing of column {column!r}: {describe(bad[0])} is neither a Transform nor its dict"
            )
        return cls([make_transform(t.to_dict() if isinstance(t, Transform) else t) for t in items])

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> ColumnChain:
        """Fit each transform on the previous one's output, with the event ``weights``."""
        for t in self.transforms:
            t.fit(x, weights)
            x = t.forward(x)
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t.forward(x)
        return np.asarray(x, dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        for t in reversed(self.transforms):
            y = t.inverse(y)
        return np.asarray(y, dtype=np.float64)

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        total = np.zeros(np.shape(x))
        for t in self.transforms:
            total = total + t.log_abs_det(x)
            x = t.forward(x)
        return total

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Mask of the values every transform of the chain accepts (each checked on the previous one's output).

        Before :meth:`fit`, the check stops at the first transform that needs fitting (its range is the data's).
        """
        x = np.array(x, dtype=np.float64)
        ok = np.ones(np.shape(x), dtype=bool)
        for t in self.transforms:
            if not t.is_fitted:
                break
            ok &= t.in_domain(x)
            if not ok.any():
                break
            x[~ok] = x[ok][0]  # stand-in values for the rejected entries, so the rest can pass on
            x = t.forward(x)
        return ok

    def to_dict(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.transforms]

    @classmethod
    def from_dict(cls, d: Sequence[Mapping[str, Any]]) -> ColumnChain:
        return cls([make_transform(t) for t in d])


class Preprocessor:
    """One :class:`ColumnChain` per column; fitted on the training split only; JSON with a schema version."""

    SCHEMA = 1

    def __init__(
        self,
        columns: Sequence[str],
        chains: Mapping[str, ColumnChain | Sequence[Transform] | str]
        | ColumnChain
        | Sequence[Transform]
        | str
        | None = None,
    ) -> None:
        self.columns = check_columns(columns, "Preprocessor columns")
        if chains is None:
            chains = "identity"
        if isinstance(chains, Mapping):
            unknown = sorted(set(chains) - set(self.columns))
            if unknown:
                raise InputError(f"preprocessing given for unknown column(s) {unknown}; columns are {self.columns}")
            self.chains = {c: ColumnChain.coerce(chains.get(c, "identity"), c) for c in self.columns}
        else:
            self.chains = {c: ColumnChain.coerce(chains, c) for c in self.columns}
        for c, chain in self.chains.items():
            for t in chain.transforms:
                t.column = c
        self.fitted = False

    def _check(self, x: np.ndarray, what: str = "x") -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
            x = check_numeric_matrix(x, what, self.columns)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise InputError(
                f"expected {what} of shape (n, {len(self.columns)}) for columns {self.columns}, got {x.shape}"
            )
        return x

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> Preprocessor:
        """Fit every column's chain on the training values ``x`` (n, len(columns)) with event ``weights`` (n,)
        (``None``: unweighted; signed weights allowed, finite and summing to > 0)."""
        x = self._check(x)
        bad = ~np.isfinite(x)
        if bad.any():
            counts = {c: int(k) for c, k in zip(self.columns, bad.sum(axis=0), strict=False) if k}
            raise InputError(f"non-finite values in the preprocessing fit: counts per column {counts}")
        w = None if weights is None else check_event_weights(weights, len(x), "weights of the preprocessing fit")[0]
        for j, c in enumerate(self.columns):
            self.chains[c].fit(x[:, j], w)
        self.fitted = True
        return self

    def _require_fit(self) -> None:
        if not self.fitted:
            raise InputError("the preprocessor is used before fit()")

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._require_fit()
        x = self._check(x)
        return np.stack([self.chains[c].forward(x[:, j]) for j, c in enumerate(self.columns)], axis=1)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        self._require_fit()
        y = self._check(y, "y")
        return np.stack([self.chains[c].inverse(y[:, j]) for j, c in enumerate(self.columns)], axis=1)

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        self._require_fit()
        x = self._check(x)
        return np.sum([self.chains[c].log_abs_det(x[:, j]) for j, c in enumerate(self.columns)], axis=0)

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Rows whose every column lies in its chain's domain (e.g. |x| < 1 for atanh), shape (n,)."""
        x = self._check(x)
        ok = np.ones(len(x), dtype=bool)
        for j, c in enumerate(self.columns):
            ok &= self.chains[c].in_domain(x[:, j])
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "columns": self.columns,
            "fitted": self.fitted,
            "chains": {c: self.chains[c].to_dict() for c in self.columns},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        if not isinstance(d, Mapping):
            raise InputError(
                f"preprocessing must be a JSON object (a dict from Preprocessor.to_dict), got {describe(d)}"
            )
        schema = check_int(d.get("schema", cls.SCHEMA), "preprocessing schema", minimum=1)
        if schema > cls.SCHEMA:
            raise InputError(f"preprocessing schema {schema} is newer than this mcsurrogate reads ({cls.SCHEMA})")
        missing = [k for k in ("columns", "chains") if k not in d]
        if missing:
            raise InputError(f"preprocessing JSON lacks {missing}")
        chains = d["chains"]
        if not isinstance(chains, Mapping) or not all(isinstance(t, Sequence) for t in chains.values()):
            raise InputError(
                f"preprocessing 'chains' must map each column to a list of transforms, got {describe(chains)}"
            )
        obj = cls(d["columns"], {c: ColumnChain.from_dict(t) for c, t in chains.items()})
        obj.fitted = bool(d.get("fitted", True))
        return obj

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> Preprocessor:
        return cls.from_dict(json.loads(s))


#: robust z-score (distance from the median in units of the MAD scaled to a Gaussian σ) beyond which a training value
#: is an *extreme outlier*. The tails of physics features stay far below it (at 10⁶ events: exponential p_T ≈ 25,
#: log-normal masses (σ = 1) ≈ 160, Student-t₃ responses ≈ 270, Student-t₂ ≈ 5 × 10³); overflows and sentinels such
#: as ±1e30 reach it, and a few such values dominate a fitted standard deviation or range
OUTLIER_Z = 1e4


def extreme_outliers(x: np.ndarray, columns: Sequence[str], z: float = OUTLIER_Z) -> dict[str, np.ndarray]:
    """Rows of ``x`` (n, len(columns)) whose value lies more than ``z`` robust standard deviations from the column's
    median, by column (only columns that have some): ``|x − median| / (1.4826 · MAD) > z``. A column with an atom
    (more than half its values equal, MAD = 0) takes the scale of its other values; a constant column has none.
    NaN values are ignored."""
    arr = np.asarray(x, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(columns):
        col = arr[:, j]
        finite = col[np.isfinite(col)]
        if finite.size < 3:
            continue
        median = float(np.median(finite))
        scale = float(median_abs_deviation(finite, scale="normal"))
        if scale == 0.0:  # an atom: the spread of the values off it
            off = finite[finite != median]
            if off.size == 0:
                continue
            scale = float(median_abs_deviation(off, scale="normal")) or float(np.median(np.abs(off - median)))
        with np.errstate(invalid="ignore", over="ignore"):
            rows = np.flatnonzero(np.abs(col - median) > z * scale)
        if rows.size:
            out[name] = rows
    return out
