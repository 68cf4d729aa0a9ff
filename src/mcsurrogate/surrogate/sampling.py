"""Drawing events from a trained surrogate in batches of bounded size: seeded (or given) standard-normal noise
through the flow, the target preprocessing (and event transform) inverted, and flat records with vector objects.
The same seed gives the same sample whatever the batch size."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import torch
from tqdm.auto import tqdm

from ..arguments import check_int, check_seed, describe
from ..errors import InputError
from ..records import FeatureSpec, from_matrix, to_objects
from .inputs import condition_matrix

if TYPE_CHECKING:
    from .model import Surrogate

__all__ = ["sample_matrices", "sample_records"]


def _check_noise(noise: Any, n: int, noise_features: int) -> np.ndarray:
    """``noise`` as a float32 matrix (n, noise_features) of finite numbers, else :class:`InputError`."""
    raw = np.asarray(noise) if not isinstance(noise, np.ndarray) else noise
    if raw.dtype.kind not in "biuf":
        raise InputError(f"noise must hold numbers (standard-normal draws), got {describe(noise)}")
    out = raw.astype(np.float32, copy=False)
    if out.shape != (n, noise_features):
        raise InputError(f"noise must have shape ({n}, {noise_features}); got {out.shape}")
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise InputError(f"noise holds {bad} non-finite values (NaN/inf); it must be standard-normal draws")
    return out


def sample_matrices(
    surrogate: Surrogate,
    n: int | None,
    conditions: ak.Array | np.ndarray | Mapping[str, Any] | None,
    seed: int | np.random.Generator,
    batch_size: int,
    progress: bool | None,
    noise: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Batches of (targets in original units, their condition rows or ``None``) for the arguments of
    :meth:`~mcsurrogate.surrogate.Surrogate.sample`; the arguments are checked when the first batch is asked for."""
    model = surrogate.trained_model.to(surrogate.device).eval()
    if n is not None:
        n = check_int(n, "n", minimum=0)
    seed = check_seed(seed)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    c = None
    if surrogate.conditional:
        if conditions is None:
            raise InputError(f"this surrogate is conditional: pass conditions with columns {surrogate.conditions}")
        c = condition_matrix(surrogate.spec, conditions, surrogate.metrics.get("condition_ranges") or {})
        if n is not None and n != len(c):
            raise InputError(f"n={n} differs from the number of condition rows ({len(c)}); pass one or the other")
        n = len(c)
        cy = surrogate.flow_from_conditions(c)
    else:
        if conditions is not None:
            raise InputError("this surrogate is unconditional: pass n, not conditions")
        if n is None or n < 0:
            raise InputError(f"pass the number of events to sample as a non-negative n, got {n!r}")
    if noise is not None:
        noise = _check_noise(noise, n, model.noise_features)
    device = surrogate.device
    bar = tqdm(
        total=n, disable=(None if progress is None else not progress), desc="sampling", unit="ev", unit_scale=True
    )
    try:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            z = (model.draw_noise(stop - start, rng) if noise is None else torch.from_numpy(noise[start:stop])).to(
                device
            )
            ctx = None if c is None else torch.as_tensor(cy[start:stop], dtype=torch.float32, device=device)
            with torch.inference_mode():
                y = model.sample_from_noise(z, ctx).double().cpu().numpy()
            yield surrogate.targets_from_flow(y), None if c is None else c[start:stop]
            bar.update(stop - start)
    finally:
        bar.close()


def sample_records(spec: FeatureSpec, x: np.ndarray, c: np.ndarray | None) -> ak.Array:
    """Flat records of the target matrix ``x`` and condition matrix ``c`` (original units), with each object
    collection of ``spec`` whose slot columns are all present added as vector ``Momentum4D`` lists."""
    matrix = x if c is None else np.hstack([x, c])
    flat = from_matrix(matrix, list(spec.targets) + list(spec.conditions))
    for slots in spec.objects:
        if all(col in flat.fields for col in slots.columns()):
            flat = ak.with_field(flat, to_objects(flat, slots), slots.collection)
    return flat
