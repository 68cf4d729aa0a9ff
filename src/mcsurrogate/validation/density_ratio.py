"""Density ratio w(x) = p_ref(x)/p_cand(x) from a classifier, to find where a generator fails and to correct it.

A classifier trained to separate candidate (label 1) from reference (label 0) with balanced classes estimates
``s(x) = p_cand / (p_cand + p_ref)``; then ``w(x) = (1 − s)/s`` (times the class-size ratio when the training
classes differ) is the weight that turns the candidate into the reference — the first step of ELSA (Nachman,
Winterhalder). Calibration is checked with ``sklearn.calibration.calibration_curve`` on held-out events; events in
the tails of w are where the generator over- (w ≪ 1) or under-populates (w ≫ 1) phase space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier

from .c2st import C2STResult, _check, c2st

__all__ = ["DensityRatio", "fit_density_ratio", "reweighted_c2st"]


@dataclass
class DensityRatio:
    """A fitted classifier giving w(x) = p_ref/p_cand, with its held-out calibration curve."""

    model: HistGradientBoostingClassifier
    prior_ratio: float
    calibration: dict[str, list[float]] = field(default_factory=dict)

    def weights(self, x: np.ndarray, clip: float = 100.0) -> np.ndarray:
        """w(x) for candidate events ``x`` (n, d), clipped to [1/clip, clip]."""
        s = np.clip(self.model.predict_proba(np.asarray(x, dtype=np.float64))[:, 1], 1e-6, 1 - 1e-6)
        return np.clip(self.prior_ratio * (1 - s) / s, 1 / clip, clip)

    def max_calibration_error(self) -> float:
        p, q = np.asarray(self.calibration["fraction_positive"]), np.asarray(self.calibration["mean_predicted"])
        return float(np.max(np.abs(p - q))) if len(p) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior_ratio": self.prior_ratio,
            "calibration": self.calibration,
            "max_calibration_error": self.max_calibration_error(),
        }


def fit_density_ratio(reference: np.ndarray, candidate: np.ndarray, *, seed: int = 0, bins: int = 10) -> DensityRatio:
    """Train the ratio classifier on half of each sample and check its calibration on the other half."""
    rng = np.random.default_rng(seed)
    a = _check(reference, "reference")
    b = _check(candidate, "candidate", a.shape[1])
    ia, ib = rng.permutation(len(a)), rng.permutation(len(b))
    ha, hb = len(a) // 2, len(b) // 2
    x = np.vstack([a[ia[:ha]], b[ib[:hb]]])
    y = np.r_[np.zeros(ha), np.ones(hb)]
    model = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, random_state=seed).fit(x, y)
    xt = np.vstack([a[ia[ha:]], b[ib[hb:]]])
    yt = np.r_[np.zeros(len(a) - ha), np.ones(len(b) - hb)]
    frac, mean = calibration_curve(yt, model.predict_proba(xt)[:, 1], n_bins=bins, strategy="quantile")
    return DensityRatio(model, hb / ha, {"fraction_positive": frac.tolist(), "mean_predicted": mean.tolist()})


def reweighted_c2st(reference: np.ndarray, candidate: np.ndarray, ratio: DensityRatio, **kw: Any) -> C2STResult:
    """C2ST of the reference against the candidate weighted by w(x): close to 0.5 when the reweighting worked."""
    return c2st(reference, candidate, weights_candidate=ratio.weights(candidate), **kw)
