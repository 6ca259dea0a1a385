"""Reference generators and discriminators: MLPs for the toy data sets, DCGAN for images.

Discriminators are built from :mod:`pygan.nn`'s fused layers (bias + LeakyReLU in one kernel that
saves a 1-bit mask), which make gradient penalties cheaper in time and memory. They have no batch
normalization by default: a gradient penalty is defined per sample, and batch statistics would mix
the samples (Gulrajani et al. 2017). Every generator has ``latent_dim``, from which
:class:`pygan.GAN` makes its default prior. Discriminators return logits of shape (batch, 1).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .nn import FusedConv2d, FusedLinear, LeakyReLU

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "build"]


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


class MLPGenerator(nn.Module):
    """z (latent_dim) -> ``hidden`` x ``depth`` ReLU layers -> a sample of ``out_shape``; ``tanh``
    bounds the output to [-1, 1] (images), otherwise it is linear (toy points)."""

    def __init__(self, latent_dim: int = 16, out_shape: Sequence[int] = (2,), hidden: int = 256,
                 depth: int = 3, tanh: bool = False) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), tuple(out_shape)
        layers: list[nn.Module] = []
        width = self.latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, _numel(self.out_shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """A sample of ``in_shape`` (flattened) -> ``hidden`` x ``depth`` fused Linear + LeakyReLU(0.2)
    layers -> one logit."""

    def __init__(self, in_shape: Sequence[int] = (2,), hidden: int = 256, depth: int = 3,
                 slope: float = 0.2, backend: Optional[str] = None) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        layers: list[nn.Module] = []
        width = _numel(self.in_shape)
        for _ in range(depth):
            layers.append(FusedLinear(width, hidden, slope=slope, backend=backend))
            width = hidden
        layers.append(FusedLinear(width, 1, slope=None))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1))


def _stages(size: int) -> int:
    # Feature maps go 4 -> 8 -> ... -> size, doubling per stage.
    if size < 8 or size & (size - 1):
        raise ValueError(f"image size must be a power of two of at least 8 (8, 16, 32, 64, ...), got {size}")
    return int(math.log2(size)) - 2


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016): z -> 4x4 x (width * 2^(stages-1)) by a transposed
    convolution, then stride-2 transposed 4x4 convolutions with batch norm and ReLU, halving the
    channels and doubling the size, up to ``channels`` x ``size`` x ``size`` through tanh."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, size: int = 64, width: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), (channels, size, size)
        stages = _stages(size)
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 4x4 convolutions with LeakyReLU(0.2), doubling the channels
    from ``width`` and halving the size down to 4x4, then a 4x4 convolution to one logit. The conv,
    bias and activation of each stage are one :class:`pygan.nn.FusedConv2d`; ``batch_norm=True``
    puts batch norm between the conv and the activation, as the original DCGAN did (not for use
    with gradient penalties)."""

    def __init__(self, channels: int = 3, size: int = 64, width: int = 64, batch_norm: bool = False,
                 backend: Optional[str] = None) -> None:
        super().__init__()
        self.in_shape = (channels, size, size)
        layers: list[nn.Module] = []
        ch_in, ch = channels, width
        for stage in range(_stages(size)):
            if batch_norm and stage > 0:
                layers += [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch),
                           LeakyReLU(0.2, backend=backend)]
            else:
                layers.append(FusedConv2d(ch_in, ch, 4, 2, 1, slope=0.2, backend=backend))
            ch_in, ch = ch, ch * 2
        layers.append(nn.Conv2d(ch_in, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(x.shape[0], 1)


def build(model: str, shape: Sequence[int], *, latent_dim: Optional[int] = None,
          width: Optional[int] = None) -> tuple[nn.Module, nn.Module]:
    """A (generator, discriminator) pair named ``model`` ("mlp" or "dcgan") for samples of
    ``shape``: (dims,) points or (channels, size, size) images."""
    shape = tuple(shape)
    if model == "mlp":
        image = len(shape) == 3
        hidden = width or (512 if image else 256)
        g = MLPGenerator(latent_dim or (64 if image else 16), shape, hidden, tanh=image)
        return g, MLPDiscriminator(shape, hidden)
    if model == "dcgan":
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"model 'dcgan' needs square images (channels, size, size), got shape {shape}")
        w = width or 64
        return (DCGANGenerator(latent_dim or 100, shape[0], shape[1], w),
                DCGANDiscriminator(shape[0], shape[1], w))
    raise ValueError(f"unknown model {model!r}; choose 'mlp' or 'dcgan'")
