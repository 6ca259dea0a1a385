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
import itertools
import operator
from typing import Any, Callable, Iterable, NamedTuple, Optional

import torch
from torch import nn

from ._ops import backend as _backend
from ._ops.multi_tensor import call_ema_update, dense, layout, pointers
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
            if p.dtype not in _backend.FLOAT_DTYPES or not dense(p):
                raise ValueError(f"EMA: parameter {i} must be a contiguous (or channels-last) floating-point "
                                 f"tensor, got {p.dtype}{'' if dense(p) else ' with strides ' + str(p.stride())}")
        if len({p.device for p in params}) > 1:
            raise ValueError("EMA: the model's parameters must be on one device")
        self.decay, self.rampup, self.backend = decay, rampup, _backend.check_backend(backend)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        device = params[0].device if params else torch.device("cpu")
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.float64, device=device))
        self.register_buffer("weight", torch.zeros((), dtype=torch.float64, device=device))
        self._trees: Optional[_Walk] = None  # see _pairs

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _apply(self, fn, recurse=True):
        # .to(dtype), .half(), .float() convert every floating-point buffer; the counter and the
        # weight stay float64 (the kernels read them so, and a float16 counter stops at 2,048) with
        # their exact values, and follow the conversion's device.
        kept = {name: self._buffers[name] for name in ("num_updates", "weight")}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new is not None and old is not None and new.dtype is not torch.float64:
                self._buffers[name] = old.to(new.device)
        return self

    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights (same architecture as at
        construction)."""
        # No no_grad() around it all (its context costs a tenth of a small model's update): the
        # kernel writes the copy's memory outside autograd, the counter and weight are buffers, and
        # only the buffer copies would be recorded.
        model = _unwrap(model)
        # The buffers from their dict: an nn.Module attribute lookup that reaches __getattr__ costs
        # more than a microsecond, a tenth of a small model's update.
        num_updates, weight = self._buffers["num_updates"], self._buffers["weight"]
        if num_updates.dtype is not torch.float64 or weight.dtype is not torch.float64:
            # (the kernels read and write them as float64)
            raise ValueError(f"EMA.update: the EMA's counter and weight must stay float64, found "
                             f"{num_updates.dtype} and {weight.dtype} (a .half() or .to(dtype) of the "
                             f"EMA converts them; convert ema.module instead)")
        dst, src, buffers, prepared = self._pairs(model)
        walk = self._trees
        table = call_ema_update(dst, src, num_updates, weight, self.decay, self.rampup, self.backend, prepared,
                                walk.table)
        if table is not walk.table:  # packed once per walk
            self._trees = walk._replace(table=table)
        if buffers[0]:
            with torch.no_grad():  # one call for every buffer (a copy_ each cost more than the kernel)
                torch._foreach_copy_(*buffers)

    @torch.no_grad()
    def recompute_batch_norm(self, inputs: Iterable[Any],
                             forward: Optional[Callable[[nn.Module, Any], Any]] = None) -> int:
        r"""Re-estimates the averaged copy's batch-norm statistics for its own weights.

        :meth:`update` copies the model's running statistics, which describe the *model's*
        activations; the average's weights make other activations, and in eval mode a layer
        normalizes by the statistics it holds. This runs the copy in train mode over ``inputs`` (each
        a batch: a tensor, a tuple of the copy's arguments, or what ``forward(copy, batch)`` takes)
        and sets every batch-norm layer's statistics to the plain average over the batches,
        :math:`\mu = \frac1B \sum_b \mu_b`, :math:`\sigma^2 = \frac1B \sum_b s_b^2` (the unbiased batch
        variances), as a momentum of None does; the layers' momenta and the copy's mode are restored.
        The next :meth:`update` copies the model's statistics again. Returns the number of layers
        re-estimated: a layer the forward does not reach (``forward`` may run part of the copy) keeps
        its statistics, as every layer does when the forward raises; 0, and nothing run, for a copy
        without batch norm."""
        norms = [m for m in self.module.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            return 0
        batches = iter(inputs)
        first = next(batches, None)
        if first is None:
            raise ValueError("EMA.recompute_batch_norm: inputs gave no batch")
        saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                 for m in norms]
        was_training, failed = self.module.training, True
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the batches
            self.module.train()
            for batch in itertools.chain([first], batches):
                if forward is not None:
                    forward(self.module, batch)
                else:
                    self.module(*batch) if isinstance(batch, tuple) else self.module(batch)
            failed = False
        finally:
            reached = 0
            for m, (momentum, mean, var, count) in zip(norms, saved):
                m.momentum = momentum
                if failed or not m.num_batches_tracked:  # (a layer the forward did not reach keeps its own)
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
                    m.num_batches_tracked.copy_(count)
                else:
                    reached += 1
            self.module.train(was_training)
        return reached

    def _pairs(self, model: nn.Module) -> tuple[list, list, tuple, tuple]:
        """The averaged copy's parameters, the model's, the buffers (the copy's and the model's, two
        lists), in one order, and the kernel's arguments for the parameters (pointers, sizes, dtype
        codes).

        The module trees are walked and checked once per model; later calls only confirm that both
        trees still hold the same parameter and buffer objects (one identity test each: rebuilding
        and checking the lists cost more than a small model's update) and that every parameter's
        data still starts where it did when it was checked. The walk keeps a view of each checked
        tensor, so no other tensor can be allocated where one of them lives until the next walk: a
        pointer that has not moved is the checked storage (its size and dtype), and data swapped in
        place (``.to()``, ``.half()``) has moved and makes the walk run again, as does a replaced
        parameter or buffer."""
        walk = self._trees
        if walk is not None and walk.model is model and _unchanged(walk):
            return walk.dst, walk.src, walk.buffers, walk.prepared
        modules_ema, modules = list(self.module.modules()), list(model.modules())
        if len(modules_ema) != len(modules):
            raise ValueError("EMA.update: model's modules differ from the averaged copy's")
        dst, src, buffers = [], [], ([], [])
        for m_ema, m in zip(modules_ema, modules):
            pairs = [(m_ema._parameters.get(name), p) for name, p in m._parameters.items() if p is not None]
            if len(m_ema._parameters) != len(m._parameters) or any(
                    q is None or q.shape != p.shape or q.dtype != p.dtype for q, p in pairs):
                raise ValueError("EMA.update: model's parameters differ from the averaged copy's "
                                 "(number, shapes or dtypes)")
            if not all(dense(p) and q.stride() == p.stride() for q, p in pairs):
                raise ValueError("EMA.update: the model's parameters and the averaged copy's must be "
                                 "contiguous, or channels-last, in the same layout (the kernel pairs "
                                 "their elements in memory order): convert both, e.g. "
                                 "model.to(memory_format=torch.channels_last) and "
                                 "ema.to(memory_format=torch.channels_last)")
            dst += [q for q, _ in pairs]
            src += [p for _, p in pairs]
            for name, b in m._buffers.items():
                if b is not None and m_ema._buffers.get(name) is not None:
                    buffers[0].append(m_ema._buffers[name])
                    buffers[1].append(b)
        slots = [d for m in modules_ema + modules for d in (m._parameters, m._buffers)]
        prepared = (pointers(dst), pointers(src), *layout(dst))
        pinned = [t.detach() for t in dst + src]  # (see above: their storage stays where it was checked)
        self._trees = _Walk(model, slots, _members(slots), dst, src, buffers, prepared, pinned, None)
        return dst, src, buffers, prepared

    def __getstate__(self):
        # Copies and pickles leave the walked trees behind: they reference the model, not the average.
        state = dict(self.__dict__)
        state["_trees"] = None
        return state

    def extra_repr(self) -> str:
        return f"decay={self.decay}, rampup={self.rampup}"


class _Walk(NamedTuple):
    """What :meth:`EMA._pairs` found walking the trees, kept for the next update's check."""
    model: nn.Module  # the model walked
    slots: list  # both trees' parameter and buffer dicts
    members: list  # the objects they held (_members)
    dst: list  # the averaged copy's parameters
    src: list  # the model's, in the same order
    buffers: tuple  # (the copy's buffers, the model's)
    prepared: tuple  # the kernel's arguments: both lists' data pointers, sizes, dtype codes
    pinned: list  # views of the checked tensors (their storage stays where it was checked)
    table: Optional[torch.Tensor]  # prepared packed for the CPU's one-call update (multi_tensor.pack)


def _members(slots: list) -> list:
    """Every object the modules' parameter and buffer dicts ``slots`` hold (None where a slot is
    empty), in order."""
    return [t for d in slots for t in d.values()]


def _unchanged(walk: _Walk) -> bool:
    """Whether the trees still hold the objects ``walk`` found (every parameter and buffer slot the
    same object) and every parameter's data starts where it did. In C++ where pygan._autograd is
    built (a fifth of the Python's time, which was a third of a small model's update)."""
    prepared, nodes = walk.prepared, _backend.load_nodes()
    if nodes is not None:
        return nodes.walk_unchanged(walk.slots, walk.members, walk.dst, prepared[0], walk.src, prepared[1])
    return (_same(_members(walk.slots), walk.members) and pointers(walk.dst) == prepared[0]
            and pointers(walk.src) == prepared[1])


def _same(a: list, b: list) -> bool:
    """The same objects in the same order (``==`` would compare tensors' values)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))
