"""The user-facing surrogate: feature specification + fitted preprocessing + flow + metadata.

>>> import numpy as np, awkward as ak
>>> from mcsurrogate import Surrogate
>>> rng = np.random.default_rng(0)
>>> events = ak.zip({"x": rng.normal(size=2000), "y": rng.normal(size=2000), "mu": rng.uniform(0, 40, 2000)})
>>> s = Surrogate(["x", "y"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8},
...               training={"epochs": 1, "device": "cpu"}).fit(events, progress=False)
>>> s.sample(conditions=events[:5], seed=1).fields
['x', 'y', 'mu']

A model directory holds ``config.json`` (schema-versioned), ``preprocessing.json``,
``weights.safetensors`` and ``metrics.json``; nothing is pickled.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import functools
import json
import os
import types
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .arguments import (
    check_bool,
    check_choice,
    check_columns,
    check_int,
    check_numeric_matrix,
    check_path,
    check_records,
    check_seed,
    describe,
    is_pandas,
)
from .errors import InputError, ModelDirectoryError
from .event_weights import WeightSummary, cell_resample, event_weights, poisson_bootstrap
from .files import atomic_directory, atomic_write_text, output_lock, read_json
from .flows import FLOW_FAMILIES, FlowConfig, FlowModel, build_flow
from .flows.distilled import DistillConfig, DistilledFlow, MLPSampler, distill_flow
from .persistence import load_tensors, save_tensors
from .preprocessing import OUTLIER_Z, Preprocessor, extreme_outliers
from .records import FeatureSpec, from_matrix, to_matrix, to_objects
from .training import (
    Split,
    TrainConfig,
    TrainResult,
    fingerprint,
    resolve_device,
    split_indices,
    train_flow,
    weighted_nll,
)

__all__ = ["MODEL_FORMAT", "NEGATIVE_WEIGHTS", "SCHEMA_VERSION", "Surrogate", "check_schema_version"]

MODEL_FORMAT = "mcsurrogate.surrogate"
#: the newest model schema this version reads; 1: a flow, 2: adds ``distilled_sampler`` (written only by distilled
#: surrogates, so that an older mcsurrogate refuses them clearly instead of failing on the student's weights), 3: the
#: distilled sampler's ``precision`` (a schema-2 directory samples in float32)
SCHEMA_VERSION = 3
#: how :meth:`Surrogate.fit` trains negative event weights: as they are, or cell-resampled to non-negative ones first
NEGATIVE_WEIGHTS = ("signed", "cell-resampling")
_FILES = ("config.json", "preprocessing.json", "weights.safetensors", "metrics.json")


def _as_flow_config(flow: FlowConfig | str | Mapping[str, Any]) -> FlowConfig:
    if isinstance(flow, FlowConfig):
        return flow
    if isinstance(flow, str):
        return FlowConfig(model=flow)
    if not isinstance(flow, Mapping):
        raise InputError(
            f"flow must be a family name ({', '.join(FLOW_FAMILIES)}), a FlowConfig or a dict of its fields, "
            f"got {describe(flow)}"
        )
    return FlowConfig.from_dict(dict(flow))


def _as_train_config(training: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    if training is None:
        return TrainConfig()
    if isinstance(training, TrainConfig):
        return training
    if not isinstance(training, Mapping):
        raise InputError(f"training must be a TrainConfig or a dict of its fields, got {describe(training)}")
    return TrainConfig.from_dict(dict(training))


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


#: what the samplers take as ``conditions``, for messages
_CONDITION_TYPES = (
    "an awkward record array, a pandas DataFrame, a dict of columns or a numpy array (n, {k}) in the order {cols}"
)


def check_schema_version(config: Mapping[str, Any], file: Path, newest: int, what: str) -> int:
    """``config["schema_version"]``, checked: present, an integer, ≥ 1 and at most ``newest`` (else "upgrade");
    :class:`ModelDirectoryError` naming ``file`` otherwise. ``what`` names the kind of directory (``model``)."""
    if "schema_version" not in config:
        raise ModelDirectoryError(
            f"{file} has no 'schema_version' (every {what} mcsurrogate writes has one): damaged or not mcsurrogate's"
        )
    version = config["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelDirectoryError(
            f"{file}: schema_version must be an integer (1 to {newest} for this mcsurrogate {__version__}), "
            f"got {describe(version)}"
        )
    if version < 1:
        raise ModelDirectoryError(
            f"{file}: schema_version {version} is not a {what} schema mcsurrogate ever wrote (1 to {newest}); "
            "the file is damaged"
        )
    if version > newest:
        raise ModelDirectoryError(
            f"{file}: {what} schema_version {version} is newer than this mcsurrogate {__version__} reads "
            f"(schema {newest}); upgrade mcsurrogate"
        )
    return version


def _json_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of a field type of a configuration dataclass (int, float, str, bool, Literal, X | None,
    tuples and lists, nested dataclasses)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is type(None):
        return {"type": "null"}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_json_schema(a) for a in args]}
    if origin in (tuple, list):
        return {"type": "array", "items": _json_schema(args[0])} if args else {"type": "array"}
    if dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp)
    return {}


def _dataclass_schema(cls: Any, required: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON schema of a configuration dataclass's ``to_dict``: its fields' types, those without a default (and
    ``required``) required, no other keys."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "properties": {f.name: _json_schema(hints[f.name]) for f in fields},
        "required": sorted(
            {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
            | set(required)
        ),
        "additionalProperties": False,
    }


@functools.cache
def _config_schema() -> dict[str, Any]:
    """The JSON schema of ``config.json`` (after its format and schema version are checked)."""
    flow = _dataclass_schema(FlowConfig, required=["model"])
    flow["properties"]["model"] = {"enum": list(FLOW_FAMILIES)}
    return {
        "type": "object",
        "required": ["format", "schema_version", "spec", "flow", "training"],
        "properties": {
            "spec": _dataclass_schema(FeatureSpec),
            "flow": flow,
            "training": _dataclass_schema(TrainConfig),
            "distilled_sampler": {"anyOf": [{"type": "null"}, _dataclass_schema(DistillConfig)]},
            "mcsurrogate_version": {"type": "string"},
            "saved": {"type": "string"},
        },
    }


def _validate_config(config: Mapping[str, Any], file: Path) -> None:
    """Check ``config.json`` against :func:`_config_schema`; :class:`ModelDirectoryError` names each wrong key."""
    import jsonschema

    problems = []
    errors = jsonschema.Draft202012Validator(_config_schema()).iter_errors(config)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, Mapping):
            for key in error.validator_value:
                if key not in error.instance:
                    name = f"{where}.{key}" if where else key
                    problems.append(f"{name!r} is missing")
        else:
            problems.append(f"{where or 'the top level'!r}: {error.message}")
    if problems:
        raise ModelDirectoryError(f"{file}: " + "; ".join(problems))


class Surrogate:
    """A conditional (or unconditional) generative model of ``targets`` given ``conditions``.

    Parameters
    ----------
    targets, conditions:
        Lists of column names (flat fields of the event records, or columns that ``spec`` derives). Units are
        whatever the data carry (GeV, radians); samples come back in the same units. Targets must be continuous:
        :meth:`fit` refuses boolean and integer target columns (a flow would return non-integer values for them);
        such columns can be conditions, or, if they hold a continuous quantity, be cast to float explicitly.
    spec:
        A :class:`~mcsurrogate.records.FeatureSpec` instead of ``targets``/``conditions``, to flatten jagged
        objects into slots (``photon1_pt`` …) and compute derived observables.
    flow:
        A family name (``maf``, ``made-mog``, ``maf-made-mog``, ``rqs-ar``, ``rqs-coupling``, ``realnvp``,
        ``glow``), a :class:`~mcsurrogate.flows.FlowConfig`, or a dict of its fields.
    preprocessing, condition_preprocessing:
        Preprocessor presets (``standardize``, ``logit``, ``gauss-rank``, ``minmax``, ``identity``) or
        per-column chains, fitted on the training split only.
    training:
        A :class:`~mcsurrogate.training.TrainConfig` or a dict of its fields.
    """

    def __init__(
        self,
        targets: Sequence[str] | None = None,
        conditions: Sequence[str] | None = None,
        *,
        spec: FeatureSpec | None = None,
        flow: FlowConfig | str | Mapping[str, Any] = "maf",
        preprocessing: Any = "standardize",
        condition_preprocessing: Any = "standardize",
        training: TrainConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if spec is None:
            if targets is None or (isinstance(targets, (list, tuple)) and not targets):
                raise InputError(
                    "a surrogate needs at least one target column (targets=[...] or spec=FeatureSpec(...))"
                )
            spec = FeatureSpec(
                targets=check_columns(targets, "targets"),
                conditions=[] if conditions is None else check_columns(conditions, "conditions", allow_empty=True),
            )
        elif targets is not None or conditions is not None:
            raise InputError("give either targets/conditions or spec, not both")
        elif isinstance(spec, Mapping):
            spec = FeatureSpec.from_dict(spec)
        elif not isinstance(spec, FeatureSpec):
            raise InputError(f"spec must be a FeatureSpec or a dict of its fields, got {describe(spec)}")
        overlap = sorted(set(spec.targets) & set(spec.conditions))
        if overlap:
            raise InputError(f"columns {overlap} are listed both as targets and as conditions")
        self.spec = spec
        self.flow_config = _as_flow_config(flow)
        self.train_config = _as_train_config(training)
        self.preprocessor = (
            preprocessing if isinstance(preprocessing, Preprocessor) else Preprocessor(spec.targets, preprocessing)
        )
        self.condition_preprocessor = (
            None
            if not spec.conditions
            else condition_preprocessing
            if isinstance(condition_preprocessing, Preprocessor)
            else Preprocessor(spec.conditions, condition_preprocessing)
        )
        for what, pre, columns in (
            ("preprocessing", self.preprocessor, spec.targets),
            ("condition_preprocessing", self.condition_preprocessor, spec.conditions),
        ):
            if pre is not None and list(pre.columns) != list(columns):
                raise InputError(
                    f"{what} is a Preprocessor of columns {pre.columns}, but the model's "
                    f"{'targets' if what == 'preprocessing' else 'conditions'} {list(columns)} need one of those, in order"
                )
        self.model: FlowModel | DistilledFlow | None = None
        self.distill_config: DistillConfig | None = None
        self.result: TrainResult | None = None
        self.metrics: dict[str, Any] = {}
        self.device = torch.device("cpu")

    # -- properties ------------------------------------------------------------------------------------
    @property
    def targets(self) -> list[str]:
        """Target column names, in the model's order."""
        return list(self.spec.targets)

    @property
    def conditions(self) -> list[str]:
        """Condition column names, in the model's order (empty for an unconditional model)."""
        return list(self.spec.conditions)

    @property
    def noise_features(self) -> int:
        """Dimension of the standard-normal noise one sampled event consumes (see ``noise=`` of :meth:`sample`)."""
        return self._require_model().noise_features

    @property
    def conditional(self) -> bool:
        return bool(self.spec.conditions)

    def _require_model(self) -> FlowModel | DistilledFlow:
        if self.model is None:
            raise InputError("this surrogate is not trained yet: call fit(...) or Surrogate.load(...)")
        return self.model

    # -- data ------------------------------------------------------------------------------------------
    def _prepare(
        self, events: ak.Array, nonfinite: Literal["raise", "drop"]
    ) -> tuple[ak.Array, np.ndarray, np.ndarray | None, dict[str, Any], np.ndarray]:
        """Flat records, target and condition matrices (float64), a report of what was dropped and the kept rows (as
        indices into ``events``)."""
        check_choice(nonfinite, "nonfinite", ("raise", "drop"))
        flat, x, c, report = self.spec.flat_matrices(events, nonfinite=nonfinite)
        rows = report.kept_rows if report.kept_rows is not None else np.arange(len(x))
        info = report.to_dict()
        inside = self.preprocessor.in_domain(x)
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
        return flat, x, c, info, rows

    def _refuse_discrete_targets(self, events: ak.Array) -> None:
        """A flow learns a continuous density: boolean and integer target columns are refused (docs/amplification.md:
        discrete columns condition a flow instead)."""
        discrete = self.spec.discrete_columns(events, self.targets)
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

    def _warn_extreme_outliers(self, x: np.ndarray, c: np.ndarray | None, rows: np.ndarray, what: str) -> None:
        """Warn, naming the rows (of the events given), about values more than :data:`OUTLIER_Z` robust standard
        deviations from their column's median: a few such values (overflows, sentinels) take over a fitted standard
        deviation or range and the flow learns nonsense."""
        matrix = x if c is None else np.hstack([x, c])
        found = extreme_outliers(matrix, self.targets + self.conditions)
        if not found:
            return
        n_rows = len(np.unique(np.concatenate(list(found.values()))))
        parts = []
        for col, idx in found.items():
            j = (self.targets + self.conditions).index(col)
            shown = [int(r) for r in rows[idx[:10]]]
            values = ", ".join(f"{v:.3g}" for v in matrix[idx[:10], j])
            parts.append(f"column {col!r}: rows {shown}{' …' if len(idx) > 10 else ''} (values {values})")
        warnings.warn(
            f"{n_rows} of {len(matrix)} {what} events hold extreme values, more than {OUTLIER_Z:.0e} robust standard "
            f"deviations from the median (robust z-score |x − median| / (1.4826 MAD)): {'; '.join(parts)}. The "
            "preprocessing and the flow are fitted to them: fix or remove these rows (overflows or sentinel values?)",
            stacklevel=3,
        )

    def _condition_matrix(self, conditions: Any) -> np.ndarray:
        """The float64 condition matrix (n, len(conditions)) of records, a DataFrame, a dict of columns or an array."""
        if is_pandas(conditions, "DataFrame"):
            c = _frame_matrix(conditions, self.conditions)
        elif is_pandas(conditions, "Series"):
            raise InputError(
                f"conditions must be a table with columns {self.conditions}, got a pandas Series: pass a DataFrame "
                "(series.to_frame())"
            )
        elif isinstance(conditions, (np.ndarray, list, tuple)):
            c = check_numeric_matrix(conditions, "conditions", self.conditions)
        elif not isinstance(conditions, (ak.Array, Mapping)):
            raise InputError(
                "conditions must be "
                + _CONDITION_TYPES.format(k=len(self.conditions), cols=self.conditions)
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
                targets=self.conditions,
                objects=self.spec.objects,
                derived=self.spec.derived,
                too_few_objects=self.spec.too_few_objects,
            )
            missing = [f for f in self.conditions if f not in events.fields]
            if missing and not (self.spec.objects or self.spec.derived):
                raise InputError(
                    f"the conditions lack column(s) {missing}; this model needs {self.conditions}, "
                    f"the data have {events.fields}"
                )
            flat, report = cond_spec.flatten(events)
            if report.n_kept != report.n_input:
                raise InputError(
                    f"{report.n_input - report.n_kept} of {report.n_input} condition events have too few objects "
                    "for this model; select them first"
                )
            c = to_matrix(flat, self.conditions, what="condition")
        bad = ~np.isfinite(c)
        if bad.any():
            counts = {col: int(k) for col, k in zip(self.conditions, bad.sum(axis=0), strict=False) if k}
            raise InputError(f"non-finite condition values: counts per column {counts}")
        self._warn_outside_training_range(c)
        return c

    def _warn_outside_training_range(self, c: np.ndarray) -> None:
        """Warn, with the fraction affected, about condition values outside the range seen in training."""
        ranges = self.metrics.get("condition_ranges") or {}
        notes = []
        for j, col in enumerate(self.conditions):
            if col in ranges and len(c):
                lo, hi = ranges[col]
                pad = 0.01 * (hi - lo)  # finite training statistics: the edges themselves are fuzzy
                frac = float(np.mean((c[:, j] < lo - pad) | (c[:, j] > hi + pad)))
                if frac > 0:
                    notes.append(f"{col}: {frac:.2%} outside [{lo:.4g}, {hi:.4g}]")
        if notes:
            warnings.warn(
                "conditions outside the training range (the surrogate extrapolates there): " + "; ".join(notes),
                stacklevel=3,
            )

    # -- training --------------------------------------------------------------------------------------
    def _weighted_prepare(
        self,
        events: ak.Array,
        weights: Any,
        nonfinite: Literal["raise", "drop"],
        drop_nonfinite_weights: bool,
    ) -> tuple[ak.Array, np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any], np.ndarray, str]:
        """:meth:`_prepare` with the events' weights (``None`` unweighted) kept with their rows: ``(flat, x, c, w,
        report, rows, label)``; events with NaN/inf weights dropped (``drop_nonfinite_weights``) and counted."""
        if weights is None:
            flat, x, c, info, rows = self._prepare(events, nonfinite)
            return flat, x, c, None, info, rows, "weights"
        check_records(events, "events")
        w_all, finite, label = event_weights(events, weights, drop_nonfinite=drop_nonfinite_weights)
        flat, x, c, info, rows = self._prepare(events, nonfinite)
        w, ok = w_all[rows], finite[rows]
        if not ok.all():
            info["dropped_nonfinite_weights"] = int((~ok).sum())
            info["n_kept"] = int(ok.sum())
            flat, x, w, rows = flat[ok], x[ok], w[ok], rows[ok]
            c = None if c is None else c[ok]
        if not w.sum() > 0:
            raise InputError(
                f"{label} sum to {w.sum():.6g} (≤ 0) over the {len(w)} events kept for training; a weighted sample "
                "must have a positive sum of weights"
            )
        return flat, x, c, w, info, rows, label

    def fit(
        self,
        events: ak.Array,
        *,
        weights: str | np.ndarray | Sequence[float] | None = None,
        drop_nonfinite_weights: bool = False,
        negative_weights: Literal["signed", "cell-resampling"] = "signed",
        bootstrap_seed: int | None = None,
        nonfinite: Literal["raise", "drop"] = "raise",
        validation: ak.Array | None = None,
        validation_weights: str | np.ndarray | Sequence[float] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = True,
        progress: bool | None = None,
    ) -> Surrogate:
        """Split ``events`` (train/validation/test by ``training.fractions`` and seed), fit the preprocessing on
        the training split, train the flow and keep the best epoch. Returns ``self``.

        ``weights``: event weights, the name of a numeric field of ``events`` or an array of one weight per event
        (``None``: unweighted). The flow then maximises the weighted likelihood (−Σ w log p / Σ w, see
        :mod:`mcsurrogate.training`), the preprocessing is fitted with the weights (weighted moments, weighted
        quantiles), the split keeps each weight with its event, and model selection and the test NLL are weighted.
        Single weights may be negative; the sample's must sum to > 0 (else :class:`InputError`), and NaN/inf weights
        are refused unless ``drop_nonfinite_weights=True`` drops those events (counted in ``metrics["data"]``).
        ``negative_weights``: train negative weights as they are (``signed``, the default: on a known-answer
        benchmark it matched a flow trained on exact samples of the Kish size, KL 0.0053 against 0.0051, where cell
        resampling's smoothing cost 0.0065; ``benchmarks/bench_weighted_training.py``) or make them non-negative
        first by cell resampling of the training split in the flow's space (``cell-resampling``,
        :func:`~mcsurrogate.event_weights.cell_resample`). ``metrics["weights"]`` records the training split's Kish
        effective size (Σw)²/Σw² (the event count when unweighted) and what was done.
        ``bootstrap_seed``: a bootstrap replica: the training split's weights (1 when unweighted) are multiplied by
        Poisson(1) draws from this seed; the split itself, and so the validation and test events, stay those of
        ``training.seed``, so replicas differ only in the training statistics.

        ``validation``: the model-selection events, when the caller keeps them apart (e.g. several detector
        smearings of the same truth events must not straddle training and validation); every row of ``events``
        then trains and ``training.fractions`` is not used. Their weights: ``validation_weights`` (a field name or an
        array), else the field ``weights`` names, else none.
        ``checkpoint_dir`` keeps ``last``/``best`` checkpoints; a run killed and started again with the same
        data, configuration and directory resumes where it stopped. The directory is locked while the flow trains
        (:func:`~mcsurrogate.files.output_lock`): a second fit into it from another process raises
        :class:`~mcsurrogate.errors.OutputExistsError` naming it, instead of interleaving checkpoints.
        Values more than :data:`~mcsurrogate.preprocessing.OUTLIER_Z` robust standard deviations from their
        column's median (overflows, sentinels such as ±1e30) raise a warning that names the rows.
        The flow learns the weighted density; what it generates is unweighted (weight 1 per event).
        """
        if checkpoint_dir is not None:
            checkpoint_dir = check_path(checkpoint_dir, "checkpoint_dir")
        check_bool(resume, "resume")
        check_bool(drop_nonfinite_weights, "drop_nonfinite_weights")
        check_choice(negative_weights, "negative_weights", NEGATIVE_WEIGHTS)
        if bootstrap_seed is not None:
            bootstrap_seed = check_seed(bootstrap_seed, "bootstrap_seed", generator=False)
        if validation_weights is not None and validation is None:
            raise InputError("validation_weights are the weights of validation events: pass validation= too")
        _, x, c, w, data_report, rows, label = self._weighted_prepare(
            events, weights, nonfinite, drop_nonfinite_weights
        )
        self._refuse_discrete_targets(events)
        self._warn_extreme_outliers(x, c, rows, "training")
        cfg = self.train_config
        if validation is None:
            split = split_indices(len(x), cfg.fractions, cfg.seed)
        else:
            if validation_weights is None and isinstance(weights, str):
                if weights not in check_records(validation, "validation").fields:
                    raise InputError(
                        f"the validation events lack the weights column {weights!r} of the training events; pass "
                        "validation_weights= (a field name or an array; np.ones(n) for unweighted validation events)"
                    )
                validation_weights = weights
            _, xv, cv, wv, val_report, val_rows, _ = self._weighted_prepare(
                validation, validation_weights, nonfinite, drop_nonfinite_weights
            )
            self._refuse_discrete_targets(validation)
            self._warn_extreme_outliers(xv, cv, val_rows, "validation")
            if len(x) == 0 or len(xv) == 0:
                raise InputError(f"no events to {'train on' if len(x) == 0 else 'validate on'}")
            data_report["validation"] = val_report
            n = len(x)
            if w is not None or wv is not None:
                w = np.concatenate([np.ones(n) if w is None else w, np.ones(len(xv)) if wv is None else wv])
            x = np.concatenate([x, xv])
            c = None if c is None or cv is None else np.concatenate([c, cv])
            split = Split(np.arange(n), np.arange(n, len(x)), np.arange(0))
        w_train = None if w is None or weights is None else w[split.train]  # unweighted training events: None
        if bootstrap_seed is not None:
            w_train = (np.ones(len(split.train)) if w_train is None else w_train) * poisson_bootstrap(
                len(split.train), bootstrap_seed
            )
        if w_train is not None and not w_train.sum() > 0:
            raise InputError(
                f"the training split's {label} sum to {w_train.sum():.6g} (≤ 0); a weighted training sample must "
                "have a positive sum of weights (more events, or another split or bootstrap seed)"
            )
        self.preprocessor.fit(x[split.train], w_train)
        if self.condition_preprocessor is not None and c is not None:
            self.condition_preprocessor.fit(c[split.train], w_train)
        # a range fitted on the training split (paper B's min-max + logit) need not cover every validation or
        # test event of a heavy-tailed feature: those cannot be scored; drop, count, warn (as for bounded targets)
        parts = {"train": split.train, "validation": split.validation, "test": split.test}
        outside = {}
        for name in ("validation", "test"):
            idx = parts[name]
            ok = self.preprocessor.in_domain(x[idx])
            if c is not None and self.condition_preprocessor is not None:
                ok &= self.condition_preprocessor.in_domain(c[idx])
            if not ok.all():
                outside[name] = int((~ok).sum())
                parts[name] = idx[ok]
        if outside:
            warnings.warn(
                f"events outside the preprocessing ranges fitted on the training split were left out of "
                f"{', '.join(f'{k} ({v})' for k, v in outside.items())}",
                stacklevel=2,
            )
            data_report["outside_fitted_range"] = outside
        w_val = None if w is None else w[parts["validation"]]
        w_test = None if w is None else w[parts["test"]]
        if w_val is not None and not w_val.sum() > 0:
            raise InputError(
                f"the validation split's {label} sum to {w_val.sum():.6g} (≤ 0): the weighted validation NLL is "
                "undefined (more events, or another split seed)"
            )
        xt, xv, xs = (self.preprocessor.forward(x[i]) for i in parts.values())
        ct = cv = cs = None
        if c is not None and self.condition_preprocessor is not None:
            ct, cv, cs = (self.condition_preprocessor.forward(c[i]) for i in parts.values())
        summary = WeightSummary.of(
            None if weights is None else weights if isinstance(weights, str) else "array",
            w_train,
            len(split.train),
            dropped_nonfinite=int(data_report.get("dropped_nonfinite_weights", 0)),
            bootstrap_seed=bootstrap_seed,
        )
        if w_train is not None and (w_train < 0).any():
            summary.negative_weights = negative_weights
            if negative_weights == "cell-resampling":
                cells = cell_resample(xt if ct is None else np.hstack([xt, ct]), w_train)
                w_train = cells.weights
                summary.cells = cells.to_dict()
        torch.manual_seed(cfg.seed)
        self.model = build_flow(self.flow_config, len(self.targets), len(self.conditions) or None)
        fingerprinted = [self._config_dict(), x[split.train], c[split.train] if c is not None else None]
        run_id = fingerprint(*fingerprinted, *(() if w_train is None else (w_train,)))
        with (
            contextlib.ExitStack() as stack
        ):  # one writer per checkpoint directory (another process: OutputExistsError)
            if checkpoint_dir is not None:
                stack.enter_context(
                    output_lock(checkpoint_dir, purpose=f"Surrogate.fit, checkpoints in {checkpoint_dir}")
                )
            self.result = train_flow(
                self.model,
                xt,
                ct,
                xv,
                cv,
                cfg,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                run_id=run_id,
                progress=progress,
                w_train=w_train,
                w_val=w_val,
            )
        self.device = resolve_device(cfg.device)
        test_nll = None
        if len(xs):
            log_p = self._flow_log_prob(xs, cs)
            test_nll = float(-np.mean(log_p)) if w_test is None else weighted_nll(log_p, w_test)
        self.metrics = {
            "data": data_report,
            "split": split.sizes(),
            "weights": summary.to_dict(),
            "training": self.result.to_dict(),
            "test_nll_flow_space": test_nll,
            "n_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "condition_ranges": (
                {}
                if c is None
                else {
                    col: [float(c[split.train, j].min()), float(c[split.train, j].max())]
                    for j, col in enumerate(self.conditions)
                }
            ),
        }
        return self

    def split(
        self,
        events: ak.Array,
        *,
        nonfinite: Literal["raise", "drop"] = "raise",
        weights: str | np.ndarray | Sequence[float] | None = None,
        drop_nonfinite_weights: bool = False,
    ) -> dict[str, ak.Array]:
        """The train/validation/test split of ``events`` that :meth:`fit` used (same config, seed and weight
        arguments). With ``weights``, each part's records carry their weights (as the field ``weights`` names, or
        ``weight`` for an array)."""
        flat, _, _, w, _, _, _ = self._weighted_prepare(events, weights, nonfinite, drop_nonfinite_weights)
        if w is not None:
            flat = ak.with_field(flat, w, weights if isinstance(weights, str) else "weight")
        s = split_indices(len(flat), self.train_config.fractions, self.train_config.seed)
        return {"train": flat[s.train], "validation": flat[s.validation], "test": flat[s.test]}

    # -- evaluation ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _flow_log_prob(self, y: np.ndarray, cy: np.ndarray | None, batch_size: int = 65536) -> np.ndarray:
        model = self._require_model().to(self.device).eval()
        out = []
        for i in range(0, len(y), batch_size):
            yt = torch.as_tensor(y[i : i + batch_size], dtype=torch.float32, device=self.device)
            ct = (
                None if cy is None else torch.as_tensor(cy[i : i + batch_size], dtype=torch.float32, device=self.device)
            )
            out.append(model.log_prob(yt, ct).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def log_prob(self, events: ak.Array) -> np.ndarray:
        """Log density of the targets given the conditions, in the data's original units, shape (n,)."""
        _, x, c, _, _ = self._prepare(events, "raise")
        y = self.preprocessor.forward(x)
        cy = None if c is None or self.condition_preprocessor is None else self.condition_preprocessor.forward(c)
        return self._flow_log_prob(y, cy) + self.preprocessor.log_abs_det(x)

    # -- sampling --------------------------------------------------------------------------------------
    def sample_batches(
        self,
        n: int | None = None,
        conditions: ak.Array | np.ndarray | Mapping[str, Any] | None = None,
        *,
        seed: int | np.random.Generator = 0,
        batch_size: int = 100_000,
        progress: bool | None = None,
        noise: np.ndarray | None = None,
    ) -> Iterator[ak.Array]:
        """Yield the sample of :meth:`sample` in batches of at most ``batch_size`` events (bounded memory).

        ``noise`` (shape (n, noise_features), standard normal) replaces the seeded draw, e.g. noise keyed to
        event numbers so that a result does not depend on how the events were partitioned.
        """
        for x, c in self._sample_matrices(n, conditions, seed, batch_size, progress, noise):
            yield self._records(x, c)

    def sample_array(
        self,
        n: int | None = None,
        conditions: ak.Array | np.ndarray | Mapping[str, Any] | None = None,
        *,
        seed: int | np.random.Generator = 0,
        batch_size: int = 100_000,
        progress: bool | None = None,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """The targets of :meth:`sample` as one float64 matrix ``(n, len(targets))``, columns in :attr:`targets`
        order, original units: the same numbers for the same arguments, without building records (the fast path
        for columnar code that has its conditions as a matrix in :attr:`conditions` order)."""
        parts = [x for x, _ in self._sample_matrices(n, conditions, seed, batch_size, progress, noise)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros((0, len(self.targets)))

    def _sample_matrices(
        self,
        n: int | None,
        conditions: ak.Array | np.ndarray | Mapping[str, Any] | None,
        seed: int | np.random.Generator,
        batch_size: int,
        progress: bool | None,
        noise: np.ndarray | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Batches of (targets in original units, their condition rows or None)."""
        model = self._require_model().to(self.device).eval()
        if n is not None:
            n = check_int(n, "n", minimum=0)
        seed = check_seed(seed)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        c = None
        if self.conditional:
            if conditions is None:
                raise InputError(f"this surrogate is conditional: pass conditions with columns {self.conditions}")
            c = self._condition_matrix(conditions)
            if n is not None and n != len(c):
                raise InputError(f"n={n} differs from the number of condition rows ({len(c)}); pass one or the other")
            n = len(c)
            cy = self.condition_preprocessor.forward(c) if self.condition_preprocessor is not None else c
        else:
            if conditions is not None:
                raise InputError("this surrogate is unconditional: pass n, not conditions")
            if n is None or n < 0:
                raise InputError(f"pass the number of events to sample as a non-negative n, got {n!r}")
        if noise is not None:
            raw = np.asarray(noise) if not isinstance(noise, np.ndarray) else noise
            if raw.dtype.kind not in "biuf":
                raise InputError(f"noise must hold numbers (standard-normal draws), got {describe(noise)}")
            noise = raw.astype(np.float32, copy=False)
            if noise.shape != (n, model.noise_features):
                raise InputError(f"noise must have shape ({n}, {model.noise_features}); got {noise.shape}")
            bad = int(np.count_nonzero(~np.isfinite(noise)))
            if bad:
                raise InputError(f"noise holds {bad} non-finite values (NaN/inf); it must be standard-normal draws")
        bar = tqdm(
            total=n, disable=(None if progress is None else not progress), desc="sampling", unit="ev", unit_scale=True
        )
        try:
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                z = (model.draw_noise(stop - start, rng) if noise is None else torch.from_numpy(noise[start:stop])).to(
                    self.device
                )
                ctx = None if c is None else torch.as_tensor(cy[start:stop], dtype=torch.float32, device=self.device)
                with torch.inference_mode():
                    y = model.sample_from_noise(z, ctx).double().cpu().numpy()
                yield self.preprocessor.inverse(y), None if c is None else c[start:stop]
                bar.update(stop - start)
        finally:
            bar.close()

    def sample(
        self,
        n: int | None = None,
        conditions: ak.Array | np.ndarray | Mapping[str, Any] | None = None,
        *,
        seed: int | np.random.Generator = 0,
        batch_size: int = 100_000,
        progress: bool | None = None,
        noise: np.ndarray | None = None,
    ) -> ak.Array:
        """Generate events: ``n`` of them (unconditional), or one per row of ``conditions``.

        Returns flat records with the target columns (original units) and the condition columns; objects of the
        spec whose columns are all present come back too, as vector ``Momentum4D`` lists (e.g. ``photons``),
        so ``(ev.photons[:, 0] + ev.photons[:, 1]).mass`` works. Same seed, same sample, whatever ``batch_size``.
        Generated events are unweighted (weight 1 each), also when the surrogate was trained on weighted events: the
        flow learned the weighted density (reweight them with :mod:`mcsurrogate.refinement` if needed).
        """
        parts = list(
            self.sample_batches(n, conditions, seed=seed, batch_size=batch_size, progress=progress, noise=noise)
        )
        if not parts:
            return self._records(
                np.zeros((0, len(self.targets))), np.zeros((0, len(self.conditions))) if self.conditional else None
            )
        return ak.concatenate(parts) if len(parts) > 1 else parts[0]

    def _records(self, x: np.ndarray, c: np.ndarray | None) -> ak.Array:
        matrix = x if c is None else np.hstack([x, c])
        flat = from_matrix(matrix, self.targets + self.conditions)
        for slots in self.spec.objects:
            if all(col in flat.fields for col in slots.columns()):
                flat = ak.with_field(flat, to_objects(flat, slots), slots.collection)
        return flat

    # -- distillation ----------------------------------------------------------------------------------
    def distill(
        self,
        conditions: ak.Array | np.ndarray | Mapping[str, Any] | None = None,
        config: DistillConfig | Mapping[str, Any] | None = None,
        *,
        progress: bool | None = None,
    ) -> Surrogate:
        """A copy of this surrogate that samples with a distilled feed-forward network (one dense pass per event).

        The student learns this surrogate's own noise → sample map from pairs it generates at ``conditions``
        (e.g. the training events; rows are drawn with replacement); ``None`` for an unconditional surrogate.
        ``log_prob`` of the copy stays the flow's. Faster, and only as good as the regression: validate its samples
        (``metrics["distillation"]`` has the held-out squared error per target, in the flow's standardised space).
        See :mod:`mcsurrogate.flows.distilled`.
        """
        model = self._require_model()
        if isinstance(model, DistilledFlow):
            raise InputError("this surrogate is distilled already; distil the original flow")
        if config is not None and not isinstance(config, (DistillConfig, Mapping)):
            raise InputError(f"config must be a DistillConfig or a dict of its fields, got {describe(config)}")
        cfg = config if isinstance(config, DistillConfig) else DistillConfig.from_dict(dict(config or {}))
        contexts = None
        if self.conditional:
            if conditions is None:
                raise InputError(f"this surrogate is conditional: pass conditions with columns {self.conditions}")
            c = self._condition_matrix(conditions)
            contexts = self.condition_preprocessor.forward(c) if self.condition_preprocessor is not None else c
        elif conditions is not None:
            raise InputError("this surrogate is unconditional: distil without conditions")
        flow, report = distill_flow(model, contexts, cfg, device=self.device, progress=progress)
        out = copy.copy(self)
        out.model = flow.eval()
        out.distill_config = cfg
        out.metrics = dict(self.metrics) | {"distillation": report}
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def _config_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "schema_version": 1 if self.distill_config is None else 3,
            "spec": self.spec.to_dict(),
            "flow": self.flow_config.to_dict(),
            "training": self.train_config.to_dict(),
            "distilled_sampler": None if self.distill_config is None else self.distill_config.to_dict(),
        }

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model directory atomically (a temporary directory renamed into place)."""
        path = check_path(path, "path")
        overwrite = check_bool(overwrite, "overwrite")
        model = self._require_model()
        with atomic_directory(path, overwrite=overwrite) as tmp:
            config = self._config_dict() | {
                "mcsurrogate_version": __version__,
                "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write_text(tmp / "config.json", json.dumps(config, indent=2))
            pre = {
                "targets": self.preprocessor.to_dict(),
                "conditions": None if self.condition_preprocessor is None else self.condition_preprocessor.to_dict(),
            }
            atomic_write_text(tmp / "preprocessing.json", json.dumps(pre, indent=2))
            save_tensors(tmp / "weights.safetensors", model.state_dict(), {"format": MODEL_FORMAT})
            atomic_write_text(tmp / "metrics.json", json.dumps(self.metrics, indent=2, default=float))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> Surrogate:
        """Load a model directory written by :meth:`save`; never unpickles.

        Raises :class:`ModelDirectoryError` for a directory that is missing files, damaged, not written by
        mcsurrogate, or from a newer schema version.
        """
        root = check_path(path, "path")
        if not isinstance(device, (str, torch.device)):
            raise InputError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {describe(device)}")
        if not root.is_dir():
            raise ModelDirectoryError(f"{root}: no such model directory")
        if not (root / "config.json").is_file():
            raise ModelDirectoryError(
                f"{root} is not an mcsurrogate model directory (no config.json; expected {', '.join(_FILES)})"
            )
        config = read_json(root / "config.json")
        if config.get("format") != MODEL_FORMAT:
            raise ModelDirectoryError(
                f"{root}/config.json was not written by mcsurrogate (format {config.get('format')!r})"
            )
        check_schema_version(config, root / "config.json", SCHEMA_VERSION, "model")
        _validate_config(config, root / "config.json")
        missing = [f for f in _FILES if not (root / f).is_file()]
        if missing:
            raise ModelDirectoryError(f"{root} is incomplete: missing {', '.join(missing)}")
        try:
            spec = FeatureSpec.from_dict(config["spec"])
            flow = FlowConfig.from_dict(config["flow"])
            training = TrainConfig.from_dict(config["training"])
            pre = read_json(root / "preprocessing.json")
            target_pre = Preprocessor.from_dict(pre["targets"])
            cond_pre = None if pre.get("conditions") is None else Preprocessor.from_dict(pre["conditions"])
        except (KeyError, TypeError, InputError) as exc:
            raise ModelDirectoryError(f"{root}: configuration is damaged ({exc})") from exc
        if list(target_pre.columns) != list(spec.targets):
            raise ModelDirectoryError(
                f"{root}: preprocessing columns {target_pre.columns} differ from targets {spec.targets}"
            )
        obj = cls(
            spec=spec,
            flow=flow,
            training=training,
            preprocessing=target_pre,
            condition_preprocessing=cond_pre if cond_pre is not None else "standardize",
        )
        obj.condition_preprocessor = cond_pre
        teacher = build_flow(flow, len(spec.targets), len(spec.conditions) or None)
        obj.model = teacher
        if config.get("distilled_sampler") is not None:
            try:
                obj.distill_config = DistillConfig.from_dict(config["distilled_sampler"])
            except (TypeError, InputError) as exc:
                raise ModelDirectoryError(f"{root}: configuration is damaged ({exc})") from exc
            d = obj.distill_config
            obj.model = DistilledFlow(
                teacher,
                MLPSampler(teacher.features, teacher.context_features, d.hidden, d.layers, d.activation),
                d.precision,
            )
        tensors, _ = load_tensors(root / "weights.safetensors")
        try:
            obj.model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ModelDirectoryError(f"{root}/weights.safetensors does not match config.json ({exc})") from exc
        obj.model.eval()
        obj.metrics = read_json(root / "metrics.json")
        obj.device = resolve_device(device)
        return obj

    def info(self) -> dict[str, Any]:
        """Features, preprocessing, model size and training metrics, JSON-serialisable; ``training_size``: the
        training split's events and Kish effective size (and its weights' source), one line."""
        model = self._require_model()
        n_par = int(sum(p.numel() for p in model.parameters()))
        return {
            "targets": self.targets,
            "conditions": self.conditions,
            "flow": self.flow_config.to_dict(),
            "distilled_sampler": None if self.distill_config is None else self.distill_config.to_dict(),
            "training": self.train_config.to_dict(),
            "preprocessing": self.preprocessor.to_dict(),
            "n_parameters": n_par,
            "size_mb": n_par * 4 / 1e6,
            "training_size": WeightSummary.info_line(self.metrics.get("weights")),
            "metrics": self.metrics,
        }
