"""MADE with a mixture of Gaussians per conditional (MADE-MoG, Papamakarios et al. 2017; paper B's final model).

nflows' ``MADEMoG`` cannot sample without a context, allocates its samples on the CPU whatever the device,
and inherits the context fault of nflows' MADE; this one is built on :class:`ConditionalMADE` and samples
from noise drawn by the caller, so that a seed fixes the sample on any device.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .made import ConditionalMADE

__all__ = ["MADEMoG"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class MADEMoG(nn.Module):
    """Density ``p(z | c) = Π_d Σ_k π_dk N(z_d; μ_dk, σ_dk)`` with (π, μ, σ)_d functions of ``z_<d`` and ``c``."""

    def __init__(
        self,
        features: int,
        hidden: int,
        context_features: int | None = None,
        components: int = 10,
        layers: int = 2,
        activation: str = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.features = features
        self.components = components
        self.net = ConditionalMADE(
            features,
            hidden,
            context_features,
            output_multiplier=3 * components,
            layers=layers,
            activation=activation,
            residual=residual,
        )
        # spread the initial component means so that the mixture starts multimodal-capable
        with torch.no_grad():
            bias = self.net.output_layer.bias.view(features, 3, components)
            bias[:, 1, :] = torch.linspace(-1.5, 1.5, components) if components > 1 else 0.0

    #: noise per event: two standard normals per feature (one for the draw, one for the component)
    noise_multiplier = 2

    def _params(self, z: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.net(z, context).view(-1, self.features, 3, self.components)
        logits, means = p[:, :, 0], p[:, :, 1]
        log_stds = p[:, :, 2].clamp(-7.0, 5.0)
        return F.log_softmax(logits, dim=-1), means, log_stds

    def log_prob(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Log density of ``z`` (batch, features) given the context, shape (batch,)."""
        log_w, means, log_stds = self._params(z, context)
        u = (z[..., None] - means) * torch.exp(-log_stds)
        comp = -0.5 * u * u - log_stds - _LOG_SQRT_2PI
        return torch.logsumexp(log_w + comp, dim=-1).sum(dim=-1)

    def from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Sample from standard-normal noise ``(batch, 2·features)``.

        Autoregressive: :meth:`ConditionalMADE.autoregressive_inverse` draws the features in order at the cost of one
        network pass. The first half of the noise gives each feature's Gaussian draw; the second half, mapped to
        uniforms by the normal CDF, picks the component by inverting the cumulative mixture weights.
        """
        eps, unif = noise[:, : self.features], torch.special.ndtr(noise[:, self.features :])

        def step(d: int, params: torch.Tensor) -> tuple[torch.Tensor, None]:
            p = params.view(-1, 3, self.components)
            log_stds = p[:, 2].clamp(-7.0, 5.0)
            cdf = torch.cumsum(F.softmax(p[:, 0], dim=-1), dim=-1)
            k = torch.searchsorted(cdf, unif[:, d : d + 1].contiguous()).clamp(max=self.components - 1)
            mu = p[:, 1].gather(1, k)
            return mu + log_stds.gather(1, k).exp() * eps[:, d : d + 1], None

        z, _ = self.net.autoregressive_inverse(eps, context, step)
        return z
