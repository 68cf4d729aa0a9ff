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
(:mod:`~mcsurrogate.validation.effective_statistics`).

:meth:`Reweighting.save` writes a directory without pickle: the numbers in ``reweighting.json`` and the boosted
trees in ``classifiers.skops`` (skops' format: JSON and NumPy arrays in a zip; :meth:`Reweighting.load` trusts
exactly the scikit-learn tree types and refuses any other object in it).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from . import __version__
from .errors import InputError, ModelDirectoryError
from .files import atomic_directory, atomic_write_text, read_json
from .records import feature_matrix
from .surrogate import Surrogate
from .validation.density_ratio import DensityRatio, fit_density_ratio

__all__ = ["Reweighting", "fit_reweighting", "fit_surrogate_reweighting"]

REWEIGHTING_FORMAT = "mcsurrogate.reweighting"
REWEIGHTING_SCHEMA_VERSION = 1
#: the only types :meth:`Reweighting.load` lets skops build beyond its own trusted defaults
_TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


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

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the reweighting to a directory, atomically: ``reweighting.json`` (features, clip, normalisation,
        Kish efficiency, calibration, versions) and ``classifiers.skops`` (the cross-fitted boosted trees)."""
        import sklearn
        import skops
        import skops.io as sio

        config = {
            "format": REWEIGHTING_FORMAT,
            "schema_version": REWEIGHTING_SCHEMA_VERSION,
            **self.to_dict(),
            "versions": {"mcsurrogate": __version__, "scikit-learn": sklearn.__version__, "skops": skops.__version__},
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_directory(path, overwrite=overwrite) as tmp:
            sio.dump(list(self.ratio.models), tmp / "classifiers.skops")
            atomic_write_text(tmp / "reweighting.json", json.dumps(config, indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reweighting:
        """Load a directory written by :meth:`save`. Raises :class:`ModelDirectoryError` for a missing or damaged
        directory, another format, or a classifier file holding types other than scikit-learn's boosted trees;
        warns when the scikit-learn version differs from the one that saved it."""
        import sklearn
        import skops.io as sio
        from sklearn.ensemble import HistGradientBoostingClassifier

        root = Path(path)
        if not root.is_dir():
            raise ModelDirectoryError(f"{root}: no such reweighting directory")
        config = read_json(root / "reweighting.json")
        if config.get("format") != REWEIGHTING_FORMAT:
            raise ModelDirectoryError(
                f"{root}: not a reweighting written by mcsurrogate (format {config.get('format')!r})"
            )
        if config.get("schema_version", 0) > REWEIGHTING_SCHEMA_VERSION:
            raise ModelDirectoryError(
                f"{root}: schema version {config['schema_version']} is newer than this mcsurrogate reads "
                f"({REWEIGHTING_SCHEMA_VERSION}); upgrade mcsurrogate"
            )
        try:
            features = [str(f) for f in config["features"]]
            folds = int(config["density_ratio"]["folds"])
            floats = {k: float(config[k]) for k in ("clip", "normalisation", "kish_efficiency")}
            counts = {k: int(config[k]) for k in ("n_reference", "n_generated")}
            prior_ratio = float(config["density_ratio"]["prior_ratio"])
            calibration = dict(config["density_ratio"]["calibration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelDirectoryError(f"{root / 'reweighting.json'}: missing or malformed field ({exc!r})") from exc
        file = root / "classifiers.skops"
        if not file.is_file():
            raise ModelDirectoryError(f"{file}: file missing")
        try:
            untrusted = sio.get_untrusted_types(file=file)
            unexpected = sorted(set(untrusted) - set(_TRUSTED_TYPES))
            if unexpected:
                raise ModelDirectoryError(f"{file}: holds types a reweighting does not use, refused: {unexpected}")
            models = sio.load(file, trusted=list(untrusted))
        except ModelDirectoryError:
            raise
        except Exception as exc:  # skops raises many kinds on a damaged zip
            raise ModelDirectoryError(f"{file}: not a readable skops file ({exc})") from exc
        saved_with = config.get("versions", {}).get("scikit-learn")
        if saved_with != sklearn.__version__:
            warnings.warn(
                f"{root} was saved with scikit-learn {saved_with}, this is {sklearn.__version__}: check its weights",
                stacklevel=2,
            )
        if (
            not isinstance(models, list)
            or len(models) != folds
            or not all(isinstance(m, HistGradientBoostingClassifier) for m in models)
            or any(m.n_features_in_ != len(features) for m in models)
        ):
            raise ModelDirectoryError(
                f"{file}: expected {folds} boosted-tree classifiers of {len(features)} features, as reweighting.json says"
            )
        ratio = DensityRatio(models, prior_ratio, calibration)
        return cls(
            features=features,
            ratio=ratio,
            clip=floats["clip"],
            normalisation=floats["normalisation"],
            kish_efficiency=floats["kish_efficiency"],
            n_reference=counts["n_reference"],
            n_generated=counts["n_generated"],
        )


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
