"""Paper B's splits of the MC samples, by seeded permutations.

Background (t t̄): 50 % held out (never used for training or any choice: the final quality bars), 10 % for model
selection, 40 % for training (of which a surrogate keeps 10 % for early stopping). Signal: half trains the signal
classifier, half makes the signal template.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from ..errors import InputError

__all__ = ["BackgroundSplits", "SignalSplits", "split_background", "split_signal"]


@dataclass(frozen=True)
class BackgroundSplits:
    """The three disjoint parts of the background sample."""

    holdout: ak.Array
    select: ak.Array
    train: ak.Array

    def sizes(self) -> dict[str, int]:
        """Events per split, ``{"holdout": …, "select": …, "train": …}``."""
        return {"holdout": len(self.holdout), "select": len(self.select), "train": len(self.train)}


@dataclass(frozen=True)
class SignalSplits:
    """The two disjoint halves of the signal sample: one trains the signal classifier, one fills the template."""

    classifier: ak.Array
    template: ak.Array


def split_background(events: ak.Array, seed: int) -> BackgroundSplits:
    """50 % held out, 10 % model selection, 40 % training, by the permutation of ``numpy.random.default_rng(seed)``
    (the held-out part first)."""
    n = len(events)
    if n < 10:
        raise InputError(f"the background sample needs at least 10 events to split 50/10/40, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    h, s = n // 2, n // 2 + n // 10
    return BackgroundSplits(holdout=events[perm[:h]], select=events[perm[h:s]], train=events[perm[s:]])


def split_signal(events: ak.Array, seed: int) -> SignalSplits:
    """The first half of the permutation of ``numpy.random.default_rng(seed)`` for the classifier, the rest (one
    more event when the size is odd) for the template."""
    if len(events) < 2:
        raise InputError(f"the signal sample needs at least 2 events to split in halves, got {len(events)}")
    perm = np.random.default_rng(seed).permutation(len(events))
    half = len(events) // 2
    return SignalSplits(classifier=events[perm[:half]], template=events[perm[half:]])
