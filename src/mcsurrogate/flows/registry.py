"""Flow families by name: one typed configuration, one builder per family.

>>> from mcsurrogate.flows import FlowConfig, build_flow
>>> flow = build_flow(FlowConfig(model="maf", blocks=2, hidden=16), features=3, context_features=2)
>>> flow.features
3
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nflows.transforms import (
    ActNorm,
    BatchNorm,
    CompositeTransform,
    IdentityTransform,
    RandomPermutation,
    ReversePermutation,
)
from nflows.transforms.base import Transform

from ..arguments import check_bool, check_choice, check_float, check_int, describe
from ..errors import InputError, refuse_unknown_fields
from .autoregressive import AffineAutoregressive, SplineAutoregressive
from .coupling import InvertibleLinear, affine_coupling, spline_coupling
from .flow_matching import FlowMatchingSettings, build_flow_matching
from .made import ACTIVATIONS
from .made_mog import MADEMoG
from .model import FlowModel, StandardNormal

__all__ = ["FLOW_FAMILIES", "FlowConfig", "build_flow"]


@dataclass(frozen=True)
class FlowConfig:
    """Hyperparameters of a flow; every family reads the fields that apply to it.

    Attributes
    ----------
    model: family name, one of :data:`FLOW_FAMILIES`.
    blocks: number of flow blocks (for ``made-mog``: residual blocks inside its one MADE).
    hidden: width of the hidden layers of each block's network.
    layers: hidden layers per network (paper A: 2).
    activation: ``relu``, ``gelu``, ``elu``, ``silu`` or ``tanh``.
    residual: residual MADE blocks (paper B's MADE-MoG).
    bins: spline bins; tail_bound: spline interval ``[-tail_bound, tail_bound]`` (linear outside).
    components: Gaussians per conditional of a MADE-MoG.
    permutation: ``reverse`` or ``random`` (seeded by ``permutation_seed``) between autoregressive blocks.
    batch_norm: batch normalisation between coupling blocks (RealNVP option).
    affine_blocks: for ``rqs-ar``, affine autoregressive (MAF) blocks applied to the data before the ``blocks``
        spline blocks: they learn the conditional location and scale (a resolution that varies by a factor of a
        few with the conditions), so that the splines, whose bins have a fixed width, only shape what is left.
    flow_matching: for ``flow-matching``, the ODE solvers of sampling and ``log_prob`` and ``sigma_min``
        (:class:`~mcsurrogate.flows.flow_matching.FlowMatchingSettings`, or a dict of its fields in the JSON form of
        ``to_dict``; fields left out take their defaults); ``None`` (the default) becomes the default settings for
        ``flow-matching`` and must stay ``None`` for the other families. :meth:`to_dict` leaves the key out when it is
        ``None``, so the other families' dicts (and the resume fingerprints of ``Surrogate.fit``) are those of
        earlier versions, and a ``flow-matching`` configuration saved before the field existed loads with the
        defaults.
    """

    model: str = "maf"
    blocks: int = 5
    hidden: int = 128
    layers: int = 2
    activation: str = "relu"
    residual: bool = False
    bins: int = 8
    tail_bound: float = 5.0
    components: int = 10
    permutation: str = "reverse"
    permutation_seed: int = 0
    batch_norm: bool = False
    affine_blocks: int = 0
    flow_matching: FlowMatchingSettings | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise InputError(
                f"flow parameter 'model' must be a family name ({', '.join(FLOW_FAMILIES)}), got {describe(self.model)}"
            )
        if self.model not in FLOW_FAMILIES:
            raise InputError(f"unknown flow model {self.model!r}; choose one of {', '.join(FLOW_FAMILIES)}")
        check_choice(self.activation, "flow parameter 'activation'", list(ACTIVATIONS))
        check_choice(self.permutation, "flow parameter 'permutation'", ("reverse", "random"))
        # plain Python numbers, so that to_dict() is JSON (a numpy integer would not be)
        for name in ("blocks", "hidden", "layers", "bins", "components"):
            object.__setattr__(self, name, check_int(getattr(self, name), f"flow parameter {name!r}", minimum=1))
        for name in ("affine_blocks", "permutation_seed"):
            object.__setattr__(self, name, check_int(getattr(self, name), f"flow parameter {name!r}", minimum=0))
        for name in ("residual", "batch_norm"):
            object.__setattr__(self, name, check_bool(getattr(self, name), f"flow parameter {name!r}"))
        tail_bound = check_float(self.tail_bound, "flow parameter 'tail_bound'", above=0.0)
        if not isinstance(self.tail_bound, int):  # an integer stays one: the configuration's fingerprint is unchanged
            object.__setattr__(self, "tail_bound", tail_bound)
        if self.affine_blocks and self.model != "rqs-ar":
            raise InputError(f"flow parameter 'affine_blocks' applies to model 'rqs-ar' only, not {self.model!r}")
        if self.model == "flow-matching":
            settings = FlowMatchingSettings() if self.flow_matching is None else self.flow_matching
            object.__setattr__(self, "flow_matching", FlowMatchingSettings.from_dict(settings, "flow_matching"))
        elif self.flow_matching is not None:
            raise InputError(
                f"flow parameter 'flow_matching' applies to model 'flow-matching' only, not {self.model!r} "
                "(leave it out or set it to None)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``flow_matching`` only for the ``flow-matching`` family (see the class docstring)."""
        out = dataclasses.asdict(self)
        if out["flow_matching"] is None:
            del out["flow_matching"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowConfig:
        """Build from a dict, refusing unknown keys (listing the valid ones) and anything but a dict."""
        if not isinstance(data, Mapping):
            raise InputError(f"flow must be a dict of FlowConfig fields, got {describe(data)}")
        refuse_unknown_fields(cls, data, "flow")
        return cls(**data)


def _permutation(cfg: FlowConfig, features: int, index: int) -> Transform:
    if cfg.permutation == "random":
        import torch

        gen = torch.Generator().manual_seed(cfg.permutation_seed * 1000 + index)
        perm = RandomPermutation(features)
        perm._permutation.copy_(torch.randperm(features, generator=gen))
        return perm
    return ReversePermutation(features)


def _autoregressive_stack(cfg: FlowConfig, d: int, c: int | None, spline: bool) -> Transform:
    layers: list[Transform] = []
    for i in range(cfg.affine_blocks if spline else 0):
        layers.append(
            AffineAutoregressive(d, cfg.hidden, c, layers=cfg.layers, activation=cfg.activation, residual=cfg.residual)
        )
        if d > 1:
            layers.append(_permutation(cfg, d, cfg.blocks + i))
    for i in range(cfg.blocks):
        if spline:
            layers.append(
                SplineAutoregressive(
                    d,
                    cfg.hidden,
                    c,
                    bins=cfg.bins,
                    tail_bound=cfg.tail_bound,
                    layers=cfg.layers,
                    activation=cfg.activation,
                    residual=cfg.residual,
                )
            )
        else:
            layers.append(
                AffineAutoregressive(
                    d, cfg.hidden, c, layers=cfg.layers, activation=cfg.activation, residual=cfg.residual
                )
            )
        if d > 1:
            layers.append(_permutation(cfg, d, i))
    return CompositeTransform(layers)


def _build_maf(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    return FlowModel(_autoregressive_stack(cfg, d, c, spline=False), StandardNormal(d), d, c)


def _build_rqs_ar(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    return FlowModel(_autoregressive_stack(cfg, d, c, spline=True), StandardNormal(d), d, c)


def _mog(cfg: FlowConfig, d: int, c: int | None, blocks: int) -> MADEMoG:
    return MADEMoG(
        d,
        cfg.hidden,
        c,
        components=cfg.components,
        layers=blocks + 1,
        activation=cfg.activation,
        residual=True if blocks > 1 else cfg.residual,
    )


def _build_made_mog(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    return FlowModel(IdentityTransform(), _mog(cfg, d, c, cfg.blocks), d, c)


def _build_maf_made_mog(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    return FlowModel(_autoregressive_stack(cfg, d, c, spline=False), _mog(cfg, d, c, 1), d, c)


def _require_coupling(d: int, model: str) -> None:
    if d < 2:
        raise InputError(f"flow model {model!r} is a coupling flow and needs at least 2 target features, got {d}")


def _build_realnvp(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    _require_coupling(d, cfg.model)
    layers: list[Transform] = []
    for i in range(cfg.blocks):
        layers.append(affine_coupling(d, i, cfg.hidden, c, layers=cfg.layers, activation=cfg.activation))
        if cfg.batch_norm and i < cfg.blocks - 1:
            layers.append(BatchNorm(d))
    return FlowModel(CompositeTransform(layers), StandardNormal(d), d, c)


def _build_glow(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    _require_coupling(d, cfg.model)
    layers: list[Transform] = []
    for i in range(cfg.blocks):
        layers += [
            BatchNorm(d) if cfg.batch_norm else ActNorm(d),
            InvertibleLinear(d),
            affine_coupling(d, i, cfg.hidden, c, layers=cfg.layers, activation=cfg.activation),
        ]
    return FlowModel(CompositeTransform(layers), StandardNormal(d), d, c)


def _build_rqs_coupling(cfg: FlowConfig, d: int, c: int | None) -> FlowModel:
    _require_coupling(d, cfg.model)
    layers: list[Transform] = []
    for i in range(cfg.blocks):
        layers.append(
            spline_coupling(
                d,
                i,
                cfg.hidden,
                c,
                bins=cfg.bins,
                tail_bound=cfg.tail_bound,
                layers=cfg.layers,
                activation=cfg.activation,
            )
        )
        if d > 2:
            layers.append(InvertibleLinear(d))
    return FlowModel(CompositeTransform(layers), StandardNormal(d), d, c)


#: family name → builder(config, features, context_features)
FLOW_FAMILIES: dict[str, Callable[[FlowConfig, int, int | None], FlowModel]] = {
    "maf": _build_maf,
    "made-mog": _build_made_mog,
    "maf-made-mog": _build_maf_made_mog,
    "rqs-ar": _build_rqs_ar,
    "rqs-coupling": _build_rqs_coupling,
    "realnvp": _build_realnvp,
    "glow": _build_glow,
    "flow-matching": build_flow_matching,
}


def build_flow(config: FlowConfig, features: int, context_features: int | None = None) -> FlowModel:
    """Build the flow ``config.model`` for ``features`` targets and ``context_features`` conditions (or none)."""
    if features < 1:
        raise InputError(f"a flow needs at least one target feature, got {features}")
    return FLOW_FAMILIES[config.model](config, features, context_features or None)
