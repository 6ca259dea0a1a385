r"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation by two adversarial games tied by
cycle consistency.

Two generators translate between domains A and B, :math:`G: A \to B` (``g_ab``) and
:math:`F: B \to A` (``g_ba``); a discriminator per domain, :math:`D_A` and :math:`D_B`, tells real
images of its domain from translated ones. Nothing pairs the domains' images. With the least-squares
loss :math:`\ell` of :mod:`pygan.losses` (and ``cycle_weight`` :math:`\lambda`, ``identity_weight``
:math:`\lambda_{id}`):

.. math::
    L_D &= \tfrac12 \big[\ell_D(D_A(a), D_A(F(b))) + \ell_D(D_B(b), D_B(G(a)))\big] \\
    L_G &= \tfrac12 \big[\ell_G(D_A(F(b))) + \ell_G(D_B(G(a)))\big]
        + c\lambda \tfrac12 \big[\lVert F(G(a)) - a\rVert_1 + \lVert G(F(b)) - b\rVert_1\big]
        + c\lambda\lambda_{id} \tfrac12 \big[\lVert F(a) - a\rVert_1 + \lVert G(b) - b\rVert_1\big]

with :math:`\lVert\cdot\rVert_1` the mean absolute difference. :math:`c = \tfrac12` for the
least-squares loss, whose :math:`\ell` carries Mao et al.'s :math:`\tfrac12` that Zhu et al.'s
mean squared error does not, and 1 otherwise: both players' objectives are then proportional to Zhu
et al.'s (by 1/2 and 1/4), which Adam's updates do not see, so ``cycle_weight=10`` means their
:math:`\lambda = 10`.

**One engine, two games as one.** A step's batch is ``m`` unpaired pairs ``(a, b)``, one tensor of
shape (m, 2, C, H, W) (:class:`pygan.data.UnpairedSampler` draws them). Both generators are one
player (:class:`CycleGenerator`: one optimizer, one EMA, one DDP wrapper) that maps a pair to the
translated pair ``(F(b), G(a))``; both discriminators are the other (:class:`CycleDiscriminator`),
whose logits on a pair are ``(D_A(.), D_B(.))`` stacked: PatchGAN maps of shape (m, 2, 1, h, w).
Since every loss of :mod:`pygan.losses` is a mean over its logits, one fused loss call on the
stacked logits is the mean of the two games, exactly. So the whole engine applies unchanged: the
fused step, CUDA-graph capture, AMP, EMA, checkpoints, DDP, augmentation (per image) and gradient
penalties. A penalty sees a pair as one sample: R1 and R2 (squared norms) are the sums of the two
discriminators' own penalties; WGAN-GP and DRAGAN interpolate whole pairs.

**The cycle and identity terms** are :class:`pygan.Term` s of the generator player reading the
generator's other outputs (:attr:`pygan.objective.StepTensors.outputs`): in the steps that train
the generators, :class:`CycleGenerator` also returns the reconstructions ``(F(G(a)), G(F(b)))`` and
the identity images ``(F(a), G(b))``, in the same forward (which DDP needs).

**The image pool** (``pool_size``, 50 as Zhu et al., after Shrivastava et al. 2017): D's loss sees,
for each translated image, with probability 1/2 an earlier step's translation from a history of
``pool_size`` per domain (which the new one then replaces), else the new one; the pool fills first.
It lives on the device, draws with the engine's generator and is saved with checkpoints, so runs
resume exactly and capture records it. Under DDP each rank keeps its own pool of its own batches.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from . import checkpoint as _ckpt
from ._validate import count, number
from .data import TensorSampler, UnpairedSampler
from .gan import GAN, _eval_mode
from .objective import StepTensors, Term

__all__ = ["CycleDiscriminator", "CycleGAN", "CycleGenerator", "ImagePool", "cycle_consistency",
           "identity_mapping"]


class ImagePool:
    """A history of ``size`` generated images (Shrivastava et al. 2017; Zhu et al. 2017). A call
    with a batch returns a batch of the same shape: while the pool fills, the images themselves
    (each stored); then each image, with probability 1/2, is swapped for a stored one drawn
    uniformly (and stored in its place), else passed through. Stored images are detached.

    Vectorized on the device with no host sync: a batch fills first, then every swap reads the pool
    before any swap writes, and when two images of a batch pick one slot the later one is stored
    (the sequential loop of the reference implementation would hand the second the first's image).
    ``size=0`` is no pool (the batch itself)."""

    def __init__(self, size: int = 50) -> None:
        self.size = count("pool_size", size)
        self.images: Optional[Tensor] = None  # (size + 1, ...): the last row takes the writes of no one
        self.count: Optional[Tensor] = None   # images stored so far (up to size), a device scalar

    def __call__(self, images: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        if self.size == 0:
            return images
        x = images.detach()
        n, dev = x.shape[0], x.device
        if self.images is None:
            self.images = torch.zeros((self.size + 1, *x.shape[1:]), dtype=x.dtype, device=dev)
            self.count = torch.zeros((), dtype=torch.int64, device=dev)
        elif self.images.shape[1:] != x.shape[1:]:
            raise ValueError(f"the image pool holds images of shape {tuple(self.images.shape[1:])}, got "
                             f"{tuple(x.shape[1:])}")
        stored = x.to(self.images.dtype)
        trash = torch.full((n,), self.size, dtype=torch.int64, device=dev)
        i = torch.arange(n, device=dev)
        u = torch.rand((n,), generator=generator, device=dev)
        slot = torch.randint(self.size, (n,), generator=generator, device=dev)
        pos = self.count + i  # where each image goes while the pool fills
        filling = pos < self.size
        self.images.index_copy_(0, torch.where(filling, pos, trash), stored)
        swap = (u > 0.5) & ~filling
        out = torch.where(swap.view(-1, *[1] * (x.dim() - 1)), self.images[slot].to(x.dtype), x)
        later = (slot[:, None] == slot[None, :]) & swap[None, :] & (i[None, :] > i[:, None])
        self.images.index_copy_(0, torch.where(swap & ~later.any(1), slot, trash), stored)
        self.count.add_(n).clamp_(max=self.size)
        return out

    def state_dict(self) -> dict[str, Tensor]:
        if self.images is None:
            return {"images": torch.zeros(0), "count": torch.zeros((), dtype=torch.int64)}
        return {"images": self.images.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        images = state["images"]
        if images.numel() == 0:
            self.images = self.count = None
            return
        if images.shape[0] != self.size + 1:
            raise ValueError(f"the checkpoint's image pool holds {images.shape[0] - 1} images, this one {self.size}")
        self.images, self.count = images.clone(), state["count"].clone().to(images.device)

    def __repr__(self) -> str:
        return f"ImagePool(size={self.size})"


class CycleGenerator(nn.Module):
    """Both generators as one player: ``forward(pairs)`` maps pairs (a, b) of shape
    (m, 2, C, H, W) to the translated pairs (F(b), G(a)), plus (``full``) a dict of the
    reconstructions (F(G(a)), G(F(b))) and (``identity``) the identity images (F(a), G(b)), all
    as pairs aligned with (a, b). One forward computes everything the step needs (DDP sees one
    forward of the player per step); each generator runs on its inputs batched together (instance
    norm is per sample, so batching changes nothing)."""

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module) -> None:
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba

    def forward(self, pairs: Tensor, full: bool = False, identity: bool = False) -> tuple[Tensor, dict]:
        a, b = pairs[:, 0], pairs[:, 1]
        m = a.shape[0]
        if full and identity:  # G on (a, b) gives G(a) and G(b); F on (b, a) gives F(b) and F(a)
            fake_b, idt_b = self.g_ab(torch.cat([a, b])).split(m)
            fake_a, idt_a = self.g_ba(torch.cat([b, a])).split(m)
        else:
            fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        for name, x, y in (("g_ab", a, fake_b), ("g_ba", b, fake_a)):
            if y.shape != x.shape:
                raise ValueError(f"{name} must translate images of shape {tuple(x.shape[1:])} to the same shape, "
                                 f"got {tuple(y.shape[1:])}")
        fake = torch.stack([fake_a, fake_b], 1)
        if not full:
            return fake, {}
        out = {"reconstruction": torch.stack([self.g_ba(fake_b), self.g_ab(fake_a)], 1)}
        if identity:
            out["identity"] = torch.stack([idt_a, idt_b], 1)
        return fake, out


class CycleDiscriminator(nn.Module):
    """Both discriminators as one player: the logits of pairs (x_A, x_B), ``D_A(x_A)`` and
    ``D_B(x_B)`` stacked on dim 1 (both must give logits of one shape, e.g. PatchGAN maps)."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module) -> None:
        super().__init__()
        self.d_a, self.d_b = d_a, d_b

    def forward(self, pairs: Tensor) -> Tensor:
        va, vb = self.d_a(pairs[:, 0]), self.d_b(pairs[:, 1])
        if va.shape != vb.shape:
            raise ValueError(f"d_a and d_b must give logits of one shape (each game's loss is then a mean "
                             f"over as many), got {tuple(va.shape[1:])} and {tuple(vb.shape[1:])}")
        return torch.stack([va, vb], 1)


def cycle_consistency(step: StepTensors) -> Tensor:
    r"""The cycle term :math:`\tfrac12[\lVert F(G(a)) - a\rVert_1 + \lVert G(F(b)) - b\rVert_1]`."""
    return (step.outputs["reconstruction"] - step.real).abs().mean()


def identity_mapping(step: StepTensors) -> Tensor:
    r"""The identity term :math:`\tfrac12[\lVert F(a) - a\rVert_1 + \lVert G(b) - b\rVert_1]`."""
    return (step.outputs["identity"] - step.real).abs().mean()


class CycleGAN(GAN):
    """Two generators and two discriminators trained by CycleGAN's objective (module docs).

    Args:
        g_ab, g_ba: the generators A -> B and B -> A (images to images of the same shape), e.g.
            :class:`pygan.models.TranslationGenerator`.
        d_a, d_b: the discriminators of domain A and B (logits of one shape, e.g.
            :class:`pygan.models.PatchDiscriminator`'s maps).
        loss: the adversarial loss (default least squares, as Zhu et al.).
        cycle_weight: :math:`\\lambda` of the cycle-consistency term (0: none).
        identity_weight: :math:`\\lambda_{id}`, the identity term's weight relative to
            ``cycle_weight`` (0: none, and the identity images are not computed).
        pool_size: images per domain in the history D sees (0: the current translations only).
        terms: further :class:`pygan.Term` s (statistics under their names).
        **options: every other option of :class:`pygan.GAN` (penalty, n_critic, optimizers -- the
            generator player's trains both generators, the discriminator player's both
            discriminators --, fused, capture, amp, ema, augment, clip, seed, distributed,
            backend). There is no prior: the generators translate the real batch.
    """

    _translation = True

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, *,
                 loss: str = "least_squares", cycle_weight: float = 10.0, identity_weight: float = 0.5,
                 pool_size: int = 50, terms: Optional[Sequence[Term]] = None, **options: Any) -> None:
        for name, m in (("g_ab", g_ab), ("g_ba", g_ba), ("d_a", d_a), ("d_b", d_b)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
        if options.get("num_classes") is not None:
            raise ValueError("CycleGAN is not class-conditional: pass no num_classes")
        self.cycle_weight = number("cycle_weight", cycle_weight, nonnegative=True)
        self.identity_weight = number("identity_weight", identity_weight, nonnegative=True)
        self.pools = (ImagePool(pool_size), ImagePool(pool_size))
        scale = 0.5 if loss == "least_squares" else 1.0  # see the module docs: proportional to Zhu et al.'s
        own = []
        if self.cycle_weight > 0:
            own.append(Term(cycle_consistency, weight=scale * self.cycle_weight, name="cycle"))
            if self.identity_weight > 0:
                own.append(Term(identity_mapping, weight=scale * self.cycle_weight * self.identity_weight,
                                name="identity"))
        self._user_terms = list(terms or [])
        super().__init__(CycleGenerator(g_ab, g_ba), CycleDiscriminator(d_a, d_b), loss=loss,
                         terms=own + self._user_terms, **options)

    # The networks, unwrapped from DDP.
    g_ab = property(lambda self: self._g_player.g_ab, doc="The generator A -> B.")
    g_ba = property(lambda self: self._g_player.g_ba, doc="The generator B -> A.")
    d_a = property(lambda self: self.discriminator.d_a, doc="The discriminator of domain A.")
    d_b = property(lambda self: self.discriminator.d_b, doc="The discriminator of domain B.")
    pool_size = property(lambda self: self.pools[0].size, doc="Translated images per domain in D's history.")

    @property
    def _g_needs_real(self) -> bool:
        return True  # the generators translate the real batch

    def _check_real(self, real: Tensor, name: str = "real") -> Tensor:
        real = super()._check_real(real, name)
        if real.dim() < 3 or real.shape[1] != 2:
            raise ValueError(f"{name} must be a batch of unpaired (a, b) pairs of shape (m, 2, ...), e.g. from "
                             f"pygan.data.UnpairedSampler; got shape {tuple(real.shape)}")
        return real

    def _d_inputs(self, real: Optional[Tensor], n: int,
                  labels: Optional[Tensor] = None) -> tuple[Optional[Tensor], Tensor]:
        # The reconstructions and identity images only where the generators' gradient is taken.
        full = torch.is_grad_enabled() and self.cycle_weight > 0
        fake, self._g_outputs = self.G(real, full=full, identity=full and self.identity_weight > 0)
        return real, fake

    def _d(self, d, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        if self.augment is None:
            return d(x)
        return d(self.augment(x.flatten(0, 1)).view_as(x))  # the augmentation draws per image

    def _history(self, fake: Tensor) -> Tensor:
        if self.pool_size == 0:
            return fake
        gen = None if self._capturing else self.rng
        return torch.stack([pool(fake[:, k], gen) for k, pool in enumerate(self.pools)], 1)

    # Translation ------------------------------------------------------------------------------

    def _translate(self, x: Tensor, name: str, *directions: str, ema: bool) -> Tensor:
        x = super()._check_real(x, name)
        player = self._player(ema)
        with torch.no_grad(), _eval_mode(player), self._autocast():
            x = x.to(self._z_dtype)
            for d in directions:
                x = getattr(player, d)(x)
        return x.float()

    def translate_ab(self, a: Tensor, *, ema: bool = True) -> Tensor:
        """G(a): images of domain A translated to B, in eval mode (the EMA generators when there are
        and ``ema``), as float32."""
        return self._translate(a, "a", "g_ab", ema=ema)

    def translate_ba(self, b: Tensor, *, ema: bool = True) -> Tensor:
        """F(b): images of domain B translated to A (as :meth:`translate_ab`)."""
        return self._translate(b, "b", "g_ba", ema=ema)

    def reconstruct(self, x: Tensor, domain: str = "a", *, ema: bool = True) -> Tensor:
        """The round trip of images of ``domain``: F(G(x)) for "a", G(F(x)) for "b"."""
        if domain not in ("a", "b"):
            raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
        order = ("g_ab", "g_ba") if domain == "a" else ("g_ba", "g_ab")
        return self._translate(x, "x", *order, ema=ema)

    def sample(self, n: int, **kwargs: Any) -> Tensor:
        raise TypeError("a CycleGAN translates images and draws none from noise: use translate_ab, translate_ba "
                        "or reconstruct")

    generate = sample

    # Training and checkpoints -----------------------------------------------------------------

    def fit(self, data: Any, steps: int, **kwargs: Any) -> list[dict]:
        """:meth:`pygan.GAN.fit` on unpaired data: a :class:`pygan.data.UnpairedSampler` (or a
        sampler of (m, 2, ...) pairs), or a tuple ``(a, b)`` of the two domains' image tensors."""
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data) \
                and all(t.is_floating_point() for t in data):
            data = UnpairedSampler(TensorSampler(data[0], self.device), TensorSampler(data[1], self.device))
        return super().fit(data, steps, **kwargs)

    def _stateful(self) -> dict[str, Any]:
        on = self.pool_size > 0
        return {**super()._stateful(), "pool_a": self.pools[0] if on else None, "pool_b": self.pools[1] if on else None}

    def _modules(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def _config(self) -> dict[str, Any]:
        cfg = super()._config()
        cfg["terms"] = _ckpt.pack(self._user_terms) if self._user_terms else None  # its own are rebuilt
        cfg["cyclegan"] = {"cycle_weight": self.cycle_weight, "identity_weight": self.identity_weight,
                           "pool_size": self.pool_size}
        return cfg

    @classmethod
    def _options_from_config(cls, cfg: dict) -> dict[str, Any]:
        return dict(cfg["cyclegan"])

    def __repr__(self) -> str:
        text = super().__repr__().replace("CycleGenerator, CycleDiscriminator",
                                          f"{type(self.g_ab).__name__}, {type(self.d_a).__name__}")
        return text.replace(", device=", f", cycle_weight={self.cycle_weight:g}, identity_weight="
                            f"{self.identity_weight:g}, pool_size={self.pool_size}, device=", 1)
