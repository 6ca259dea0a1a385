r"""Exponential moving average (EMA) of a generator's weights, by a fused multi-tensor kernel.

After each generator step,

.. math::
    \theta_{ema} \leftarrow \theta_{ema} + (1 - \beta_t)(\theta - \theta_{ema}), \qquad
    \beta_t = \min\Big(\beta, \frac{1 + t}{10 + t}\Big)

with t the number of updates so far (the ramp-up keeps the average from dwelling on the random
initial weights; ``rampup=False`` uses :math:`\beta` from the start). Buffers (batch-norm
statistics) are copied, not averaged. The whole update is device work -- the counter, the weight and
one multi-tensor launch over every parameter -- so it needs no host sync and a CUDA graph can capture
it. Samples from the averaged generator are usually better than from the last iterate (Yazici et
al. 2019).
"""

from __future__ import annotations

import copy
import operator
from typing import Optional

import torch
from torch import nn

from ._ops import backend as _backend
from ._ops.multi_tensor import call_lerp_, step_ema_weight
from .penalties import _unwrap

__all__ = ["EMA"]


class EMA(nn.Module):
    """The moving average of ``model``'s weights; ``ema.module`` is the averaged copy (in eval mode,
    no gradients) and ``ema(x)`` runs it."""

    def __init__(self, model: nn.Module, decay: float = 0.999, *, rampup: bool = True,
                 backend: Optional[str] = None) -> None:
        super().__init__()
        decay = float(decay)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        model = _unwrap(model)
        params = list(model.parameters())
        for i, p in enumerate(params):
            if p.dtype not in _backend.FLOAT_DTYPES or not p.is_contiguous():
                raise ValueError(f"EMA: parameter {i} must be a contiguous floating-point tensor, got "
                                 f"{p.dtype}{'' if p.is_contiguous() else ' (not contiguous)'}")
        if len({p.device for p in params}) > 1:
            raise ValueError("EMA: the model's parameters must be on one device")
        self.decay, self.rampup, self.backend = decay, rampup, _backend.check_backend(backend)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        device = params[0].device if params else torch.device("cpu")
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.float64, device=device))
        self.register_buffer("weight", torch.zeros((), dtype=torch.float64, device=device))
        # (model, both trees' parameter and buffer dicts, the objects they held, then _pairs' three
        # lists); see _pairs
        self._trees: Optional[tuple] = None

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights (same architecture as at
        construction)."""
        # No no_grad() around it all (its context costs a tenth of a small model's update): the
        # kernel writes the copy's memory outside autograd, the counter and weight are buffers, and
        # only the buffer copies would be recorded.
        model = _unwrap(model)
        step_ema_weight(self.num_updates, self.weight, self.decay, self.rampup)
        dst, src, buffers = self._pairs(model)
        if dst:
            call_lerp_(dst, src, self.weight, self.backend)
        if buffers:
            with torch.no_grad():
                for b_ema, b in buffers:
                    b_ema.copy_(b)

    def _pairs(self, model: nn.Module) -> tuple[list, list, list]:
        """The averaged copy's parameters, the model's, and the pairs of buffers, in one order.

        The module trees are walked and checked once per model; later calls only confirm that both
        trees still hold the same parameter and buffer objects (one identity test each: rebuilding
        and checking the lists cost more than a small model's update). The kernels read each
        tensor's storage at the call, so ``.to()`` and ``load_state_dict``, which keep the objects,
        are seen; a replaced parameter or buffer (an assignment, or ``.to()`` moving buffers) makes
        the walk run again."""
        cache = self._trees
        if cache is not None and cache[0] is model and _same(_members(cache[1]), cache[2]) and all(
                q.dtype == p.dtype and q.shape == p.shape for q, p in zip(cache[3], cache[4])):
            # (the kernel takes the sizes and dtypes of the copy's tensors: a parameter whose data
            # was swapped for another shape or dtype in place, as .half() does, must not reach it)
            return cache[3], cache[4], cache[5]
        modules_ema, modules = list(self.module.modules()), list(model.modules())
        if len(modules_ema) != len(modules):
            raise ValueError("EMA.update: model's modules differ from the averaged copy's")
        dst, src, buffers = [], [], []
        for m_ema, m in zip(modules_ema, modules):
            pairs = [(m_ema._parameters.get(name), p) for name, p in m._parameters.items() if p is not None]
            if len(m_ema._parameters) != len(m._parameters) or any(
                    q is None or q.shape != p.shape or q.dtype != p.dtype for q, p in pairs):
                raise ValueError("EMA.update: model's parameters differ from the averaged copy's "
                                 "(number, shapes or dtypes)")
            dst += [q for q, _ in pairs]
            src += [p for _, p in pairs]
            for name, b in m._buffers.items():
                if b is not None and m_ema._buffers.get(name) is not None:
                    buffers.append((m_ema._buffers[name], b))
        slots = [d for m in modules_ema + modules for d in (m._parameters, m._buffers)]
        self._trees = (model, slots, _members(slots), dst, src, buffers)
        return dst, src, buffers

    def __getstate__(self):
        # Copies and pickles leave the walked trees behind: they reference the model, not the average.
        state = dict(self.__dict__)
        state["_trees"] = None
        return state

    def extra_repr(self) -> str:
        return f"decay={self.decay}, rampup={self.rampup}"


def _members(slots: list) -> list:
    """Every object the modules' parameter and buffer dicts ``slots`` hold (None where a slot is
    empty), in order."""
    return [t for d in slots for t in d.values()]


def _same(a: list, b: list) -> bool:
    """The same objects in the same order (``==`` would compare tensors' values)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))
