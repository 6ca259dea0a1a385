"""pygan: kernel-optimized adversarial (likelihood-free) training for PyTorch.

``pygan.losses`` holds the fused "logits in, loss out" family (the f-GAN divergences, wasserstein,
hinge, least squares, relativistic); ``pygan.divergences`` the f-divergence table they come from;
``pygan.penalties`` the gradient penalties (WGAN-GP, one-sided, R1, R2, DRAGAN) with a fused penalty
head, and weight clipping.
"""

from . import divergences, losses, penalties
from ._backend import available as available_backends
from .penalties import GradientPenalty, clip_weights_, gradient_penalty
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
    "LOSS_NAMES", "DiscriminatorLoss", "DivergenceEstimate", "GeneratorLoss", "GradientPenalty",
    "available_backends", "clip_weights_", "discriminator_loss", "divergence_estimate", "divergences",
    "generator_loss", "gradient_penalty", "losses", "penalties",
]
