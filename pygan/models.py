"""Reference generators and discriminators: MLPs for the toy data sets, DCGAN for images; for
:class:`pygan.BiGAN`, encoders (the discriminators' bodies with ``latent_dim`` outputs) and joint
discriminators of packed (x, z) pairs.

Discriminators are built from :mod:`pygan.nn`'s fused layers (bias + LeakyReLU in one kernel that
saves a 1-bit mask), which make gradient penalties cheaper in time and memory. They have no batch
normalization by default: a gradient penalty is defined per sample, and batch statistics would mix
the samples (Gulrajani et al. 2017). Every generator has ``latent_dim``, from which
:class:`pygan.GAN` makes its default prior. Discriminators return logits of shape (batch, 1), and
``features(x)``, their penultimate activations (batch, features), for representation learning.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .bigan import split_pair
from .nn import FusedConv2d, FusedLinear, LeakyReLU

__all__ = [
    "ConvEncoder", "DCGANDiscriminator", "DCGANGenerator", "JointDCGANDiscriminator", "JointMLPDiscriminator",
    "MLPDiscriminator", "MLPEncoder", "MLPGenerator", "build", "build_bigan",
]


# Every reference network by class name: checkpoints store these as their constructor arguments
# (``init_kwargs``) and rebuild them without unpickling (pygan.checkpoint.build_module).
REBUILDABLE: dict[str, type] = {}


def _rebuildable(cls: type) -> type:
    """Records the arguments of ``cls(...)`` as ``init_kwargs`` (by the outermost constructor only,
    so a subclass's arguments win over those it passes to its base) and registers the class."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self.init_kwargs = {k: v for k, v in list(bound.arguments.items())[1:]}

    cls.__init__ = __init__
    REBUILDABLE[cls.__name__] = cls
    return cls


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


@_rebuildable
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


@_rebuildable
class MLPDiscriminator(nn.Module):
    """A sample of ``in_shape`` (flattened) -> ``hidden`` x ``depth`` fused Linear + LeakyReLU(0.2)
    layers -> ``outputs`` (one logit)."""

    def __init__(self, in_shape: Sequence[int] = (2,), hidden: int = 256, depth: int = 3,
                 slope: float = 0.2, backend: Optional[str] = None, outputs: int = 1) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        layers: list[nn.Module] = []
        width = _numel(self.in_shape)
        for _ in range(depth):
            layers.append(FusedLinear(width, hidden, slope=slope, backend=backend))
            width = hidden
        layers.append(FusedLinear(width, outputs, slope=None))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1))

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations."""
        return self.net[:-1](x.reshape(x.shape[0], -1))


@_rebuildable
class MLPEncoder(MLPDiscriminator):
    """BiGAN's encoder for samples of ``in_shape``: the MLP discriminator's body with ``latent_dim``
    linear outputs (the code z, unbounded like the normal prior's)."""

    def __init__(self, in_shape: Sequence[int] = (2,), latent_dim: int = 16, hidden: int = 256, depth: int = 3,
                 slope: float = 0.2, backend: Optional[str] = None) -> None:
        super().__init__(in_shape, hidden, depth, slope, backend, outputs=latent_dim)
        self.latent_dim = int(latent_dim)


@_rebuildable
class JointMLPDiscriminator(MLPDiscriminator):
    """BiGAN's discriminator of packed pairs (:func:`pygan.bigan.pack_pair`) of a sample of
    ``x_shape`` and a code of ``latent_dim``: an MLP on the concatenated (x, z)."""

    def __init__(self, x_shape: Sequence[int] = (2,), latent_dim: int = 16, hidden: int = 256, depth: int = 3,
                 slope: float = 0.2, backend: Optional[str] = None) -> None:
        super().__init__((_numel(x_shape) + int(latent_dim),), hidden, depth, slope, backend)
        self.x_shape, self.latent_dim = tuple(x_shape), int(latent_dim)


def _stages(size: int) -> int:
    # Feature maps go 4 -> 8 -> ... -> size, doubling per stage.
    if size < 8 or size & (size - 1):
        raise ValueError(f"image size must be a power of two of at least 8 (8, 16, 32, 64, ...), got {size}")
    return int(math.log2(size)) - 2


@_rebuildable
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


@_rebuildable
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 4x4 convolutions with LeakyReLU(0.2), doubling the channels
    from ``width`` and halving the size down to 4x4, then a 4x4 convolution to one logit. The conv,
    bias and activation of each stage are one :class:`pygan.nn.FusedConv2d`; ``batch_norm=True``
    puts batch norm between the conv and the activation, as the original DCGAN did (not for use
    with gradient penalties)."""

    def __init__(self, channels: int = 3, size: int = 64, width: int = 64, batch_norm: bool = False,
                 backend: Optional[str] = None, outputs: int = 1) -> None:
        super().__init__()
        self.in_shape = (channels, size, size)
        self.outputs = int(outputs)
        self.body = _conv_body(channels, size, width, batch_norm, backend)
        self.head = nn.Conv2d(self.body.out_channels, self.outputs, 4, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).view(x.shape[0], self.outputs)

    def features(self, x: Tensor) -> Tensor:
        """The last 4x4 feature maps, flattened."""
        return self.body(x).flatten(1)


def _conv_body(channels: int, size: int, width: int, batch_norm: bool = False,
               backend: Optional[str] = None) -> nn.Sequential:
    """DCGAN's discriminator stages: stride-2 4x4 convolutions + LeakyReLU(0.2) from ``size`` down to
    4x4, doubling the channels from ``width``; ``out_channels`` is set on the result."""
    layers: list[nn.Module] = []
    ch_in, ch = channels, width
    for stage in range(_stages(size)):
        if batch_norm and stage > 0:
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch),
                       LeakyReLU(0.2, backend=backend)]
        else:
            layers.append(FusedConv2d(ch_in, ch, 4, 2, 1, slope=0.2, backend=backend))
        ch_in, ch = ch, ch * 2
    body = nn.Sequential(*layers)
    body.out_channels = ch_in
    return body


@_rebuildable
class ConvEncoder(DCGANDiscriminator):
    """BiGAN's encoder for (channels, size, size) images: the DCGAN discriminator with ``latent_dim``
    linear outputs."""

    def __init__(self, channels: int = 3, size: int = 64, latent_dim: int = 100, width: int = 64,
                 backend: Optional[str] = None) -> None:
        super().__init__(channels, size, width, backend=backend, outputs=latent_dim)
        self.latent_dim = int(latent_dim)


@_rebuildable
class JointDCGANDiscriminator(nn.Module):
    """BiGAN's discriminator of packed (image, code) pairs (Donahue et al. 2017): the image through
    DCGAN's convolution stages, the code through a fused two-layer MLP, their features concatenated
    through a fused ``hidden`` layer to one logit."""

    def __init__(self, channels: int = 3, size: int = 64, latent_dim: int = 100, width: int = 64,
                 hidden: int = 512, backend: Optional[str] = None) -> None:
        super().__init__()
        self.x_shape, self.latent_dim = (channels, size, size), int(latent_dim)
        self.x_body = _conv_body(channels, size, width, backend=backend)
        self.z_body = nn.Sequential(FusedLinear(self.latent_dim, hidden, slope=0.2, backend=backend),
                                    FusedLinear(hidden, hidden, slope=0.2, backend=backend))
        self.joint = FusedLinear(self.x_body.out_channels * 16 + hidden, hidden, slope=0.2, backend=backend)
        self.head = FusedLinear(hidden, 1, slope=None)

    def features(self, pair: Tensor) -> Tensor:
        """The joint hidden layer's activations."""
        x, z = split_pair(pair, self.x_shape)
        return self.joint(torch.cat([self.x_body(x).flatten(1), self.z_body(z)], 1))

    def forward(self, pair: Tensor) -> Tensor:
        return self.head(self.features(pair))


def build(model: str, shape: Sequence[int], *, latent_dim: Optional[int] = None,
          width: Optional[int] = None, backend: Optional[str] = None) -> tuple[nn.Module, nn.Module]:
    """A (generator, discriminator) pair named ``model`` ("mlp" or "dcgan") for samples of
    ``shape``: (dims,) points or (channels, size, size) images. ``backend`` runs the
    discriminator's fused layers (default: the ops' own choice)."""
    shape = tuple(shape)
    if model == "mlp":
        image = len(shape) == 3
        hidden = width or (512 if image else 256)
        g = MLPGenerator(latent_dim or (64 if image else 16), shape, hidden, tanh=image)
        return g, MLPDiscriminator(shape, hidden, backend=backend)
    if model == "dcgan":
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"model 'dcgan' needs square images (channels, size, size), got shape {shape}")
        w = width or 64
        return (DCGANGenerator(latent_dim or 100, shape[0], shape[1], w),
                DCGANDiscriminator(shape[0], shape[1], w, backend=backend))
    raise ValueError(f"unknown model {model!r}; choose 'mlp' or 'dcgan'")


def build_bigan(model: str, shape: Sequence[int], *, latent_dim: Optional[int] = None,
                width: Optional[int] = None, backend: Optional[str] = None) -> tuple[nn.Module, nn.Module, nn.Module]:
    """A (generator, encoder, joint discriminator) triple for :class:`pygan.BiGAN`, of family
    ``model`` ("mlp" or "dcgan") for samples of ``shape``; ``backend`` runs the encoder's and the
    discriminator's fused layers."""
    shape = tuple(shape)
    if model == "mlp":
        image = len(shape) == 3
        hidden = width or (512 if image else 256)
        latent = latent_dim or (32 if image else 2)
        return (MLPGenerator(latent, shape, hidden, tanh=image), MLPEncoder(shape, latent, hidden, backend=backend),
                JointMLPDiscriminator(shape, latent, hidden, backend=backend))
    if model == "dcgan":
        g, _ = build("dcgan", shape, latent_dim=latent_dim, width=width)
        w = width or 64
        return (g, ConvEncoder(shape[0], shape[1], g.latent_dim, w, backend=backend),
                JointDCGANDiscriminator(shape[0], shape[1], g.latent_dim, w, backend=backend))
    raise ValueError(f"unknown model {model!r}; choose 'mlp' or 'dcgan'")
