"""Coupling transforms on nflows: affine (RealNVP, Glow) and rational-quadratic spline.

A coupling block transforms half of the features with parameters computed from the other half and
the context, so both directions (density and sampling) take one network pass. The conditioner is
nflows' ``ResidualNet``, which feeds the context into its input and into every block, so every
output depends on the context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nflows.nn.nets import ResidualNet
from nflows.transforms import LULinear
from nflows.transforms.coupling import (
    AffineCouplingTransform,
    PiecewiseRationalQuadraticCouplingTransform,
)

from .made import ACTIVATIONS

__all__ = ["InvertibleLinear", "affine_coupling", "alternating_mask", "spline_coupling"]


class InvertibleLinear(LULinear):
    """Glow's invertible 1×1 convolution for vectors: nflows' LU-parametrised linear map, identity at start.

    Its inverse solves the triangular systems with ``torch.linalg.solve_triangular``; nflows 0.14 calls the
    deprecated ``torch.triangular_solve``, which PyTorch announces it will remove.
    """

    def __init__(self, features: int) -> None:
        super().__init__(features, identity_init=True)

    def inverse_no_cache(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lower, upper = self._create_lower_upper()
        y = (inputs - self.bias).t()
        y = torch.linalg.solve_triangular(lower, y, upper=False, unitriangular=True)
        y = torch.linalg.solve_triangular(upper, y, upper=True)
        return y.t(), -self.logabsdet() * inputs.new_ones(inputs.shape[0])


def alternating_mask(features: int, parity: int) -> torch.Tensor:
    """nflows coupling mask: +1 marks features that are transformed, −1 the ones that condition."""
    mask = -torch.ones(features)
    mask[parity % 2 :: 2] = 1
    return mask


def _net_factory(
    hidden: int, context_features: int | None, layers: int, activation: str
) -> Callable[[int, int], ResidualNet]:
    def create(in_features: int, out_features: int) -> ResidualNet:
        return ResidualNet(
            in_features,
            out_features,
            hidden_features=hidden,
            context_features=context_features or None,
            num_blocks=max(1, layers - 1),
            activation=ACTIVATIONS[activation],
        )

    return create


def affine_coupling(
    features: int,
    parity: int,
    hidden: int,
    context_features: int | None = None,
    layers: int = 2,
    activation: str = "relu",
) -> AffineCouplingTransform:
    """RealNVP/Glow affine coupling block (scale = sigmoid(·+2) + 1e-3, nflows' parametrisation)."""
    return AffineCouplingTransform(
        alternating_mask(features, parity), _net_factory(hidden, context_features, layers, activation)
    )


def spline_coupling(
    features: int,
    parity: int,
    hidden: int,
    context_features: int | None = None,
    bins: int = 8,
    tail_bound: float = 5.0,
    layers: int = 2,
    activation: str = "relu",
) -> PiecewiseRationalQuadraticCouplingTransform:
    """Rational-quadratic spline coupling block (Durkan et al. 2019), linear tails outside ±``tail_bound``."""
    return PiecewiseRationalQuadraticCouplingTransform(
        alternating_mask(features, parity),
        _net_factory(hidden, context_features, layers, activation),
        num_bins=bins,
        tails="linear",
        tail_bound=tail_bound,
    )
