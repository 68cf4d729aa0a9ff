"""Paper B §5's classifier-cut analysis: a signal-vs-background classifier trained on MC signal and
*generated* background, a selection at a score threshold, and a cross-check that the generated background
still agrees with independent MC after the cut.

The classifier is the two-sample classifier of :func:`~mcsurrogate.validation.classifiers.two_sample_classifier`:
boosted trees (``"hgb"``, default) or an ``"mlp"``, the latter with paper B's architecture (3 × 512, sigmoid
activations, :data:`PAPER_B_MLP`) instead of the C2ST's 2 × 64 ReLU, so that ``kind="mlp"`` reproduces paper B's
selection. Class weights are balanced: each class's event weights are normalised to the same total, so the score
threshold (0.55 by default) means the same thing whatever the sample sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = ["PAPER_B_MLP", "ClassifierCut", "cut_crosscheck", "train_signal_classifier"]

#: the ``"mlp"`` cut's overrides of the two-sample classifier's defaults: paper B §5's network
PAPER_B_MLP: Mapping[str, Any] = MappingProxyType({"hidden_layer_sizes": (512, 512, 512), "activation": "logistic"})


def _matrix(x: np.ndarray, name: str, d: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"{name} must be a non-empty (events × features) array; got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise InputError(f"{name} has {x.shape[1]} features; the classifier was trained on {d}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains {int((~np.isfinite(x)).sum())} NaN or inf values")
    return x


@dataclass
class ClassifierCut:
    """A trained signal-vs-background classifier and its selection threshold on P(signal)."""

    classifier: Any
    threshold: float
    n_features: int

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(signal | x) for events ``x`` (events × features)."""
        return self.classifier.predict_proba(_matrix(x, "events", self.n_features))[:, 1]

    def select(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the events with score above the threshold."""
        return self.score(x) > self.threshold


def train_signal_classifier(
    signal: np.ndarray,
    background: np.ndarray,
    *,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
    kind: Literal["hgb", "mlp"] = "hgb",
    threshold: float = 0.55,
    seed: int = 0,
) -> ClassifierCut:
    """Train P(signal | x) on MC ``signal`` and (generated) ``background`` feature matrices with a ``kind``
    classifier (``"hgb"``: the two-sample classifier's boosted trees; ``"mlp"``: paper B's 3 × 512 sigmoid network,
    which needs scikit-learn ≥ 1.7 for the event weights), seeded with ``seed``."""
    xs = _matrix(signal, "signal")
    xb = _matrix(background, "background", xs.shape[1])
    if not 0 < threshold < 1:
        raise InputError(f"threshold is a probability in (0, 1); got {threshold}")
    ws = np.ones(len(xs)) if signal_weights is None else np.asarray(signal_weights, dtype=float)
    wb = np.ones(len(xb)) if background_weights is None else np.asarray(background_weights, dtype=float)
    if ws.shape != (len(xs),) or wb.shape != (len(xb),):
        raise InputError("weights must have one entry per event of their sample")
    if np.any(ws < 0) or np.any(wb < 0):
        raise InputError("negative event weights cannot train a classifier; drop or absorb them first")
    x = np.concatenate([xs, xb])
    y = np.concatenate([np.ones(len(xs)), np.zeros(len(xb))])
    w = np.concatenate([ws / ws.sum(), wb / wb.sum()]) * len(x) / 2
    from ..validation.classifiers import fit_classifier, two_sample_classifier  # lazily: scikit-learn

    clf = two_sample_classifier(kind, seed, **(PAPER_B_MLP if kind == "mlp" else {}))
    if not fit_classifier(clf, x, y, w):
        raise InputError("the 'mlp' classifier needs scikit-learn ≥ 1.7 (event weights); use kind='hgb'")
    return ClassifierCut(clf, threshold, xs.shape[1])


def cut_crosscheck(
    cut: ClassifierCut,
    generated: np.ndarray,
    mc: np.ndarray,
    *,
    fit_generated: np.ndarray,
    fit_mc: np.ndarray,
    edges: np.ndarray,
    weights_generated: np.ndarray | None = None,
) -> dict[str, Any]:
    """Does generated-vs-MC agreement survive the cut? Efficiencies and post-cut fit-variable shapes.

    ``generated`` and ``mc`` are background feature matrices (the MC independent of everything used in
    training); ``fit_*`` their fit-variable values; ``weights_generated`` optional non-negative weights of the
    generated events (e.g. :mod:`mcsurrogate.refinement`). Returns the selection efficiencies with binomial
    uncertainties (weighted: √(Σw²(s − ε)²)/Σw), their pull, the χ² of the normalised post-cut fit-variable
    histograms on ``edges``, and those histograms (``edges``, ``counts_generated``, ``counts_mc``: selected events,
    or their weights, per bin, flow bins left out).
    """
    sel_g = cut.select(generated)
    sel_m = cut.select(mc)
    if weights_generated is None:
        w_g = np.ones(len(sel_g))
    else:
        w_g = np.asarray(weights_generated, dtype=float)
        if w_g.shape != sel_g.shape or not np.all(np.isfinite(w_g)) or np.any(w_g < 0):
            raise InputError(
                f"weights_generated must hold one finite non-negative weight per generated event ({len(sel_g)}), "
                f"got shape {w_g.shape}"
            )
    eff_g = float(np.sum(w_g * sel_g) / np.sum(w_g))
    eff_m = float(sel_m.mean())
    err_g = float(max(np.sqrt(np.sum(w_g**2 * (sel_g - eff_g) ** 2)) / np.sum(w_g), 1e-6 / np.sqrt(len(sel_g))))
    err_m = float(np.sqrt(max(eff_m * (1 - eff_m), 1e-12) / len(sel_m)))
    pull = (eff_g - eff_m) / float(np.hypot(err_g, err_m))
    fg = np.asarray(fit_generated, dtype=float)[sel_g]
    fm = np.asarray(fit_mc, dtype=float)[sel_m]
    if fg.size == 0 or fm.size == 0:
        raise InputError("no event passes the cut in one of the samples; lower the threshold")
    wg = None if weights_generated is None else w_g[sel_g]
    from ..validation.divergences import binned_divergences  # lazily: the validation layer is heavy to import

    shape = binned_divergences(fm, fg, np.asarray(edges, dtype=float), wb=wg)
    return {
        "efficiency_generated": eff_g,
        "efficiency_generated_error": err_g,
        "efficiency_mc": eff_m,
        "efficiency_mc_error": err_m,
        "efficiency_pull": float(pull),
        "efficiency_pvalue": float(2 * stats.norm.sf(abs(pull))),
        "shape_chi2": shape["chi2"],
        "shape_ndf": shape["chi2_ndf"],
        "shape_chi2_pvalue": shape["chi2_pvalue"],
        "n_selected_generated": int(sel_g.sum()),
        "n_selected_mc": int(sel_m.sum()),
        "edges": np.asarray(edges, dtype=float).tolist(),
        "counts_generated": np.histogram(fg, edges, weights=wg)[0].tolist(),
        "counts_mc": np.histogram(fm, edges)[0].tolist(),
    }
