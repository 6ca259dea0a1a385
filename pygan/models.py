r"""Reference generators and discriminators: MLPs for the toy data sets, DCGAN and R3GAN's residual
networks (scaled down) for images; for
:class:`pygan.BiGAN`, encoders (the discriminators' bodies with ``latent_dim`` outputs) and joint
discriminators of packed (x, z) pairs.

Discriminators are built from :mod:`pygan.nn`'s fused layers (bias + LeakyReLU in one kernel that
saves a 1-bit mask), which make gradient penalties cheaper in time and memory. They have no batch
normalization by default: a gradient penalty is defined per sample, and batch statistics would mix
the samples (Gulrajani et al. 2017); the DCGAN discriminator's optional :class:`MinibatchStd`
layer does mix them, on purpose, within small groups. Every generator has ``latent_dim``, from which
:class:`pygan.GAN` makes its default prior. Discriminators return logits of shape (batch, 1), and
``features(x)``, their penultimate activations (batch, features), for representation learning.

**Class-conditional networks** (``num_classes=K``) take the labels by keyword, ``G(z, y=y)`` and
``D(x, y=y)``: the MLP generator concatenates a class embedding to z, the DCGAN generator uses
conditional batch norm (a scale and shift per class, de Vries et al. 2017), and the discriminators
are projection discriminators (Miyato & Koyama 2018), :math:`D(x, y) = \psi(\phi(x)) +
\langle e_y, \phi(x) \rangle` with :math:`\phi` the penultimate features and :math:`e_y` a learned
class embedding.

**Translation networks** for :class:`pygan.CycleGAN` map images to images: Zhu et al.'s (2017)
ResNet generator (:class:`TranslationGenerator`) and PatchGAN discriminator
(:class:`PatchDiscriminator`, a map of logits, one per overlapping patch), both with instance
normalization, sized by ``width`` and depth for small images.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._ops.mlp_step import mlp_step
from .bigan import split_pair
from ._validate import class_labels, positive_int
from ._validate import count as count_arg
from ._validate import num_classes as num_classes_arg
from .nn import FewChannelConvTranspose2d, FusedConv2d, FusedLinear, LeakyReLU, WholeMapConv2d, WholeMapConvTranspose2d

__all__ = [
    "ConditionalBatchNorm2d", "ConvEncoder", "DCGANDiscriminator", "DCGANGenerator", "JointDCGANDiscriminator", "JointMLPDiscriminator",
    "MinibatchStd", "MLPDiscriminator", "MLPEncoder", "MLPGenerator", "PatchDiscriminator", "ResNetDiscriminator", "ResNetGenerator",
    "TranslationGenerator", "build", "build_bigan", "build_cyclegan",
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


def _labels(module: nn.Module, y: Optional[Tensor], batch: int) -> Optional[Tensor]:
    """The labels ``y`` checked against a network's ``num_classes`` (None for an unconditional one)."""
    k = module.num_classes
    if k is None:
        if y is not None:
            raise ValueError(f"{type(module).__name__} is not class-conditional (build it with num_classes=K) "
                             "and takes no y")
        return None
    if y is None:
        raise ValueError(f"{type(module).__name__} is class-conditional (num_classes={k}): pass the labels, y=")
    return class_labels("y", y, batch)


class _Projection(nn.Module):
    """The projection discriminator's class term <e_y, phi> (Miyato & Koyama 2018)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, std=features ** -0.5)

    def forward(self, phi: Tensor, y: Tensor) -> Tensor:
        return (self.embed(y).to(phi.dtype) * phi).sum(1, keepdim=True)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are learned per class: gamma_y * BN(x) + beta_y (de Vries
    et al. 2017), starting at gamma = 1, beta = 0."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.scale(y)[:, :, None, None] * self.norm(x) + self.shift(y)[:, :, None, None]


@_rebuildable
class MLPGenerator(nn.Module):
    """z (latent_dim) -> ``hidden`` x ``depth`` ReLU layers -> a sample of ``out_shape``; ``tanh``
    bounds the output to [-1, 1] (images), otherwise it is linear (toy points). With
    ``num_classes``, a class embedding of ``latent_dim`` features is concatenated to z."""

    def __init__(self, latent_dim: int = 16, out_shape: Sequence[int] = (2,), hidden: int = 256,
                 depth: int = 3, tanh: bool = False, num_classes: Optional[int] = None) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), tuple(out_shape)
        self.num_classes = num_classes_arg(num_classes)
        if self.num_classes is not None:
            self.embed = nn.Embedding(self.num_classes, self.latent_dim)
        layers: list[nn.Module] = []
        width = self.latent_dim * (2 if self.num_classes is not None else 1)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, _numel(self.out_shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        y = _labels(self, y, z.shape[0])
        h = z if y is None else torch.cat([z, self.embed(y).to(z.dtype)], 1)
        return self.net(h).view(z.shape[0], *self.out_shape)


@_rebuildable
class MLPDiscriminator(nn.Module):
    """A sample of ``in_shape`` (flattened) -> ``hidden`` x ``depth`` fused Linear + LeakyReLU(0.2)
    layers -> ``outputs`` (one logit); with ``num_classes``, a projection discriminator."""

    def __init__(self, in_shape: Sequence[int] = (2,), hidden: int = 256, depth: int = 3,
                 slope: float = 0.2, backend: Optional[str] = None, outputs: int = 1,
                 num_classes: Optional[int] = None) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes_arg(num_classes)
        if self.num_classes is not None:
            if outputs != 1:
                raise ValueError(f"a projection discriminator has one output, got outputs={outputs}")
            self.projection = _Projection(self.num_classes, hidden)
        layers: list[nn.Module] = []
        width = _numel(self.in_shape)
        for _ in range(depth):
            layers.append(FusedLinear(width, hidden, slope=slope, backend=backend))
            width = hidden
        layers.append(FusedLinear(width, outputs, slope=None))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        y = _labels(self, y, x.shape[0])
        if y is None:
            return self.net(x.reshape(x.shape[0], -1))
        phi = self.features(x)
        return self.net[-1](phi) + self.projection(phi, y)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations."""
        return self.net[:-1](x.reshape(x.shape[0], -1))

    @property
    def closed_form_step(self) -> bool:
        """Whether a training step may run this D through :meth:`step_forward`: one logit, no
        projection, every hidden layer's LeakyReLU on the default backend with one slope (a layer
        pinned to a backend runs that backend's kernel, as asked)."""
        hidden = list(self.net)[:-1]
        return (self.num_classes is None and self.net[-1].out_features == 1 and self.net[-1].slope is None
                and all(m.backend in (None, "auto") and m.slope == hidden[0].slope for m in hidden))

    def step_forward(self, *xs: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """For each batch in ``xs``: ``(for_d, for_g, grad)``, D's logits of the batch twice --
        ``for_d`` differentiable in D's weights only, ``for_g`` in the batch only -- and the input
        gradient ``grad`` = :math:`\\nabla_x D(x)` (shape of the batch), differentiable in the
        weights (R1/R2). One pass over the batches together, with the double backward in closed
        form (:mod:`pygan._ops.mlp_step`). Once differentiable; for the engine's steps (see
        :attr:`closed_form_step`)."""
        if not self.closed_form_step:
            raise ValueError("step_forward needs one logit, no projection (num_classes=None) and every hidden "
                             "layer on the default backend with one slope; call the module instead")
        if not xs:
            raise ValueError("step_forward needs at least one batch")
        layers = list(self.net)
        slope = layers[0].slope if len(layers) > 1 else 0.0
        out = mlp_step([x.reshape(x.shape[0], -1) for x in xs], [m.weight for m in layers],
                       [m.bias for m in layers], float(slope))
        return [(v_d, v_g, grad.view(x.shape)) for x, (v_d, v_g, grad) in zip(xs, out)]


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


def _grid(size: int) -> tuple[int, int]:
    """(stages, base) of a conv network for ``size`` x ``size`` images: feature maps go base -> 2 base
    -> ... -> size, doubling per stage, with base in 4..7 (4 for powers of two: 4 -> 8 -> ... -> 32;
    7 for MNIST's 28: 7 -> 14 -> 28). Every size of the form base * 2^stages, stages >= 1, has one."""
    valid = not isinstance(size, bool) and isinstance(size, int) and size >= 8
    stages, base = 0, size
    while valid and base >= 8 and base % 2 == 0:
        stages, base = stages + 1, base // 2
    if not valid or base >= 8:  # not an int of at least 8, or an odd factor of 9 or more
        raise ValueError(f"image size must be 4, 5, 6 or 7 times a power of two, at least 8 (8, 16, 28, 32, "
                         f"64, ...), got {size!r}")
    return stages, base


@_rebuildable
class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016): z -> base x base x (width * 2^(stages-1)) by a
    transposed convolution (base 4 for power-of-two sizes, 7 for 28: see :func:`_grid`), then
    stride-2 transposed 4x4 convolutions with batch norm and ReLU, halving the
    channels and doubling the size, up to ``channels`` x ``size`` x ``size`` through tanh."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, size: int = 64, width: int = 64,
                 num_classes: Optional[int] = None) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), (channels, size, size)
        self.num_classes = num_classes_arg(num_classes)
        stages, base = _grid(size)
        ch = width * 2 ** (stages - 1)

        def norm(c: int) -> nn.Module:  # conditional batch norm for a class-conditional generator
            return nn.BatchNorm2d(c) if self.num_classes is None else ConditionalBatchNorm2d(c, self.num_classes)

        layers: list[nn.Module] = [WholeMapConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False), norm(ch),
                                   nn.ReLU(inplace=True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm(ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [FewChannelConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        y = _labels(self, y, z.shape[0])
        x = z.reshape(z.shape[0], self.latent_dim, 1, 1)
        if y is None:
            return self.net(x)
        for layer in self.net:
            x = layer(x, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


@_rebuildable
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 4x4 convolutions with LeakyReLU(0.2), doubling the channels
    from ``width`` and halving the size down to base x base (4x4 for power-of-two sizes, 7x7 for
    28), then a base x base convolution to one logit. The conv,
    bias and activation of each stage are one :class:`pygan.nn.FusedConv2d`; ``batch_norm=True``
    puts batch norm between the conv and the activation, as the original DCGAN did (not for use
    with gradient penalties)."""

    def __init__(self, channels: int = 3, size: int = 64, width: int = 64, batch_norm: bool = False,
                 backend: Optional[str] = None, outputs: int = 1, num_classes: Optional[int] = None,
                 minibatch_std: int = 0) -> None:
        super().__init__()
        self.in_shape = (channels, size, size)
        self.outputs = int(outputs)
        self.num_classes = num_classes_arg(num_classes)
        self.body = _conv_body(channels, size, width, batch_norm, backend)
        self.minibatch_std = MinibatchStd(minibatch_std) if count_arg("minibatch_std", minibatch_std) else None
        extra = 1 if self.minibatch_std is not None else 0
        self.head = WholeMapConv2d(self.body.out_channels + extra, self.outputs, self.body.base, 1, 0)
        if self.num_classes is not None:
            if outputs != 1:
                raise ValueError(f"a projection discriminator has one output, got outputs={outputs}")
            self.projection = _Projection(self.num_classes, self.body.out_channels * self.body.base ** 2)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        y = _labels(self, y, x.shape[0])
        h = self.body(x)
        out = self.head(h if self.minibatch_std is None else self.minibatch_std(h)).view(x.shape[0], self.outputs)
        return out if y is None else out + self.projection(h.flatten(1), y)

    def features(self, x: Tensor) -> Tensor:
        """The last (base x base) feature maps, flattened."""
        return self.body(x).flatten(1)


class MinibatchStd(nn.Module):
    r"""Karras et al.'s (2018) minibatch standard deviation: appends one feature map holding, for
    the group :math:`g` of ``group`` samples each sample falls in, the standard deviation of every
    feature over the group, averaged over features and positions,

    .. math:: s_g = \operatorname{mean}_{c,h,w} \sqrt{\operatorname{Var}_{i \in g}[x_{i,c,h,w}] + 10^{-8}},

    so that D sees how alike the samples of a batch are, and a generator that draws near-copies
    shows it. Sample :math:`i` of a batch of :math:`n` falls in group :math:`i \bmod (n / G)`, with
    :math:`G` the largest divisor of :math:`n` up to ``group`` (1 for a single sample: then the map is
    the constant :math:`10^{-4}`). Half-precision inputs are reduced in float32 and the map rounded
    to their dtype. D runs on the real and the fake batch apart, so a group never
    mixes them; a gradient penalty of D then couples the samples of a group, as in StyleGAN2."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = positive_int("group", group)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = max((d for d in range(1, min(self.group, n) + 1) if n % d == 0), default=1)
        # In float32 at least: in float16 the squares overflow past 256 and the 1e-8 rounds to 0.
        y = x.reshape(g, n // g, math.prod(x.shape[1:])).to(torch.promote_types(x.dtype, torch.float32))
        y = y - y.mean(0)
        s = (y.square().mean(0) + 1e-8).sqrt().mean(-1).to(x.dtype)
        s = s.repeat(g).view(n, *([1] * (x.dim() - 1))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, s], 1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def _conv_body(channels: int, size: int, width: int, batch_norm: bool = False,
               backend: Optional[str] = None) -> nn.Sequential:
    """DCGAN's discriminator stages: stride-2 4x4 convolutions + LeakyReLU(0.2) from ``size`` down to
    base x base (:func:`_grid`), doubling the channels from ``width``; ``out_channels`` and ``base``
    are set on the result."""
    layers: list[nn.Module] = []
    ch_in, ch = channels, width
    stages, base = _grid(size)
    for stage in range(stages):
        if batch_norm and stage > 0:
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch),
                       LeakyReLU(0.2, backend=backend)]
        else:
            layers.append(FusedConv2d(ch_in, ch, 4, 2, 1, slope=0.2, backend=backend))
        ch_in, ch = ch, ch * 2
    body = nn.Sequential(*layers)
    body.out_channels, body.base = ch_in, base
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
        self.joint = FusedLinear(self.x_body.out_channels * self.x_body.base ** 2 + hidden, hidden, slope=0.2, backend=backend)
        self.head = FusedLinear(hidden, 1, slope=None)

    def features(self, pair: Tensor) -> Tensor:
        """The joint hidden layer's activations."""
        x, z = split_pair(pair, self.x_shape)
        return self.joint(torch.cat([self.x_body(x).flatten(1), self.z_body(z)], 1))

    def forward(self, pair: Tensor) -> Tensor:
        return self.head(self.features(pair))


class _ResidualBlock(nn.Module):
    """R3GAN's residual block (Huang et al. 2024): ``x + W3 a(W2 a(W1 x))`` with W1 a 1x1 convolution
    to ``expansion`` times the width, W2 a grouped 3x3 convolution (``cardinality`` groups), W3 a 1x1
    convolution back, and a = LeakyReLU(0.2); no normalization. Fix-up initialization: W1 and W2 are
    He-initialized and scaled by ``total_blocks ** -1/4`` (L^(-1/(2m-2)) for m = 3 layers per
    branch), W3 starts at zero, so every block starts as the identity and the variance of the
    output does not grow with depth. ``fused`` (the discriminator's) runs conv bias + activation as
    one kernel (:class:`pygan.nn.FusedConv2d`)."""

    def __init__(self, width: int, cardinality: int, expansion: int, total_blocks: int, fused: bool,
                 backend: Optional[str] = None) -> None:
        super().__init__()
        inner = width * expansion
        if inner % cardinality:
            raise ValueError(f"width * expansion ({inner}) must be a multiple of cardinality ({cardinality})")
        if fused:
            self.expand = FusedConv2d(width, inner, 1, slope=0.2, backend=backend)
            self.spatial = FusedConv2d(inner, inner, 3, padding=1, groups=cardinality, slope=0.2, backend=backend)
        else:
            self.expand = nn.Sequential(nn.Conv2d(width, inner, 1), nn.LeakyReLU(0.2))
            self.spatial = nn.Sequential(nn.Conv2d(inner, inner, 3, padding=1, groups=cardinality), nn.LeakyReLU(0.2))
        self.project = nn.Conv2d(inner, width, 1)
        scale = total_blocks ** -0.25
        for conv in (m for m in self.modules() if isinstance(m, nn.Conv2d)):
            if conv is self.project:
                nn.init.zeros_(conv.weight)
            else:
                nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
                conv.weight.data.mul_(scale)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.spatial(self.expand(x)))


def _check_residual(size: int, blocks: int, cardinality: int, expansion: int) -> tuple[int, int]:
    """(resolutions, base): the networks run at base, 2 base, ..., size (:func:`_grid`)."""
    for name, value in (("blocks", blocks), ("cardinality", cardinality), ("expansion", expansion)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    stages, base = _grid(size)
    return stages + 1, base


@_rebuildable
class ResNetGenerator(nn.Module):
    """R3GAN's generator, scaled down: a generative basis (a learned base x base map per channel,
    modulated by a linear function of z; base 4 for power-of-two sizes, 7 for 28), then per
    resolution from base x base to ``size`` ``blocks`` residual blocks
    (:class:`_ResidualBlock`), with bilinear 2x upsampling and a 1x1 convolution between
    resolutions, and a 1x1 convolution to ``channels``. The output is linear (no tanh), as in R3GAN."""

    def __init__(self, latent_dim: int = 64, channels: int = 3, size: int = 32, width: int = 64, blocks: int = 1,
                 cardinality: int = 4, expansion: int = 2) -> None:
        super().__init__()
        stages, base = _check_residual(size, blocks, cardinality, expansion)
        self.latent_dim, self.out_shape = int(latent_dim), (channels, size, size)
        self.basis = nn.Parameter(torch.randn(width, base, base))
        self.modulation = nn.Linear(self.latent_dim, width, bias=False)
        total = stages * blocks
        self.stages = nn.ModuleList(
            nn.Sequential(*[_ResidualBlock(width, cardinality, expansion, total, fused=False) for _ in range(blocks)])
            for _ in range(stages))
        self.transitions = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stages - 1))
        self.to_image = nn.Conv2d(width, channels, 1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.basis[None] * self.modulation(z.reshape(z.shape[0], -1))[:, :, None, None]
        for i, stage in enumerate(self.stages):
            if i:
                x = self.transitions[i - 1](F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            x = stage(x)
        return self.to_image(x)


@_rebuildable
class ResNetDiscriminator(nn.Module):
    """R3GAN's discriminator, scaled down: a 1x1 convolution from ``channels``, per resolution from
    ``size`` to base x base ``blocks`` residual blocks, with 2x2 average pooling and a 1x1
    convolution between resolutions, then a discriminative basis (a depthwise base x base
    convolution to one value per channel) and a linear layer to one logit. No normalization (penalties are per sample); bias +
    LeakyReLU run fused."""

    def __init__(self, channels: int = 3, size: int = 32, width: int = 64, blocks: int = 1, cardinality: int = 4,
                 expansion: int = 2, backend: Optional[str] = None) -> None:
        super().__init__()
        stages, base = _check_residual(size, blocks, cardinality, expansion)
        self.in_shape = (channels, size, size)
        total = stages * blocks
        self.from_image = FusedConv2d(channels, width, 1, slope=0.2, backend=backend)
        self.stages = nn.ModuleList(
            nn.Sequential(*[_ResidualBlock(width, cardinality, expansion, total, fused=True, backend=backend)
                            for _ in range(blocks)])
            for _ in range(stages))
        self.transitions = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stages - 1))
        self.basis = nn.Conv2d(width, width, base, groups=width, bias=False)
        self.head = nn.Linear(width, 1)

    def features(self, x: Tensor) -> Tensor:
        """The basis's output, one value per channel."""
        x = self.from_image(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.transitions):
                x = self.transitions[i](F.avg_pool2d(x, 2))
        return self.basis(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _TranslationBlock(nn.Module):
    """Zhu et al.'s residual block: ``x + IN(conv3(a(IN(conv3(x)))))`` with reflection padding,
    instance norm (no affine parameters, per sample) and ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@_rebuildable
class TranslationGenerator(nn.Module):
    """CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016), image to image of
    the same shape: a reflection-padded 7x7 convolution to ``width`` channels, ``downsample``
    stride-2 3x3 convolutions doubling the channels, ``blocks`` residual blocks, as many stride-2
    transposed convolutions back, and a 7x7 convolution to ``channels`` with tanh. Every inner
    convolution is followed by instance norm and ReLU. The paper's 256x256 network is
    ``width=64, downsample=2, blocks=9``; the defaults suit 16x16 digits."""

    def __init__(self, channels: int = 1, size: int = 16, width: int = 16, blocks: int = 3,
                 downsample: int = 1) -> None:
        super().__init__()
        for name, v in (("channels", channels), ("size", size), ("width", width)):
            positive_int(name, v)
        blocks = count_arg("blocks", blocks)
        downsample = count_arg("downsample", downsample)
        if size % (2 ** downsample):
            raise ValueError(f"size={size} must be divisible by 2**downsample = {2 ** downsample}")
        self.in_shape = (channels, size, size)

        def stage(conv: nn.Module, ch: int) -> list[nn.Module]:
            return [conv, nn.InstanceNorm2d(ch), nn.ReLU(True)]

        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *stage(nn.Conv2d(channels, width, 7), width)]
        ch = width
        for _ in range(downsample):
            layers += stage(nn.Conv2d(ch, 2 * ch, 3, 2, 1), 2 * ch)
            ch *= 2
        layers += [_TranslationBlock(ch) for _ in range(blocks)]
        for _ in range(downsample):
            layers += stage(nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), ch // 2)
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"the generator translates images of shape {self.in_shape}, got {tuple(x.shape[1:])}")
        return self.net(x)


@_rebuildable
class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator (Isola et al. 2017; Zhu et al. 2017): ``layers`` stride-2 4x4
    convolutions doubling the channels from ``width``, one stride-1 4x4 convolution, then a
    stride-1 4x4 convolution to one logit per patch: logits of shape (batch, 1, h, w), each judging
    one receptive field (16x16 pixels with ``layers=1``, 70x70 with the paper's ``layers=3``).
    Instance norm (per sample, so gradient penalties stay per sample) follows every inner
    convolution but the first; the first's bias and LeakyReLU(0.2) are one fused kernel."""

    def __init__(self, channels: int = 1, size: int = 16, width: int = 32, layers: int = 1,
                 backend: Optional[str] = None) -> None:
        super().__init__()
        for name, v in (("channels", channels), ("size", size), ("width", width), ("layers", layers)):
            positive_int(name, v)
        out = size
        for _ in range(layers):
            out = out // 2
        if out - 2 < 1:
            raise ValueError(f"PatchDiscriminator: {layers} stride-2 layers leave no patch of a {size}x{size} image; "
                             "use fewer layers")
        self.in_shape = (channels, size, size)
        mods: list[nn.Module] = [FusedConv2d(channels, width, 4, 2, 1, slope=0.2, backend=backend)]
        ch = width
        for i in range(1, layers + 1):  # the last of these is the stride-1 stage
            nxt = width * min(2 ** i, 8)
            mods += [nn.Conv2d(ch, nxt, 4, 2 if i < layers else 1, 1), nn.InstanceNorm2d(nxt),
                     LeakyReLU(0.2, backend=backend)]
            ch = nxt
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"the discriminator judges images of shape {self.in_shape}, got {tuple(x.shape[1:])}")
        return self.net(x)


def build_cyclegan(shape: Sequence[int], *, width: Optional[int] = None, blocks: int = 3,
                   backend: Optional[str] = None) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(g_ab, g_ba, d_a, d_b) for :class:`pygan.CycleGAN` on (channels, size, size) images of both
    domains: two :class:`TranslationGenerator` (``width``, default 16, and ``blocks``) and two
    :class:`PatchDiscriminator` (twice the width)."""
    shape = tuple(shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"CycleGAN's networks need square images (channels, size, size), got shape {shape}")
    w = width or 16
    return (TranslationGenerator(shape[0], shape[1], w, blocks), TranslationGenerator(shape[0], shape[1], w, blocks),
            PatchDiscriminator(shape[0], shape[1], 2 * w, backend=backend),
            PatchDiscriminator(shape[0], shape[1], 2 * w, backend=backend))


def build(model: str, shape: Sequence[int], *, latent_dim: Optional[int] = None,
          width: Optional[int] = None, backend: Optional[str] = None,
          num_classes: Optional[int] = None, minibatch_std: int = 0) -> tuple[nn.Module, nn.Module]:
    """A (generator, discriminator) pair named ``model`` ("mlp", "dcgan" or "resnet", R3GAN's
    residual networks) for samples of ``shape``: (dims,) points or (channels, size, size) images.
    ``backend`` runs the discriminator's fused layers (default: the ops' own choice);
    ``num_classes`` makes a class-conditional pair ("mlp" and "dcgan"); ``minibatch_std`` > 0
    gives the DCGAN discriminator a :class:`MinibatchStd` layer over groups of that many."""
    shape = tuple(shape)
    num_classes = num_classes_arg(num_classes)
    if count_arg("minibatch_std", minibatch_std) and model != "dcgan":
        raise ValueError(f"minibatch_std: only the 'dcgan' discriminator has a minibatch std layer, "
                         f"not model {model!r}")
    if model == "mlp":
        image = len(shape) == 3
        hidden = width or (512 if image else 256)
        g = MLPGenerator(latent_dim or (64 if image else 16), shape, hidden, tanh=image, num_classes=num_classes)
        return g, MLPDiscriminator(shape, hidden, backend=backend, num_classes=num_classes)
    if model in ("dcgan", "resnet"):
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"model {model!r} needs square images (channels, size, size), got shape {shape}")
        w = width or 64
        if model == "resnet":
            if num_classes is not None:
                raise ValueError("model 'resnet' is not class-conditional here; use 'mlp' or 'dcgan' with num_classes")
            return (ResNetGenerator(latent_dim or 64, shape[0], shape[1], w),
                    ResNetDiscriminator(shape[0], shape[1], w, backend=backend))
        return (DCGANGenerator(latent_dim or 100, shape[0], shape[1], w, num_classes=num_classes),
                DCGANDiscriminator(shape[0], shape[1], w, backend=backend, num_classes=num_classes,
                                   minibatch_std=minibatch_std))
    raise ValueError(f"unknown model {model!r}; choose 'mlp', 'dcgan' or 'resnet'")


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
