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
import math
import numbers as _numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from . import __version__
from .arguments import (
    check_bool,
    check_columns,
    check_float,
    check_int,
    check_numeric_matrix,
    check_path,
    check_seed,
    describe,
    is_pandas,
)
from .errors import InputError, ModelDirectoryError
from .files import atomic_directory, atomic_write_text, read_json
from .records import feature_matrix
from .surrogate import Surrogate, check_schema_version
from .validation.density_ratio import DensityRatio, fit_density_ratio
from .validation.samples import kish_size

if TYPE_CHECKING:
    from .laser import Refinement

__all__ = ["Reweighting", "fit_reweighting", "fit_surrogate_reweighting"]

REWEIGHTING_FORMAT = "mcsurrogate.reweighting"
REWEIGHTING_SCHEMA_VERSION = 1
#: the only types :meth:`Reweighting.load` lets skops build beyond its own trusted defaults
_TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


def _matrix(events: Any, features: list[str], name: str) -> np.ndarray:
    """The (n, d) float64 matrix of ``features``: from records, a pandas DataFrame or a dict of columns (by name), or
    an array of them in that order (shape checked)."""
    if isinstance(events, ak.Array):
        return feature_matrix(events, features)
    if isinstance(events, Mapping) or is_pandas(events):
        present = [str(c) for c in (events.keys() if isinstance(events, Mapping) else events.columns)]
        missing = [f for f in features if f not in present]
        if missing:
            raise InputError(f"the {name} events lack the columns {missing}; they have {present}")
        columns = []
        for f in features:
            column = np.asarray(events[f])
            if column.dtype.kind not in "biuf" or column.ndim != 1:
                raise InputError(
                    f"the {name} events' column {f!r} must hold numbers (one per event), got dtype {column.dtype}"
                )
            columns.append(column.astype(np.float64))
        if len({len(c) for c in columns}) > 1:
            raise InputError(f"the {name} events' columns differ in length: {[len(c) for c in columns]}")
        return np.column_stack(columns)
    if not isinstance(events, (np.ndarray, list, tuple)):
        raise InputError(
            f"the {name} events must be records, a DataFrame, a dict of columns or an (n, {len(features)}) array of "
            f"{features}, got {describe(events)}"
        )
    return check_numeric_matrix(events, f"the {name} events", features)


def _is_real(value: Any) -> bool:
    return isinstance(value, _numbers.Real) and not isinstance(value, bool)


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

    def refine(self, surrogate: Surrogate, n: int | None = None, seed: int = 0, **kw: Any) -> Refinement:
        """``n`` unweighted events of ``surrogate`` (or, for a conditional one, one per row of ``conditions=``) drawn
        from its flow's latent space pulled back through these weights with Hamiltonian Monte Carlo (ELSA's
        latent-space refinement): see :func:`mcsurrogate.laser.refine`, which takes ``kw`` (``conditions``,
        ``chains``, ``warmup``, ``thin``, ``trajectory_length``, ``distill_events`` ...)."""
        from .laser import refine

        return refine(self, surrogate, n, seed, **kw)

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
        path = check_path(path, "path")
        overwrite = check_bool(overwrite, "overwrite")
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

        root = check_path(path, "path")
        if not root.is_dir():
            raise ModelDirectoryError(f"{root}: no such reweighting directory")
        file = root / "reweighting.json"
        config = read_json(file)
        if config.get("format") != REWEIGHTING_FORMAT:
            raise ModelDirectoryError(
                f"{root}: not a reweighting written by mcsurrogate (format {config.get('format')!r})"
            )
        check_schema_version(config, file, REWEIGHTING_SCHEMA_VERSION, "reweighting")
        try:
            ratio_config = config["density_ratio"]
            features = check_columns(config["features"], "'features'")
            folds = check_int(ratio_config["folds"], "'density_ratio.folds'", minimum=2)
            calibration = dict(ratio_config["calibration"])
            numbers = {k: config[k] for k in ("clip", "normalisation", "kish_efficiency", "n_reference", "n_generated")}
            prior_ratio = ratio_config["prior_ratio"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelDirectoryError(f"{file}: missing or malformed field ({exc!r})") from exc
        except InputError as exc:
            raise ModelDirectoryError(f"{file}: {exc}") from None
        # a weight column is w / normalisation: 0, a negative or a non-finite number gives inf, negative or NaN weights
        limits = {
            "normalisation": (0.0, "a finite number > 0"),
            "density_ratio.prior_ratio": (0.0, "a finite number > 0"),
            "clip": (1.0, "a finite number > 1"),
        }
        values = {
            "normalisation": numbers["normalisation"],
            "density_ratio.prior_ratio": prior_ratio,
            "clip": numbers["clip"],
        }
        for key, (above, expected) in limits.items():
            value = values[key]
            if not _is_real(value) or not math.isfinite(value) or not value > above:
                raise ModelDirectoryError(f"{file}: {key!r} must be {expected}, got {value!r}")
        kish = numbers["kish_efficiency"]
        if not _is_real(kish) or not 0 < kish <= 1:
            raise ModelDirectoryError(f"{file}: 'kish_efficiency' must be a number in (0, 1], got {kish!r}")
        for key in ("n_reference", "n_generated"):
            count = numbers[key]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ModelDirectoryError(f"{file}: {key!r} must be a positive integer, got {count!r}")
        floats = {k: float(numbers[k]) for k in ("clip", "normalisation", "kish_efficiency")}
        counts = {k: int(numbers[k]) for k in ("n_reference", "n_generated")}
        prior_ratio = float(prior_ratio)
        trees = root / "classifiers.skops"
        if not trees.is_file():
            raise ModelDirectoryError(f"{trees}: file missing")
        try:
            untrusted = sio.get_untrusted_types(file=trees)
            unexpected = sorted(set(untrusted) - set(_TRUSTED_TYPES))
            if unexpected:
                raise ModelDirectoryError(f"{trees}: holds types a reweighting does not use, refused: {unexpected}")
            models = sio.load(trees, trusted=list(untrusted))
        except ModelDirectoryError:
            raise
        except Exception as exc:  # skops raises many kinds on a damaged zip
            raise ModelDirectoryError(f"{trees}: not a readable skops file ({exc})") from exc
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
                f"{trees}: expected {folds} boosted-tree classifiers of {len(features)} features, as reweighting.json says"
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
    features = check_columns(features, "features")
    clip = check_float(clip, "clip", above=1.0)
    folds = check_int(folds, "folds", minimum=2)
    learning_rate = check_float(learning_rate, "learning_rate", above=0.0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    seed = check_seed(seed, generator=False)
    x_ref, x_gen = _matrix(reference, features, "reference"), _matrix(generated, features, "generated")
    ratio = fit_density_ratio(x_ref, x_gen, folds=folds, learning_rate=learning_rate, max_iter=max_iter, seed=seed)
    w = ratio.weights(x_gen, clip=clip)
    return Reweighting(
        features=features,
        ratio=ratio,
        clip=float(clip),
        normalisation=float(w.mean()),
        kish_efficiency=kish_size(w, len(w)) / len(w),
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
    if not isinstance(model, Surrogate):
        raise InputError(f"model must be a Surrogate, got {describe(model)}")
    factor = check_int(factor, "factor", minimum=1)
    check_seed(seed, generator=False)
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
