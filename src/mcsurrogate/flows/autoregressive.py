"""Autoregressive transforms (MAF affine, rational-quadratic spline) on nflows, with :class:`ConditionalMADE`.

The elementwise maths is nflows' own (``MaskedAffineAutoregressiveTransform`` and
``MaskedPiecewiseRationalQuadraticAutoregressiveTransform``); only the network is replaced, so that a
conditional transform conditions every feature (see :mod:`mcsurrogate.flows.made`).

Direction: ``forward`` maps data → noise in one network pass (density evaluation, training); ``inverse``
(sampling) draws the features one after the other with :meth:`ConditionalMADE.autoregressive_inverse`, whose D steps
cost one network pass and one elementwise inverse per feature (nflows' loop: D passes, each inverting every feature).
"""

from __future__ import annotations

import torch
from nflows.transforms.autoregressive import (
    AutoregressiveTransform,
    MaskedAffineAutoregressiveTransform,
    MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
)
from nflows.transforms.splines import rational_quadratic
from torch.nn import functional as F

from .made import ConditionalMADE

__all__ = ["AffineAutoregressive", "SplineAutoregressive"]


class AffineAutoregressive(MaskedAffineAutoregressiveTransform):
    """MAF block: ``z = x · softplus(a(x<d, c)) + b(x<d, c)`` (nflows' parametrisation, scale ≥ 1e-3)."""

    def __init__(
        self,
        features: int,
        hidden: int,
        context_features: int | None = None,
        layers: int = 2,
        activation: str = "relu",
        residual: bool = False,
    ) -> None:
        self.features = features
        self._epsilon = 1e-3
        net = ConditionalMADE(
            features,
            hidden,
            context_features,
            output_multiplier=2,
            layers=layers,
            activation=activation,
            residual=residual,
        )
        AutoregressiveTransform.__init__(self, net)

    def _feature_inverse(self, z: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = F.softplus(params[:, 0]) + self._epsilon
        return ((z[:, 0] - params[:, 1]) / scale)[:, None], -torch.log(scale)

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _inverse(self, inputs, context)


class SplineAutoregressive(MaskedPiecewiseRationalQuadraticAutoregressiveTransform):
    """Rational-quadratic spline autoregressive block on ``[-tail_bound, tail_bound]``, linear tails outside."""

    def __init__(
        self,
        features: int,
        hidden: int,
        context_features: int | None = None,
        bins: int = 8,
        tail_bound: float = 5.0,
        layers: int = 2,
        activation: str = "relu",
        residual: bool = False,
    ) -> None:
        self.num_bins = bins
        self.min_bin_width = rational_quadratic.DEFAULT_MIN_BIN_WIDTH
        self.min_bin_height = rational_quadratic.DEFAULT_MIN_BIN_HEIGHT
        self.min_derivative = rational_quadratic.DEFAULT_MIN_DERIVATIVE
        self.tails = "linear"
        self.tail_bound = tail_bound
        net = ConditionalMADE(
            features,
            hidden,
            context_features,
            output_multiplier=self._output_dim_multiplier(),
            layers=layers,
            activation=activation,
            residual=residual,
        )
        AutoregressiveTransform.__init__(self, net)

    def _feature_inverse(self, z: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._elementwise(z, params.clone(), inverse=True)  # nflows' maths on one feature; it edits params

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _inverse(self, inputs, context)


def _inverse(
    transform: AffineAutoregressive | SplineAutoregressive, inputs: torch.Tensor, context: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    net = transform.autoregressive_net
    assert isinstance(net, ConditionalMADE)

    def step(d: int, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return transform._feature_inverse(inputs[:, d : d + 1], params)

    x, logdet = net.autoregressive_inverse(inputs, context, step)
    assert logdet is not None
    return x, logdet
