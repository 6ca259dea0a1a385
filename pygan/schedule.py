"""When each player steps within one training iteration, and how its hyperparameters move over training.

:class:`Schedule` turns ``n_critic`` and ``fused`` into the phases of a step: ``n_critic`` D steps,
each on its own batch, then one G step; with ``fused`` the last D step and the G step are one
simultaneous update (``"dg"``). Lazy penalties keep their own phase (:meth:`pygan.objective.Objective.pattern`),
which a captured CUDA graph is keyed by.

:class:`Anneal` moves the learning rates and the penalty weights along half a cosine over training,
from the values they were built with to given end values (R3GAN anneals both): a strong penalty
early keeps D smooth while G spreads over the modes, a weak one late lets D resolve them finely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ._validate import number, positive_int

__all__ = ["Anneal", "Schedule"]

Batch = tuple[Tensor, Optional[Tensor]]  # (samples, labels or None)


class Schedule:
    """``n_critic`` D steps per G step; ``fused`` makes the last D step and the G step one
    simultaneous update."""

    def __init__(self, n_critic: int = 1, fused: bool = False) -> None:
        self.n_critic = positive_int("n_critic", n_critic)
        self.fused = bool(fused)

    def phases(self, batches: Sequence[Batch]) -> list[tuple[str, Batch]]:
        """The step's updates in order: ``("d", batch)`` for each D step, then ``("g", last)`` or,
        fused, ``("dg", last)`` in place of the last D step and the G step."""
        if self.fused:
            return [("d", b) for b in batches[:-1]] + [("dg", batches[-1])]
        return [("d", b) for b in batches] + [("g", batches[-1])]

    def split(self, real: Union[Tensor, Sequence[Tensor]], labels: Union[None, Tensor, Sequence[Tensor]],
              check_real: Callable[..., Tensor], check_labels: Callable[..., Optional[Tensor]],
              conditional: bool) -> list[Batch]:
        """The ``n_critic`` (batch, labels) pairs of one step: ``real`` as one tensor of
        ``n_critic * m`` samples (split in order, ``labels`` with it) or a sequence of ``n_critic``
        tensors (and then a sequence of labels), each checked by the engine's ``check_*``."""
        n = self.n_critic
        if isinstance(real, Tensor):
            real = check_real(real)
            if real.shape[0] % n:
                raise ValueError(f"step(real): real has {real.shape[0]} samples, not a multiple of n_critic={n} "
                                 "(each D step takes its own batch of real.shape[0] / n_critic)")
            labels = check_labels(labels, real.shape[0])
            if n == 1:
                return [(real, labels)]
            return list(zip(real.chunk(n), labels.chunk(n) if labels is not None else [None] * n))
        batches = list(real)
        if len(batches) != n:
            raise ValueError(f"step(real): got {len(batches)} batches, need n_critic={n}")
        batches = [check_real(b, f"real[{i}]") for i, b in enumerate(batches)]
        if not conditional:
            check_labels(labels, 0)  # refuses labels
            return [(b, None) for b in batches]
        if labels is None or isinstance(labels, Tensor) or len(labels) != len(batches):
            raise ValueError(f"labels: with real as a list of {len(batches)} batches, pass the labels as a list "
                             "too, one tensor per batch")
        return [(b, check_labels(y, b.shape[0], f"labels[{i}]")) for i, (b, y) in enumerate(zip(batches, labels))]

    def __repr__(self) -> str:
        return f"Schedule(n_critic={self.n_critic}, fused={self.fused})"


@dataclass(frozen=True)
class Anneal:
    r"""Cosine annealing over the first ``steps`` training steps. At step :math:`t` a value that
    starts at :math:`v_0` and ends at :math:`v_1` is

    .. math:: v(t) = v_1 + (v_0 - v_1)\,\tfrac12\bigl(1 + \cos(\pi \min(t, T) / T)\bigr),
              \quad T = \text{steps},

    so it leaves :math:`v_0` with zero slope and stays at :math:`v_1` after step :math:`T`.

    Args:
        steps: the annealing horizon :math:`T` (usually the run's length).
        lr: the end learning rate of every parameter group of both optimizers (each starts from
            its own ``initial_lr``, the lr it had when the GAN was built); None keeps them.
        penalty_weight: the end weight of every gradient penalty (each starts from its own
            ``weight``); None keeps them.

    :class:`pygan.GAN` applies it before each step (``GAN(..., anneal=Anneal(20_000,
    penalty_weight=0.01))``) and checkpoints keep it, so a resumed run anneals on from its step.
    """

    steps: int
    lr: Optional[float] = None
    penalty_weight: Optional[float] = None

    def __post_init__(self) -> None:
        positive_int("Anneal steps", self.steps, "the annealing horizon")
        if self.lr is not None:
            object.__setattr__(self, "lr", number("Anneal lr", self.lr, positive=True))
        if self.penalty_weight is not None:
            object.__setattr__(self, "penalty_weight", number(
                "Anneal penalty_weight", self.penalty_weight, nonnegative=True, why="a penalty is added to the loss"))
        if self.lr is None and self.penalty_weight is None:
            raise ValueError("Anneal needs lr or penalty_weight (an end value to anneal to)")

    def progress(self, step: int) -> float:
        r"""The cosine factor :math:`\tfrac12(1 + \cos(\pi \min(t, T) / T))`: 1 at step 0, 0 from step T on."""
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))

    def value(self, start: float, end: float, step: int) -> float:
        """:math:`v(t)` from ``start`` to ``end``."""
        return end + (start - end) * self.progress(step)

    def prepare(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Records each parameter group's starting lr as ``initial_lr`` (where it has none yet, as
        torch's lr schedulers do); optimizer checkpoints keep it."""
        for opt in optimizers:
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])

    def apply(self, step: int, optimizers: Sequence[torch.optim.Optimizer], penalties: Sequence) -> None:
        """Sets the learning rates and penalty scales of training step ``step`` (counted from 0)."""
        if self.lr is not None:
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = self.value(group["initial_lr"], self.lr, step)
        if self.penalty_weight is not None:
            for p in penalties:  # nonzero weights (check_penalties)
                p.scale = self.value(p.weight, self.penalty_weight, step) / p.weight

    def check_penalties(self, penalties: Sequence) -> None:
        """A ValueError when ``penalty_weight`` has no penalty of nonzero weight to anneal."""
        if self.penalty_weight is None:
            return
        if not penalties:
            raise ValueError("anneal: Anneal(penalty_weight=...) anneals the gradient penalties, and this GAN has "
                             "none: pass penalty=, or leave penalty_weight out")
        zero = [p.name for p in penalties if p.weight == 0]
        if zero:
            raise ValueError(f"anneal: the penalty {', '.join(zero)} has weight 0, which cannot anneal to "
                             f"{self.penalty_weight:g}: give it its starting weight")
