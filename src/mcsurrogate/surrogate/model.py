"""The :class:`Surrogate`: construction, training (:meth:`Surrogate.fit`), evaluation and the public entry points
of sampling (:mod:`.sampling`), input checks (:mod:`.inputs`) and the model directory (:mod:`.storage`)."""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch

from ..arguments import check_bool, check_choice, check_columns, check_path, check_records, check_seed, describe
from ..errors import InputError
from ..event_weights import WeightSummary, cell_resample, poisson_bootstrap
from ..files import output_lock, read_json
from ..flows import FLOW_FAMILIES, FlowConfig, FlowModel, build_flow
from ..flows.distilled import DistillConfig, DistilledFlow, distill_flow
from ..preprocessing import Preprocessor
from ..records import FeatureSpec
from ..training import (
    Split,
    TrainConfig,
    TrainResult,
    fingerprint,
    resolve_device,
    split_indices,
    train_flow,
    weighted_nll,
)
from .event_transform import EventTransform, TargetMap, as_event_transform
from .inputs import (
    condition_matrix,
    prepare_events,
    prepare_weighted_events,
    refuse_discrete_targets,
    warn_extreme_outliers,
)
from .sampling import sample_matrices, sample_records
from .storage import load_flow, model_config, read_config, write_model_directory

__all__ = ["NEGATIVE_WEIGHTS", "Surrogate"]

#: how :meth:`Surrogate.fit` trains negative event weights: as they are, or cell-resampled to non-negative ones first
NEGATIVE_WEIGHTS = ("signed", "cell-resampling")


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
        ``glow``, ``flow-matching``), a :class:`~mcsurrogate.flows.FlowConfig`, or a dict of its fields.
    preprocessing, condition_preprocessing:
        Preprocessor presets (``standardize``, ``logit``, ``gauss-rank``, ``minmax``, ``identity``) or
        per-column chains, fitted on the training split only.
    training:
        A :class:`~mcsurrogate.training.TrainConfig` or a dict of its fields.
    event_transform:
        An invertible map of whole events between the targets and the columns the flow learns (``None``: the
        targets themselves), e.g. a :class:`~mcsurrogate.phase_space.PhaseSpacePreprocessor` or its ``to_dict()``
        (registry: :data:`~mcsurrogate.surrogate.event_transform.EVENT_TRANSFORMS`). The targets stay the physical
        columns it reads (exactly those, any order); :meth:`fit` applies its ``forward`` before the per-column
        ``preprocessing``, which then names its output columns; the samplers apply its ``inverse``, so samples are
        in the targets; :meth:`log_prob` adds its ``log_abs_det``; it is saved with the model.
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
        event_transform: EventTransform | Mapping[str, Any] | None = None,
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
        self._target_map = TargetMap(spec.targets, as_event_transform(event_transform))
        self.flow_config = _as_flow_config(flow)
        self.train_config = _as_train_config(training)
        flow_columns = self._target_map.columns
        self.preprocessor = (
            preprocessing if isinstance(preprocessing, Preprocessor) else Preprocessor(flow_columns, preprocessing)
        )
        self.condition_preprocessor = (
            None
            if not spec.conditions
            else condition_preprocessing
            if isinstance(condition_preprocessing, Preprocessor)
            else Preprocessor(spec.conditions, condition_preprocessing)
        )
        flow_what = "targets" if self.event_transform is None else "event transform's output columns"
        for what, pre, columns in (
            ("preprocessing", self.preprocessor, flow_columns),
            ("condition_preprocessing", self.condition_preprocessor, spec.conditions),
        ):
            if pre is not None and list(pre.columns) != list(columns):
                raise InputError(
                    f"{what} is a Preprocessor of columns {pre.columns}, but the model's "
                    f"{flow_what if what == 'preprocessing' else 'conditions'} {list(columns)} need one of those, in order"
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
    def event_transform(self) -> EventTransform | None:
        """The event transform between the targets and the flow's columns (``None``: none)."""
        return self._target_map.transform

    @property
    def flow_columns(self) -> list[str]:
        """The columns the flow learns (before the per-column preprocessing): the targets, or the event
        transform's output columns."""
        return self._target_map.columns

    @property
    def noise_features(self) -> int:
        """Dimension of the standard-normal noise one sampled event consumes (see ``noise=`` of :meth:`sample`)."""
        return self.trained_model.noise_features

    @property
    def conditional(self) -> bool:
        return bool(self.spec.conditions)

    @property
    def trained_model(self) -> FlowModel | DistilledFlow:
        """The trained flow (for a distilled surrogate, the :class:`~mcsurrogate.flows.distilled.DistilledFlow`
        around it); :class:`InputError` before :meth:`fit` or :meth:`load`."""
        if self.model is None:
            raise InputError("this surrogate is not trained yet: call fit(...) or Surrogate.load(...)")
        return self.model

    @property
    def n_parameters(self) -> int:
        """The number of parameters of the trained flow (with a distilled sampler: teacher and student)."""
        return int(sum(p.numel() for p in self.trained_model.parameters()))

    # -- training --------------------------------------------------------------------------------------
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
        prepared = prepare_weighted_events(
            self.spec, self.preprocessor, events, weights, nonfinite, drop_nonfinite_weights, self._target_map
        )
        x, c, w, data_report, label = prepared.x, prepared.c, prepared.weights, prepared.report, prepared.weights_label
        refuse_discrete_targets(self.spec, events)
        warn_extreme_outliers(x, c, prepared.rows, self.flow_columns + self.conditions, "training")
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
            held = prepare_weighted_events(
                self.spec,
                self.preprocessor,
                validation,
                validation_weights,
                nonfinite,
                drop_nonfinite_weights,
                self._target_map,
            )
            xv, cv, wv = held.x, held.c, held.weights
            refuse_discrete_targets(self.spec, validation)
            warn_extreme_outliers(xv, cv, held.rows, self.flow_columns + self.conditions, "validation")
            if len(x) == 0 or len(xv) == 0:
                raise InputError(f"no events to {'train on' if len(x) == 0 else 'validate on'}")
            data_report["validation"] = held.report
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
        self.model = build_flow(self.flow_config, len(self.flow_columns), len(self.conditions) or None)
        fingerprinted = [self._config(), x[split.train], c[split.train] if c is not None else None]
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
            "n_parameters": self.n_parameters,
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
        prepared = prepare_weighted_events(
            self.spec, self.preprocessor, events, weights, nonfinite, drop_nonfinite_weights, self._target_map
        )
        flat, w = prepared.flat, prepared.weights
        if w is not None:
            flat = ak.with_field(flat, w, weights if isinstance(weights, str) else "weight")
        s = split_indices(len(flat), self.train_config.fractions, self.train_config.seed)
        return {"train": flat[s.train], "validation": flat[s.validation], "test": flat[s.test]}

    # -- evaluation ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _flow_log_prob(self, y: np.ndarray, cy: np.ndarray | None, batch_size: int = 65536) -> np.ndarray:
        model = self.trained_model.to(self.device).eval()
        out = []
        for i in range(0, len(y), batch_size):
            yt = torch.as_tensor(y[i : i + batch_size], dtype=torch.float32, device=self.device)
            ct = (
                None if cy is None else torch.as_tensor(cy[i : i + batch_size], dtype=torch.float32, device=self.device)
            )
            out.append(model.log_prob(yt, ct).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def log_prob(self, events: ak.Array) -> np.ndarray:
        """Log density of the targets given the conditions, in the data's original units, shape (n,); with an
        event transform, the density of the physical targets (its ``log_abs_det`` added)."""
        prepared = prepare_events(self.spec, self.preprocessor, events, "raise", self._target_map)
        x, c = prepared.x, prepared.c
        y = self.preprocessor.forward(x)
        cy = None if c is None else self.flow_from_conditions(c)  # a conditional surrogate has a preprocessor
        log_det = self.preprocessor.log_abs_det(x) + self._target_map.log_abs_det(prepared.flat)
        return self._flow_log_prob(y, cy) + log_det

    def flow_from_targets(self, x: np.ndarray) -> np.ndarray:
        """Targets (n, len(targets)) in original units → the flow's space (n, len(flow_columns)): the event
        transform, then the preprocessing (the inverse of :meth:`targets_from_flow`)."""
        return self.preprocessor.forward(self._target_map.forward(np.asarray(x, dtype=np.float64)))

    def flow_from_conditions(self, c: np.ndarray) -> np.ndarray:
        """Condition rows (n, len(conditions)) in original units → the flow's context: the condition
        preprocessing (``c`` unchanged for a surrogate without one)."""
        pre = self.condition_preprocessor
        return pre.forward(c) if pre is not None else c

    def targets_from_flow(self, y: np.ndarray) -> np.ndarray:
        """The flow's output (n, len(flow_columns), its preprocessed space) → targets (n, len(targets)) in original
        units: the preprocessing's inverse, then the event transform's."""
        return self._target_map.inverse(self.preprocessor.inverse(y))

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
        for x, c in sample_matrices(self, n, conditions, seed, batch_size, progress, noise):
            yield sample_records(self.spec, x, c)

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
        parts = [x for x, _ in sample_matrices(self, n, conditions, seed, batch_size, progress, noise)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros((0, len(self.targets)))

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
            return sample_records(
                self.spec,
                np.zeros((0, len(self.targets))),
                np.zeros((0, len(self.conditions))) if self.conditional else None,
            )
        return ak.concatenate(parts) if len(parts) > 1 else parts[0]

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
        model = self.trained_model
        if isinstance(model, DistilledFlow):
            raise InputError("this surrogate is distilled already; distil the original flow")
        if config is not None and not isinstance(config, (DistillConfig, Mapping)):
            raise InputError(f"config must be a DistillConfig or a dict of its fields, got {describe(config)}")
        cfg = config if isinstance(config, DistillConfig) else DistillConfig.from_dict(dict(config or {}))
        contexts = None
        if self.conditional:
            if conditions is None:
                raise InputError(f"this surrogate is conditional: pass conditions with columns {self.conditions}")
            c = condition_matrix(self.spec, conditions, self.metrics.get("condition_ranges") or {})
            contexts = self.flow_from_conditions(c)
        elif conditions is not None:
            raise InputError("this surrogate is unconditional: distil without conditions")
        flow, report = distill_flow(
            model, contexts, cfg, device=self.device, progress=progress, feature_names=self.flow_columns
        )
        out = copy.copy(self)
        out.model = flow.eval()
        out.distill_config = cfg
        out.metrics = dict(self.metrics) | {"distillation": report}
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        """This surrogate's ``config.json`` content (:func:`~mcsurrogate.surrogate.storage.model_config`)."""
        return model_config(self.spec, self.flow_config, self.train_config, self.distill_config, self.event_transform)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model directory atomically (a temporary directory renamed into place): ``config.json``,
        ``preprocessing.json``, ``weights.safetensors`` and ``metrics.json`` (and ``event_transform.json`` with an
        event transform)."""
        path = check_path(path, "path")
        overwrite = check_bool(overwrite, "overwrite")
        return write_model_directory(
            path,
            self._config(),
            self.preprocessor,
            self.condition_preprocessor,
            self.trained_model,
            self.metrics,
            overwrite=overwrite,
            event_transform=self.event_transform,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> Surrogate:
        """Load a model directory written by :meth:`save`; never unpickles.

        Raises :class:`~mcsurrogate.errors.ModelDirectoryError` for a directory that is missing files, damaged,
        not written by mcsurrogate, or from a newer schema version.
        """
        root = check_path(path, "path")
        if not isinstance(device, (str, torch.device)):
            raise InputError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {describe(device)}")
        stored = read_config(root)
        obj = cls(
            spec=stored.spec,
            flow=stored.flow,
            training=stored.training,
            preprocessing=stored.preprocessor,
            event_transform=stored.event_transform,
            condition_preprocessing=(
                stored.condition_preprocessor if stored.condition_preprocessor is not None else "standardize"
            ),
        )
        obj.condition_preprocessor = stored.condition_preprocessor
        obj.model, obj.distill_config = load_flow(root, stored)
        obj.metrics = read_json(root / "metrics.json")
        obj.device = resolve_device(device)
        return obj

    def info(self) -> dict[str, Any]:
        """Features, event transform, preprocessing, model size and training metrics, JSON-serialisable;
        ``training_size``: the training split's events and Kish effective size (and its weights' source), one
        line."""
        n_par = self.n_parameters
        return {
            "targets": self.targets,
            "conditions": self.conditions,
            "flow": self.flow_config.to_dict(),
            "distilled_sampler": None if self.distill_config is None else self.distill_config.to_dict(),
            "training": self.train_config.to_dict(),
            "event_transform": None if self.event_transform is None else self.event_transform.to_dict(),
            "preprocessing": self.preprocessor.to_dict(),
            "n_parameters": n_par,
            "size_mb": n_par * 4 / 1e6,
            "training_size": WeightSummary.info_line(self.metrics.get("weights")),
            "metrics": self.metrics,
        }
