"""What a surrogate takes in, checked: training events turned into target and condition matrices (non-finite
values, the preprocessing's domain, event weights), discrete targets refused, extreme values and conditions outside
the training range warned about, and the conditions a sampler is given (records, DataFrame, dict or array) turned
into one float64 matrix."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np

from ..arguments import check_choice, check_numeric_matrix, check_records, describe, is_pandas
from ..errors import InputError
from ..event_weights import event_weights
from ..preprocessing import OUTLIER_Z, Preprocessor, extreme_outliers
from ..records import FeatureSpec, to_matrix
from .event_transform import TargetMap

__all__ = [
    "PreparedEvents",
    "condition_matrix",
    "outside_training_range",
    "prepare_events",
    "prepare_weighted_events",
    "refuse_discrete_targets",
    "warn_extreme_outliers",
]

#: what the samplers take as ``conditions``, for messages
_CONDITION_TYPES = (
    "an awkward record array, a pandas DataFrame, a dict of columns or a numpy array (n, {k}) in the order {cols}"
)


@dataclass
class PreparedEvents:
    """Events ready to fit or score: the kept rows' flat records, target matrix ``x`` (the flow's columns: after the
    event transform, if any) and condition matrix ``c`` (float64, original units; ``None`` without conditions), their
    weights (``None`` unweighted), a report of what was dropped (``n_kept``, counts per reason) and the kept rows as
    indices into the events given."""

    flat: ak.Array
    x: np.ndarray
    c: np.ndarray | None
    weights: np.ndarray | None
    report: dict[str, Any]
    rows: np.ndarray
    #: what the weights are, for messages (``weights``, or the field they came from)
    weights_label: str = "weights"


def prepare_events(
    spec: FeatureSpec,
    preprocessor: Preprocessor,
    events: ak.Array,
    nonfinite: Literal["raise", "drop"],
    target_map: TargetMap | None = None,
) -> PreparedEvents:
    """The flat records and matrices of ``events`` (unweighted), the targets mapped to the flow's columns by
    ``target_map``; events outside the domain of the target ``preprocessor`` are dropped, counted and warned about."""
    check_choice(nonfinite, "nonfinite", ("raise", "drop"))
    flat, x, c, report = spec.flat_matrices(events, nonfinite=nonfinite)
    if target_map is not None:
        x = target_map.forward(x)
    rows = report.kept_rows if report.kept_rows is not None else np.arange(len(x))
    info = report.to_dict()
    inside = preprocessor.in_domain(x)
    if not inside.all():
        # a bounded preprocessing (e.g. paper A's scale + atanh) cannot represent these events: drop, count, warn
        n_out = int((~inside).sum())
        warnings.warn(
            f"{n_out} of {len(x)} events ({n_out / len(x):.2%}) lie outside the domain of the target "
            "preprocessing and were dropped",
            stacklevel=3,
        )
        flat, x, rows = flat[inside], x[inside], rows[inside]
        c = None if c is None else c[inside]
        info["dropped_outside_preprocessing_domain"] = n_out
        info["n_kept"] = len(x)
    return PreparedEvents(flat, x, c, None, info, rows)


def prepare_weighted_events(
    spec: FeatureSpec,
    preprocessor: Preprocessor,
    events: ak.Array,
    weights: Any,
    nonfinite: Literal["raise", "drop"],
    drop_nonfinite_weights: bool,
    target_map: TargetMap | None = None,
) -> PreparedEvents:
    """:func:`prepare_events` with the events' ``weights`` (a field name or one weight per event; ``None``
    unweighted) kept with their rows; events with NaN/inf weights dropped (``drop_nonfinite_weights``) and
    counted. :class:`InputError` when the kept weights do not sum to > 0."""
    if weights is None:
        return prepare_events(spec, preprocessor, events, nonfinite, target_map)
    check_records(events, "events")
    w_all, finite, label = event_weights(events, weights, drop_nonfinite=drop_nonfinite_weights)
    p = prepare_events(spec, preprocessor, events, nonfinite, target_map)
    w, ok = w_all[p.rows], finite[p.rows]
    flat, x, c, rows = p.flat, p.x, p.c, p.rows
    if not ok.all():
        p.report["dropped_nonfinite_weights"] = int((~ok).sum())
        p.report["n_kept"] = int(ok.sum())
        flat, x, w, rows = flat[ok], x[ok], w[ok], rows[ok]
        c = None if c is None else c[ok]
    if not w.sum() > 0:
        raise InputError(
            f"{label} sum to {w.sum():.6g} (≤ 0) over the {len(w)} events kept for training; a weighted sample "
            "must have a positive sum of weights"
        )
    return PreparedEvents(flat, x, c, w, p.report, rows, label)


def refuse_discrete_targets(spec: FeatureSpec, events: ak.Array) -> None:
    """A flow learns a continuous density: boolean and integer target columns are refused (docs/amplification.md:
    discrete columns condition a flow instead)."""
    discrete = spec.discrete_columns(events, spec.targets)
    if discrete:
        col, kind = next(iter(discrete.items()))
        what = "booleans" if kind == "bool" else "integers"
        others = f" (and {sorted(discrete)[1:]})" if len(discrete) > 1 else ""
        raise InputError(
            f"target column {col!r} holds {what} ({kind}){others}: a flow learns a continuous density and would "
            f"generate non-integer values; use a discrete column as a condition, or, if it is a continuous quantity "
            f"stored as {what}, cast it to float explicitly: "
            f"events = ak.with_field(events, ak.values_astype(events[{col!r}], np.float64), {col!r})"
        )


def warn_extreme_outliers(
    x: np.ndarray, c: np.ndarray | None, rows: np.ndarray, columns: Sequence[str], what: str
) -> None:
    """Warn, naming the rows (of the events given), about values more than :data:`OUTLIER_Z` robust standard
    deviations from their column's median: a few such values (overflows, sentinels) take over a fitted standard
    deviation or range and the flow learns nonsense. ``columns``: those of ``x`` then ``c``; ``what`` names the
    events (``training``)."""
    columns = list(columns)
    matrix = x if c is None else np.hstack([x, c])
    found = extreme_outliers(matrix, columns)
    if not found:
        return
    n_rows = len(np.unique(np.concatenate(list(found.values()))))
    parts = []
    for col, idx in found.items():
        j = columns.index(col)
        shown = [int(r) for r in rows[idx[:10]]]
        values = ", ".join(f"{v:.3g}" for v in matrix[idx[:10], j])
        parts.append(f"column {col!r}: rows {shown}{' …' if len(idx) > 10 else ''} (values {values})")
    warnings.warn(
        f"{n_rows} of {len(matrix)} {what} events hold extreme values, more than {OUTLIER_Z:.0e} robust standard "
        f"deviations from the median (robust z-score |x − median| / (1.4826 MAD)): {'; '.join(parts)}. The "
        "preprocessing and the flow are fitted to them: fix or remove these rows (overflows or sentinel values?)",
        stacklevel=3,
    )


def _frame_matrix(frame: Any, columns: list[str]) -> np.ndarray:
    """The float64 matrix of ``columns`` of a pandas DataFrame, by name (missing values → NaN)."""
    present = [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in present]
    if missing:
        raise InputError(
            f"the conditions lack column(s) {missing}; this model needs {columns}, the DataFrame has {present}"
        )
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        series = frame[col]
        if getattr(series.dtype, "kind", "O") not in "biuf":
            raise InputError(f"condition column {col!r} of the DataFrame has dtype {series.dtype}, not numbers")
        out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def condition_matrix(spec: FeatureSpec, conditions: Any, ranges: Mapping[str, Sequence[float]]) -> np.ndarray:
    """The float64 condition matrix (n, len(spec.conditions)) of records, a DataFrame, a dict of columns or an
    array; non-finite values refused, values outside the training ``ranges`` (column → [min, max]) warned about."""
    columns = list(spec.conditions)
    if is_pandas(conditions, "DataFrame"):
        c = _frame_matrix(conditions, columns)
    elif is_pandas(conditions, "Series"):
        raise InputError(
            f"conditions must be a table with columns {columns}, got a pandas Series: pass a DataFrame "
            "(series.to_frame())"
        )
    elif isinstance(conditions, (np.ndarray, list, tuple)):
        c = check_numeric_matrix(conditions, "conditions", columns)
    elif not isinstance(conditions, (ak.Array, Mapping)):
        raise InputError(
            "conditions must be "
            + _CONDITION_TYPES.format(k=len(columns), cols=columns)
            + f", got {describe(conditions)}"
        )
    else:
        try:
            events = ak.Array(dict(conditions)) if isinstance(conditions, Mapping) else conditions
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"conditions given as a dict must hold one array per column, all of one length ({exc})"
            ) from None
        cond_spec = FeatureSpec(
            targets=columns, objects=spec.objects, derived=spec.derived, too_few_objects=spec.too_few_objects
        )
        missing = [f for f in columns if f not in events.fields]
        if missing and not (spec.objects or spec.derived):
            raise InputError(
                f"the conditions lack column(s) {missing}; this model needs {columns}, the data have {events.fields}"
            )
        flat, report = cond_spec.flatten(events)
        if report.n_kept != report.n_input:
            raise InputError(
                f"{report.n_input - report.n_kept} of {report.n_input} condition events have too few objects "
                "for this model; select them first"
            )
        c = to_matrix(flat, columns, what="condition")
    bad = ~np.isfinite(c)
    if bad.any():
        counts = {col: int(k) for col, k in zip(columns, bad.sum(axis=0), strict=False) if k}
        raise InputError(f"non-finite condition values: counts per column {counts}")
    _warn_outside_training_range(c, columns, ranges)
    return c


def outside_training_range(values: Mapping[str, np.ndarray], ranges: Mapping[str, Sequence[float]]) -> list[str]:
    """``"name: 0.17% outside [lo, hi]"`` for each array of ``values`` with values outside its training range
    ``ranges[name]`` (widened by 1 % on each side: finite training statistics make the edges themselves fuzzy)."""
    notes = []
    for name, v in values.items():
        if name in ranges and len(v):
            lo, hi = ranges[name]
            pad = 0.01 * (hi - lo)
            frac = float(np.mean((v < lo - pad) | (v > hi + pad)))
            if frac > 0:
                notes.append(f"{name}: {frac:.2%} outside [{lo:.4g}, {hi:.4g}]")
    return notes


def _warn_outside_training_range(c: np.ndarray, columns: list[str], ranges: Mapping[str, Sequence[float]]) -> None:
    """Warn, with the fraction affected, about condition values outside the range seen in training."""
    notes = outside_training_range({col: c[:, j] for j, col in enumerate(columns)}, ranges)
    if notes:
        warnings.warn(
            "conditions outside the training range (the surrogate extrapolates there): " + "; ".join(notes),
            stacklevel=3,
        )
