"""Dense networks frozen for inference: each layer one oneDNN call on CPU, bias and activation fused.

:class:`FrozenMLP` holds a trained ``nn.Sequential`` of ``nn.Linear`` layers and activations as
``(weight, bias, activation)`` in one dtype and applies them with :func:`dense`, without autograd. Used by the
distilled sampler (:mod:`.distilled`, float32 or bfloat16) and the object-level efficiency classifier
(:mod:`mcsurrogate.response.efficiency`, float32). Results equal the modules' own to the float rounding of the
fused kernel (float32: about 10⁻⁶ relative).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .made import ACTIVATIONS

__all__ = ["IN_PLACE", "FrozenMLP", "dense"]

#: in-place versions of the activations (GELU has none): without autograd the network overwrites each layer's fresh
#: output instead of allocating another; measured 1.15× on the float32 distilled sampler, no change in bfloat16
#: (2-core CPU)
IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu_,
    "silu": lambda x: nn.functional.silu(x, inplace=True),
    "elu": nn.functional.elu_,
    "tanh": torch.tanh_,
}

#: oneDNN's names of the activations it fuses into a dense layer (``None``: no activation)
_ONEDNN_POST_OPS: dict[str | None, str] = {None: "none", "silu": "swish", "relu": "relu"}
#: whether oneDNN's fused dense layer runs here; set to False the first time it refuses (a CPU without bfloat16
#: support, a torch build without oneDNN), after which the plain torch layers run
_onednn_dense = {"works": torch.backends.mkldnn.is_available()}
#: torch's activation modules by the names of :data:`~.made.ACTIVATIONS`
_TORCH_ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.GELU: "gelu",
    nn.ELU: "elu",
    nn.SiLU: "silu",
    nn.Tanh: "tanh",
}


def dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str | None) -> torch.Tensor:
    """``activation(x Wᵀ + b)`` without autograd. On CPU one oneDNN call (``torch.ops.mkldnn._linear_pointwise``,
    the kernel inductor emits for the same pattern): bfloat16 ``F.linear`` copies the broadcast bias into its output
    before the matmul, which took as long as the matmul itself (2-core CPU with AMX, 8192 × 256 × 256); in float32
    the fused SiLU saved a quarter of the efficiency classifier's time (3 × 64, 2-core AMD EPYC)."""
    if x.device.type == "cpu" and activation in _ONEDNN_POST_OPS and _onednn_dense["works"]:
        try:
            out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
                x, weight, bias, _ONEDNN_POST_OPS[activation], [], ""
            )
            return out
        except (RuntimeError, AttributeError):
            _onednn_dense["works"] = False
    y = nn.functional.linear(x, weight, bias)
    return y if activation is None else IN_PLACE.get(activation, ACTIVATIONS[activation])(y)


class FrozenMLP:
    """The layers of ``mlp`` (``nn.Linear`` with a bias, each followed by at most one activation: a torch module such
    as ``nn.SiLU`` or one with a ``name`` of :data:`~.made.ACTIVATIONS`) as ``(weight, bias, activation)`` in
    ``dtype``, rounded once here and applied with :func:`dense`. Later changes to ``mlp`` are not seen."""

    def __init__(self, mlp: nn.Sequential, dtype: torch.dtype = torch.float32) -> None:
        self.layers: list[tuple[torch.Tensor, torch.Tensor, str | None]] = []
        for module in mlp:
            if isinstance(module, nn.Linear):
                if module.bias is None:
                    raise TypeError("FrozenMLP needs Linear layers with a bias")
                self.layers.append((module.weight.detach().to(dtype), module.bias.detach().to(dtype), None))
                continue
            name = _TORCH_ACTIVATIONS.get(type(module)) or getattr(module, "name", None)
            if name not in ACTIVATIONS or not self.layers or self.layers[-1][2] is not None:
                raise TypeError(f"FrozenMLP takes Linear layers each followed by at most one activation, got {module}")
            weight, bias, _ = self.layers[-1]
            self.layers[-1] = (weight, bias, name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for weight, bias, activation in self.layers:
            x = dense(x, weight, bias, activation)
        return x
