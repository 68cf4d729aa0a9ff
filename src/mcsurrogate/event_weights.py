"""Event weights of a training sample: reading and checking them, Poisson bootstrap replicas, cell resampling of
negative weights and a summary with Kish's effective size.

Weighted Monte Carlo carries one weight per event (biased phase-space sampling, NLO samples with negative weights,
pile-up and scale-factor weights). A training sample's weights must be finite — NaN/inf weights are refused unless
the caller drops them explicitly (``drop_nonfinite_weights=True``, counted) — and sum to more than zero; single
weights may be negative (:func:`check_event_weights`).

* :func:`event_weights`: the weights of events, from a column name or an array of one weight per event.
* :func:`poisson_bootstrap`: Poisson(1) multipliers for a bootstrap replica (seeded), the standard way to make
  replica trainings without duplicating events.
* :func:`cell_resample`: Andersen and Maier's cell resampling (arXiv:2109.07851): every negative-weight event seeds a
  cell of its nearest neighbours, grown until the cell's weight sum is ≥ 0, and the cell's events share that sum in
  proportion to their |w|. Weights become non-negative, the sum of weights of every cell — so the distribution at
  scales above the cells' size — is kept.
* :func:`unweight`: hit-or-miss unweighting — keep each event with probability w / max w: the kept events are an
  unweighted, independent sample of the weighted distribution (no repeated events, as resampling would give).
* :class:`WeightSummary`: what a training did with its weights, with Kish's effective size (Σw)²/Σw², the size of an
  unweighted sample of equal statistical power (the cancellation of signed weights lowers it too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .arguments import check_seed, describe
from .errors import InputError

__all__ = [
    "CellResampling",
    "WeightSummary",
    "cell_resample",
    "check_event_weights",
    "event_weights",
    "poisson_bootstrap",
    "unweight",
]


def check_event_weights(
    weights: Any, n: int, name: str, *, drop_nonfinite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(weights as float64 (n,), mask of the finite ones)``. Refused with :class:`InputError` naming ``name``:
    anything but one number per event, NaN/inf weights unless ``drop_nonfinite`` (then they are left out of the mask
    for the caller to drop and count), and weights (of the events kept) summing to ≤ 0. Negative weights are allowed.
    """
    if isinstance(weights, (str, bytes)) or weights is None:
        raise InputError(f"{name} must be an array of one weight per event, got {describe(weights)}")
    try:
        raw = np.asarray(weights)
    except ValueError as exc:
        raise InputError(f"{name} must be a flat array of numbers, one weight per event ({exc})") from None
    if raw.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold numbers (one weight per event), got an array of dtype {raw.dtype}")
    w = raw.astype(np.float64)
    if w.shape != (n,):
        raise InputError(f"{name} has shape {w.shape}, expected ({n},): one weight per event")
    finite = np.isfinite(w)
    bad = int(n - finite.sum())
    if bad and not drop_nonfinite:
        raise InputError(
            f"{name} holds {bad} NaN or infinite weights (of {n} events); fix them, or drop those events explicitly "
            "(drop_nonfinite_weights=True, CLI --drop-nonfinite-weights; they are counted in the metrics)"
        )
    total = float(w[finite].sum())
    if not total > 0:
        what = "are all zero" if not np.any(w[finite]) else f"sum to {total:.6g}"
        raise InputError(
            f"{name} {what} over the {int(finite.sum())} events with finite weights: a weighted sample must have a "
            "positive sum of weights (negative single weights are fine)"
        )
    return w, finite


def event_weights(events: Any, weights: Any, *, drop_nonfinite: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """``(weights (n,), mask of finite ones, label)`` of ``events`` (awkward records or anything with ``len``):
    ``weights`` is the name of a flat numeric field of the records, or an array of one weight per event. ``label``
    names them in messages (``weights column 'w'`` or ``weights``). Checked by :func:`check_event_weights`."""
    n = len(events)
    if isinstance(weights, str):
        label = f"weights column {weights!r}"
        fields = list(getattr(events, "fields", []) or [])
        if weights not in fields:
            raise InputError(f"{label} is not a field of the events; they have {fields}")
        import awkward as ak  # here: the preprocessing layer needs no awkward for the array checks

        column = events[weights]
        t = column.type.content
        while isinstance(t, ak.types.OptionType):
            t = t.content
        if not isinstance(t, ak.types.NumpyType) or t.primitive in ("bool", "datetime64", "timedelta64"):
            raise InputError(f"{label} must hold one number per event, got type {column.type.content}")
        values = ak.to_numpy(ak.fill_none(column, np.nan)).astype(np.float64)
    else:
        label, values = "weights", weights
    w, finite = check_event_weights(values, n, label, drop_nonfinite=drop_nonfinite)
    return w, finite, label


def poisson_bootstrap(n: int, seed: int) -> np.ndarray:
    """``n`` Poisson(1) draws (float64) from ``seed``: the multipliers of the weights of a bootstrap replica."""
    seed = check_seed(seed, "bootstrap_seed", generator=False)
    return np.random.default_rng([seed, 29]).poisson(1.0, n).astype(np.float64)


def unweight(weights: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the events kept by hit-or-miss unweighting: event i with probability ``wᵢ / max w`` (seeded).

    The kept events are an unweighted sample of the weighted distribution, independent and without repeats (a
    resampling with replacement repeats heavy events, which a classifier two-sample test memorises); their expected
    number is ``Σw / max w``. Weights must be finite and non-negative with a positive maximum."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not len(w):
        raise InputError(f"unweight needs a 1-D array of weights, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError(
            f"unweight needs finite, non-negative weights: {int((~np.isfinite(w)).sum())} non-finite, "
            f"{int((w < 0).sum())} negative (make signed weights non-negative first, e.g. cell_resample)"
        )
    top = float(w.max())
    if not top > 0:
        raise InputError("unweight: every weight is zero")
    seed = check_seed(seed, "seed", generator=False)
    return np.flatnonzero(np.random.default_rng([seed, 41]).random(len(w)) * top < w)


@dataclass
class CellResampling:
    """The result of :func:`cell_resample`: the new (non-negative) ``weights`` and the cells' statistics (``radius``
    in the units of the points given; the training uses the flow's standardised space)."""

    weights: np.ndarray
    n_cells: int
    mean_cell_size: float
    max_cell_size: int
    median_radius: float
    max_radius: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["weights"]
        return d


def cell_resample(points: np.ndarray, weights: np.ndarray) -> CellResampling:
    """Cell resampling of signed weights (Andersen and Maier, arXiv:2109.07851; module docstring).

    ``points`` (n, d): where the events lie, in a space whose Euclidean distance is meaningful (standardised
    features); ``weights`` (n,): finite, summing to > 0. Seeds are taken from the most negative weight up; a cell
    grows by nearest neighbours (of the seed) until its weight sum is ≥ 0; events of earlier cells may join later
    ones. Deterministic. The sum of weights is kept exactly; the result has no negative weights.
    """
    from scipy.spatial import cKDTree

    x = np.asarray(points, dtype=np.float64)
    w = np.array(weights, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(w):
        raise InputError(f"cell_resample needs points (n, d) and weights (n,), got {x.shape} and {w.shape}")
    check_event_weights(w, len(w), "cell_resample weights")
    n = len(w)
    seeds = np.flatnonzero(w < 0)
    seeds = seeds[np.argsort(w[seeds], kind="stable")]
    tree = cKDTree(x)
    sizes: list[int] = []
    radii: list[float] = []
    for s in seeds:
        if w[s] >= 0:  # absorbed into an earlier cell
            continue
        k = 16
        while True:
            dist, idx = tree.query(x[s], k=min(k, n))
            dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
            closed = np.flatnonzero(np.cumsum(w[idx]) >= 0)
            if len(closed) or k >= n:
                break
            k *= 4
        m = int(closed[0]) + 1  # the whole sample sums to > 0: a cell always closes
        cell = idx[:m]
        total, size = float(w[cell].sum()), float(np.abs(w[cell]).sum())
        w[cell] = np.abs(w[cell]) * (total / size)
        sizes.append(m)
        radii.append(float(dist[m - 1]))
    return CellResampling(
        weights=w,
        n_cells=len(sizes),
        mean_cell_size=float(np.mean(sizes)) if sizes else 0.0,
        max_cell_size=int(max(sizes)) if sizes else 0,
        median_radius=float(np.median(radii)) if radii else 0.0,
        max_radius=float(max(radii)) if radii else 0.0,
    )


def _kish(w: np.ndarray) -> float:
    from .validation.samples import kish_size  # the one implementation; validation is not needed at import

    return float(kish_size(w, len(w)))


@dataclass
class WeightSummary:
    """What a training did with event weights (``metrics.json``'s ``weights``).

    ``source``: the column name, ``"array"``, or ``None`` for an unweighted training; ``n_train`` and
    ``kish_effective_size``: the training split's events and Kish effective size (Σw)²/Σw² (``n_train`` unweighted),
    ``kish_efficiency`` their ratio; ``negative_fraction``: Σ|w| of the negative weights over Σ|w| (before any
    resampling); ``dropped_nonfinite``: events dropped for NaN/inf weights; ``bootstrap_seed``: the Poisson replica's
    seed; ``negative_weights``: how negative weights were trained (``signed`` or ``cell-resampling``, ``None`` when
    there were none), ``cells``: the cell resampling's statistics.
    """

    source: str | None
    n_train: int
    sum_train: float
    kish_effective_size: float
    kish_efficiency: float
    n_negative: int = 0
    negative_fraction: float = 0.0
    dropped_nonfinite: int = 0
    bootstrap_seed: int | None = None
    negative_weights: str | None = None
    cells: dict[str, Any] | None = None

    @classmethod
    def of(cls, source: str | None, w_train: np.ndarray | None, n_train: int, **extra: Any) -> WeightSummary:
        """The summary of the training split's weights ``w_train`` (``None``: unweighted, ``n_train`` events)."""
        if w_train is None:
            return cls(source, n_train, float(n_train), float(n_train), 1.0, **extra)
        kish = _kish(w_train)
        neg = w_train < 0
        return cls(
            source,
            n_train,
            float(w_train.sum()),
            kish,
            kish / n_train,
            n_negative=int(neg.sum()),
            negative_fraction=float(np.abs(w_train[neg]).sum() / np.abs(w_train).sum()),
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def info_line(d: dict[str, Any] | None) -> str:
        """One line for ``mcsurrogate info``: ``"n_train events, Kish effective size N (eff %)"`` (+ source)."""
        if not d:
            return "unknown (trained before mcsurrogate recorded it)"
        line = f"{d['n_train']} events, Kish effective size {d['kish_effective_size']:.0f} ({d['kish_efficiency']:.1%})"
        if d.get("source"):
            line += f", weights from {d['source']}"
        if d.get("n_negative"):
            line += f", {d['n_negative']} negative ({d['negative_fraction']:.1%} of Σ|w|, {d['negative_weights']})"
        if d.get("bootstrap_seed") is not None:
            line += f", Poisson bootstrap seed {d['bootstrap_seed']}"
        return line
