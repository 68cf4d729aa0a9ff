"""Refine a trained surrogate by reweighting: ELSA's first step (Nachman, Winterhalder, arXiv 2305.07696).

A boosted-tree classifier learns to tell the surrogate's generated events from MC, and its density ratio
w(x) = p_MC(x)/p_gen(x) (:func:`~mcsurrogate.validation.fit_density_ratio`, cross-fitted) becomes an event weight
of every generated event: where the flow under-populates phase space its events weigh more, where it
over-populates less. The MC here is the surrogate's own **training** MC, so the correction costs no new MC and
held-out MC stays held out for validation; the generated events of the fit must be independent of the ones the
weights are then applied to (another seed).

What it costs: weights lower a sample's statistical power by the Kish efficiency (Σw)²/(n Σw²), reported with the
fit; a ratio learned from a finite training sample also carries that sample's fluctuations at the classifier's
resolution, so check the weighted sample on held-out MC (:func:`~mcsurrogate.validation.validate` with
``weights_candidate``) and count what it is worth there
(:mod:`~mcsurrogate.validation.effective_statistics`). The boosted trees are not saved with the model (no pickle):
refit them from the training MC, which takes a minute for 10⁵ events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from .errors import InputError
from .records import feature_matrix
from .surrogate import Surrogate
from .validation.density_ratio import DensityRatio, fit_density_ratio

__all__ = ["Reweighting", "fit_reweighting", "fit_surrogate_reweighting"]


def _matrix(events: ak.Array | np.ndarray, features: list[str], name: str) -> np.ndarray:
    """The (n, d) float64 matrix of ``features``: from records, or an array of them in that order (shape checked)."""
    x = feature_matrix(events, features) if isinstance(events, ak.Array) else np.asarray(events, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(features):
        raise InputError(f"the {name} events must be ({len(features)} features: {features}), got shape {x.shape}")
    return x


@dataclass
class Reweighting:
    """Per-event weights for a surrogate's generated events, learned against MC (see the module docstring).

    ``weights`` are the classifier ratio clipped to [1/clip, clip] and divided by their mean over the fit's
    generated events, so a weighted generated sample keeps its normalisation; ``kish_efficiency`` is
    (Σw)²/(n Σw²) over those events.
    """

    features: list[str]
    ratio: DensityRatio
    clip: float
    normalisation: float
    kish_efficiency: float
    n_reference: int
    n_generated: int

    def weights(self, events: ak.Array | np.ndarray) -> np.ndarray:
        """Weights of generated ``events``: records with :attr:`features` as fields, or an (n, d) array of them in
        that order (units as in the training MC: GeV, radians)."""
        x = _matrix(events, self.features, "generated")
        if not np.isfinite(x).all():
            raise InputError(f"{int((~np.isfinite(x)).any(axis=1).sum())} generated events have NaN/inf features")
        return self.ratio.weights(x, clip=self.clip) / self.normalisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "clip": self.clip,
            "normalisation": self.normalisation,
            "kish_efficiency": self.kish_efficiency,
            "n_reference": self.n_reference,
            "n_generated": self.n_generated,
            "density_ratio": self.ratio.to_dict(),
        }


def fit_reweighting(
    reference: ak.Array | np.ndarray,
    generated: ak.Array | np.ndarray,
    features: Sequence[str],
    *,
    folds: int = 5,
    learning_rate: float = 0.05,
    max_iter: int = 500,
    clip: float = 20.0,
    seed: int = 0,
) -> Reweighting:
    """Learn w(x) = p_ref/p_gen from ``reference`` (the training MC) and ``generated`` (events of the surrogate
    that will not be weighted later), records with ``features`` as fields or (n, d) arrays of them.

    ``folds`` boosted-tree classifiers are cross-fitted (``learning_rate``, at most ``max_iter`` boosting
    iterations, early stopping each); ``clip`` bounds the ratio to [1/clip, clip] so a few events cannot carry
    the sample. Seeded: the same inputs and seed give the same weights.
    """
    features = list(features)
    if not features or len(set(features)) != len(features):
        raise InputError(f"features must be a non-empty list of distinct names, got {features}")
    if not clip > 1:
        raise InputError(f"clip must be > 1, got {clip!r}")
    x_ref, x_gen = _matrix(reference, features, "reference"), _matrix(generated, features, "generated")
    ratio = fit_density_ratio(x_ref, x_gen, folds=folds, learning_rate=learning_rate, max_iter=max_iter, seed=seed)
    w = ratio.weights(x_gen, clip=clip)
    return Reweighting(
        features=features,
        ratio=ratio,
        clip=float(clip),
        normalisation=float(w.mean()),
        kish_efficiency=float(w.sum() ** 2 / (len(w) * np.sum(w**2))),
        n_reference=len(x_ref),
        n_generated=len(x_gen),
    )


def fit_surrogate_reweighting(
    model: Surrogate,
    training_events: ak.Array,
    *,
    factor: int = 2,
    seed: int = 0,
    **kw: Any,
) -> Reweighting:
    """:func:`fit_reweighting` of a trained :class:`~mcsurrogate.surrogate.Surrogate` against ``training_events``
    (the MC it was trained on, as given to ``fit``): ``factor`` × as many events are generated for the fit, with
    ``seed`` — use another seed for the events to be weighted. A conditional model's fit sample takes its conditions
    from the training events, so the weights learn p_MC(x | c)/p_gen(x | c) on :attr:`Reweighting.features` =
    targets + conditions and apply to events generated at other conditions too. ``kw`` go to
    :func:`fit_reweighting` (``folds``, ``learning_rate``, ``max_iter``, ``clip``).
    """
    if not isinstance(factor, int) or factor < 1:
        raise InputError(f"factor must be a positive integer, got {factor!r}")
    _, x, c, _ = model.spec.flat_matrices(training_events, nonfinite="drop")
    if len(x) == 0:
        raise InputError("the training events hold no event with finite targets and conditions")
    features = list(model.targets) + list(model.conditions)
    reference = x if c is None else np.hstack([x, c])
    if model.conditional:
        assert c is not None
        generated = model.sample(conditions=np.tile(c, (factor, 1)), seed=seed, progress=False)
    else:
        generated = model.sample(factor * len(x), seed=seed, progress=False)
    return fit_reweighting(reference, feature_matrix(generated, features), features, seed=seed, **kw)
