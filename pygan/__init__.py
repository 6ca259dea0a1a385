"""pygan: kernel-optimized adversarial (likelihood-free) training for PyTorch.

``pygan.losses`` holds the fused "logits in, loss out" family (the f-GAN divergences, wasserstein,
hinge, least squares, relativistic); ``pygan.divergences`` the f-divergence table they come from.
"""

from . import divergences, losses
from ._backend import available as available_backends
from .losses import (
    LOSS_NAMES,
    DiscriminatorLoss,
    DivergenceEstimate,
    GeneratorLoss,
    discriminator_loss,
    divergence_estimate,
    generator_loss,
)

__version__ = "0.1.0"

__all__ = [
    "LOSS_NAMES", "DiscriminatorLoss", "DivergenceEstimate", "GeneratorLoss", "available_backends",
    "discriminator_loss", "divergence_estimate", "divergences", "generator_loss", "losses",
]
