"""One detector-response study: smear truth with a reference scenario, train a surrogate, apply it to the held-out
test split, and evaluate it there. Shared by ``mcsurrogate demo`` and ``analyses/hgg_detector_response``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from ..surrogate import Surrogate
from ..training import split_indices
from .evaluation import ResponseEvaluation, evaluate_response
from .surrogate import DEFAULT_LAYOUT, ResponseLayout, apply_response, train_response

__all__ = ["ScenarioResult", "run_scenario"]


@dataclass
class ScenarioResult:
    """The trained model, the reference and surrogate smearing of the test split, their comparison and timings (s)."""

    model: Surrogate
    reference: ak.Array
    generated: ak.Array
    evaluation: ResponseEvaluation
    seconds: dict[str, float]
    n_events: int

    def to_dict(self) -> dict[str, Any]:
        training = dict(self.model.metrics.get("training", {}))
        return {
            "n_events": self.n_events,
            "n_test": len(self.reference),
            "data": self.model.metrics.get("data"),
            "flow": self.model.flow_config.to_dict(),
            "training_config": self.model.train_config.to_dict(),
            "training": training,
            "n_parameters": self.model.metrics.get("n_parameters"),
            "seconds": self.seconds,
            "apply_events_per_second": len(self.reference) / max(self.seconds["apply"], 1e-9),
            "evaluation": self.evaluation.to_dict(),
        }


def run_scenario(
    smeared: ak.Array,
    *,
    preset: str = "spline",
    flow: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    layout: ResponseLayout = DEFAULT_LAYOUT,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    n_boot: int = 20,
    progress: bool | None = None,
) -> ScenarioResult:
    """Split ``smeared`` (reco + truth) events 80/10/10 (seeded), train on the first two parts (training and model
    selection) and evaluate on the test part, which the surrogate never sees; it smears their truth with ``seed + 1``.
    """
    split = split_indices(len(smeared), fractions, seed)
    training = {"seed": seed, "fractions": (0.8 / 0.9, 0.1 / 0.9, 0.0)} | (training or {})
    t0 = time.perf_counter()
    fit_part = smeared[np.sort(np.concatenate([split.train, split.validation]))]
    model = train_response(fit_part, preset, layout=layout, flow=flow, training=training, progress=progress)
    t_train = time.perf_counter() - t0
    reference = smeared[split.test]
    truth = ak.zip(
        {layout.collection: reference[layout.truth_collection], layout.pileup: reference[layout.pileup]}, depth_limit=1
    )
    t1 = time.perf_counter()
    generated = apply_response(model, truth, layout=layout, seed=seed + 1)
    t_apply = time.perf_counter() - t1
    evaluation = evaluate_response(reference, generated, layout=layout, n_boot=n_boot, seed=seed)
    return ScenarioResult(
        model,
        reference,
        generated,
        evaluation,
        {"train": t_train, "apply": t_apply, "evaluate": time.perf_counter() - t1 - t_apply},
        len(smeared),
    )
