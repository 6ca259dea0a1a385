r"""Differentiable augmentation for data-efficient GANs.

A discriminator trained on few images memorizes them. Augmenting only the real images would teach G
to produce augmented images; augmenting both sides, in both players' steps, with operations that
gradients pass through, does not (Zhao et al. 2020, "Differentiable Augmentation"; Karras et al.
2020, "ADA"). :class:`pygan.GAN` takes the augmentation as ``augment=``: D then sees
:math:`D(T(x))` for real and generated batches alike, and a penalty on the real or fake batch (R1,
R2) takes its gradient with respect to the batch *before* :math:`T`, through the very forward the
loss used (as StyleGAN2-ADA and R3GAN do), so both see the same random draws.

:class:`DiffAugment` has the three operations of Zhao et al., batched on the device, one random
draw per sample:

============  ===========================================================================
``color``     brightness :math:`x + (u - 1/2)`, saturation :math:`m_c + 2u (x - m_c)` (m_c: the
              per-pixel mean over channels), contrast :math:`m + (u + 1/2)(x - m)` (m: the
              image mean); :math:`u \sim U[0, 1)` per sample and per operation
``translation``  an integer shift of up to ``translation`` of the height and width each way,
              the uncovered border filled with zeros
``cutout``    a zeroed square of side ``cutout`` of the image, centered anywhere in it
============  ===========================================================================

With ``p < 1`` each operation applies to each sample with probability ``p``.
:class:`AdaptiveAugment` sets ``p`` by ADA's overfitting heuristic :math:`r_t = E[\mathrm{sign}(D(x))]`
on real data: every ``interval`` D steps, ``p`` moves by ``sign(r_t - target)`` times the images seen
over ``speed`` (the images it takes ``p`` to go from 0 to 1), on the device, without a host sync.

Random numbers come from torch's generator of the batch's device (checkpoints save its state; a
resumed run draws the same augmentations).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ._validate import positive_int

__all__ = ["OPERATIONS", "AdaptiveAugment", "DiffAugment", "parse_policy"]

OPERATIONS = ("color", "translation", "cutout")


def parse_policy(policy: Union[str, Sequence[str]]) -> tuple[str, ...]:
    """The operations of ``policy`` (a sequence of :data:`OPERATIONS` or a comma-separated string),
    or a ValueError."""
    ops = [o.strip() for o in policy.split(",")] if isinstance(policy, str) else list(policy)
    if not ops or any(o not in OPERATIONS for o in ops):
        raise ValueError(f"policy must name operations of {', '.join(OPERATIONS)}, got {policy!r}")
    return tuple(ops)


def _fraction(name: str, value: float, *, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (high_open and value == 1.0):
        raise ValueError(f"{name} must lie in [0, 1{')' if high_open else ']'}, got {value}")
    return value


def _uniform(x: Tensor, *shape: int) -> Tensor:
    """U[0, 1) draws of ``shape``, in float32 on x's device, then x's dtype."""
    return torch.rand(shape, device=x.device).to(x.dtype)


def _per_sample_mask(x: Tensor, p: Union[float, Tensor]) -> Optional[Tensor]:
    """1 where a sample is augmented (probability p), shaped (B, 1, 1, 1); None when p is the float 1."""
    if isinstance(p, float) and p >= 1.0:
        return None
    return (torch.rand(x.shape[0], device=x.device) < p).to(x.dtype).view(-1, 1, 1, 1)


def _blend(x: Tensor, y: Tensor, mask: Optional[Tensor]) -> Tensor:
    return y if mask is None else x + mask * (y - x)


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast, one draw per sample for each."""
    b = x.shape[0]
    x = x + (_uniform(x, b, 1, 1, 1) - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = mean_c + (x - mean_c) * (2 * _uniform(x, b, 1, 1, 1))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * (_uniform(x, b, 1, 1, 1) + 0.5)


def _shifted_index(size: int, shift: Tensor) -> tuple[Tensor, Tensor]:
    """For each sample's integer shift (B,), the source index of every output position (B, size),
    clamped into range, and whether that source lies inside the image."""
    src = torch.arange(size, device=shift.device)[None, :] - shift[:, None]
    inside = (src >= 0) & (src < size)
    return src.clamp(0, size - 1), inside


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shifts each sample by integers in [-ratio * H, ratio * H] x [-ratio * W, ratio * W],
    filling the border it uncovers with zeros (a gather: gradients flow to the source pixels)."""
    b, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b,), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b,), device=x.device)
    rows, row_in = _shifted_index(h, dy)
    cols, col_in = _shifted_index(w, dx)
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    inside = (row_in[:, :, None] & col_in[:, None, :]).to(x.dtype)[:, None]
    return out * inside


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zeroes a square of ratio * H by ratio * W pixels per sample, centered anywhere in the image
    (the part outside the image is cut off)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h, (b,), device=x.device)
    cx = torch.randint(0, w, (b,), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - ch // 2)
    xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cw // 2)
    inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]
    return x * (~inside).to(x.dtype)[:, None]


class DiffAugment(nn.Module):
    """Differentiable augmentation of image batches (N, C, H, W): the operations of ``policy`` in
    order (see the module docs), each applied to each sample with probability ``p``.

    Args:
        policy: operations of :data:`OPERATIONS`, a sequence or a comma-separated string.
        p: the probability per operation and sample (1: always, DiffAugment's setting).
        translation: the largest shift, a fraction of the height and width.
        cutout: the side of the cut-out square, a fraction of the height and width.
    """

    def __init__(self, policy: Union[str, Sequence[str]] = OPERATIONS, *, p: float = 1.0,
                 translation: float = 0.125, cutout: float = 0.5) -> None:
        super().__init__()
        self.policy = parse_policy(policy)
        self.p = _fraction("p", p)
        self.translation = _fraction("translation", translation)
        self.cutout = _fraction("cutout", cutout)

    def forward(self, x: Tensor, p: Union[None, float, Tensor] = None) -> Tensor:
        """The augmented batch; ``p`` (a float or a device scalar) overrides the module's."""
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"DiffAugment augments floating-point image batches of shape (N, C, H, W), got "
                             f"{shape}: use it with image data (a vector data set has nothing to translate)")
        p = self.p if p is None else p
        for op in self.policy:
            mask = _per_sample_mask(x, p)
            if op == "color":
                y = color(x)
            elif op == "translation":
                y = translation(x, self.translation)
            else:
                y = cutout(x, self.cutout)
            x = _blend(x, y, mask)
        return x

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}, p={self.p:g}, translation={self.translation:g}, cutout={self.cutout:g}"


class AdaptiveAugment(nn.Module):
    """:class:`DiffAugment` whose probability ``p`` follows ADA's heuristic (module docs).

    :class:`pygan.GAN` calls :meth:`observe` with D's logits on the real batch after each D step.
    ``p`` is a device tensor (a buffer: it moves with ``.to()`` and is saved in ``state_dict``, with
    the running sums and the step count).

    Args:
        augment: the pipeline whose ``p`` is adapted (default ``DiffAugment()``).
        target: the wanted :math:`r_t`, ADA's 0.6.
        interval: D steps between adjustments.
        speed: images over which ``p`` can move from 0 to 1 (ADA: 500k).
        p: the initial probability.
    """

    def __init__(self, augment: Optional[DiffAugment] = None, *, target: float = 0.6, interval: int = 4,
                 speed: int = 500_000, p: float = 0.0) -> None:
        super().__init__()
        if augment is not None and not isinstance(augment, DiffAugment):
            raise TypeError(f"augment must be a pygan.augment.DiffAugment, got {type(augment).__name__}")
        self.augment = augment if augment is not None else DiffAugment()
        self.target = _fraction("target", target, high_open=True)
        self.interval = positive_int("interval", interval)
        self.speed = positive_int("speed", speed)
        self.register_buffer("p", torch.tensor(_fraction("p", p)))
        self.register_buffer("sign_sum", torch.zeros(()))
        self.register_buffer("seen", torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        return self.augment(x, self.p)

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Adds a D step's logits on real data to :math:`r_t`; every ``interval`` steps moves ``p``.
        Everything stays on the device (no host sync, and a CUDA graph can capture it)."""
        v = real_logits.detach().float().reshape(real_logits.shape[0], -1).mean(1)  # one value per image
        self.sign_sum += torch.sign(v).sum()
        self.seen += v.numel()
        self.steps += 1
        due = self.steps % self.interval == 0
        r_t = self.sign_sum / self.seen
        moved = (self.p + torch.sign(r_t - self.target) * self.seen / self.speed).clamp(0.0, 1.0)
        self.p.copy_(torch.where(due, moved, self.p))
        keep = (~due).float()
        self.sign_sum *= keep
        self.seen *= keep

    @property
    def r_t(self) -> Tensor:
        """The heuristic over the D steps since the last adjustment (NaN right after one)."""
        return self.sign_sum / self.seen

    def extra_repr(self) -> str:
        return f"target={self.target:g}, interval={self.interval}, speed={self.speed}"
