"""The user-facing surrogate: feature specification + fitted preprocessing + flow + metadata.

>>> import numpy as np, awkward as ak
>>> from mcsurrogate import Surrogate
>>> rng = np.random.default_rng(0)
>>> events = ak.zip({"x": rng.normal(size=2000), "y": rng.normal(size=2000), "mu": rng.uniform(0, 40, 2000)})
>>> s = Surrogate(["x", "y"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8},
...               training={"epochs": 1, "device": "cpu"}).fit(events, progress=False)
>>> s.sample(conditions=events[:5], seed=1).fields
['x', 'y', 'mu']

A model directory holds ``config.json`` (schema-versioned), ``preprocessing.json``,
``weights.safetensors`` and ``metrics.json`` (and ``event_transform.json`` with an event transform); nothing is
pickled.

The parts: :mod:`.model` (the :class:`Surrogate` class: construction, training, evaluation), :mod:`.inputs`
(events and conditions checked and turned into matrices), :mod:`.event_transform` (event-level maps between the
targets and the flow's columns), :mod:`.sampling` (batched generation) and :mod:`.storage` (the model directory and
its schema).
"""

from .model import NEGATIVE_WEIGHTS, Surrogate
from .storage import MODEL_FORMAT, SCHEMA_VERSION, check_schema_version

__all__ = ["MODEL_FORMAT", "NEGATIVE_WEIGHTS", "SCHEMA_VERSION", "Surrogate", "check_schema_version"]
