r"""The minimax training loop: :class:`GAN` composes a generator G, a discriminator (critic) D, a
loss, an optional gradient penalty and two optimizers into the lecture's algorithm. Per iteration,
on m real samples and m noise vectors:

1. ``n_critic`` times, :meth:`GAN.d_step`: ascend :math:`V(G, D)` in D's parameters, i.e. descend
   :math:`L_D = E_P[\ell_r(D(x))] + E_Q[\ell_f(D(G(z)))] (+ \sum_k \text{penalty}_k)`.
2. :meth:`GAN.g_step`: descend :math:`L_G = E_Q[\ell_g(D(G(z)))]` in G's parameters, on fresh noise.

:meth:`GAN.step` runs both; every step returns its statistics as detached device tensors (no host
sync): ``d_loss``, ``g_loss``, ``penalty``, ``d_real`` and ``d_fake`` (mean D output, a logit, on
real and generated samples), and ``divergence`` (the variational bound :math:`-L_D`, for the
f-divergences and wasserstein); with several penalties also each one's value, ``penalty_<name>``.

**Penalties** (``penalty=``: a kind, ``"r1+r2"``, a :class:`pygan.GradientPenalty` or a list of them,
each with its own weight, lazy interval and target). D runs once on the real and once on the fake
batch per D step, and every penalty due on ``real`` or ``fake`` (R1, R2) takes its input gradient
from that same forward; penalties on interpolates or perturbed data (WGAN-GP, DRAGAN) run D on
their own points.

**Fused step** (``fused=True``): the last D step and the G step become one simultaneous update,
:meth:`GAN.dg_step`. G runs once on one batch of noise, D once on the real and once on the fake
batch; :func:`pygan.losses.minimax_losses` gives both players' upstream gradients at those logits,
and two backward passes through the one graph give D's gradient (from :math:`L_D`) and G's (from
:math:`L_G`, through D to G), before either optimizer steps. This saves one G forward and one D
forward per iteration. It differs from the alternating update: G's gradient is taken against D
*before* D's update of this iteration (both gradients at the same point
:math:`(\theta_G, \theta_D)`, a simultaneous gradient step), and G's loss sees the noise that D's
step saw. Both converge to the same equilibria; simultaneous steps can oscillate more at large
learning rates (Mescheder et al. 2017), the alternating ones cost more.

**Augmentation** (``augment=``, e.g. :class:`pygan.augment.DiffAugment` or
:class:`pygan.augment.AdaptiveAugment`): D sees :math:`D(T(x))` for the real and the generated batch in
both players' steps; penalties on the real or fake batch take their gradient with respect to the
batch before :math:`T`, through the loss's own forward, and the other penalties run
:math:`D \circ T` at their points. An adaptive augmentation observes D's logits on the real batch
after each D step.

**Class-conditional GANs** (``num_classes=K``, by default the generator's ``num_classes``): the
steps take the real batch's integer labels, ``step(real, labels=y)``; G and D take them by keyword,
``G(z, y=y)`` and ``D(x, y=y)`` (see :mod:`pygan.models` for conditional generators and projection
discriminators). The fakes of a D step carry the real batch's labels (so both sides of D's loss,
relativistic pairs and interpolates compare samples of one class); a G step without labels draws
them uniformly. ``fit`` draws labelled batches (``sampler.sample_labeled``) and
``sample(n, labels=...)`` picks the classes.

**CUDA graphs** (``capture=True``, CUDA only): after three eager warm-up steps, the whole
:meth:`step` -- every forward, backward, optimizer update (capturable Adam), weight clipping and EMA
update -- is captured into one CUDA graph and replayed; with a lazy penalty one graph per pattern of
penalized D steps (two when the penalty interval is a multiple of ``n_critic``). Real batches are
copied into the graph's static input; shapes must not change. Noise then comes from the default
CUDA generator (whose state checkpoints keep) instead of the GAN's own generator.

**AMP** (``amp="bf16"`` or ``"fp16"``): forwards run under autocast; ``"fp16"`` adds a
``GradScaler`` per player, and the gradient penalty takes the inner gradient of the scaled outputs
and unscales it before the norm.

**DDP**: when ``torch.distributed`` is initialized with more than one process, G and D are wrapped
in ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs; launch with ``torchrun``); each rank
draws its own batch, gradients are averaged, so a step equals one process's step on the combined
batch. G's step runs D without DDP's hooks (D's gradients are not computed there), and penalties
run through the unwrapped D (see :mod:`pygan.penalties`).

**BiGAN** (:mod:`pygan.bigan`) is this engine with a generator player that produces both sides:
``_d_inputs`` gives D's real and fake inputs, ``_joint`` makes G's loss :func:`joint_generator_loss`.
**CycleGAN** (:mod:`pygan.cyclegan`) is this engine with a generator player that translates the real
batch (``_translation``: no prior) and returns its reconstructions for the extra terms, and with a
history of fakes for D (``_history``: the image pool).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules import module as _nn_module

from . import checkpoint as _ckpt
from ._ops.backend import check_backend
from .data import Sampler, as_sampler
from .augment import AdaptiveAugment, DiffAugment
from .ema import EMA
from .objective import Objective, Term
from .penalties import GradientPenalty, _unwrap, clip_weights_
from .players import Player
from .schedule import Anneal, Schedule
from ._validate import class_labels, number, positive_int
from ._validate import num_classes as num_classes_arg

__all__ = ["GAN", "Normal", "Uniform", "STAT_NAMES", "TrainingDiverged"]

STAT_NAMES = ("d_loss", "g_loss", "divergence", "penalty", "d_real", "d_fake")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
WARMUP_STEPS = 3  # eager steps before a CUDA graph is captured (cuDNN / cuBLAS choose their kernels)
CHECKPOINT_FORMAT = 2  # 2: plain data only (pygan.checkpoint), networks rebuilt from their arguments


class Normal:
    """The standard normal prior :math:`z \\sim N(0, I)` of ``shape`` (without the batch dim)."""

    def __init__(self, *shape: int) -> None:
        self.shape = tuple(int(s) for s in shape)

    def __call__(self, n: int, device: torch.device, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.randn((n, *self.shape), device=device, generator=generator)

    def __repr__(self) -> str:
        return f"Normal{self.shape}"


class Uniform(Normal):
    """The uniform prior :math:`z \\sim U[-1, 1)^d` of ``shape``."""

    def __call__(self, n: int, device: torch.device, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.rand((n, *self.shape), device=device, generator=generator) * 2 - 1

    def __repr__(self) -> str:
        return f"Uniform{self.shape}"


def _device_of(module: nn.Module, name: str) -> torch.device:
    devices = {p.device for p in module.parameters()}
    if len(devices) != 1:
        raise ValueError(f"{name} must have parameters, all on one device; found devices {sorted(map(str, devices))}")
    return devices.pop()


def adam_defaults(loss: str, penalty: Union[None, str, Sequence[str]]) -> tuple[float, tuple[float, float]]:
    """Adam's (lr, betas) as the papers tune them: (1e-4, (0, 0.9)) for a Wasserstein critic -- the
    wasserstein loss, or a WGAN-GP or one-sided penalty (Gulrajani et al.) -- and (2e-4, (0.5, 0.999))
    otherwise (Radford et al.). ``penalty`` is the penalties' kinds (a sequence, or one string,
    ``"r1+r2"`` for several), or None."""
    kinds = penalty.split("+") if isinstance(penalty, str) else (penalty or ())
    if loss == "wasserstein" or any(k in ("wgan-gp", "one-sided") for k in kinds):
        return 1e-4, (0.0, 0.9)
    return 2e-4, (0.5, 0.999)


def adam(params, lr: float, betas: tuple[float, float], capture: bool = False) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, betas)`` on torch's fused kernel (one call for every parameter:
    3x faster than torch's default per-parameter loop on the CPU at the demo's sizes, the same
    update up to rounding), or capturable for a CUDA graph (``capture``: torch's multi-tensor path,
    which graph capture is documented for). The engine's default optimizer and the command line's."""
    if capture:
        return torch.optim.Adam(params, lr=lr, betas=betas, capturable=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def _default_optimizer(params, loss: str, penalties: Sequence[GradientPenalty], capture: bool):
    lr, betas = adam_defaults(loss, [p.kind for p in penalties])
    return adam(params, lr, betas, capture)


class GAN:
    """A generator and a discriminator trained by the minimax game (see the module docs).

    Args:
        generator: maps a batch of noise (from ``prior``) to a batch of samples.
        discriminator: maps a batch of samples to logits (any shape per sample).
        loss: a name of :data:`pygan.losses.LOSS_NAMES`; ``**loss_params`` its parameters (``alpha``).
        penalty: None, a kind of :data:`pygan.penalties.KINDS` (default weight), kinds joined by
            ``"+"`` (``"r1+r2"``), a :class:`pygan.GradientPenalty` (weight, center, lazy interval,
            target), or a list of kinds and modules; the penalties are summed into D's loss.
        n_critic: D steps per G step.
        prior: a callable ``(n, device, generator) -> z``; default :class:`Normal` of
            ``generator.latent_dim``.
        g_optimizer, d_optimizer: optimizers (or callables ``params -> optimizer``); default Adam as
            in DCGAN, or as in WGAN-GP for Wasserstein losses and penalties.
        fused, capture, amp: see the module docs.
        ema: decay (e.g. 0.999) of an exponential moving average of G's weights, or an
            :class:`pygan.ema.EMA`; :meth:`sample` then uses the averaged generator.
        saturating: G descends the minimax loss instead of the non-saturating one.
        clip: clamp D's weights to [-clip, clip] after each of its steps (original WGAN).
        seed: seed of the GAN's own generator of noise and penalty points (default: drawn from
            torch's global generator, so ``torch.manual_seed`` makes training reproducible).
        distributed: wrap G and D in DDP; default: when torch.distributed runs more than one process.
        backend: kernel backend for losses, penalties and EMA ("auto", "cpu", "cuda", "triton").
        augment: a differentiable callable applied to every batch before D (see the module docs),
            e.g. :class:`pygan.augment.DiffAugment`; a module is moved to the models' device and
            its state is saved with checkpoints.
        num_classes: the number of classes of a class-conditional GAN (default: the generator's
            ``num_classes`` attribute, else unconditional).
        terms: extra terms of either player's loss (:class:`pygan.objective.Term`), e.g. ProGAN's
            drift penalty on D; each one's value is a statistic under its name.
        anneal: a :class:`pygan.Anneal` that moves both players' learning rates and the penalty
            weights along a cosine to its end values, applied before each step (not with capture).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, loss: str = "gan",
                 penalty: Union[None, str, GradientPenalty, Sequence[Union[str, GradientPenalty]]] = None,
                 n_critic: int = 1,
                 prior: Optional[Callable] = None, g_optimizer=None, d_optimizer=None,
                 fused: bool = False, capture: bool = False, amp: Optional[str] = None,
                 ema: Union[None, float, EMA] = None, saturating: bool = False,
                 clip: Optional[float] = None, seed: Optional[int] = None,
                 distributed: Optional[bool] = None, backend: Optional[str] = None,
                 augment: Optional[Callable[[Tensor], Tensor]] = None, num_classes: Optional[int] = None,
                 terms: Optional[Sequence[Term]] = None, anneal: Optional[Anneal] = None,
                 **loss_params: float) -> None:
        for name, m in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
        # The objective: the adversarial loss and the penalties on D (an unknown loss, parameter or
        # penalty fails here).
        self.objective = Objective(loss, loss_params, saturating=saturating, joint=self._joint, penalty=penalty,
                                   terms=terms, backend=backend)
        self.schedule = Schedule(n_critic, fused)  # when each player steps
        if amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        self.amp, self.capture, self.backend = amp, bool(capture), check_backend(backend) or None
        self.clip = None if clip is None else number("clip", clip, positive=True)

        self.device = _device_of(_unwrap(generator), "generator")
        d_device = _device_of(_unwrap(discriminator), "discriminator")
        if d_device != self.device:
            raise ValueError(f"generator is on {self.device} and discriminator on {d_device}; put them on one device")
        if self.capture:
            if self.device.type != "cuda":
                raise ValueError(f"capture=True records CUDA graphs and needs the models on a CUDA device, "
                                 f"not {self.device}; leave capture=False on the CPU")
            if amp == "fp16":
                raise ValueError("capture=True cannot capture fp16 loss scaling (GradScaler checks for inf "
                                 "on the host every step); use amp='bf16'")


        if self._translation:  # the generator player maps data to data: no noise
            if prior is not None:
                raise ValueError(f"{type(self).__name__} translates data and draws no noise: pass no prior")
        elif prior is None:
            latent = getattr(_unwrap(generator), "latent_dim", None)
            if latent is None:
                raise ValueError("pass prior= (e.g. pygan.Normal(latent_dim)): the generator has no latent_dim")
            prior = Normal(latent)
        if prior is not None and not callable(prior):
            raise TypeError(f"prior must be callable (n, device, generator) -> z, got {type(prior).__name__}")
        self.prior = prior
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable batch -> batch (e.g. pygan.augment.DiffAugment()), "
                            f"got {type(augment).__name__}")
        if isinstance(augment, nn.Module):
            augment.to(self.device)
        self.augment = augment
        if num_classes is None:
            num_classes = getattr(_unwrap(generator), "num_classes", None)
        num_classes = num_classes_arg(num_classes)
        d_classes = getattr(_unwrap(discriminator), "num_classes", num_classes)
        if d_classes != num_classes:
            raise ValueError(f"the discriminator has num_classes={d_classes} and the GAN {num_classes}: "
                             "build both networks for the same classes")
        self.num_classes: Optional[int] = num_classes

        if distributed is None:
            distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.distributed = bool(distributed)
        # The two players: the generator side (G; G and E in BiGAN) with its EMA, and D.
        def default(params):
            return _default_optimizer(params, loss, self.penalties, self.capture)

        common = dict(default=default, device=self.device, distributed=self.distributed, fp16=amp == "fp16",
                      capture=self.capture, backend=backend)
        self.g = Player("generator", generator, g_optimizer, option="g_optimizer", ema=ema, **common)
        self.d = Player("discriminator", discriminator, d_optimizer, option="d_optimizer", **common)
        if anneal is not None:
            if not isinstance(anneal, Anneal):
                raise TypeError(f"anneal must be a pygan.Anneal, got {type(anneal).__name__}")
            if self.capture:  # a graph replays the floats it was recorded with
                raise ValueError("anneal: capture=True replays the learning rates and penalty weights the CUDA "
                                 "graph was recorded with, so they cannot anneal; leave capture=False")
            anneal.check_penalties(self.penalties)
            anneal.prepare((self.g_optimizer, self.d_optimizer))
        self.anneal = anneal
        self._z_dtype = next((p.dtype for p in self.generator.parameters() if p.is_floating_point()), torch.float32)
        # D's closed-form step (one pass: both players' logits, the input gradients and the R1/R2
        # double backward; pygan.models.MLPDiscriminator.step_forward) where it is exact for what
        # the steps ask of D: the bare network on the batches themselves, in full precision.
        plain = self.augment is None and self.num_classes is None and self.amp is None
        closed = plain and not (self._joint or self._translation) and getattr(self.D, "closed_form_step", False)
        self._closed_form = self.D.step_forward if closed else None
        self._d_modules = tuple(self.D.modules()) if closed else ()

        if seed is None:
            seed = int(torch.randint(2**62, ()).item())
        self.seed = int(seed)
        self.rng = torch.Generator(device=self.device)
        rank = dist.get_rank() if self.distributed else 0
        self.rng.manual_seed(self.seed + 1_000_003 * rank)  # each rank its own noise
        self.steps = 0
        self.extra: dict[str, Any] = {}  # plain data saved with every checkpoint (see save)
        self._graphs: dict[tuple, tuple] = {}
        self._batch_shape: Optional[tuple] = None

    def __repr__(self) -> str:
        options = [repr(self.objective)]
        for name, default in (("n_critic", 1), ("fused", False), ("capture", False), ("amp", None),
                              ("saturating", False), ("clip", None)):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)!r}")
        if self.ema is not None:
            options.append(f"ema={self.ema.decay:g}")
        if self.augment is not None:
            options.append(f"augment={self.augment!r}".replace("\n", ""))
        if self.anneal is not None:
            options.append(f"anneal={self.anneal!r}")
        g, d = type(self.generator).__name__, type(self.discriminator).__name__
        prior = "" if self.prior is None else f"prior={self.prior!r}, "
        return f"{type(self).__name__}({g}, {d}, {', '.join(options)}, {prior}device={self.device}, steps={self.steps})"

    # -----------------------------------------------------------------------------------------
    # Properties and small pieces
    # -----------------------------------------------------------------------------------------

    @property
    def penalty(self) -> Optional[GradientPenalty]:
        """The gradient penalty, or None; a GAN with several has them in :attr:`penalties`."""
        if len(self.penalties) > 1:
            raise AttributeError(f"this GAN has {len(self.penalties)} penalties "
                                 f"({', '.join(p.name for p in self.penalties)}): use .penalties")
        return self.penalties[0] if self.penalties else None

    @property
    def generator(self) -> nn.Module:
        """G itself (unwrapped from DDP)."""
        return self.g.module

    @property
    def _g_player(self) -> nn.Module:
        # Everything the generator player trains (one optimizer, one EMA): G here, G and E in BiGAN.
        return self.g.module

    @property
    def discriminator(self) -> nn.Module:
        """D itself (unwrapped from DDP)."""
        return self.d.module

    # The objective's and the players' parts under the names the engine has always had.
    n_critic = property(lambda self: self.schedule.n_critic, doc="D steps per G step.")
    fused = property(lambda self: self.schedule.fused, doc="Whether the last D step and the G step are one update.")
    spec = property(lambda self: self.objective.spec)
    loss = property(lambda self: self.objective.loss, doc="The adversarial loss's name.")
    loss_params = property(lambda self: self.objective.params)
    saturating = property(lambda self: self.objective.saturating)
    penalties = property(lambda self: self.objective.penalties, doc="The gradient penalties, summed into D's loss.")
    G = property(lambda self: self.g.net, doc="G as the steps call it (DDP-wrapped when distributed).")
    D = property(lambda self: self.d.net, doc="D as the steps call it (DDP-wrapped when distributed).")
    g_optimizer = property(lambda self: self.g.optimizer)
    d_optimizer = property(lambda self: self.d.optimizer)
    g_scaler = property(lambda self: self.g.scaler)
    d_scaler = property(lambda self: self.d.scaler)
    ema = property(lambda self: self.g.ema, doc="The EMA of the generator player, or None.")
    _g_params = property(lambda self: self.g.params)
    _d_params = property(lambda self: self.d.params)

    def _noise(self, n: int) -> Tensor:
        # Inside a CUDA graph the noise must come from the default generator (registered with the
        # graph); elsewhere from the GAN's own generator, so runs resume exactly.
        return self._draw(n, None if self._capturing else self.rng)

    def _draw(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        return self._in_g_dtype(self.prior(n, self.device, generator))

    def _in_g_dtype(self, z: Tensor) -> Tensor:
        # Noise in G's parameter dtype (a float64 model takes float64 noise; autocast handles AMP).
        return z.to(self._z_dtype) if z.is_floating_point() and z.dtype != self._z_dtype else z

    _capturing = False

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])


    # What D compares. A plain GAN's real side is the data itself; BiGAN's generator player
    # produces both sides (real pairs (x, E(x)) and fake pairs (G(z), z)) and overrides these two.
    _joint = False
    # CycleGAN's generator player translates the real batch instead of mapping noise (no prior).
    _translation = False
    # The generator player's other outputs of the current step, by name, for the extra terms
    # (StepTensors.outputs): CycleGAN's reconstructions and identity images. Set by _d_inputs.
    _g_outputs: dict = {}

    def _history(self, fake: Tensor) -> Tensor:
        """The fakes D's loss sees in a D step: G's current output, or (CycleGAN's image pool) a
        mix with earlier steps' fakes. Returning ``fake`` itself means no history."""
        return fake

    def _d_inputs(self, real: Optional[Tensor], n: int,
                  labels: Optional[Tensor] = None) -> tuple[Optional[Tensor], Tensor]:
        """D's inputs on the real side (for a batch ``real`` of data) and on the fake side (for
        ``n`` fresh noise vectors, of the classes ``labels`` in a conditional GAN)."""
        return real, self._generate(self.G, self._noise(n), labels)

    def _generate(self, player: nn.Module, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Samples from the generator player ``player`` (G itself, or its EMA copy) at ``z``."""
        return _labelled(player, z, labels)

    @property
    def _g_needs_real(self) -> bool:
        return self.objective.g_needs_real

    def _check_real(self, real: Tensor, name: str = "real") -> Tensor:
        if not isinstance(real, Tensor):
            raise TypeError(f"{name} must be a tensor batch of data, got {type(real).__name__}")
        if real.dim() < 1 or real.shape[0] < 1:
            raise ValueError(f"{name} must be a non-empty batch (samples on dim 0), got shape {tuple(real.shape)}")
        if real.device != self.device:
            raise ValueError(f"{name} is on {real.device} and the models on {self.device}")
        if not real.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {real.dtype}")
        return real

    @staticmethod
    def _check_shapes(real: Optional[Tensor], fake: Tensor) -> None:
        # Data and generator must agree per sample; otherwise D fails with a matmul message that
        # names neither.
        if real is not None and real.shape[1:] != fake.shape[1:]:
            raise ValueError(f"the real samples have shape {tuple(real.shape[1:])} per sample and the generator "
                             f"makes {tuple(fake.shape[1:])}: the data and the generator's out_shape must match")

    def _d(self, d: Callable[..., Tensor], x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """What D says of the batch ``x`` (of the classes ``labels``): D(augment(x)) with an
        augmentation."""
        return _labelled(d, x if self.augment is None else self.augment(x), labels)

    def _penalty_d(self, labels: Optional[Tensor]) -> Callable[[Tensor], Tensor]:
        """The critic a penalty on its own points differentiates: D, after the augmentation and
        with the labels when there are (then unwrapped from DDP here, as the penalty itself does
        for a bare D)."""
        if self.augment is None and labels is None:
            return self.D
        d = _unwrap(self.D)
        return lambda x: self._d(d, x, labels)

    def _check_labels(self, labels: Optional[Tensor], n: int, name: str = "labels") -> Optional[Tensor]:
        """The labels of a batch of ``n``: required (integer, shape (n,), on the device) in a
        conditional GAN, refused in an unconditional one."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError(f"{name}: this GAN is not class-conditional (num_classes=None); pass no labels")
            return None
        if labels is None:
            raise ValueError(f"this GAN is class-conditional (num_classes={self.num_classes}): pass the real "
                             f"batch's integer class labels, {name}=")
        class_labels(name, labels, n)
        if labels.device != self.device:
            raise ValueError(f"{name} is on {labels.device} and the models on {self.device}")
        return labels

    def _random_labels(self, n: int, generator: Optional[torch.Generator]) -> Optional[Tensor]:
        """Uniform class labels for ``n`` fakes (None in an unconditional GAN)."""
        if self.num_classes is None:
            return None
        return torch.randint(self.num_classes, (n,), device=self.device, generator=generator)

    @property
    def _closed_form_d(self) -> Optional[Callable[..., list[tuple[Tensor, Tensor, Tensor]]]]:
        """D's closed-form step, where it applies now: not while a module hook (one of the user's,
        an old-style spectral norm's) expects D's forward and backward to run."""
        if self._closed_form is None or any(map(bool, _global_hooks())):
            return None
        for m in self._d_modules:
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
                return None
        return self._closed_form

    def _d_forward(self, real: Tensor, fake: Tensor, labels: Optional[Tensor],
                   shared: frozenset) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """D on both batches, once each: (real, fake, D(real), D(fake), D(fake) for G's loss, input
        gradients). The batches a due penalty takes its gradient from (``shared``) enter as inputs
        that require grad: as they are where they already do (the fused step's fakes, G's output;
        BiGAN's real pairs, E's), else as new leaves (the caller's tensor is left alone). A critic
        with a closed-form step (:meth:`pygan.models.MLPDiscriminator.step_forward`) gives its
        logits for D's and for G's loss apart and the input gradients of both batches, so that the
        penalties take those (``input gradients``, by side; empty otherwise)."""
        closed = self._closed_form_d
        if closed is not None:  # both batches in one pass
            (v_r, _, g_r), (v_f, v_g, g_f) = closed(real, fake)
            return real, fake, v_r, v_f, v_g, {"real": g_r, "fake": g_f}
        if "real" in shared and not real.requires_grad:
            real = real.detach().requires_grad_(True)
        if "fake" in shared and not fake.requires_grad:
            fake = fake.detach().requires_grad_(True)
        with self._autocast():
            v_r = self._d(self.D, real, labels)  # real first: an augmentation draws in this order
            v_f = self._d(self.D, fake, labels)
            return real, fake, v_r, v_f, v_f, {}

    def _penalty(self, real: Tensor, fake: Tensor, shared: frozenset, v_r: Tensor, v_f: Tensor,
                 labels: Optional[Tensor],
                 input_grads: dict[str, Tensor]) -> tuple[Optional[Tensor], dict[str, Tensor]]:
        """The sum of the penalties (None without any) and, with several, each one's value
        (:meth:`pygan.objective.Objective.penalty`)."""
        with self._autocast():
            return self.objective.penalty(self._penalty_d(labels), real, fake, shared, v_r, v_f, scaler=self.d_scaler,
                                          generator=None if self._capturing else self.rng, input_grads=input_grads)

    _skip_nonfinite = False  # fit(nonfinite="skip") sets it for the run
    skipped_steps = 0

    def _update(self, player: Player, *losses: Optional[Tensor]) -> None:
        """``player``'s optimizer step; under fit(nonfinite="skip") none when one of its ``losses``
        is not finite (the player then keeps its weights and moments)."""
        skip = self._skip_nonfinite and not _all_finite(losses)
        self.skipped_steps += skip
        player.step(skip)

    def _after_d_step(self, v_r: Tensor) -> None:
        observe = getattr(self.augment, "observe", None)
        if observe is not None:  # an adaptive augmentation's overfitting heuristic
            observe(v_r)
        if self.clip is not None:
            clip_weights_(self.discriminator, self.clip, backend=self.backend)


    def _d_stats(self, d_loss: Tensor, penalty: Optional[Tensor], parts: dict[str, Tensor], v_r: Tensor,
                 v_f: Tensor) -> dict[str, Tensor]:
        stats = {"d_loss": d_loss.detach(), "d_real": v_r.detach().float().mean(),
                 "d_fake": v_f.detach().float().mean(),
                 "penalty": penalty.detach() if penalty is not None else torch.zeros((), device=self.device),
                 **parts}
        if self.objective.has_divergence:
            stats["divergence"] = -stats["d_loss"]
        if isinstance(getattr(self.augment, "p", None), Tensor):
            stats["augment_p"] = self.augment.p.detach().clone()
        return stats

    # -----------------------------------------------------------------------------------------
    # The steps
    # -----------------------------------------------------------------------------------------

    def d_step(self, real: Tensor, labels: Optional[Tensor] = None) -> dict[str, Tensor]:
        """One discriminator (critic) step on a batch of real samples and as many fakes (of the
        real batch's ``labels`` in a conditional GAN): descend :math:`L_D` (+ the penalties), then
        clip D's weights if ``clip`` is set."""
        real = self._check_real(real)
        labels = self._check_labels(labels, real.shape[0])
        with torch.no_grad(), self._autocast():
            real, fake = self._d_inputs(real, real.shape[0], labels)
            fake = self._history(fake)
        self._check_shapes(real, fake)
        shared = self.objective.shared_sides()
        real, fake, v_r, v_f, _, input_grads = self._d_forward(real, fake, labels, shared)
        d_loss = self.objective.d_loss(v_r, v_f)
        penalty, parts = self._penalty(real, fake, shared, v_r, v_f, labels, input_grads)
        extra, extra_parts = self.objective.extra("discriminator", real, fake, labels, v_r, v_f, self._g_outputs)
        total = _sum(d_loss, penalty, extra)
        parts.update(extra_parts)
        self.d.zero_grad()
        self.d.backward(total)
        self._update(self.d, total)
        self._after_d_step(v_r)
        return self._d_stats(d_loss, penalty, parts, v_r, v_f)

    def g_step(self, real: Optional[Tensor] = None, batch_size: Optional[int] = None,
               labels: Optional[Tensor] = None) -> dict[str, Tensor]:
        """One generator step on ``batch_size`` fresh noise vectors (default: ``real``'s batch size):
        descend :math:`L_G`. Only G's gradients are computed (D runs without its DDP hooks and its
        parameters get no gradient). The relativistic losses (and BiGAN) need ``real``. In a
        conditional GAN the fakes take ``labels`` (``real``'s, which a relativistic loss needs), or
        labels drawn uniformly without them."""
        if real is not None:
            real = self._check_real(real)
        if self._g_needs_real and real is None:
            why = "BiGAN's encoder player moves the real pairs" if self._joint else \
                f"loss {self.loss!r} compares fakes with real samples"
            raise ValueError(f"{why}: pass real= to g_step")
        m = batch_size if batch_size is not None else (real.shape[0] if real is not None else None)
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"g_step needs real= or a positive batch_size, got batch_size={batch_size!r}")
        if self.num_classes is not None and labels is None and real is None:
            labels = self._random_labels(m, None if self._capturing else self.rng)
        labels = self._check_labels(labels, m)
        d = self.discriminator
        with self._autocast():
            real, fake = self._d_inputs(real, m, labels)
            closed = self._closed_form_d
            v_f = closed(fake)[0][1] if closed is not None else self._d(d, fake, labels)
            v_r = None
            if self._joint:
                v_r = self._d(d, real, labels)
            elif self.objective.relativistic:
                with torch.no_grad():
                    v_r = self._d(d, real, labels)
        g_loss = self.objective.g_loss(v_r, v_f)
        extra, stats = self.objective.extra("generator", real, fake, labels, v_r, v_f, self._g_outputs)
        total = _sum(g_loss, extra)
        self.g.zero_grad()
        self.g.backward(total)
        self._update(self.g, total)
        self.g.update_average()
        return {"g_loss": g_loss.detach(), **stats}

    def dg_step(self, real: Tensor, labels: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The fused, simultaneous D and G step (see the module docs): one G forward, one D forward
        per batch, both players' upstream gradients from one loss evaluation, two backward passes
        through the shared graph, then both optimizers step."""
        real = self._check_real(real)
        labels = self._check_labels(labels, real.shape[0])
        # The fakes are G's output here (G's gradient runs through them), and BiGAN's real pairs E's:
        # a penalty's inner gradient is taken with respect to them as they are, and its backward
        # reaches D's parameters only (D's backward below takes inputs=D's parameters).
        # With a history of fakes (CycleGAN's pool), D's loss sees the pool's batch and G's loss D's
        # output on G's own fakes: one more D forward, and G's adversarial term is then a scalar of
        # its own (one kernel call each side instead of one for both).
        shared = self.objective.shared_sides()
        with self._autocast():
            real, fake = self._d_inputs(real, real.shape[0], labels)
            with torch.no_grad():
                d_fake = self._history(fake)
        self._check_shapes(real, fake)
        pooled = d_fake is not fake
        real, d_fake, v_r, v_f, v_g, input_grads = self._d_forward(real, d_fake if pooled else fake, labels, shared)
        if pooled:
            with self._autocast():
                v_g = self._d(self.D, fake, labels)
            g_adv = self.objective.g_loss(v_r, v_g)
        else:
            fake, g_adv = d_fake, None
        ml = self.objective.minimax(v_r, v_f)
        penalty, parts = self._penalty(real, d_fake, shared, v_r, v_f, labels, input_grads)
        d_extra, d_parts = self.objective.extra("discriminator", real, d_fake, labels, v_r, v_f, self._g_outputs)
        g_extra, g_parts = self.objective.extra("generator", real, fake, labels, v_r, v_g, self._g_outputs)
        parts.update(d_parts)
        self.d.zero_grad()
        self.g.zero_grad()
        sd, sg = self.d.loss_scale(self.device), self.g.loss_scale(self.device)

        def up(grad: Tensor, like: Tensor, scale: Optional[Tensor]) -> Tensor:
            return (grad if scale is None else grad * scale).to(like.dtype)

        def add_scalars(outputs: list, grads: list, terms: Sequence[Optional[Tensor]], scale: Optional[Tensor]):
            # Scalar loss terms enter a player's backward with an upstream of 1 (its loss scale under
            # fp16); a lazy penalty's off steps give a constant 0, which has no graph.
            for term in terms:
                if term is not None and term.requires_grad:
                    outputs.append(term)
                    grads.append(up(torch.ones_like(term), term, scale))

        outputs, grads = [v_r, v_f], [up(ml.d_real_grad, v_r, sd), up(ml.d_fake_grad, v_f, sd)]
        add_scalars(outputs, grads, (penalty, d_extra), sd)
        # D's gradient first, keeping the graph: G's backward then runs through the same D forward.
        torch.autograd.backward(outputs, grads, inputs=self._d_params, retain_graph=True)
        outputs, grads = ([], []) if pooled else ([v_g], [up(ml.g_fake_grad, v_g, sg)])
        if ml.g_real_grad is not None:  # BiGAN: the real pairs depend on E
            outputs.append(v_r)
            grads.append(up(ml.g_real_grad, v_r, sg))
        add_scalars(outputs, grads, (g_adv, g_extra), sg)
        torch.autograd.backward(outputs, grads, inputs=self._g_params)
        self._update(self.d, ml.d_loss, penalty, d_extra)
        g_loss = ml.g_loss if g_adv is None else g_adv.detach()
        self._update(self.g, g_loss, g_extra)
        self._after_d_step(v_r)
        self.g.update_average()
        stats = self._d_stats(ml.d_loss, penalty, parts, v_r, v_f)
        stats["g_loss"] = g_loss
        stats.update(g_parts)
        return stats

    def _step(self, batches: list[tuple[Tensor, Optional[Tensor]]]) -> dict[str, Tensor]:
        stats: dict[str, Tensor] = {}
        for phase, (b, y) in self.schedule.phases(batches):
            if phase == "d":
                stats = self.d_step(b, y)
            elif phase == "dg":
                stats = self.dg_step(b, y)
            else:
                stats.update(self.g_step(b if self._g_needs_real else None, batch_size=b.shape[0], labels=y))
        return stats

    def step(self, real: Union[Tensor, Sequence[Tensor]],
             labels: Union[None, Tensor, Sequence[Tensor]] = None) -> dict[str, Tensor]:
        """One training iteration: ``n_critic`` D steps, then one G step (fused into the last D step
        with ``fused=True``; one CUDA graph replay with ``capture=True``). ``real`` holds
        ``n_critic`` batches: a tensor of ``n_critic * m`` samples, split in order, or a sequence of
        ``n_critic`` tensors; ``labels`` (a conditional GAN's) likewise. Returns the statistics of
        the last D step and of the G step."""
        batches = self.schedule.split(real, labels, self._check_real, self._check_labels, self.num_classes is not None)
        if self.anneal is not None:
            self.anneal.apply(self.steps, (self.g_optimizer, self.d_optimizer), self.penalties)
        stats = self._captured_step(batches) if self.capture else self._step(batches)
        self.steps += 1
        return stats

    # -----------------------------------------------------------------------------------------
    # CUDA graphs
    # -----------------------------------------------------------------------------------------

    def _penalty_pattern(self) -> tuple:
        """Which penalties apply at each D step of the next iteration (one CUDA graph per pattern)."""
        return self.objective.pattern(self.n_critic)

    def _captured_step(self, batches: list[tuple[Tensor, Optional[Tensor]]]) -> dict[str, Tensor]:
        shape = tuple(tuple(b.shape) for b, _ in batches)
        if self._batch_shape is not None and shape != self._batch_shape:
            raise ValueError(f"capture=True replays one CUDA graph: every step needs batches of shape "
                             f"{self._batch_shape}, got {shape}")
        if self.steps < WARMUP_STEPS:  # eager, on a side stream, as graph capture requires
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                stats = self._step(batches)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return stats
        self._batch_shape = shape
        key = self._penalty_pattern()
        if key not in self._graphs:
            self._graphs[key] = self._capture(batches)
        graph, static_in, static_stats = self._graphs[key]
        for (s, s_y), (b, y) in zip(static_in, batches):
            s.copy_(b, non_blocking=True)
            if y is not None:
                s_y.copy_(y, non_blocking=True)
        graph.replay()
        for p in self.penalties:  # the graph ran the calls; the Python counters follow
            p.calls += self.n_critic
        return {k: v.clone() for k, v in static_stats.items()}

    def _capture(self, batches: list[tuple[Tensor, Optional[Tensor]]]) -> tuple:
        static_in = [(b.clone(), None if y is None else y.clone()) for b, y in batches]
        calls = [p.calls for p in self.penalties]
        graph = torch.cuda.CUDAGraph()
        self.d.zero_grad()
        self.g.zero_grad()
        self._capturing = True
        try:
            with torch.cuda.graph(graph):
                static_stats = self._step(static_in)
        finally:
            self._capturing = False
            for p, c in zip(self.penalties, calls):  # capture records the calls without running them
                p.calls = c
        return graph, static_in, static_stats

    # -----------------------------------------------------------------------------------------
    # Sampling, checkpoints
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, *, labels: Union[None, int, Tensor] = None, ema: bool = True,
               generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` samples from G in eval mode (from the EMA generator when there is one and ``ema``),
        drawn with ``generator`` (default: a fresh noise draw from the global generator). A
        conditional GAN's ``labels``: a class (every sample of it), a tensor of ``n`` classes, or
        None (classes drawn uniformly, after the noise)."""
        z = self.prior(n, self.device, generator)
        if self.num_classes is not None:
            if labels is None:
                labels = self._random_labels(n, generator)
            elif isinstance(labels, int) and not isinstance(labels, bool):
                labels = torch.full((n,), labels, dtype=torch.int64, device=self.device)
        return self.generate(z, labels=labels, ema=ema)

    @torch.no_grad()
    def generate(self, z: Tensor, *, labels: Optional[Tensor] = None, ema: bool = True) -> Tensor:
        """G(z) in eval mode (the EMA generator when there is one and ``ema``) at the noise ``z``
        (and the classes ``labels`` of a conditional GAN), as float32."""
        if not isinstance(z, Tensor):
            raise TypeError(f"z must be a tensor of noise, got {type(z).__name__}")
        if z.device != self.device:
            raise ValueError(f"z is on {z.device} and the models on {self.device}")
        if isinstance(labels, int) and not isinstance(labels, bool):
            labels = torch.full((z.shape[0],), labels, dtype=torch.int64, device=self.device)
        labels = self._check_labels(labels, z.shape[0])
        if labels is not None and labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < self.num_classes):
            raise ValueError(f"labels must be classes 0..{self.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        player = self._player(ema)
        with _eval_mode(player), self._autocast():
            out = self._generate(player, self._in_g_dtype(z), labels)
        return out.float()

    @torch.no_grad()
    def recompute_ema_batch_norm(self, batches: int = 200, batch_size: int = 64, *, seed: int = 0) -> int:
        """Re-estimates the EMA generator's batch-norm statistics for its own weights
        (:meth:`pygan.EMA.recompute_batch_norm`; every EMA update copies the live generator's, which
        describe other activations) over ``batches`` batches of ``batch_size`` noise draws, with
        uniform classes in a conditional GAN, from a generator seeded with ``seed``: the global
        random state and training are untouched. :meth:`sample` and :meth:`generate` use them until
        the next training step. Returns the number of layers re-estimated (0 for a generator without
        batch norm)."""
        if self.ema is None:
            raise ValueError("recompute_ema_batch_norm: this GAN has no EMA generator (it was built with ema=None)")
        batches = positive_int("batches", batches)
        if positive_int("batch_size", batch_size) < 2:
            raise ValueError(f"batch_size must be at least 2 (a batch's statistics need two samples), got {batch_size}")
        gen = torch.Generator(device=self.device).manual_seed(int(seed))

        def draws():
            for _ in range(batches):
                z = self._in_g_dtype(self.prior(batch_size, self.device, gen))
                yield z, self._random_labels(batch_size, gen)

        with self._autocast():
            return self.ema.recompute_batch_norm(draws(), lambda player, zy: self._generate(player, *zy))

    def _player(self, ema: bool) -> nn.Module:
        """The generator player to sample from: its EMA copy when there is one and ``ema``."""
        return self.ema.module if (ema and self.ema is not None) else self._g_player

    def state_dict(self) -> dict[str, Any]:
        """Everything that training changes: weights, optimizer and scaler states, the penalty's
        call counter, the EMA, the step count and every random state."""
        state = {"format": CHECKPOINT_FORMAT, "steps": self.steps, "seed": self.seed,
                 **self.g.state_dict("g"), **self.d.state_dict("d"),
                 "rng": self.rng.get_state(), "global_rng": _ckpt.rng_state()}
        if self.penalties:
            state["penalties"] = [p.state_dict() for p in self.penalties]
        for name, part in self._stateful().items():
            if part is not None:
                state[name] = part.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], *, restore_rng: bool = True) -> None:
        """Restores a :meth:`state_dict`: all of it, or nothing (a state that does not fit this GAN
        raises and leaves the GAN as it was). ``restore_rng`` also sets the process's global random
        states (torch, CUDA, Python, NumPy) to the saved ones, as exact resumption needs; the GAN's
        own noise generator is always restored."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not a pygan GAN state of format {CHECKPOINT_FORMAT} (found {found!r})")
        missing = [k for k in ("rng", "steps", "seed") if k not in state]
        missing += self.g.check_state(state, "g") + self.d.check_state(state, "d")
        if missing:
            raise ValueError(f"the GAN state does not fit this GAN: {', '.join(missing)}; build it with the "
                             "same options")
        for name, module in self._stateful().items():
            if (name in state) != (module is not None):
                raise ValueError(f"checkpoint {'has' if name in state else 'lacks'} {name} state, this GAN "
                                 f"{'has none' if module is None else 'has one'}: build it with the same options")
        saved = len(_penalty_states(state))
        if saved != len(self.penalties):
            raise ValueError(f"checkpoint has the state of {saved} penalties, this GAN has {len(self.penalties)}: "
                             "build it with the same options")
        backup = copy.deepcopy(self.state_dict())
        try:
            self._load_state(state, restore_rng)
        except BaseException:
            self._load_state(backup, restore_rng=False)
            raise

    def _load_state(self, state: dict[str, Any], restore_rng: bool) -> None:
        self.g.load_state_dict(state, "g")
        self.d.load_state_dict(state, "d")
        for name, module in self._stateful().items():
            if module is not None:
                module.load_state_dict(state[name])
        for p, p_state in zip(self.penalties, _penalty_states(state)):
            p.load_state_dict(p_state)
        self.rng.set_state(state["rng"].cpu())
        if restore_rng:
            _ckpt.set_rng_state(state["global_rng"])
        self.steps, self.seed = int(state["steps"]), int(state["seed"])
        self._graphs.clear()

    def _stateful(self) -> dict[str, Any]:
        """The optional parts whose state a checkpoint keeps under their names (None when absent)."""
        return {"ema": self.ema, "augment": self.augment if isinstance(self.augment, nn.Module) else None}

    def _modules(self) -> dict[str, nn.Module]:
        """The networks, by their constructor argument names (what :meth:`load` rebuilds from)."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _config(self) -> dict[str, Any]:
        """The constructor's options as plain data (what :meth:`load` rebuilds the GAN from)."""
        return {"class": type(self).__name__, "loss": self.loss, "loss_params": self.loss_params, "n_critic": self.n_critic,
                "fused": self.fused, "capture": self.capture, "amp": self.amp, "saturating": self.saturating,
                "clip": self.clip, "backend": self.backend,
                "penalties": [{"kind": p.kind, "weight": p.weight, "center": p.center, "lazy": p.lazy,
                               "spread": p.spread, "target": p.target} for p in self.penalties],
                "ema": None if self.ema is None else {"decay": self.ema.decay, "rampup": self.ema.rampup},
                "prior": _prior_spec(self.prior), "augment": _augment_spec(self.augment),
                "num_classes": self.num_classes,
                "anneal": None if self.anneal is None else dataclasses.asdict(self.anneal),
                "terms": _ckpt.pack(list(self.objective.terms)) if self.objective.terms else None,
                "optimizers": {n: _optimizer_spec(o) for n, o in
                               (("g_optimizer", self.g_optimizer), ("d_optimizer", self.d_optimizer))}}

    @classmethod
    def _options_from_config(cls, cfg: dict) -> dict[str, Any]:
        """A subclass's own constructor options from its :meth:`_config` (none for a GAN)."""
        return {}

    def save(self, path: Union[str, os.PathLike], **extra: Any) -> Path:
        """Writes a checkpoint atomically (temporary file + rename); :meth:`load` resumes from it
        exactly. ``extra`` items and those of the ``extra`` attribute (plain data: numbers, strings,
        tensors, lists, dicts) are stored beside, e.g. the data set's name. pygan's own networks are
        stored as their constructor arguments; other networks, a custom prior or optimizer class as
        pickled blobs that :meth:`load` opens only for a trusted file (or when passed back)."""
        state = self.state_dict()
        state["config"] = self._config()
        state["modules"] = {name: _ckpt.module_spec(m) for name, m in self._modules().items()}
        state["extra"] = {**self.extra, **extra}
        return _ckpt.atomic_save(state, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, map_location=None, trusted: bool = False,
             resume: bool = False, **overrides: Any) -> "GAN":
        """A GAN rebuilt from a checkpoint of :meth:`save` -- networks, optimizers, options and every
        training state -- that continues exactly where the saved one stopped. ``GAN.load`` of a
        :class:`pygan.BiGAN` checkpoint returns a BiGAN.

        The file is read as plain data (``torch.load(weights_only=True)``), so loading runs no code
        from it. Parts that only pickle could store -- a network that is not one of
        :mod:`pygan.models`, a custom prior, an optimizer class outside ``torch.optim`` -- must be
        passed as ``overrides`` (``generator=``, ``discriminator=``, ``prior=``, ``g_optimizer=``,
        ...; a passed network gets the checkpoint's weights), or unpickled with ``trusted=True``
        for a file you trust. Any other constructor argument may be overridden too.

        ``resume=True`` also restores the process's global random states (torch, CUDA, Python,
        NumPy), for training that continues bit for bit; a plain load (to sample, to evaluate)
        leaves them alone."""
        state = _ckpt.load(path, map_location, format=CHECKPOINT_FORMAT)
        try:
            cfg, specs = state["config"], state["modules"]
            saved = cfg.get("class", "GAN")
        except (KeyError, AttributeError, TypeError) as e:
            raise _ckpt.NotACheckpoint(f"{path} is not a pygan GAN checkpoint (no {e})") from None
        if saved != cls.__name__:
            classes = {c.__name__: c for c in _subclasses(GAN)}
            if cls is not GAN or saved not in classes:
                raise ValueError(f"{path} holds a {saved} checkpoint; load it with {saved}.load")
            cls = classes[saved]
        with torch.random.fork_rng(devices=[]):  # building the networks draws their (overwritten) initial weights
            modules = {name: overrides.pop(name) if name in overrides else
                       _ckpt.build_module(spec, name, path, trusted, map_location) for name, spec in specs.items()}
        # Checkpoints before penalty lists kept one penalty (or None) under "penalty".
        pens = cfg["penalties"] if "penalties" in cfg else [p for p in [cfg.get("penalty")] if p is not None]
        kwargs = dict(loss=cfg["loss"], n_critic=cfg["n_critic"], fused=cfg["fused"], capture=cfg["capture"],
                      amp=cfg["amp"], saturating=cfg["saturating"], clip=cfg["clip"], backend=cfg["backend"],
                      penalty=[GradientPenalty(backend=cfg["backend"], **p) for p in pens] or None,
                      num_classes=cfg.get("num_classes"),
                      anneal=None if cfg.get("anneal") is None else Anneal(**cfg["anneal"]),
                      ema=None if cfg["ema"] is None else cfg["ema"]["decay"], seed=state["seed"], **cfg["loss_params"])
        if "prior" not in overrides:
            kwargs["prior"] = _prior_from_spec(cfg["prior"], path, trusted)
        if "augment" not in overrides:
            kwargs["augment"] = _augment_from_spec(cfg.get("augment"), path, trusted)
        if "terms" not in overrides and cfg.get("terms") is not None:
            kwargs["terms"] = _ckpt.unpack(cfg["terms"], "terms", path, trusted)
        for name, spec in cfg["optimizers"].items():
            if name not in overrides:
                kwargs[name] = _optimizer_from_spec(spec, name, path, trusted)
        kwargs.update(cls._options_from_config(cfg))
        kwargs.update(overrides)
        gan = cls(**modules, **kwargs)
        if gan.ema is not None and cfg["ema"] is not None and not isinstance(overrides.get("ema"), EMA):
            gan.ema.rampup = cfg["ema"]["rampup"]
        gan.load_state_dict(state, restore_rng=resume)
        gan.extra = dict(state.get("extra", {}))
        return gan

    # -----------------------------------------------------------------------------------------
    # The training loop
    # -----------------------------------------------------------------------------------------

    def _annealed(self) -> dict[str, float]:
        """What an :class:`Anneal` has set for the last step, for the log: each player's learning
        rate (its first parameter group's) and each penalty's weight in effect (weight * scale)."""
        out: dict[str, float] = {}
        if self.anneal.lr is not None:
            out["g_lr"] = float(self.g_optimizer.param_groups[0]["lr"])
            out["d_lr"] = float(self.d_optimizer.param_groups[0]["lr"])
        if self.anneal.penalty_weight is not None:
            out.update({f"{p.name}_weight": float(p.weight * p.scale) for p in self.penalties})
        return out

    def fit(self, data: Any, steps: int, *, batch_size: int = 64, out: Union[None, str, os.PathLike] = None,
            log_every: int = 100, sample_every: Optional[int] = None, checkpoint_every: Optional[int] = None,
            resume: bool = False, progress: bool = True,
            on_sample: Optional[Callable[["GAN", int, Path], None]] = None,
            nonfinite: str = "raise") -> list[dict]:
        """Trains until ``self.steps == steps``: a batch of ``batch_size * n_critic`` real samples per
        step from ``data`` (anything :func:`pygan.data.as_sampler` takes, NumPy arrays and nested
        lists of numbers included; drawn with the GAN's own generator, so the run resumes exactly).

        With ``out``: writes a JSON line of mean statistics and steps/s every ``log_every`` steps to
        ``out/log.jsonl`` (with ``anneal``, also the learning rates ``g_lr``, ``d_lr`` and penalty
        weights such as ``r1_weight`` in effect), calls ``on_sample(gan, step, out)`` every
        ``sample_every`` steps (to draw pictures), and writes ``out/checkpoint.pt`` atomically every
        ``checkpoint_every`` steps and at the end; ``resume=True`` first loads ``out/checkpoint.pt``
        if it exists. The log keeps the records of steps up to the GAN's step when training starts
        (none for a fresh GAN; after a crash, those up to the checkpoint), so every step is logged
        once. Shows a progress line on
        stderr. Returns the logged records.

        **Divergence guard.** Every logged record and every checkpoint is checked: a non-finite
        statistic or weight is never written to a checkpoint (the last good one stays).
        ``nonfinite="raise"`` (default) then raises :class:`TrainingDiverged` naming the steps,
        ``"stop"`` ends training there with a warning and returns the records, and ``"skip"``
        checks every step's losses before the optimizers move (one host sync per step) and skips
        the update of a player whose loss is not finite (``skipped_steps`` counts them).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        positive_int("batch_size", batch_size)
        positive_int("log_every", log_every)
        for name, every in (("sample_every", sample_every), ("checkpoint_every", checkpoint_every)):
            if every is not None:
                positive_int(name, every)
        if nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {', '.join(map(repr, NONFINITE))}, got {nonfinite!r}")
        if nonfinite == "skip" and self.capture:
            raise ValueError("nonfinite='skip' checks each step on the host, which a captured CUDA graph cannot; "
                             "use 'raise' or 'stop' with capture=True")
        sampler: Sampler = as_sampler(data, self.device)
        if self.num_classes is not None:
            if sampler.num_classes is None:
                sampler.sample_labeled(1)  # the sampler's own error: it has no labels
            if sampler.num_classes > self.num_classes:
                raise ValueError(f"the data has labels 0..{sampler.num_classes - 1} and the GAN num_classes="
                                 f"{self.num_classes}: build it for {sampler.num_classes} classes")
        out_dir = Path(out) if out is not None else None
        ckpt = out_dir / "checkpoint.pt" if out_dir is not None else None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        if resume and ckpt is not None and ckpt.exists():
            self.load_state_dict(_ckpt.load(ckpt, self.device, format=CHECKPOINT_FORMAT))
        log = _open_log(out_dir / "log.jsonl", self.steps) if out_dir is not None and _is_main() \
            and self.steps < steps else None
        bar = _Progress(steps, self.steps, enabled=progress and _is_main())
        history: list[dict] = []
        sums: dict[str, Tensor] = {}
        count, ran, t0, start, checked = 0, 0, time.perf_counter(), self.steps, self.steps
        self._skip_nonfinite = nonfinite == "skip"

        def diverged(what: str) -> bool:
            where = f"step {checked + 1}" if self.steps == checked + 1 else f"steps {checked + 1}-{self.steps}"
            kept = f"; the last good checkpoint ({ckpt}) is kept" if ckpt is not None and ckpt.exists() else ""
            msg = (f"training diverged: {what} at {where}{kept}. Lower the learning rate, add a gradient "
                   "penalty, or fit(nonfinite='skip') to skip such updates")
            if nonfinite == "stop":
                print(f"pygan: {msg}; stopping", file=sys.stderr)
                return True
            raise TrainingDiverged(msg)

        try:
            while self.steps < steps:
                if self.num_classes is None:
                    stats = self.step(sampler.sample(batch_size * self.n_critic, self.rng))
                else:
                    stats = self.step(*sampler.sample_labeled(batch_size * self.n_critic, self.rng))
                done, ran = self.steps, ran + 1
                if not (self._skip_nonfinite and not _all_finite(stats.values())):
                    for k, v in stats.items():  # (a skipped step is left out of the means)
                        sums[k] = sums[k] + v.float() if k in sums else v.float().clone()
                    count += 1
                due_ckpt = ckpt is not None and _is_main() and (
                    done == steps or (checkpoint_every and done % checkpoint_every == 0))
                if done % log_every == 0 or done == steps or due_ckpt:
                    # One host sync: the interval's means, which a non-finite step poisons.
                    means = {k: float(v) / max(count, 1) for k, v in sums.items()}
                    bad = [k for k, v in means.items() if not math.isfinite(v)]
                    if bad and diverged(f"{', '.join(bad)} not finite"):
                        break
                    if due_ckpt and not _finite_weights(self):
                        if diverged("the weights are not finite"):
                            break
                    checked = done
                if done % log_every == 0 or done == steps:
                    elapsed = time.perf_counter() - t0
                    record = {"step": done, **means, "steps_per_s": ran / elapsed if elapsed > 0 else float("nan")}
                    if self.skipped_steps:
                        record["skipped_steps"] = self.skipped_steps
                    if self.anneal is not None:
                        record.update(self._annealed())
                    history.append(record)
                    if log is not None:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    bar.update(done, record)
                    sums, count, ran, t0 = {}, 0, 0, time.perf_counter()
                if on_sample is not None and sample_every and (done % sample_every == 0 or done == steps):
                    on_sample(self, done, out_dir)
                if due_ckpt and self.steps > start:
                    self.save(ckpt)
        finally:
            self._skip_nonfinite = False
            bar.close()
            if log is not None:
                log.close()
        return history


def _global_hooks() -> tuple:
    """torch's module hooks registered for every module (register_module_forward_hook & co.)."""
    m = _nn_module
    return (m._global_forward_hooks, m._global_forward_pre_hooks, m._global_backward_hooks,
            m._global_backward_pre_hooks)


def _penalty_states(state: dict) -> list:
    """The penalties' states in a GAN state (one under "penalty" in checkpoints before penalty lists)."""
    if "penalties" in state:
        return list(state["penalties"])
    return [state["penalty"]] if "penalty" in state else []


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weight (see :meth:`GAN.fit`'s ``nonfinite``)."""


NONFINITE = ("raise", "stop", "skip")


def _labelled(net: Callable[..., Tensor], x: Tensor, labels: Optional[Tensor]) -> Tensor:
    """``net(x)``, with the labels by keyword in a conditional GAN (``net(x, y=labels)``)."""
    return net(x) if labels is None else net(x, y=labels)


def _sum(*terms: Optional[Tensor]) -> Tensor:
    """The sum of the terms that are not None (the first one always is not)."""
    total = terms[0]
    for t in terms[1:]:
        if t is not None:
            total = total + t
    return total


def _all_finite(tensors: Any) -> bool:
    """Whether every element of the given tensors (None entries skipped) is finite: one host sync."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t is not None]
    return not flags or bool(torch.stack(flags).all())


def _finite_weights(gan: GAN) -> bool:
    """Whether every weight of both players (and of the EMA generator) is finite: one host sync."""
    return _all_finite([*gan.g.finite(), *gan.d.finite()])


def _open_log(path: Path, steps: int):
    """``path`` opened for appending, after dropping the records of steps after ``steps`` (a run that
    resumes from an earlier checkpoint, or a fresh run, logs those steps again)."""
    if path.exists():
        kept = []
        for line in path.read_text().splitlines():
            try:
                if line.strip() and json.loads(line)["step"] <= steps:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return open(path, "a")


def _prior_spec(prior: Optional[Callable]) -> Optional[dict]:
    """A prior as plain data: pygan's own by kind and shape, any other callable pickled (None: a
    translation engine's absent prior)."""
    if prior is None:
        return None
    if type(prior) in (Normal, Uniform):
        return {"kind": type(prior).__name__, "shape": list(prior.shape)}
    return _ckpt.pack(prior)


def _prior_from_spec(spec: Optional[dict], path, trusted: bool) -> Optional[Callable]:
    if spec is None:
        return None
    if "pickle" in spec:
        return _ckpt.unpack(spec, "prior", path, trusted)
    return {"Normal": Normal, "Uniform": Uniform}[spec["kind"]](*spec["shape"])


def _augment_spec(augment: Optional[Callable]) -> Optional[dict]:
    """An augmentation as plain data: pygan's own by their options, any other callable pickled."""
    if augment is None:
        return None
    if type(augment) is DiffAugment:
        return {"kind": "DiffAugment", "policy": list(augment.policy), "p": augment.p,
                "translation": augment.translation, "cutout": augment.cutout}
    if type(augment) is AdaptiveAugment and type(augment.augment) is DiffAugment:
        return {"kind": "AdaptiveAugment", "augment": _augment_spec(augment.augment), "target": augment.target,
                "interval": augment.interval, "speed": augment.speed}
    return _ckpt.pack(augment)


def _augment_from_spec(spec: Optional[dict], path, trusted: bool) -> Optional[Callable]:
    if spec is None:
        return None
    if "pickle" in spec:
        return _ckpt.unpack(spec, "augment", path, trusted)
    options = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "AdaptiveAugment":
        options["augment"] = _augment_from_spec(options["augment"], path, trusted)
        return AdaptiveAugment(**options)
    return DiffAugment(**options)


def _optimizer_spec(opt: torch.optim.Optimizer) -> dict:
    """An optimizer's class and defaults: a torch.optim class by name, any other class pickled."""
    cls = type(opt)
    if getattr(torch.optim, cls.__name__, None) is cls:
        return {"torch.optim": cls.__name__, "defaults": dict(opt.defaults)}
    return _ckpt.pack((cls, dict(opt.defaults)))


def _optimizer_from_spec(spec: dict, name: str, path, trusted: bool) -> Callable:
    if "pickle" in spec:
        opt_cls, defaults = _ckpt.unpack(spec, name, path, trusted)
    else:
        opt_cls, defaults = getattr(torch.optim, spec["torch.optim"]), spec["defaults"]
    return lambda params: opt_cls(params, **defaults)


def _subclasses(cls: type) -> list[type]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class _Progress:
    """One progress line on stderr: rewritten in place on a terminal, a line per update otherwise."""

    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        self.total, self.start, self.enabled = total, done, enabled
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, done: int, record: dict) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(width * done / max(self.total, 1))
        losses = "  ".join(f"{k} {record[k]:.4g}" for k in ("d_loss", "g_loss") if k in record)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  {rate:.1f} steps/s  "
                f"eta {eta:.0f}s  {losses}")
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
