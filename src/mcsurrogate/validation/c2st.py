"""Classifier two-sample test (C2ST): can a classifier tell the candidate sample from the reference?

A classifier of :func:`~mcsurrogate.validation.classifiers.two_sample_classifier` (boosted trees, ``"hgb"``, by
default, or an ``"mlp"``) is trained on a random half of the two samples (labels: reference 0, candidate 1) and scored
on the other half, ``n_repeats`` times with a fresh random split and classifier seed each time. Event weights enter
the fits, the AUC and the accuracy.

* ``auc``, ``accuracy``: the mean over the repeats of the held-out ROC AUC (0.5: indistinguishable) and accuracy.
* ``auc_ci``: a (1 − ``level``) interval for the held-out AUC that a classifier of this kind, trained on this
  many events, reaches. With ``n_repeats ≥ 2`` it covers both the training variance (another training set and
  seed gives another classifier: for a weak signal this is the larger part) and the test-set variance: the
  corrected resampled t interval of Nadeau & Bengio (2003), mean ± t_{R−1} · s · √(1/R + n_test/n_train), with s
  the SD of the R repeats' AUCs — the correction accounts for the repeats sharing events (their training sets
  overlap). With ``n_repeats = 1`` it is the percentile bootstrap of the held-out events of the one classifier and
  covers the test-set variance only, not the training variance; ``ci_covers`` says which in the report.
* ``auc_sd_test``: the bootstrap SD of the first repeat's AUC over its held-out events (the test-set part alone).
* ``p_value``: under H0 (same distribution) the held-out scores of both classes are exchangeable for a fixed
  classifier, so permuting the held-out labels of the first repeat and recomputing its AUC gives the exact
  conditional null of that AUC (a Mann–Whitney statistic) without refitting:
  p = (1 + #{AUC_perm ≥ AUC_1}) / (1 + n_perm). The smallest attainable p is 1/(1 + n_perm) (``p_value_min``);
  fewer permutations than 1/level − 1 could never reach the level and are refused.
* ``decision``: "distinguishable" when p ≤ level *and* the interval lies above 0.5; "consistent with 0.5" when
  p > level *and* the interval contains 0.5; otherwise "inconclusive" (the test and the interval disagree, e.g. a
  significant but small AUC excess whose interval, which includes the training variance, still reaches 0.5). The
  verdict never contradicts the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..arguments import check_choice, check_float, check_int, check_numeric_array, check_seed
from ..errors import InputError
from .classifiers import CLASSIFIER_KINDS, ClassifierKind, fit_classifier, two_sample_classifier
from .samples import check_sample, check_weights, ones_if_none

__all__ = ["C2STResult", "c2st", "minimum_permutations"]

CI_TRAINING_AND_TEST = (
    "training and test-set variance: {r} classifiers on {r} random half/half splits, Nadeau-Bengio corrected "
    "resampled t interval"
)
CI_TEST_ONLY = (
    "test-set variance of one trained classifier only (percentile bootstrap of its held-out events); the training "
    "variance is not included: use n_repeats >= 2 for it"
)


@dataclass
class C2STResult:
    """Held-out AUC (0.5 = indistinguishable) with its interval, accuracy and permutation p-value."""

    auc: float
    auc_ci: tuple[float, float]
    accuracy: float
    p_value: float
    n_reference: int
    n_candidate: int
    classifier: str
    notes: list[str] = field(default_factory=list)
    scores: np.ndarray | None = field(default=None, repr=False)  # first repeat's held-out scores (ROC curve)
    labels: np.ndarray | None = field(default=None, repr=False)
    n_permutations: int = 0
    level: float = 0.05
    auc_repeats: list[float] = field(default_factory=list)
    auc_sd_test: float = float("nan")
    ci_covers: str = ""

    @property
    def p_value_min(self) -> float:
        """The smallest p-value the permutation test can give: 1/(1 + n_permutations)."""
        return 1.0 / (1 + self.n_permutations)

    @property
    def decision(self) -> str:
        """ "distinguishable", "consistent with 0.5" or "inconclusive" (see the module docstring)."""
        low, high = self.auc_ci
        significant = self.p_value <= self.level
        if significant and low > 0.5:
            return "distinguishable"
        if not significant and low <= 0.5 <= high:
            return "consistent with 0.5"
        return "inconclusive"

    def summary(self) -> str:
        """One line: AUC, interval (and what it covers), p-value (with its floor) and the decision."""
        low, high = self.auc_ci
        p = (
            f"p = {self.p_value:.3g} (the smallest attainable with {self.n_permutations} permutations)"
            if self.p_value <= self.p_value_min
            else f"p = {self.p_value:.3g}"
        )
        covers = "training + test variance" if len(self.auc_repeats) > 1 else "test-set variance only"
        text = f"AUC {self.auc:.4f} [{low:.4f}, {high:.4f}] ({1 - self.level:.0%} CI, {covers}), {p}: {self.decision}"
        if self.decision == "inconclusive":
            where = "includes" if low <= 0.5 <= high else "excludes"
            text += f" (the test {'is' if self.p_value <= self.level else 'is not'} significant at {self.level:g}"
            text += f" but the interval {where} 0.5)"
        return text

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "auc": clean(self.auc),
            "auc_ci": [clean(v) for v in self.auc_ci],
            "ci_level": 1 - self.level,
            "ci_covers": self.ci_covers,
            "auc_repeats": [clean(v) for v in self.auc_repeats],
            "auc_sd_test": clean(self.auc_sd_test),
            "accuracy": clean(self.accuracy),
            "p_value": self.p_value,
            "p_value_min": self.p_value_min,
            "n_permutations": self.n_permutations,
            "level": self.level,
            "decision": self.decision,
            "n_reference": self.n_reference,
            "n_candidate": self.n_candidate,
            "classifier": self.classifier,
            "notes": self.notes,
        }


def minimum_permutations(level: float) -> int:
    """The fewest label permutations whose smallest p-value, 1/(1 + n), reaches ``level``."""
    return max(1, math.ceil(1 / level - 1 - 1e-9))


def _grouped_auc(group: np.ndarray, n_groups: int, w_pos: np.ndarray, w_neg: np.ndarray) -> float:
    """Weighted ROC AUC from events grouped by tied score (``group`` = rank of the score among unique values).

    AUC = Σ_u P_u (N_{<u} + ½ N_u) / (ΣP ΣN), with P_u, N_u the positive and negative weight at score value u.
    One ``bincount`` per call (O(n)), the same number as ``sklearn.metrics.roc_auc_score`` with weights
    (tested), which re-sorts at every call: this is what makes 200 permutations and 200 bootstrap
    resamplings of 10⁶ held-out events take seconds instead of minutes.
    """
    pos = np.bincount(group, weights=w_pos, minlength=n_groups)
    neg = np.bincount(group, weights=w_neg, minlength=n_groups)
    below = np.cumsum(neg) - neg
    total = pos.sum() * neg.sum()
    return float(np.sum(pos * (below + 0.5 * neg)) / total) if total > 0 else float("nan")


def _weights(w: Any, name: str) -> np.ndarray | None:
    return None if w is None else check_numeric_array(w, name)


def c2st(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    weights_reference: np.ndarray | None = None,
    weights_candidate: np.ndarray | None = None,
    classifier: ClassifierKind = "hgb",
    n_permutations: int = 200,
    n_bootstrap: int = 200,
    n_repeats: int = 5,
    level: float = 0.05,
    max_events: int | None = 1_000_000,
    seed: int = 0,
) -> C2STResult:
    """Run the C2ST on two (n, d) samples (events × features; see the module docstring). A 1-D array is one
    feature: two 1-D samples compare one variable, a 1-D sample against a sample of several features is refused
    (ambiguous). Very unequal sizes are subsampled to the smaller one (noted), and either sample to ``max_events``
    (``None``: no limit). A wrong type or value of any argument raises :class:`~mcsurrogate.errors.InputError`
    naming it."""
    check_choice(classifier, "classifier", CLASSIFIER_KINDS)
    level = check_float(level, "level", above=0.0, below=1.0)
    n_repeats = check_int(n_repeats, "n_repeats", minimum=1)
    need = minimum_permutations(level)
    n_permutations = check_int(n_permutations, "n_permutations")
    if n_permutations < need:
        raise InputError(
            f"n_permutations={n_permutations!r} cannot give a p-value below 1/(1 + n_permutations), which "
            f"must reach the level {level:g}: use at least {need} permutations (200 is the default)"
        )
    n_bootstrap = check_int(
        n_bootstrap, "n_bootstrap (with n_repeats = 1 it makes the interval)", minimum=2 if n_repeats == 1 else 0
    )
    if max_events is not None:
        max_events = check_int(max_events, "max_events (None: no limit)", minimum=1)
    seed = check_seed(seed, generator=False)
    rng = np.random.default_rng(seed)
    raw_a = check_numeric_array(reference, "reference")
    raw_b = check_numeric_array(candidate, "candidate")
    for name, one, other, other_name in (
        ("reference", raw_a, raw_b, "candidate"),
        ("candidate", raw_b, raw_a, "reference"),
    ):
        if one.ndim == 1 and other.ndim == 2 and other.shape[1] != 1:
            raise InputError(
                f"{name} is 1-D, which counts as one feature, but the {other_name} has {other.shape[1]} features: "
                f"pass {name} as an (events, features) array of shape (n, {other.shape[1]})"
            )
    a = check_sample(raw_a, "reference")
    b = check_sample(raw_b, "candidate", a.shape[1])
    wa = ones_if_none(
        check_weights(_weights(weights_reference, "weights_reference"), len(a), "weights_reference"), len(a)
    )
    wb = ones_if_none(
        check_weights(_weights(weights_candidate, "weights_candidate"), len(b), "weights_candidate"), len(b)
    )
    notes = []
    n = min(len(a), len(b), max_events or len(a))
    if len(a) != n or len(b) != n:
        notes.append(f"subsampled to {n} events per sample (from {len(a)} reference, {len(b)} candidate)")
        ia, ib = rng.choice(len(a), n, replace=False), rng.choice(len(b), n, replace=False)
        a, wa, b, wb = a[ia], wa[ia], b[ib], wb[ib]
    if n < 20:
        raise InputError(f"the C2ST needs at least 20 events per sample, got {n}")
    if not (wa.sum() > 0 and wb.sum() > 0):
        raise InputError("the subsampled events of one sample carry no weight; pass more events or fewer zeros")
    x = np.vstack([a, b])
    y = np.r_[np.zeros(n), np.ones(n)]
    w = np.r_[wa / wa.mean(), wb / wb.mean()]
    aucs, accs = [], []
    scores = labels = test_w = None
    from sklearn.metrics import accuracy_score, roc_auc_score  # scikit-learn when a test runs, not at import

    for r in range(n_repeats):
        order = rng.permutation(2 * n)
        train, test = order[:n], order[n:]
        model = two_sample_classifier(classifier, seed + r)
        if not fit_classifier(model, x[train], y[train], w[train]) and r == 0:
            notes.append(
                "this scikit-learn's MLPClassifier takes no event weights in its fit; they enter AUC and accuracy only"
            )
        s = model.predict_proba(x[test])[:, 1]
        yt, wt = y[test], w[test]
        aucs.append(float(roc_auc_score(yt, s, sample_weight=wt)))
        accs.append(float(accuracy_score(yt, s > 0.5, sample_weight=wt)))
        if r == 0:
            scores, labels, test_w = s, yt, wt
    assert scores is not None and labels is not None and test_w is not None
    values, group = np.unique(scores, return_inverse=True)
    k = len(values)
    boots = []
    for _ in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, n, n), minlength=n) * test_w
        boots.append(_grouped_auc(group, k, counts * labels, counts * (1 - labels)))
    boots = [v for v in boots if np.isfinite(v)]
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        yp = rng.permutation(labels)
        null[i] = _grouped_auc(group, k, test_w * yp, test_w * (1 - yp))
    p = float((1 + np.sum(null >= aucs[0])) / (1 + n_permutations))
    if n_repeats >= 2:
        mean, sd = float(np.mean(aucs)), float(np.std(aucs, ddof=1))
        half = float(stats.t.ppf(1 - level / 2, n_repeats - 1)) * sd * math.sqrt(1 / n_repeats + 1.0)
        ci = (max(0.0, mean - half), min(1.0, mean + half))
        covers = CI_TRAINING_AND_TEST.format(r=n_repeats)
    else:
        mean = aucs[0]
        ci = (
            (float(np.quantile(boots, level / 2)), float(np.quantile(boots, 1 - level / 2)))
            if len(boots) >= 2
            else (float("nan"), float("nan"))
        )
        covers = CI_TEST_ONLY
    return C2STResult(
        auc=mean,
        auc_ci=ci,
        accuracy=float(np.mean(accs)),
        p_value=p,
        n_reference=len(a),
        n_candidate=len(b),
        classifier=classifier,
        notes=notes,
        scores=scores,
        labels=labels,
        n_permutations=int(n_permutations),
        level=float(level),
        auc_repeats=aucs,
        auc_sd_test=float(np.std(boots, ddof=1)) if len(boots) >= 2 else float("nan"),
        ci_covers=covers,
    )
