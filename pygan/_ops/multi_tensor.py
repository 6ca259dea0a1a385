"""Multi-tensor in-place updates as registered PyTorch ops (kernels: csrc/multi_tensor.h,
csrc/cpu/multi_tensor.cpp, csrc/cuda/multi_tensor.cu, triton_kernels/multi_tensor.py): one launch
(one parallel pass on the CPU) over a whole list of parameters.

- ``pygan::clip_(tensors, c)``: every element clamped to [-c, c] (weight clipping).
- ``pygan::lerp_(tensors, sources, weight)``: ``t += w * (s - t)`` for each pair, ``w`` read from
  the one-element float64 tensor ``weight`` on the tensors' device (the EMA step; a device value,
  so a captured CUDA graph applies the current weight).

Inputs arrive validated: dense (:func:`dense`), one device, pairs of one size, dtype and strides.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import backend as _backend
from .launch import DTYPE_CODES, call_c, device_context

CLIP, LERP = 0, 1  # csrc/multi_tensor.h MultiTensorOp

# Triton: the address tables of each parameter list and each bound, built once (parameters keep
# their storage across steps; rebuilding the tables would copy from the host in every call).
_TABLES: dict[tuple, Tensor] = {}


def _table(device: torch.device, values: list[int]) -> Tensor:
    key = (device, tuple(values))
    if key not in _TABLES:
        _TABLES[key] = torch.tensor(values, dtype=torch.int64, device=device)
    return _TABLES[key]


def _run_triton(op: int, dst: list[Tensor], src: Optional[list[Tensor]], bound: float,
                weight: Optional[Tensor]) -> None:
    k, _ = _backend._load_triton("multi_tensor")
    import triton.language as tl

    tl_types = {torch.float32: tl.float32, torch.float64: tl.float64, torch.float16: tl.float16,
                torch.bfloat16: tl.bfloat16}
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, t in enumerate(dst):
        if t.numel():
            by_dtype.setdefault(t.dtype, []).append(i)
    for dtype, idx in by_dtype.items():
        device = dst[idx[0]].device
        dst_table = _table(device, [dst[i].data_ptr() for i in idx])
        src_table = _table(device, [src[i].data_ptr() for i in idx]) if op == LERP else dst_table
        sizes = _table(device, [dst[i].numel() for i in idx])
        if op == CLIP:
            key = (device, dtype, bound)
            if key not in _TABLES:  # the bound in the tensors' dtype: clamping to it rounds nothing
                _TABLES[key] = torch.tensor(bound, dtype=dtype, device=device)
            scalar = _TABLES[key]
        else:
            scalar = weight
        tiles = -(-max(dst[i].numel() for i in idx) // k.BLOCK)
        with device_context(device):
            k.multi_tensor_kernel[(len(idx), tiles)](dst_table, src_table, sizes, scalar, OP=op,
                                                     DTYPE=tl_types[dtype], BLOCK=k.BLOCK)


def dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill one block of memory from its data pointer (contiguous, or
    contiguous in a channels-last layout), as the kernels read them: one flat array of ``numel()``
    elements. Elementwise updates of two such tensors pair up elements when their strides agree."""
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)) or \
        (t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d))


def pointers(tensors: list[Tensor]) -> list[int]:
    """The tensors' data pointers, as the C kernels take them."""
    return [t.data_ptr() for t in tensors]


def layout(tensors: list[Tensor]) -> tuple[list[int], list[int]]:
    """The tensors' element counts and dtype codes, as the C kernels take them."""
    return [t.numel() for t in tensors], [DTYPE_CODES[t.dtype] for t in tensors]


def run_now(op: int, dst: list[Tensor], src: Optional[list[Tensor]], bound: float,
            weight: Optional[Tensor], backend: str, prepared: Optional[tuple] = None) -> None:
    """The body of the ops, called directly in eager code (no custom-op dispatch). ``prepared``:
    (dst pointers, src pointers, sizes, dtype codes) of :func:`pointers` and :func:`layout`, where the
    caller has them (the C kernels take them as they are; Triton takes the tensors)."""
    if not dst:
        return
    device = dst[0].device
    name = _backend.resolve(backend, device)
    if name == "triton":
        _run_triton(op, dst, src, bound, weight)
        return
    if prepared is None:
        prepared = (pointers(dst), pointers(src) if op == LERP else [], *layout(dst))
    call_c(name, device, "multi_tensor", op, *prepared, bound, weight.data_ptr() if op == LERP else 0)


@torch.library.custom_op("pygan::clip_", mutates_args=("tensors",))
def clip_(tensors: list[Tensor], c: float, backend: str) -> None:
    """Clamps every element of ``tensors`` (contiguous, one device) to [-c, c] in place."""
    run_now(CLIP, tensors, None, c, None, backend)


@clip_.register_fake
def _(tensors, c, backend):
    return None


@torch.library.custom_op("pygan::lerp_", mutates_args=("tensors",))
def lerp_(tensors: list[Tensor], sources: list[Tensor], weight: Tensor, backend: str) -> None:
    """``t += w * (s - t)`` in place for each pair, ``w = weight.item()`` read on the device."""
    run_now(LERP, tensors, sources, 0.0, weight, backend)


@lerp_.register_fake
def _(tensors, sources, weight, backend):
    return None


# The registered ops where torch.compile traces (they mutate their inputs, which it must see), the
# body directly elsewhere.
def call_clip_(tensors: list[Tensor], c: float, backend: str) -> None:
    """``pygan::clip_``: clamps ``tensors`` to [-c, c] in place."""
    if torch.compiler.is_compiling():  # (detached: the op mutates them and has no autograd formula)
        clip_([t.detach() for t in tensors], c, backend)
    else:
        run_now(CLIP, tensors, None, c, None, backend)


def call_lerp_(tensors: list[Tensor], sources: list[Tensor], weight: Tensor, backend: str,
               prepared: Optional[tuple] = None) -> None:
    """``pygan::lerp_``: ``t += w * (s - t)`` in place for each pair (``prepared``: see
    :func:`run_now`)."""
    if torch.compiler.is_compiling():  # (detached: the op has no autograd formula)
        lerp_([t.detach() for t in tensors], [s.detach() for s in sources], weight, backend)
    else:
        run_now(LERP, tensors, sources, 0.0, weight, backend, prepared)


def call_ema_update(dst: list[Tensor], src: list[Tensor], num_updates: Tensor, weight: Tensor, decay: float,
                    rampup: bool, backend: str, prepared: tuple, table: Optional[Tensor] = None) -> Optional[Tensor]:
    """One EMA step: :func:`step_ema_weight`, then ``dst += w * (src - dst)`` (``pygan::lerp_``).
    On the CPU outside torch.compile, one C call (:func:`ema_update_cpu`) with the arguments packed
    into ``table`` (:func:`pack` of ``prepared``, made here when None: converting four lists per call
    cost a small model's update as much as the kernel). Returns the table for the next call (None
    where the step took the registered ops)."""
    if dst and num_updates.is_cpu and not torch.compiler.is_compiling() \
            and _backend.resolve(backend, dst[0].device) == "cpu":
        if table is None:
            table = pack(prepared)
        ema_update_cpu(table, len(dst), num_updates, weight, decay, rampup)
        return table
    step_ema_weight(num_updates, weight, decay, rampup)
    if dst:
        call_lerp_(dst, src, weight, backend, prepared)
    return table


def pack(prepared: tuple) -> Tensor:
    """:func:`run_now`'s ``prepared`` lists (dst pointers, src pointers, sizes, dtype codes) as one
    int64 table in host memory, the argument of :func:`ema_update_cpu`."""
    return torch.tensor([v for part in prepared for v in part], dtype=torch.int64)


def ema_update_cpu(table: Tensor, n: int, num_updates: Tensor, weight: Tensor, decay: float,
                   rampup: bool) -> None:
    """:func:`step_ema_weight`, then ``pygan::lerp_`` of the ``n`` pairs packed in ``table``
    (:func:`pack`), in one C call: CPU tensors, eager code."""
    call_c("cpu", num_updates.device, "ema_update", table.data_ptr(), n, num_updates.data_ptr(),
           weight.data_ptr(), decay, int(rampup))


def step_ema_weight(num_updates: Tensor, weight: Tensor, decay: float, rampup: bool) -> None:
    """Advances an EMA's update counter t and sets its interpolation weight 1 - beta_t,
    beta_t = min(decay, (1 + t) / (10 + t)) (``decay`` without ``rampup``), both 0-dim float64."""
    if num_updates.device.type == "cpu" and not torch.compiler.is_compiling():
        # The counter is host memory here: the same float64 arithmetic in one C call, without the
        # five small tensor ops (each costs more than the update of a small model).
        call_c("cpu", num_updates.device, "ema_weight", num_updates.data_ptr(), weight.data_ptr(), decay,
               int(rampup))
        return
    # Device arithmetic: no host sync, and a captured CUDA graph replays it.
    num_updates += 1
    beta = torch.clamp((1 + num_updates) / (10 + num_updates), max=decay) if rampup else \
        torch.full_like(num_updates, decay)
    # Through a 1-element view: torch.compile (2.13, CPU) drops a copy_ or out= write into a 0-dim
    # float64 tensor of a value computed from another, silently (the EMA then never moved).
    weight.view(1).copy_(torch.sub(1.0, beta).view(1))
