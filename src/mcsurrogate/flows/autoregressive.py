"""Autoregressive transforms (MAF affine, rational-quadratic spline) on nflows, with :class:`ConditionalMADE`.

The elementwise maths is nflows' own (``MaskedAffineAutoregressiveTransform`` and
``MaskedPiecewiseRationalQuadraticAutoregressiveTransform``); only the network is replaced, so that a
conditional transform conditions every feature (see :mod:`mcsurrogate.flows.made`).

Direction: ``forward`` maps data → noise in one network pass (density evaluation, training);
``inverse`` (sampling) needs one pass per feature.
"""

from __future__ import annotations

from nflows.transforms.autoregressive import (
    AutoregressiveTransform,
    MaskedAffineAutoregressiveTransform,
    MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
)
from nflows.transforms.splines import rational_quadratic

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
