"""The flow model: an nflows transform (data → latent) and a base density, with noise-driven sampling.

Sampling takes its noise from the caller (drawn with a numpy ``Generator``), so a seed fixes the sample
whatever the batch size or the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from nflows.transforms.base import Transform
from torch import nn

from .made_mog import MADEMoG

__all__ = ["FlowModel", "StandardNormal"]

_LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    """Base density N(0, I)."""

    noise_multiplier = 1

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features

    def log_prob(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return -0.5 * (z * z).sum(dim=-1) - 0.5 * self.features * _LOG_2PI

    def from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return noise


class FlowModel(nn.Module):
    """``log p(x|c) = log p_base(f(x; c) | c) + log|det ∂f/∂x|``; samples ``x = f⁻¹(z; c)``, ``z ~ p_base``."""

    def __init__(
        self,
        transform: Transform,
        base: StandardNormal | MADEMoG,
        features: int,
        context_features: int | None,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.base = base
        self.features = features
        self.context_features = context_features or None

    @property
    def noise_features(self) -> int:
        """Number of noise numbers one sample consumes."""
        return self.features * self.base.noise_multiplier

    def check_context(self, context: torch.Tensor | None) -> None:
        """Raise ``ValueError`` when a context is passed to an unconditional flow or missing for a conditional one."""
        if self.context_features is None and context is not None:
            raise ValueError("this flow is unconditional: pass no context")
        if self.context_features is not None and context is None:
            raise ValueError(f"this flow is conditional: a context of {self.context_features} columns is required")

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Log density of ``x`` (batch, features), shape (batch,)."""
        self.check_context(context)
        z, logdet = self.transform(x, context)
        return self.base.log_prob(z, context) + logdet

    def training_loss(
        self, x: torch.Tensor, context: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-event loss (batch,) that training minimises: −log p here; a family trained otherwise (flow matching:
        a regression) overrides it and draws its random numbers from ``generator``."""
        return -self.log_prob(x, context)

    def sample_from_noise(self, noise: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise (batch, ``noise_features``) from :meth:`draw_noise` to samples (batch, features), one per context row."""
        self.check_context(context)
        z = self.base.from_noise(noise, context)
        x, _ = self.transform.inverse(z, context)
        return x

    def draw_noise(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """Standard-normal noise for ``n`` samples, shape ``(n, noise_features)``, float32.

        Drawn row by row from one numpy generator, so the same seed gives the same samples whatever the
        batch sizes the caller splits ``n`` into.
        """
        return torch.from_numpy(rng.standard_normal((n, self.noise_features), dtype=np.float32))
