r"""BiGAN (Donahue et al. 2017; ALI, Dumoulin et al. 2017): latent inference by adversarial training.

A GAN maps noise to data and has no way back. BiGAN trains an encoder :math:`E: x \mapsto z` beside
the generator :math:`G: z \mapsto x`, and a discriminator on *pairs*: data pairs :math:`(x, E(x))`,
:math:`x \sim P`, against generated pairs :math:`(G(z), z)`, :math:`z \sim p_z`. The game

.. math::
    \min_{G, E} \max_D \; E_{x \sim P}[\log D(x, E(x))] + E_{z \sim p_z}[\log(1 - D(G(z), z))]

compares two joint distributions over :math:`(x, z)`; at the optimum they are equal, which forces
:math:`E = G^{-1}` (almost everywhere): :math:`G(E(x)) = x` and :math:`E(G(z)) = z`. :math:`E(x)` is
then a learned representation of the data.

**One engine.** :class:`BiGAN` is a :class:`pygan.GAN` whose generator player is G and E together
(:class:`BiGenerator`: one optimizer, one EMA, one DDP wrapper) and whose samples are pairs. A pair is
one tensor, ``pack_pair(x, z)`` = each sample's x flattened, followed by its z, so everything that
works on samples works unchanged on pairs: every loss, the gradient penalties (the per-sample norm
runs over the joint (x, z) input, as the joint game requires; WGAN-GP interpolates whole pairs), the
fused step, CUDA-graph capture, AMP, EMA, checkpoints and DDP. Discriminators take packed pairs;
:func:`split_pair` recovers (x, z), and :mod:`pygan.models` has joint MLP and conv discriminators.

**The generator player's loss** moves both sides, since :math:`E(x)` enters the real pairs:
:func:`pygan.joint_generator_loss`, D's loss with the labels swapped (non-saturating), or minus D's
loss (``saturating=True``).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .gan import GAN, _eval_mode

__all__ = ["BiGAN", "BiGenerator", "pack_pair", "split_pair"]


def pack_pair(x: Tensor, z: Tensor) -> Tensor:
    """The pair (x, z) as one tensor of shape (batch, x.numel()/batch + z.numel()/batch): x's
    features, then z's, in their promoted dtype."""
    if x.shape[0] != z.shape[0]:
        raise ValueError(f"x and z must pair one to one: batch sizes {x.shape[0]} and {z.shape[0]}")
    dtype = torch.promote_types(x.dtype, z.dtype)
    return torch.cat([x.reshape(x.shape[0], -1).to(dtype), z.reshape(z.shape[0], -1).to(dtype)], 1)


def split_pair(pair: Tensor, x_shape: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`pack_pair`: (x of shape (batch, *x_shape), z of shape (batch, rest))."""
    x_shape = tuple(int(s) for s in x_shape)
    nx = math.prod(x_shape)
    if pair.dim() != 2 or pair.shape[1] <= nx:
        raise ValueError(f"pair must have shape (batch, {nx} + latent features) for samples of shape "
                         f"{x_shape}, got {tuple(pair.shape)}")
    return pair[:, :nx].reshape(pair.shape[0], *x_shape), pair[:, nx:]


class BiGenerator(nn.Module):
    """BiGAN's generator player, G and E as one module: ``forward(z, x)`` returns the fake pairs
    ``pack_pair(G(z), z)`` and the real pairs ``pack_pair(x, E(x))`` in one call (so that DDP sees
    one forward of the whole player per step)."""

    def __init__(self, generator: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.generator, self.encoder = generator, encoder
        self.latent_dim = getattr(generator, "latent_dim", None)

    def forward(self, z: Tensor, x: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        fake_x = self.generator(z)
        if x is not None and fake_x.shape[1:] != x.shape[1:]:
            raise ValueError(f"the generator makes samples of shape {tuple(fake_x.shape[1:])}, the data has "
                             f"shape {tuple(x.shape[1:])}")
        real_pair = None
        if x is not None:
            code = self.encoder(x)
            if code.shape[1:] != z.shape[1:]:
                raise ValueError(f"the encoder maps data to codes of shape {tuple(code.shape[1:])}, the prior "
                                 f"draws z of shape {tuple(z.shape[1:])}: they must match")
            real_pair = pack_pair(x, code)
        return pack_pair(fake_x, z), real_pair


class BiGAN(GAN):
    """A generator, an encoder and a joint discriminator trained by the BiGAN game (module docs).

    Args:
        generator: z -> x, as for :class:`pygan.GAN`.
        encoder: x -> z, with the prior's shape of z.
        discriminator: a packed pair (:func:`pack_pair`) -> logits, e.g.
            :class:`pygan.models.JointMLPDiscriminator` or :class:`pygan.models.JointDCGANDiscriminator`.
        **options: every option of :class:`pygan.GAN` (loss, penalty, n_critic, prior, optimizers --
            ``g_optimizer`` trains G and E together --, fused, capture, amp, ema, saturating, clip,
            seed, distributed, backend).
    """

    _joint = True

    def __init__(self, generator: nn.Module, encoder: nn.Module, discriminator: nn.Module, **options: Any) -> None:
        for name, m in (("generator", generator), ("encoder", encoder)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
        if options.get("num_classes") is not None or getattr(generator, "num_classes", None) is not None:
            raise ValueError("BiGAN is not class-conditional: build its networks without num_classes")
        super().__init__(BiGenerator(generator, encoder), discriminator, **options)

    @property
    def _g_player(self) -> BiGenerator:
        return super().generator

    @property
    def generator(self) -> nn.Module:
        """G (unwrapped from DDP)."""
        return self._g_player.generator

    @property
    def encoder(self) -> nn.Module:
        """E (unwrapped from DDP)."""
        return self._g_player.encoder

    def _d_inputs(self, real: Optional[Tensor], n: int,
                  labels: Optional[Tensor] = None) -> tuple[Optional[Tensor], Tensor]:
        fake_pair, real_pair = self.G(self._noise(n), real)
        return real_pair, fake_pair

    def _generate(self, player: nn.Module, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return player.generator(z)

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "encoder": self.encoder, "discriminator": self.discriminator}

    @torch.no_grad()
    def encode(self, x: Tensor, *, ema: bool = True) -> Tensor:
        """E(x) in eval mode (the EMA encoder when there is one and ``ema``), as float32."""
        x = self._check_real(x, "x")
        player = self._player(ema)
        with _eval_mode(player), self._autocast():
            return player.encoder(x).float()

    @torch.no_grad()
    def reconstruct(self, x: Tensor, *, ema: bool = True) -> Tensor:
        """G(E(x)) in eval mode (EMA weights when there are and ``ema``), as float32."""
        x = self._check_real(x, "x")
        player = self._player(ema)
        with _eval_mode(player), self._autocast():
            return player.generator(player.encoder(x)).float()
