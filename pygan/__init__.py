"""pygan: kernel-optimized adversarial (likelihood-free) training for PyTorch.

``pygan.losses`` holds the fused "logits in, loss out" family (the f-GAN divergences, wasserstein,
hinge, least squares, relativistic); ``pygan.divergences`` the f-divergence table they come from;
``pygan.penalties`` the gradient penalties (WGAN-GP, one-sided, R1, R2, DRAGAN) with a fused penalty
head, and weight clipping; ``pygan.augment`` differentiable augmentation (DiffAugment, ADA);
:class:`pygan.GAN` the minimax training loop (fused steps, CUDA graphs, AMP, EMA, checkpoints, DDP) with ``pygan.data`` samplers and ``pygan.models`` reference networks;
:class:`pygan.BiGAN` the same engine with an encoder and a joint discriminator, :class:`pygan.CycleGAN`
with two generators and two discriminators for unpaired translation; ``pygan.metrics``
the two-sample tests and evaluation.
"""

from . import augment, checkpoint, data, objective, divergences, evaluate, losses, metrics, models, penalties
from ._ops.backend import available as available_backends
from .bigan import BiGAN
from .cyclegan import CycleGAN
from .ema import EMA
from .gan import GAN, Normal, TrainingDiverged, Uniform
from .objective import Term
from .penalties import GradientPenalty, clip_weights_, gradient_penalty
from .schedule import Anneal
from .losses import (
    LOSS_NAMES,
    DiscriminatorLoss,
    DivergenceEstimate,
    GeneratorLoss,
    discriminator_loss,
    divergence_estimate,
    generator_loss,
    joint_generator_loss,
    minimax_losses,
)

__version__ = "0.1.0"

__all__ = [
    "Anneal", "BiGAN", "CycleGAN", "EMA", "augment", "checkpoint", "evaluate", "GAN", "LOSS_NAMES", "DiscriminatorLoss", "DivergenceEstimate", "GeneratorLoss",
    "GradientPenalty", "Normal", "Term", "TrainingDiverged", "Uniform", "available_backends", "clip_weights_", "data",
    "discriminator_loss", "divergence_estimate", "divergences", "generator_loss", "gradient_penalty",
    "joint_generator_loss", "losses", "metrics", "minimax_losses", "models", "objective", "penalties",
]
