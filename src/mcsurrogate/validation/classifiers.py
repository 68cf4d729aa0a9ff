"""The two-sample classifier: one factory for every classifier that tells two samples apart.

The C2ST (:mod:`~mcsurrogate.validation.c2st`), the density ratio w(x) (:mod:`~mcsurrogate.validation.density_ratio`,
and through it the reweighting of :mod:`mcsurrogate.refinement`) and paper B's classifier cut
(:mod:`mcsurrogate.stats.classifier_cut`) all train P(label 1 | x) on events of two samples, with event weights.
They build their classifier here, so one kind means one set of hyper-parameters everywhere:

* ``"hgb"``: scikit-learn's ``HistGradientBoostingClassifier``, learning rate 0.1, at most 300 boosting iterations,
  early stopping on 10 % of the training events (10 iterations without improvement). The cap of 300 rarely binds: the
  early stopping ends most fits well before it (the cap matters for strong differences on large samples, where more
  trees still help).
* ``"mlp"``: ``StandardScaler`` then scikit-learn's ``MLPClassifier``, two hidden layers of 64 ReLU units, Adam, at
  most 200 epochs, early stopping on 10 % of the training events.

A caller that truly needs another setting passes it as an override (a keyword argument of the estimator: for
``"mlp"`` the ``MLPClassifier``'s), and says why in its own docstring. :func:`fit_classifier` fits either kind with
event weights (routed to the ``MLPClassifier`` inside the pipeline).

scikit-learn is imported when a classifier is built, not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

__all__ = ["CLASSIFIER_KINDS", "DEFAULTS", "ClassifierKind", "fit_classifier", "two_sample_classifier"]

ClassifierKind = Literal["hgb", "mlp"]
#: the classifier kinds :func:`two_sample_classifier` builds
CLASSIFIER_KINDS: tuple[str, ...] = ("hgb", "mlp")
#: each kind's hyper-parameters (keyword arguments of ``HistGradientBoostingClassifier`` / ``MLPClassifier``)
DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "hgb": MappingProxyType({"learning_rate": 0.1, "max_iter": 300, "early_stopping": True}),
        "mlp": MappingProxyType(
            {"hidden_layer_sizes": (64, 64), "activation": "relu", "max_iter": 200, "early_stopping": True}
        ),
    }
)


def two_sample_classifier(
    kind: ClassifierKind, seed: int, **overrides: Any
) -> HistGradientBoostingClassifier | Pipeline:
    """A new, unfitted classifier of ``kind`` (``"hgb"`` or ``"mlp"``, see the module docstring) seeded with ``seed``;
    ``overrides`` replace its default hyper-parameters (keyword arguments of the scikit-learn estimator).

    Raises :class:`~mcsurrogate.errors.InputError` for another kind or an override the estimator does not take.

    >>> two_sample_classifier("hgb", 0).max_iter
    300
    >>> two_sample_classifier("hgb", 0, max_iter=50).max_iter
    50
    """
    if kind not in CLASSIFIER_KINDS:
        raise InputError(f"unknown classifier {kind!r}; choose one of {', '.join(map(repr, CLASSIFIER_KINDS))}")
    if "random_state" in overrides:
        raise InputError("the classifier's random_state is its seed: pass seed=, not random_state=")
    settings = {**DEFAULTS[kind], **overrides}
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        estimator: Any = HistGradientBoostingClassifier
    else:
        from sklearn.neural_network import MLPClassifier

        estimator = MLPClassifier
    unknown = sorted(set(overrides) - set(estimator().get_params()))
    if unknown:
        raise InputError(f"the {kind!r} classifier ({estimator.__name__}) has no hyper-parameter {', '.join(unknown)}")
    model = estimator(**settings, random_state=seed)
    if kind == "hgb":
        return model
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def fit_classifier(model: Any, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> bool:
    """Fit a classifier of :func:`two_sample_classifier` on events ``x`` (n, d) with labels ``y`` and optional event
    weights; returns whether the weights entered the fit (``False`` only for an ``"mlp"`` under scikit-learn < 1.7,
    whose ``MLPClassifier`` takes no weights: it is then fitted without them, and the caller decides what that means
    for its result)."""
    from sklearn.pipeline import Pipeline

    if sample_weight is None:
        model.fit(x, y)
        return True
    if not isinstance(model, Pipeline):
        model.fit(x, y, sample_weight=sample_weight)
        return True
    step = model.steps[-1][0]
    try:
        model.fit(x, y, **{f"{step}__sample_weight": sample_weight})
    except TypeError:  # scikit-learn < 1.7: MLPClassifier.fit takes no sample_weight
        model.fit(x, y)
        return False
    return True
