"""Paper B's amplification workflow as library calls: the 18 continuous observables of the HIGGS-like benchmark,
the model candidates (six flow families × two preprocessings), and their comparison on events the models never
saw.

Each candidate is a :class:`~mcsurrogate.surrogate.Surrogate` of the background's continuous features:
unconditional (paper B), or conditioned on the discrete ones (the four b-tags, :data:`DISCRETE_FEATURES`), whose
configurations :func:`generate` then draws from the training MC, so the generated records carry b-tags too (it
did not improve the continuous features' C2ST on the HIGGS-like sample: docs/amplification.md).

:func:`compare_models` trains every candidate on the same events and scores it on a separate selection split: mean
negative log-likelihood in the data's units (GeV, radians), the 1-D Wasserstein distances against their MC-vs-MC
baseline, the C2ST AUC with its p-value, and FPD/KPD. :func:`best_candidate` picks the winner on
that split, so a held-out sample stays untouched for the final quality bars.

:func:`learning_curve` trains one candidate on nested subsamples of growing size and :func:`fit_auc_power_law`
extrapolates its C2ST AUC: how much training MC a model needs to reach a target AUC.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .errors import InputError, TrainingError
from .records import feature_matrix
from .surrogate import Surrogate
from .validation import validate

log = logging.getLogger(__name__)

__all__ = [
    "CONTINUOUS_FEATURES",
    "DIFFERENCES",
    "DISCRETE_FEATURES",
    "FAMILY_OPTIONS",
    "FAMILY_TRAINING",
    "JET_PT_DIFFERENCES",
    "MASS_DIFFERENCES",
    "PAPER_B_FAMILIES",
    "AucPowerLaw",
    "Candidate",
    "ComparisonRow",
    "best_candidate",
    "compare_models",
    "feature_matrix",
    "fit_auc_power_law",
    "flow_features",
    "from_differences",
    "generate",
    "learning_curve",
    "paper_b_candidates",
    "with_differences",
]

#: paper B's 18 continuous observables: the 28 HIGGS features without the six azimuthal angles (uniform by
#: symmetry) and the four b-tags (discrete). GeV for momenta and masses.
CONTINUOUS_FEATURES: tuple[str, ...] = (
    "lepton_pt",
    "lepton_eta",
    "met",
    *(f"jet{i}_{q}" for i in range(1, 5) for q in ("pt", "eta")),
    "m_jj",
    "m_jjj",
    "m_lv",
    "m_jlv",
    "m_bb",
    "m_wbb",
    "m_wwbb",
)

#: the discrete HIGGS features (b-tags of the four leading jets, 0 or 1): conditions of a conditional candidate
DISCRETE_FEATURES: tuple[str, ...] = tuple(f"jet{i}_btag" for i in range(1, 5))

#: each mass of a larger system minus the largest mass of its subsystems, ``{difference: (mass, subsystems)}`` (GeV),
#: in the order they are put back. Adding objects never lowers an invariant mass, so every difference is ≥ 0 with a
#: sharp edge (m_jjj − m_jj ≳ 20 GeV: the b jet's p_T threshold); a flow that learns the masses themselves smears
#: it (1 % of generated m_jjj − m_jj below 25 GeV against 0.09 % of the MC), one that learns the differences under
#: Gauss-rank keeps it. The map is a shift by a function of the other masses: unit Jacobian, the density unchanged.
MASS_DIFFERENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dm_jjj": ("m_jjj", ("m_jj",)),
    "dm_jlv": ("m_jlv", ("m_lv",)),
    "dm_wbb": ("m_wbb", ("m_bb", "m_jlv")),
    "dm_wwbb": ("m_wwbb", ("m_wbb", "m_jjj")),
}

#: the jets' p_T order as differences (GeV), put back from jet 4 up: the flow learns jet4_pt (its threshold edge
#: kept by Gauss-rank) and each jet's p_T minus the next one's, ≥ 0. Learning the p_T themselves, 4 % of the
#: generated events had their jets out of order.
JET_PT_DIFFERENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dpt_jet3": ("jet3_pt", ("jet4_pt",)),
    "dpt_jet2": ("jet2_pt", ("jet3_pt",)),
    "dpt_jet1": ("jet1_pt", ("jet2_pt",)),
}

#: the difference sets a candidate can learn, by name
DIFFERENCES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "masses": MASS_DIFFERENCES,
    "jet-pt": JET_PT_DIFFERENCES,
}


#: flow families a candidate may name, with the options that make each one what paper B means by it (flow matching:
#: a smooth SiLU velocity field, see docs/flow_matching.md)
FAMILY_OPTIONS: dict[str, dict[str, Any]] = {
    "made-mog": {"residual": True, "components": 10},
    "maf": {},
    "maf-made-mog": {"components": 10},
    "rqs-ar": {"bins": 32, "tail_bound": 6.0},
    "realnvp": {},
    "glow": {},
    "flow-matching": {"activation": "silu"},
}
#: paper B's comparison, the default grid (flow matching is accepted by name, not part of the paper's grid)
PAPER_B_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILY_OPTIONS if f != "flow-matching")
#: a family's own training recipe, over the comparison's shared settings (paper B's: ≤ 100 epochs, lr 1e-3 decaying
#: linearly, early stopping after 15 epochs without a better validation NLL). Flow matching takes its response
#: preset's recipe (a higher rate decaying over 40 epochs, weight averaging, no early stopping) and keeps the last
#: epoch's averaged weights: both validation metrics stop moving before the model does. Measured on the HIGGS task
#: (bench_time_to_quality, 2.6 × 10⁵ t t̄ of seed 2024, C2ST at 10⁵ per class, 2026-12-05): the shared recipe stopped
#: early at epoch 34, 0.646; its own recipe with NLL selection froze the weights at epoch 15, 0.610; with W1 selection
#: 0.5515 (epoch 35 of 40; over a 160-epoch schedule it froze at 0.5575 from epoch 40 to 120); with the last epoch's
#: weights 0.5439 at epoch 40
FAMILY_TRAINING: dict[str, dict[str, Any]] = {
    "flow-matching": {
        "epochs": 40,
        "lr": 3e-3,
        "lr_final": 3e-5,
        "patience": None,
        "ema_decay": 0.999,
        "selection": "last",
    },
}


@dataclass(frozen=True)
class Candidate:
    """One model of the comparison: a name, the flow configuration, the preprocessing preset, the columns the
    flow is conditioned on (none: unconditional), the :data:`DIFFERENCES` sets it learns and its own training
    settings (:data:`FAMILY_TRAINING`), which replace the shared ones they name."""

    name: str
    flow: Mapping[str, Any]
    preprocessing: str
    conditions: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    training: Mapping[str, Any] = field(default_factory=dict)

    def training_config(self, shared: Mapping[str, Any]) -> dict[str, Any]:
        """The :class:`~mcsurrogate.training.TrainConfig` settings this candidate trains with: ``shared`` with the
        candidate's own settings over it, except that the shared ``epochs`` stays an upper bound (a short smoke
        comparison stays short for every family)."""
        cfg = dict(shared) | dict(self.training)
        if "epochs" in shared and "epochs" in self.training:
            cfg["epochs"] = min(int(shared["epochs"]), int(self.training["epochs"]))
        return cfg

    def surrogate(self, features: Sequence[str], training: Mapping[str, Any]) -> Surrogate:
        """An untrained surrogate of ``features`` (with the candidate's :data:`DIFFERENCES` in place of the columns
        they replace) with this candidate's configuration, trained with :meth:`training_config` of ``training``."""
        return Surrogate(
            targets=flow_features(features, self.differences),
            conditions=list(self.conditions) or None,
            flow=dict(self.flow),
            preprocessing=self.preprocessing,
            training=self.training_config(training),
        )


def paper_b_candidates(
    *,
    families: Sequence[str] = PAPER_B_FAMILIES,
    preprocessings: Sequence[str] = ("logit", "gauss-rank"),
    blocks: int = 10,
    hidden: int = 128,
    activation: str = "relu",
    conditions: Sequence[str] = (),
    differences: Sequence[str] = (),
) -> list[Candidate]:
    """Paper B's early-phase grid: each family at ``blocks`` × ``hidden`` (10 × 128, ReLU) with each preprocessing
    (``logit``: min-max + logit + standardise; ``gauss-rank``: empirical CDF to a normal). With ``conditions``
    (e.g. :data:`DISCRETE_FEATURES`) every candidate is conditioned on those columns and its name ends in
    ``/conditional``; with ``differences`` (names of :data:`DIFFERENCES` sets, e.g. ``("masses", "jet-pt")``) they
    learn those differences instead of the columns they replace and their names end in ``/masses+jet-pt``."""
    unknown = sorted(set(families) - set(FAMILY_OPTIONS))
    if unknown:
        raise InputError(f"unknown flow families {unknown}; choose from {', '.join(FAMILY_OPTIONS)}")
    _difference_table(differences)  # an unknown set name fails here, before any training
    suffix = ("/conditional" if conditions else "") + ("/" + "+".join(differences) if differences else "")
    return [
        Candidate(
            name=f"{family}/{prep}{suffix}",
            flow={"model": family, "blocks": blocks, "hidden": hidden, "activation": activation}
            | FAMILY_OPTIONS[family],
            preprocessing=prep,
            conditions=tuple(conditions),
            differences=tuple(differences),
            training=dict(FAMILY_TRAINING.get(family, {})),
        )
        for family in families
        for prep in preprocessings
    ]


def _difference_table(sets: Sequence[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    unknown = [name for name in sets if name not in DIFFERENCES]
    if unknown:
        raise InputError(f"unknown difference sets {unknown}; choose from {', '.join(DIFFERENCES)}")
    return {diff: spec for name in sets for diff, spec in DIFFERENCES[name].items()}


def flow_features(features: Sequence[str], differences: Sequence[str] = ()) -> list[str]:
    """The columns a flow learns for ``features``: each column that a difference of the ``differences`` sets
    (:data:`DIFFERENCES`) replaces becomes that difference, which needs the columns it is taken from among
    ``features`` too."""
    features = list(features)
    table = _difference_table(differences)
    out = list(features)
    for diff, (column, bases) in table.items():
        if column not in features:
            continue
        missing = [b for b in bases if b not in features]
        if missing:
            raise InputError(f"learning {diff} = {column} − max{bases} needs {missing} among the features too")
        out[features.index(column)] = diff
    if table and out == features:
        raise InputError(f"differences {list(differences)} replace none of the features {features}")
    return out


def with_differences(events: ak.Array, differences: Sequence[str]) -> ak.Array:
    """``events`` with the columns of the ``differences`` sets (:data:`DIFFERENCES`) added, GeV, wherever their
    column is present."""
    for diff, (column, bases) in _difference_table(differences).items():
        if column in events.fields:
            base = np.max(feature_matrix(events, bases), axis=1)
            events = ak.with_field(events, feature_matrix(events, [column])[:, 0] - base, diff)
    return events


def from_differences(events: ak.Array) -> ak.Array:
    """The inverse of :func:`with_differences` for every difference column present: each column set to the largest
    of its bases plus the difference, in :data:`DIFFERENCES` order (so m_wwbb ≥ m_wbb, m_jjj and jet1_pt ≥ jet2_pt
    ≥ … hold whenever the differences are ≥ 0)."""
    for table in DIFFERENCES.values():
        for diff, (column, bases) in table.items():
            if diff in events.fields:
                base = np.max(feature_matrix(events, bases), axis=1)
                events = ak.with_field(events, base + feature_matrix(events, [diff])[:, 0], column)
    return events


def generate(model: Surrogate, n: int, *, source: ak.Array | None = None, seed: int = 0) -> ak.Array:
    """``n`` events from a trained candidate. A conditional one gets its conditions (the discrete features) from
    rows of ``source`` (its training MC) drawn with replacement, so their frequencies and correlations are the MC's;
    the records hold the conditions too. A model of :data:`DIFFERENCES` gets the columns they replace back
    (:func:`from_differences`). Seeded: the same seed gives the same events."""
    if n < 0:
        raise InputError(f"the number of events to generate must be >= 0, got {n}")
    if not model.conditional:
        return from_differences(model.sample(n, seed=seed))
    if source is None or len(source) == 0:
        raise InputError(
            f"the model is conditioned on {model.conditions}: generate() needs source= events (the training MC) "
            "to draw them from"
        )
    table = feature_matrix(source, model.conditions)
    rows = np.random.default_rng([seed, 1]).integers(0, len(table), n)
    events = model.sample(conditions=dict(zip(model.conditions, table[rows].T, strict=True)), seed=seed)
    return from_differences(events)


@dataclass
class ComparisonRow:
    """One candidate's scores on the selection split (see :func:`compare_models`). ``nll`` is the mean negative
    log-likelihood per event in the data's units over the events it is defined for; ``nll_excluded`` counts the
    others (outside a bounded preprocessing's fitted range, or non-finite). ``train_seconds`` is this call's
    training time: when the candidate resumed a checkpoint, only the epochs after ``resumed_from_epoch``."""

    name: str
    family: str
    preprocessing: str
    parameters: int
    best_epoch: int
    epochs_run: int
    train_seconds: float
    train_events_per_second: float
    sample_events_per_second: float
    nll: float
    nll_excluded: int
    auc: float
    auc_ci: tuple[float, float]
    p_value: float
    w1_ratio_max: float
    w1_ratio_median: float
    w1_ratio_by_feature: dict[str, float]
    flagged_features: list[str]
    fpd: float
    fpd_baseline: float
    kpd: float
    kpd_baseline: float
    failure: str | None = None
    resumed_from_epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """Whether the training stopped improving before its last epoch: a model whose best epoch is its last one
        is limited by the training length, not only by its events (on a learning curve it lies above the curve of
        converged trainings)."""
        return self.best_epoch < self.epochs_run

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["auc_ci"] = list(self.auc_ci)
        return d


def compare_models(
    train: ak.Array,
    select: ak.Array,
    candidates: Sequence[Candidate],
    *,
    features: Sequence[str] = CONTINUOUS_FEATURES,
    training: Mapping[str, Any] | None = None,
    n_permutations: int = 100,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> tuple[list[ComparisonRow], dict[str, Surrogate]]:
    """Train every candidate on ``train`` and score it on ``select`` (events it never saw).

    ``training`` is a :class:`~mcsurrogate.training.TrainConfig` dict shared by all candidates (paper B's early
    phase: batch 1024, Adam, ≤ 100 epochs, patience 15), under each candidate's own settings
    (:meth:`Candidate.training_config`: flow matching's recipe of :data:`FAMILY_TRAINING`). Each candidate generates
    ``len(select)`` events (seed ``seed + 1``; a conditional one with conditions drawn from ``train``,
    :func:`generate`) for the 1-D divergences, the C2ST and FPD/KPD. A candidate with :data:`DIFFERENCES` learns
    them and is scored on the columns they replace (its NLL compares: the map has unit Jacobian). A candidate whose
    training diverges gets a row with its ``failure`` message and NaN scores. Returns the rows and the trained
    surrogates.

    ``checkpoint_dir``: each candidate keeps its checkpoints in ``checkpoint_dir/<name>`` (see
    :meth:`~mcsurrogate.surrogate.Surrogate.fit`), so a comparison killed part-way (a batch job's wall-time
    limit) and started again with the same events and settings resumes each candidate where it stopped, and
    re-scores the candidates it had finished without training them again.
    """
    if not candidates:
        raise InputError("compare_models needs at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise InputError(f"candidate names must be unique; got {names}")
    features = list(features)
    x_select = feature_matrix(select, features)
    feature_matrix(train, features)  # fail early on a missing column, before the first training
    cfg = {"batch_size": 1024, "epochs": 100, "patience": 15, "seed": seed} | dict(training or {})
    rows: list[ComparisonRow] = []
    models: dict[str, Surrogate] = {}
    for cand in candidates:
        log.info("training %s", cand.name)
        t0 = time.perf_counter()
        fit_on, score_on = (
            (with_differences(train, cand.differences), with_differences(select, cand.differences))
            if cand.differences
            else (train, select)
        )
        try:
            model = cand.surrogate(features, cfg).fit(
                fit_on,
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / cand.name,
                progress=progress,
            )
        except TrainingError as exc:  # a diverging candidate is a result of the comparison, not the end of it
            log.warning("%s failed to train: %s", cand.name, exc)
            rows.append(_failed_row(cand, str(exc), features))
            continue
        train_s = time.perf_counter() - t0
        result = model.result
        assert result is not None
        lp = model.log_prob(score_on)  # outside a bounded preprocessing's domain: dropped (with a warning)
        finite = np.isfinite(lp)
        t1 = time.perf_counter()
        generated = generate(model, len(select), source=train, seed=seed + 1)
        sample_s = time.perf_counter() - t1
        x_gen = feature_matrix(generated, features)
        report = validate(
            x_select,
            x_gen,
            features,
            n_permutations=n_permutations,
            density_ratio=False,
            physics_distances=True,
            seed=seed,
        )
        ratios = {f: fd.w1_ratio for f, fd in report.features.items()}
        pd = report.physics_distances
        rows.append(
            ComparisonRow(
                name=cand.name,
                family=str(cand.flow["model"]),
                preprocessing=cand.preprocessing,
                parameters=model.n_parameters,
                best_epoch=result.best_epoch,
                epochs_run=len(result.history),
                train_seconds=train_s,
                train_events_per_second=result.train_events_per_second,
                sample_events_per_second=len(select) / max(sample_s, 1e-9),
                nll=float(-lp[finite].mean()) if finite.any() else float("nan"),
                nll_excluded=len(select) - int(finite.sum()),
                auc=report.c2st.auc,
                auc_ci=(float(report.c2st.auc_ci[0]), float(report.c2st.auc_ci[1])),
                p_value=report.c2st.p_value,
                w1_ratio_max=float(max(ratios.values())),
                w1_ratio_median=float(np.median(list(ratios.values()))),
                w1_ratio_by_feature=ratios,
                flagged_features=report.flagged_features,
                fpd=float(pd["fpd"]),
                fpd_baseline=float(pd["fpd_baseline"]),
                kpd=float(pd["kpd"]),
                kpd_baseline=float(pd["kpd_baseline"]),
                resumed_from_epoch=result.resumed_from_epoch,
            )
        )
        models[cand.name] = model
        log.info("%s: AUC %.4f, max W1/baseline %.2f", cand.name, report.c2st.auc, rows[-1].w1_ratio_max)
    return rows, models


def _failed_row(cand: Candidate, message: str, features: Sequence[str]) -> ComparisonRow:
    nan = float("nan")
    return ComparisonRow(
        name=cand.name,
        family=str(cand.flow["model"]),
        preprocessing=cand.preprocessing,
        parameters=0,
        best_epoch=0,
        epochs_run=0,
        train_seconds=nan,
        train_events_per_second=nan,
        sample_events_per_second=nan,
        nll=nan,
        nll_excluded=0,
        auc=nan,
        auc_ci=(nan, nan),
        p_value=nan,
        w1_ratio_max=nan,
        w1_ratio_median=nan,
        w1_ratio_by_feature=dict.fromkeys(features, nan),
        flagged_features=[],
        fpd=nan,
        fpd_baseline=nan,
        kpd=nan,
        kpd_baseline=nan,
        failure=message,
    )


def best_candidate(rows: Sequence[ComparisonRow], *, max_w1_ratio: float = 10.0) -> ComparisonRow:
    """The candidate whose C2ST AUC is closest to 0.5 on the selection split; ties go to the lower max W1 ratio.

    Candidates that failed to train are skipped, and so are those whose largest 1-D Wasserstein distance exceeds
    ``max_w1_ratio`` × its MC-vs-MC baseline (or is not finite): a classifier can miss a few events generated
    astronomically far out, the W1 distance cannot. Only when every trained candidate fails that veto is the best AUC
    among them returned, with a warning.
    """
    if not max_w1_ratio > 0:
        raise InputError(f"max_w1_ratio must be positive, got {max_w1_ratio!r}")
    trained = [r for r in rows if r.failure is None]
    if not trained:
        raise InputError("no trained candidate to choose from" + (" (every candidate failed)" if rows else ""))
    sane = [r for r in trained if np.isfinite(r.w1_ratio_max) and r.w1_ratio_max <= max_w1_ratio]
    if not sane:
        warnings.warn(
            f"every trained candidate has a 1-D Wasserstein distance above {max_w1_ratio} × its MC-vs-MC baseline; "
            "choosing by C2ST AUC alone",
            stacklevel=2,
        )
        sane = trained
    return min(sane, key=lambda r: (round(abs(r.auc - 0.5), 4), r.w1_ratio_max))


def learning_curve(
    train: ak.Array,
    holdout: ak.Array,
    candidate: Candidate,
    sizes: Sequence[int],
    *,
    features: Sequence[str] = CONTINUOUS_FEATURES,
    training: Mapping[str, Any] | None = None,
    n_permutations: int = 100,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> list[ComparisonRow]:
    """Train ``candidate`` on the first n events of ``train`` for every n of ``sizes`` (nested subsamples: shuffle
    ``train`` first) and score each model on ``holdout`` as :func:`compare_models` does, with the same training
    recipe at every size (``training``: epochs, patience, schedule). Each model generates ``len(holdout)`` events,
    so every C2ST has ``len(holdout)`` events per class: the AUC depends on that number (a classifier trained on
    more events finds smaller differences), so compare curves at the same holdout size. ``checkpoint_dir``: each
    size checkpoints in ``checkpoint_dir/n<size>``. Returns one row per size, ``row.extra["n_train"]`` its size."""
    sizes = [int(n) for n in sizes]
    if not sizes or any(n < 2 for n in sizes) or sizes != sorted(set(sizes)):
        raise InputError(f"sizes must be increasing training-set sizes of at least 2 events, got {sizes}")
    if sizes[-1] > len(train):
        raise InputError(f"the largest learning-curve size {sizes[-1]} exceeds the {len(train)} training events")
    rows: list[ComparisonRow] = []
    for n in sizes:
        log.info("learning curve: %s on %d events", candidate.name, n)
        (row,), _ = compare_models(
            train[:n],
            holdout,
            [candidate],
            features=features,
            training=training,
            n_permutations=n_permutations,
            seed=seed,
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / f"n{n}",
            progress=progress,
        )
        row.extra["n_train"] = n
        rows.append(row)
    return rows


@dataclass(frozen=True)
class AucPowerLaw:
    """C2ST AUC − 0.5 = ``amplitude`` × (n / ``pivot``)^(−``exponent``) for a model trained on n events, fitted to a
    learning curve by :func:`fit_auc_power_law`. ``covariance`` is that of (ln amplitude, exponent); ``chi2`` and
    ``ndf`` say how well a power law describes the points (the covariance is scaled up by χ²/ndf when it is > 1)."""

    amplitude: float
    exponent: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    chi2: float
    ndf: int
    pivot: float = 1e4

    @property
    def exponent_error(self) -> float:
        return float(np.sqrt(self.covariance[1][1]))

    def auc(self, n: float | np.ndarray) -> np.ndarray:
        """The fitted AUC for ``n`` training events."""
        return 0.5 + self.amplitude * (np.asarray(n, dtype=float) / self.pivot) ** (-self.exponent)

    def n_for(self, target_auc: float) -> float:
        """Training events at which the fitted AUC reaches ``target_auc`` (> 0.5); ``inf`` if the curve does not
        fall."""
        return float(np.exp(self._log_n_for(target_auc)[0]))

    def n_for_band(self, target_auc: float) -> tuple[float, float]:
        """The ±1σ interval of :meth:`n_for` from the fit's covariance (linear propagation in ln n)."""
        log_n, sigma = self._log_n_for(target_auc)
        return float(np.exp(log_n - sigma)), float(np.exp(log_n + sigma))

    def _log_n_for(self, target_auc: float) -> tuple[float, float]:
        if not target_auc > 0.5:
            raise InputError(f"target_auc must be above 0.5, got {target_auc!r}")
        if self.exponent <= 0:
            return float("inf"), 0.0
        # ln n = ln pivot + (ln a − ln(t − 0.5)) / b
        gap = np.log(self.amplitude) - np.log(target_auc - 0.5)
        grad = np.array([1.0 / self.exponent, -gap / self.exponent**2])
        sigma = float(np.sqrt(grad @ np.asarray(self.covariance) @ grad))
        return float(np.log(self.pivot) + gap / self.exponent), sigma

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["covariance"] = [list(r) for r in self.covariance]
        d["exponent_error"] = self.exponent_error
        return d


def fit_auc_power_law(
    n_train: Sequence[float] | np.ndarray,
    auc: Sequence[float] | np.ndarray,
    auc_ci: Sequence[tuple[float, float]] | np.ndarray,
    *,
    pivot: float = 1e4,
) -> AucPowerLaw:
    """Fit AUC − 0.5 = a (n / pivot)^(−b) to a learning curve (:func:`learning_curve`): weighted least squares of
    ln(AUC − 0.5) against ln n, each point weighted by its 95 % CI (half width / 1.96 as σ, divided by AUC − 0.5
    for the log). Points with AUC ≤ 0.5 carry no information on the power law and are rejected; at least two are
    needed. Extrapolating beyond the largest n assumes the curve keeps its slope: treat :meth:`AucPowerLaw.n_for`
    far outside the fitted range as an estimate of scale."""
    n = np.asarray(n_train, dtype=float)
    a = np.asarray(auc, dtype=float)
    ci = np.asarray(auc_ci, dtype=float).reshape(len(a), 2)
    if len(n) != len(a):
        raise InputError(f"n_train and auc have different lengths ({len(n)} and {len(a)})")
    if len(a) < 2:
        raise InputError("fit_auc_power_law needs at least two learning-curve points")
    if not (np.all(np.isfinite(a)) and np.all(n > 0)):
        raise InputError(f"learning-curve points must have finite AUCs and positive sizes; got n={n}, auc={a}")
    if np.any(a <= 0.5):
        raise InputError(f"AUCs at or below 0.5 cannot be fitted by a power law in AUC − 0.5; got {a.tolist()}")
    sigma = np.maximum((ci[:, 1] - ci[:, 0]) / (2 * 1.96), 1e-6) / (a - 0.5)
    x, y = np.log(n / pivot), np.log(a - 0.5)
    design = np.column_stack([np.ones_like(x), -x]) / sigma[:, None]
    cov = np.linalg.inv(design.T @ design)
    coef = cov @ design.T @ (y / sigma)
    chi2 = float(np.sum(((y - coef[0] + coef[1] * x) / sigma) ** 2))
    ndf = len(a) - 2
    if ndf > 0 and chi2 / ndf > 1:
        cov = cov * (chi2 / ndf)
    return AucPowerLaw(
        amplitude=float(np.exp(coef[0])),
        exponent=float(coef[1]),
        covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        chi2=chi2,
        ndf=ndf,
        pivot=pivot,
    )
