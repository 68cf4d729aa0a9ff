"""Density ratio w(x) = p_ref(x)/p_cand(x) from a classifier, to find where a generator fails and to correct it.

A classifier trained to separate candidate (label 1) from reference (label 0) with balanced classes estimates
``s(x) = p_cand / (p_cand + p_ref)``; then ``w(x) = (1 − s)/s`` (times the class-size ratio when the training
classes differ) is the weight that turns the candidate into the reference — the first step of ELSA (Nachman,
Winterhalder). The classifier is cross-fitted: the events are split into ``folds`` folds, one boosted-tree
classifier (:func:`~mcsurrogate.validation.classifiers.two_sample_classifier`) is trained on all folds but one, and
w(x) uses the mean log-odds of the ``folds`` classifiers (a geometric mean of their ratios, which averages out the
noise of each one's early stopping). Calibration is checked with the calibration curve on the out-of-fold scores
(quantile bins, as ``sklearn.calibration.calibration_curve``, with event weights), so every event is scored by a
classifier that never saw it. Events in the tails of w are where the generator over- (w ≪ 1) or under-populates (w ≫ 1) phase
space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .c2st import C2STResult, c2st
from .classifiers import DEFAULTS, fit_classifier, two_sample_classifier
from .samples import check_sample, check_weights, ones_if_none, weighted_quantile

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["DensityRatio", "fit_density_ratio", "reweighted_c2st", "tail_summary"]


@dataclass
class DensityRatio:
    """Fitted classifiers giving w(x) = p_ref/p_cand, with the out-of-fold calibration curve."""

    models: list[HistGradientBoostingClassifier]
    prior_ratio: float
    calibration: dict[str, list[float]] = field(default_factory=dict)

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """Mean over the classifiers of log(s/(1 − s)) for events ``x`` (n, d): > 0 where the candidate is denser."""
        x = np.asarray(x, dtype=np.float64)
        return np.mean([m.decision_function(x) for m in self.models], axis=0)

    def weights(self, x: np.ndarray, clip: float = 100.0) -> np.ndarray:
        """w(x) for candidate events ``x`` (n, d), clipped to [1/clip, clip]."""
        if not clip > 1:
            raise InputError(f"the weight clip must be > 1, got {clip!r}")
        return np.clip(self.prior_ratio * np.exp(-self.log_odds(x)), 1 / clip, clip)

    def max_calibration_error(self) -> float:
        p, q = np.asarray(self.calibration["fraction_positive"]), np.asarray(self.calibration["mean_predicted"])
        return float(np.max(np.abs(p - q))) if len(p) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior_ratio": self.prior_ratio,
            "folds": len(self.models),
            "boosting_iterations": [int(m.n_iter_) for m in self.models],
            "calibration": self.calibration,
            "max_calibration_error": self.max_calibration_error(),
        }


def fit_density_ratio(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    folds: int = 2,
    learning_rate: float = DEFAULTS["hgb"]["learning_rate"],
    max_iter: int = DEFAULTS["hgb"]["max_iter"],
    seed: int = 0,
    bins: int = 10,
) -> DensityRatio:
    """Cross-fit ``folds`` boosted-tree classifiers of candidate vs reference (the ``"hgb"`` of
    :func:`~mcsurrogate.validation.classifiers.two_sample_classifier`, with early stopping on 10 % of its training
    events) and check their calibration on the out-of-fold scores (``bins`` quantile bins).

    ``learning_rate`` and ``max_iter`` override the boosted trees' defaults (0.1 and 300): the reweighting of
    :mod:`mcsurrogate.refinement` fits with smaller steps and more of them (0.05, up to 500), a smoother ratio for
    weights it applies to every generated event; tests use a few iterations for speed.

    Event weights enter the fits and the calibration curve; each sample's weights are normalised to its event
    count, so ``prior_ratio`` (n_cand/n_ref) restores the balance of unequal samples.
    """
    if not isinstance(folds, int) or folds < 2:
        raise InputError(f"fit_density_ratio needs folds >= 2 (out-of-fold calibration), got {folds!r}")
    if not learning_rate > 0 or not isinstance(max_iter, int) or max_iter < 1:
        raise InputError(
            f"learning_rate must be > 0 and max_iter a positive integer, got {learning_rate!r} and {max_iter!r}"
        )
    rng = np.random.default_rng(seed)
    a = check_sample(reference, "reference")
    b = check_sample(candidate, "candidate", a.shape[1])
    wa = ones_if_none(check_weights(weights_reference, len(a), "weights_reference"), len(a))
    wb = ones_if_none(check_weights(weights_candidate, len(b), "weights_candidate"), len(b))
    if min(len(a), len(b)) < 10 * folds:
        raise InputError(f"the density ratio needs at least {10 * folds} events per sample, got {len(a)} and {len(b)}")
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    w = np.r_[wa / wa.mean(), wb / wb.mean()]
    fold = np.r_[rng.permutation(len(a)) % folds, rng.permutation(len(b)) % folds]
    out_of_fold = np.empty(len(x))
    models = []
    for k in range(folds):
        train = fold != k
        model = two_sample_classifier("hgb", seed + k, learning_rate=learning_rate, max_iter=max_iter)
        fit_classifier(model, x[train], y[train], w[train])
        out_of_fold[~train] = model.predict_proba(x[~train])[:, 1]
        models.append(model)
    # the calibration curve of sklearn.calibration.calibration_curve(strategy="quantile"), with event weights
    edges = np.quantile(out_of_fold, np.linspace(0, 1, bins + 1))
    idx = np.searchsorted(edges[1:-1], out_of_fold)
    total = np.bincount(idx, weights=w, minlength=bins)
    filled = total > 0
    frac = np.bincount(idx, weights=w * y, minlength=bins)[filled] / total[filled]
    mean = np.bincount(idx, weights=w * out_of_fold, minlength=bins)[filled] / total[filled]
    return DensityRatio(models, len(b) / len(a), {"fraction_positive": frac.tolist(), "mean_predicted": mean.tolist()})


def reweighted_c2st(reference: np.ndarray, candidate: np.ndarray, ratio: DensityRatio, **kw: Any) -> C2STResult:
    """C2ST of the reference against the candidate weighted by w(x): close to 0.5 when the reweighting worked."""
    return c2st(reference, candidate, weights_candidate=ratio.weights(candidate), **kw)


def tail_summary(
    candidate: np.ndarray, ratio: np.ndarray, names: Sequence[str], *, weights: np.ndarray | None = None
) -> dict[str, Any]:
    """Where the generator fails: the candidate events with density ratio ``ratio`` = w(x) below 0.5
    (over-populated) and above 2 (under-populated), as a fraction of the candidate's summed event ``weights`` and
    with the weighted means of their features next to those of the whole candidate; and the 1 %, 50 % and 99 %
    weighted quantiles of w(x) over the candidate."""
    x = check_sample(candidate, "candidate")
    w = ones_if_none(check_weights(weights, len(x), "weights"), len(x))
    ratio = np.asarray(ratio, dtype=np.float64)
    total = w.sum()
    means_all = dict(zip(names, (w @ x / total).tolist(), strict=True))
    out: dict[str, Any] = {}
    for label, cut in (("overpopulated_w_below_0.5", ratio < 0.5), ("underpopulated_w_above_2", ratio > 2.0)):
        wt = w[cut].sum()
        out[label] = {
            "fraction_of_generated": float(wt / total),
            "mean_of_features": dict(zip(names, (w[cut] @ x[cut] / wt).tolist(), strict=True)) if wt > 0 else {},
            "mean_of_features_all_generated": means_all,
        }
    q = weighted_quantile(ratio, [0.01, 0.5, 0.99], None if weights is None else w)
    out["quantiles_generated"] = dict(zip(("1%", "50%", "99%"), q.tolist(), strict=True))
    return out
