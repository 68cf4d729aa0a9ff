"""A masked autoencoder (MADE) whose every output depends on the context.

nflows 0.14's ``MADE`` adds the context to hidden units whose degrees start at 1, and the output of the
first autoregressive feature (degree 1) may only see hidden units of degree < 1: none. So in every
conditional nflows MADE the first feature's parameters are constants, whatever the context (nflows PR #85,
never merged). Here hidden units of a conditional MADE take degrees from 0 upwards: degree-0 units see
the context only, and the first output reads them. The context also enters every hidden layer.

The output layout matches nflows (``features × output_multiplier``, feature-major), so the network plugs
into nflows' autoregressive transforms unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "ConditionalMADE", "MaskedLinear"]

#: activations by the names used in configurations
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "elu": F.elu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 connectivity mask."""

    def __init__(self, mask: torch.Tensor, bias: bool = True) -> None:
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask: torch.Tensor = self.mask  # type: ignore[assignment]  # a registered buffer
        return F.linear(x, self.weight * mask, self.bias)


def _hidden_degrees(width: int, features: int, conditional: bool) -> torch.Tensor:
    """Degrees of hidden units: 0 … D−1 when conditional (0 = context only), else 1 … D−1."""
    if conditional:
        return torch.arange(width) % features
    low = min(1, features - 1)
    return torch.arange(width) % max(1, features - 1) + low


class ConditionalMADE(nn.Module):
    """MADE network: ``features`` autoregressive inputs (+ optional context) → ``features × multiplier`` outputs.

    Output ``d`` (1-based degree ``d``) depends only on inputs ``1 … d−1`` and on the whole context.

    Parameters
    ----------
    features:
        Number of autoregressive features D.
    hidden:
        Width of each hidden layer.
    context_features:
        Size of the context vector, or ``None`` for an unconditional network.
    output_multiplier:
        Parameters per feature (2 for affine, ``3·bins − 1`` for linear-tailed splines, ``3·K`` for a MoG).
    layers:
        Number of hidden layers (for ``residual=True``: one input layer plus residual blocks of two layers).
    activation:
        A name from :data:`ACTIVATIONS`.
    residual:
        Masked residual blocks (paper B's residual MADE) instead of plain hidden layers.
    """

    def __init__(
        self,
        features: int,
        hidden: int,
        context_features: int | None = None,
        output_multiplier: int = 2,
        layers: int = 2,
        activation: str = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if features < 1 or hidden < 1 or layers < 1:
            raise ValueError("features, hidden and layers must be positive")
        self.features = features
        self.hidden_features = hidden  # nflows' spline transform reads this name
        self.output_multiplier = output_multiplier
        self.residual = residual
        self.activation = ACTIVATIONS[activation]
        conditional = bool(context_features)
        in_deg = torch.arange(1, features + 1)
        hid_deg = _hidden_degrees(hidden, features, conditional)
        out_deg = in_deg.repeat_interleave(output_multiplier)

        def hidden_mask(prev: torch.Tensor) -> torch.Tensor:
            return (hid_deg[:, None] >= prev[None, :]).float()

        self.input_layer = MaskedLinear(hidden_mask(in_deg))
        n_inner = layers - 1
        self.inner = nn.ModuleList(MaskedLinear(hidden_mask(hid_deg)) for _ in range(n_inner))
        self.context_layers = (
            nn.ModuleList(nn.Linear(context_features, hidden) for _ in range(1 + n_inner))
            if context_features is not None
            else None
        )
        self.output_layer = MaskedLinear((out_deg[:, None] > hid_deg[None, :]).float())
        # start close to the identity transform: small output weights
        nn.init.uniform_(self.output_layer.weight, -1e-3, 1e-3)
        nn.init.zeros_(self.output_layer.bias)
        if residual:
            for layer in self.inner:
                assert isinstance(layer, MaskedLinear)
                nn.init.uniform_(layer.weight, -1e-3, 1e-3)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive parameters, shape ``(batch, features × output_multiplier)``."""
        act = self.activation
        ctx = self.context_layers
        if ctx is not None and context is None:
            raise ValueError("this MADE is conditional: a context tensor is required")
        h = self.input_layer(x)
        if ctx is not None:
            h = h + ctx[0](context)
        h = act(h)
        for i, layer in enumerate(self.inner, start=1):
            t = layer(h)
            if ctx is not None:
                t = t + ctx[i](context)
            h = h + act(t) if self.residual else act(t)
        return self.output_layer(h)
