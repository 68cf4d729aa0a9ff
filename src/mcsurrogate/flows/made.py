"""A masked autoencoder (MADE) whose every output depends on the context.

nflows 0.14's ``MADE`` adds the context to hidden units whose degrees start at 1, and the output of the
first autoregressive feature (degree 1) may only see hidden units of degree < 1: none. So in every
conditional nflows MADE the first feature's parameters are constants, whatever the context (nflows PR #85,
never merged). Here hidden units of a conditional MADE take degrees from 0 upwards: degree-0 units see
the context only, and the first output reads them. The context also enters every hidden layer.

The output layout matches nflows (``features × output_multiplier``, feature-major), so the network plugs
into nflows' autoregressive transforms unchanged.

Sampling (:meth:`ConditionalMADE.autoregressive_inverse`) needs the features one after the other; instead of
running the whole network once per feature (nflows: D passes, each evaluating every output), it computes each
hidden unit once, at the step where the inputs it sees are known, and only the outputs of the feature being drawn:
D steps that together cost one network pass.
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

    def masked_weight(self) -> torch.Tensor:
        mask: torch.Tensor = self.mask  # type: ignore[assignment]  # a registered buffer
        return self.weight * mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


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

        # sampling order of the hidden units (by degree) and where each degree ends: model constants, not saved
        self.register_buffer("unit_order", torch.argsort(hid_deg, stable=True), persistent=False)
        self.degree_ends: list[int] = torch.bincount(hid_deg, minlength=features).cumsum(0).tolist()
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

    def autoregressive_inverse(
        self,
        like: torch.Tensor,
        context: torch.Tensor | None,
        step: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw the features in order: ``step(d, params)`` turns feature ``d``'s parameters (batch,
        ``output_multiplier``), computed from the features before it and the context, into its value (batch, 1) and a
        log-Jacobian (batch,) or ``None``. Returns the features (batch, D) and the summed log-Jacobian (or ``None``).

        Each hidden unit of degree k sees the features 1 … k only, so it is computed once, at step k + 1; the output
        of feature d reads the units of degree < d. ``like`` (batch, ·) gives the batch size, dtype and device; sizes are
        taken from tensors, not Python integers, so that a traced graph (TorchScript, ONNX) takes any batch size.
        """
        act = self.activation
        # hidden units sorted by degree: those of degree ≤ k are the first ends[k], so every slice below is a view
        order: torch.Tensor = self.unit_order  # type: ignore[assignment]  # a registered buffer
        ends = self.degree_ends
        inner: list[MaskedLinear] = [layer for layer in self.inner if isinstance(layer, MaskedLinear)]
        w_in, b_in = self.input_layer.masked_weight()[order], self.input_layer.bias[order]
        w_inner = [layer.masked_weight()[order][:, order] for layer in inner]
        b_inner = [layer.bias[order] for layer in inner]
        w_out, b_out = self.output_layer.masked_weight()[:, order], self.output_layer.bias
        ctx_terms = None
        if self.context_layers is not None:
            if context is None:
                raise ValueError("this MADE is conditional: a context tensor is required")
            ctx_layers: list[nn.Linear] = [layer for layer in self.context_layers if isinstance(layer, nn.Linear)]
            ctx_terms = [F.linear(context, layer.weight[order], layer.bias[order]) for layer in ctx_layers]
        # without autograd (sampling), hidden values go into preallocated buffers; with it (or when tracing for
        # TorchScript/ONNX) into lists joined with cat, since in-place writes would break the backward pass
        in_place = not torch.is_grad_enabled() and not torch.jit.is_tracing()
        n_layers = 1 + len(inner)
        batch = like.shape[0]
        buffers = [like.new_empty(batch, len(order)) for _ in range(n_layers)] if in_place else []
        chunks: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
        drawn = like.new_empty(batch, self.features) if in_place else None
        values: list[torch.Tensor] = []

        def hidden(i: int, end: int) -> torch.Tensor:
            return buffers[i][:, :end] if in_place else torch.cat(chunks[i], dim=1)

        m = self.output_multiplier
        logdet: torch.Tensor | None = None
        start = 0
        for d in range(self.features):
            end = ends[d]  # units of degree d are [start, end)
            if end > start:
                seen = drawn[:, :d] if drawn is not None else torch.cat(values, dim=1) if values else like[:, :0]
                pre = seen @ w_in[start:end, :d].T + b_in[start:end]
                if ctx_terms is not None:
                    pre = pre + ctx_terms[0][:, start:end]
                h = act(pre)
                for i in range(n_layers):
                    if i:
                        t = hidden(i - 1, end) @ w_inner[i - 1][start:end, :end].T + b_inner[i - 1][start:end]
                        if ctx_terms is not None:
                            t = t + ctx_terms[i][:, start:end]
                        h = h + act(t) if self.residual else act(t)
                    if in_place:
                        buffers[i][:, start:end] = h
                    else:
                        chunks[i].append(h)
            rows = slice(d * m, (d + 1) * m)
            if end > 0:
                params = hidden(n_layers - 1, end) @ w_out[rows, :end].T + b_out[rows]
            else:
                params = torch.zeros_like(like[:, :1]) + b_out[rows]
            x, ld = step(d, params)
            if drawn is not None:
                drawn[:, d : d + 1] = x
            else:
                values.append(x)
            if ld is not None:
                logdet = ld if logdet is None else logdet + ld
            start = end
        return (drawn if drawn is not None else torch.cat(values, dim=1)), logdet
