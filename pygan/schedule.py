"""When each player steps within one training iteration.

:class:`Schedule` turns ``n_critic`` and ``fused`` into the phases of a step: ``n_critic`` D steps,
each on its own batch, then one G step; with ``fused`` the last D step and the G step are one
simultaneous update (``"dg"``). Lazy penalties keep their own phase (:meth:`pygan.objective.Objective.pattern`),
which a captured CUDA graph is keyed by.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from torch import Tensor

from ._validate import positive_int

__all__ = ["Schedule"]

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
