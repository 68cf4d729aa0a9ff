"""The amplifier of a paper-B study: the best of a model comparison on the selection split, or a model an earlier
study trained on the same training split (re-used without training again)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..amplification import ComparisonRow, best_candidate
from ..errors import InputError
from ..surrogate import Surrogate

__all__ = ["ModelChoice", "choose_best", "reuse_model"]

log = logging.getLogger(__name__)


@dataclass
class ModelChoice:
    """The amplifier, its name, the comparison rows that chose it (:meth:`ComparisonRow.to_dict
    <mcsurrogate.amplification.ComparisonRow.to_dict>`; empty for a re-used model with no ``comparison.json``
    beside it), the training settings, and every trained candidate's training history (``{name: history}``)."""

    model: Surrogate
    name: str
    comparison: list[dict[str, Any]]
    training: dict[str, Any]
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def choose_best(
    rows: Sequence[ComparisonRow], models: Mapping[str, Surrogate], training: Mapping[str, Any]
) -> ModelChoice:
    """The best candidate (:func:`~mcsurrogate.amplification.best_candidate`) of a comparison's ``rows`` and
    trained ``models`` (what :func:`~mcsurrogate.amplification.compare_models` returns, trained with the settings
    ``training``)."""
    best = best_candidate(rows)
    log.info("best model on the selection split: %s (AUC %.4f)", best.name, best.auc)
    return ModelChoice(
        model=models[best.name],
        name=best.name,
        comparison=[r.to_dict() for r in rows],
        training=dict(training),
        histories={name: m.metrics["training"]["history"] for name, m in models.items()},
    )


def reuse_model(path: str | os.PathLike[str], n_train: int) -> ModelChoice:
    """A model directory an earlier study wrote (its ``best_model``), which must have been trained on ``n_train``
    events (the same samples and seed, or the held-out MC would not be held out). The comparison rows come from the
    ``comparison.json`` beside it when there, the command that trained it from the ``report.json`` beside it."""
    path = Path(path)
    model = Surrogate.load(path)
    n_trained = model.metrics.get("data", {}).get("n_input")
    if n_trained != n_train:
        raise InputError(
            f"the model {path} was trained on {n_trained} events; this study's training split has {n_train}: use "
            "the number of background events and the seed it was trained with, so that the held-out MC stays held "
            "out"
        )
    beside = path.parent / "comparison.json"
    rows: list[dict[str, Any]] = json.loads(beside.read_text()) if beside.is_file() else []
    trained = [r for r in rows if not r["failure"]]
    name = trained[0]["name"] if len(trained) == 1 else str(path)
    training = {**model.train_config.to_dict(), "reused_model": str(path)}
    earlier = path.parent / "report.json"
    if earlier.is_file():  # the command that trained it, when the model sits in that run's output
        before = json.loads(earlier.read_text())
        training["trained_by"] = before.get("training", {}).get("trained_by") or before.get("command")
    return ModelChoice(
        model=model,
        name=name,
        comparison=rows,
        training=training,
        histories={name: model.metrics["training"]["history"]},
    )
