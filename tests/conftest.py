"""Shared fixtures: small, real event samples."""

from __future__ import annotations

from collections.abc import Iterator

import awkward as ak
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """One thread for torch, OpenMP (scikit-learn's boosted trees) and BLAS: the tests' models and samples are tiny,
    and on a 2-core machine shared with anything else two threads that wait for each other's time slices made a tiny
    training 6× and a C2ST up to 100× slower (measured at load 10). Code that sets its own limits still does."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield


def correlated_events(n: int, seed: int = 0) -> ak.Array:
    """Three correlated, skewed targets (GeV-like scales) whose shape depends on a condition ``mu`` in [0, 40]."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0, 40, n)
    z = rng.multivariate_normal([0, 0, 0], [[1, 0.7, 0.2], [0.7, 1, 0.4], [0.2, 0.4, 1]], size=n)
    a = 50 + 10 * z[:, 0] + 0.5 * mu
    b = 2.0 * z[:, 1] * (1 + mu / 40)
    c = np.exp(0.3 * z[:, 2])
    return ak.zip({"a": a, "b": b, "c": c, "mu": mu})


@pytest.fixture(scope="session")
def small_events() -> ak.Array:
    return correlated_events(4000, seed=0)
