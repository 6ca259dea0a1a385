"""The one launch path: how an op hands its tensors to a kernel of the backend that backend.py chose.

C++ and CUDA entries of ``pygan._C`` take raw pointers, sizes, dtype codes and, on CUDA, the current
stream last; :func:`call_c` is the only caller. Triton kernels take tensors; :func:`device_context`
makes their device current. The helpers below turn optional tensors, dtypes and float64 scalars
into what the kernels take.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from . import backend as _backend
from .backend import DTYPE_CODES

__all__ = ["DTYPE_CODES", "c_entry", "call_c", "compute_dtype", "counter", "device_context", "eager_apply", "empty",
           "float32_pair", "node_module", "ptr", "scalar", "shared_empty", "triton_acc", "twin_call"]


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute and accumulate in: float64 if any input is, else float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


# One 0-dim tensor per (dtype, device) to allocate scalars like: empty_like of it costs half of
# torch.empty((), dtype=..., device=...), whose argument parsing dominates at this size.
_SCALARS: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def scalar(dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialized 0-dim tensor of ``dtype`` on ``device``."""
    like = _SCALARS.get((dtype, device))
    if like is None:
        like = _SCALARS[(dtype, device)] = torch.empty((), dtype=dtype, device=device)
    return torch.empty_like(like)


_EMPTIES: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def empty(dtype: torch.dtype, device: torch.device) -> Tensor:
    """A shared tensor of no elements (the absent side of a one-sided loss); never written."""
    if torch.compiler.is_compiling():  # a traced graph makes its own
        return torch.empty((0,), dtype=dtype, device=device)
    return shared_empty(dtype, device)


def shared_empty(dtype: torch.dtype, device: torch.device) -> Tensor:
    """:func:`empty` for callers that never run under torch.compile (the eager twins)."""
    t = _EMPTIES.get((dtype, device))
    if t is None:
        t = _EMPTIES[(dtype, device)] = torch.empty((0,), dtype=dtype, device=device)
    return t


def ptr(t: Optional[Tensor]) -> int:
    """The data pointer of ``t``, or 0 (a null pointer) for None."""
    return t.data_ptr() if t is not None else 0


# pygan._C's entries by (kernel, backend): looking one up by its formatted name on every call cost
# a third of a small call's launch.
_ENTRIES: dict[tuple[str, str], object] = {}


def c_entry(kernel: str, name: str) -> Callable:
    """pygan._C's ``<kernel>_<name>``; a CPU entry is called with its arguments as they are (what
    :func:`call_c` does for "cpu", one frame fewer on the training path's hottest calls)."""
    entry = _ENTRIES.get((kernel, name))
    if entry is None:
        entry = _ENTRIES[(kernel, name)] = getattr(_backend._load_c()[0], f"{kernel}_{name}")
    return entry


def call_c(name: str, device: torch.device, kernel: str, *args) -> None:
    """Runs pygan._C's ``<kernel>_cpu(*args)`` for backend "cpu", or ``<kernel>_cuda(*args, stream)``
    on ``device``'s current stream for backend "cuda"."""
    entry = _ENTRIES.get((kernel, name)) or c_entry(kernel, name)
    if name == "cpu":
        entry(*args)
        return
    with device_context(device):
        entry(*args, torch.cuda.current_stream(device).cuda_stream)


# torch.autograd.Function.apply is a Python prologue (a check for setup_context, a pass over the
# arguments for dead functorch wrappers) around the C++ apply that records the node; at training
# sizes the prologue costs 2 us, a twentieth of a loss call with its backward.
_C_APPLY = getattr(getattr(torch._C, "_FunctionBase", None), "__dict__", {}).get("apply")


def _fast_apply(cls: type) -> Callable:
    """``cls``'s node recorded by torch's C++ apply; ``cls.apply`` where this torch has none to reach."""
    return _C_APPLY.__get__(None, cls) if _C_APPLY is not None else cls.apply


def _refuse_functorch() -> None:
    raise RuntimeError("pygan's fused ops do not support torch.func transforms (grad, vmap, jvp, "
                       "jacrev, ...); differentiate with torch.autograd instead "
                       "(loss.backward() or torch.autograd.grad)")


def eager_apply(cls: type) -> Callable:
    """``cls.apply`` for an eager twin (an ``autograd.Function`` whose forward takes ``ctx``, no
    ``setup_context``), calling the C++ apply directly; where this torch has no C++ apply to reach,
    ``cls.apply``. Under a functorch transform (``torch.func.grad``, ``vmap``, ...) it raises a
    clear error: pygan's ops do not support those (``cls.apply`` would refuse them too, naming a
    method the user never wrote)."""
    fast = _fast_apply(cls)
    functorch_active = torch._C._are_functorch_transforms_active

    def apply(*args):
        if functorch_active():
            _refuse_functorch()
        return fast(*args)

    apply.__doc__ = f"{cls.__name__}.apply"
    return apply


def twin_call(cls: type, registered: Callable, name: str, node: Optional[Callable] = None) -> Callable:
    """An op's one call, ``name(*args)``: ``registered(*args)`` (the registered op) where
    torch.compile traces, else the eager twin ``cls``'s node, as :func:`eager_apply` records it,
    with the same arguments. One frame instead of a call function around :func:`eager_apply`'s
    (each frame is a few percent of a small loss call's host time). ``node(*args)``, when given, is
    offered the eager call first: a C++ node's entry (pygan._autograd) that returns the result, or
    None for arguments it does not take."""
    fast = _fast_apply(cls)
    functorch_active = torch._C._are_functorch_transforms_active
    is_compiling = torch.compiler.is_compiling

    def call(*args):
        if is_compiling():
            return registered(*args)
        if functorch_active():
            _refuse_functorch()
        if node is not None:
            out = node(*args)
            if out is not None:
                return out
        return fast(*args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = registered.__doc__
    return call


def node_module(op: str, recompute: Callable) -> Callable[[], Any]:
    """A loader of pygan._autograd (:func:`backend.load_nodes`) with ``recompute`` set as ``op``'s
    Python recomputation (what its C++ node calls under create_graph), loaded once; it returns
    None where the module is not usable and the op records its Python node."""

    @functools.cache
    def load():
        nodes = _backend.load_nodes()
        if nodes is not None:
            nodes.set_recompute(op, recompute)
        return nodes

    return load


def device_context(device: torch.device):
    """Makes ``device`` current for CUDA launches; nothing for CPU tensors (Triton interpreter)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def triton_acc(dtype: torch.dtype):
    """Triton's type for the compute dtype ``dtype`` (float64 or float32)."""
    import triton.language as tl

    return tl.float64 if dtype == torch.float64 else tl.float32


def float32_pair(x: float) -> tuple[float, float]:
    """x as hi + lo, both float32 (Triton's type for float arguments): a kernel that adds them in
    float64 gets x back to about 48 bits, enough for float64 results within 1e-14."""
    hi = struct.unpack("f", struct.pack("f", x))[0]
    return hi, x - hi


# Per (device, stream): the ticket counter of the deterministic one-launch reductions. A kernel
# leaves it at zero, so one zero-filled buffer serves every launch on that stream.
_COUNTERS: dict[tuple[int, int], Tensor] = {}


def counter(device: torch.device) -> Tensor:
    """The zeroed ticket counter of ``device``'s current stream."""
    if device.type != "cuda":  # the Triton interpreter: a fresh counter costs nothing there
        return torch.zeros(1, dtype=torch.int32)
    stream = torch.cuda.current_stream(device)
    key = (device.index if device.index is not None else torch.cuda.current_device(), stream.cuda_stream)
    buf = _COUNTERS.get(key)
    if buf is None:
        buf = torch.zeros(1, dtype=torch.int32, device=device)
        _COUNTERS[key] = buf
    return buf
