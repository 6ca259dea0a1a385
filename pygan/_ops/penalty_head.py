"""The gradient-penalty head as registered PyTorch ops (kernels: csrc/penalty_head.h,
csrc/cpu/penalty_head.cpp, csrc/cuda/penalty_head.cu, triton_kernels/penalty_head.py).

``pygan::penalty_head(g, kind, center, weight)`` views ``g`` as one row per sample and returns

    penalty = weight / B * sum_i phi(||g_i||_2),   norms_i = ||g_i||_2,   coef_i = weight / B * phi'(n_i) / n_i

and, with ``per_sample``, the per-sample penalties values_i = weight * phi(n_i) (else an empty tensor),
with phi from :data:`KINDS`, in float32 (float64 for float64 input) whatever g's dtype, so the squares
of a float16 gradient cannot overflow. Its backward is one elementwise pass,
d penalty / d g_i = coef_i * g_i, from the saved factors (d values_i / d g_i = B * coef_i * g_i). Inputs
arrive validated (pygan.penalties checks them).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import backend as _backend
from .launch import (DTYPE_CODES, call_c, compute_dtype, counter, device_context, eager_apply,
                     float32_pair, node_module, ptr, scalar, triton_acc)

# phi(n) of the per-sample gradient norm n, by name (codes of csrc/penalty_head.h PenaltyKind).
KINDS = {"two-sided": 0, "one-sided": 1, "squared": 2}


def _rows_cols(g: Tensor) -> tuple[int, int]:
    rows = g.shape[0]
    return rows, (g.numel() // rows if rows else 0)


def _head(g: Tensor, kind: int, center: float, weight: float, backend: str, per_sample: bool = False,
          twin: bool = False, keep_norms: bool = True,
          shape: Optional[tuple[int, int]] = None) -> tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """(penalty, norms, factors, values). ``twin``: the eager twin's call, which hands out the values
    only with ``per_sample`` (None for them otherwise; the registered op returns an empty tensor).
    Without ``keep_norms`` the kernel writes the norms into the factors' tensor before the factors
    (every backend finishes a row's norm before its factor), one allocation fewer; the returned
    norms are then the factors, for a caller that hands out neither. ``shape``: g's
    :func:`_rows_cols` where the caller has it."""
    rows, cols = shape or _rows_cols(g)
    acc = compute_dtype(g.dtype)
    out = scalar(acc, g.device)
    if g.dtype is acc:  # new_empty parses fewer arguments than torch.empty (a third of its time)
        coef = g.new_empty(rows)
        norms = g.new_empty(rows) if keep_norms else coef
    else:
        coef = torch.empty(rows, dtype=acc, device=g.device)
        norms = torch.empty(rows, dtype=acc, device=g.device) if keep_norms else coef
    values = torch.empty(rows if per_sample else 0, dtype=acc, device=g.device) \
        if per_sample or not twin else None
    name = _backend.resolve(backend, g.device)
    if name in ("cpu", "cuda"):
        args = (g.data_ptr(), DTYPE_CODES[g.dtype], rows, cols, kind, center, weight, out.data_ptr(),
                norms.data_ptr(), coef.data_ptr(), values.data_ptr() if per_sample else 0)
        if name == "cpu":
            args += (0,)  # no gradient in the forward (see _head_and_grad)
        else:  # the one-launch reduction's partial sums and ticket
            c, _ = _backend._load_c()
            partials = torch.empty(max(c.penalty_head_blocks(rows, cols), 1), dtype=acc, device=g.device)
            args += (partials.data_ptr(), counter(g.device).data_ptr())
        call_c(name, g.device, "penalty_head", *args)
    else:
        k, _ = _backend._load_triton("penalty_head")
        block_c = min(max(16, 1 << max(cols - 1, 0).bit_length()), 1024)
        rows_per = max(1, min(64, 4096 // block_c))
        programs = -(-rows // rows_per)
        partials = torch.empty(max(programs, 1), dtype=acc, device=g.device)
        ticket = counter(g.device)
        with device_context(g.device):
            k.head_kernel[(programs,)](g, rows, cols, *float32_pair(center), *float32_pair(weight),
                                       out, norms, coef, values if per_sample else coef, partials, ticket,
                                       KIND=kind, HAS_VALUES=per_sample, ACC=triton_acc(acc), ROWS=rows_per,
                                       BLOCK_C=block_c)
    return out, norms, coef, values


@torch.library.custom_op("pygan::penalty_head", mutates_args=())
def penalty_head(g: Tensor, kind: int, center: float, weight: float, backend: str,
                 per_sample: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(penalty, norms, coef, values) of the gradient ``g`` (contiguous, one row per sample); ``values``
    is empty unless ``per_sample``."""
    return _head(g, kind, center, weight, backend, per_sample)


@penalty_head.register_fake
def _(g, kind, center, weight, backend, per_sample=False):
    acc = compute_dtype(g.dtype)
    rows = g.shape[0]
    return (g.new_empty((), dtype=acc), g.new_empty(rows, dtype=acc), g.new_empty(rows, dtype=acc),
            g.new_empty(rows if per_sample else 0, dtype=acc))


def _head_grad(g: Tensor, coef: Tensor, norms: Tensor, up: Tensor, up_norms: Optional[Tensor],
               backend: str, shape: Optional[tuple[int, int]] = None) -> Tensor:
    """``shape``: g's :func:`_rows_cols` where the caller has it. ``up`` is one value (0-dim: always
    contiguous)."""
    rows, cols = shape or _rows_cols(g)
    grad = torch.empty_like(g)
    if up.dtype != coef.dtype:
        up = up.to(coef.dtype)
    if up_norms is not None:
        up_norms = up_norms.to(coef.dtype).contiguous()
    name = _backend.resolve(backend, g.device)
    if name in ("cpu", "cuda"):
        call_c(name, g.device, "penalty_head_backward", g.data_ptr(), DTYPE_CODES[g.dtype], rows,
               cols, coef.data_ptr(), up.data_ptr(), norms.data_ptr(), ptr(up_norms),
               grad.data_ptr())
    elif g.numel():
        k, _ = _backend._load_triton("penalty_head")
        with device_context(g.device):
            k.head_backward_kernel[(-(-g.numel() // k.BLOCK),)](
                g, g.numel(), cols, coef, up, norms, up_norms if up_norms is not None else norms, grad,
                HAS_UP_NORMS=up_norms is not None, ACC=triton_acc(coef.dtype), BLOCK=k.BLOCK)
    return grad


@torch.library.custom_op("pygan::penalty_head_backward", mutates_args=())
def penalty_head_backward(g: Tensor, coef: Tensor, norms: Tensor, up: Tensor,
                          up_norms: Optional[Tensor], backend: str) -> Tensor:
    """d/dg of up * penalty + <up_norms, norms>: (up * coef_i + up_norms_i / n_i) * g_i, in g's dtype."""
    return _head_grad(g, coef, norms, up, up_norms, backend)


@penalty_head_backward.register_fake
def _(g, coef, norms, up, up_norms, backend):
    return torch.empty_like(g)


def _head_setup(ctx, inputs, output):
    g, _kind, _center, _weight, backend, _per_sample = inputs
    _, norms, coef, _values = output
    ctx.backend = backend
    ctx.set_materialize_grads(False)  # an unused output needs no zero-filled upstream
    ctx.save_for_backward(g, coef, norms)


def _head_backward(ctx, up, up_norms, _up_coef, up_values):
    # The third output (the derivative factors) is internal: pygan.penalties never hands it out, and
    # traced graphs pass it a zero upstream, which is ignored.
    g, coef, norms = ctx.saved_tensors
    return _head_grads(penalty_head_backward, g, coef, norms, up, up_norms, up_values, ctx.backend) + (None,)


def _head_grads(grad_op, g: Tensor, coef: Tensor, norms: Tensor, up: Optional[Tensor],
                up_norms: Optional[Tensor], up_values: Optional[Tensor], backend: str) -> tuple:
    """The gradients of (g, kind, center, weight, backend) for the upstreams of the penalty, the
    norms and the per-sample values (None where that output is unused)."""
    if up_values is not None and up_values.numel():
        # d values_i / d g_i = B * coef_i * g_i. As an upstream of the norms (which the backward
        # kernel divides by n_i) that is B * coef_i * n_i per unit of values_i; a zero row has a zero
        # gradient either way.
        extra = up_values.to(coef.dtype) * coef * norms * coef.shape[0]
        up_norms = extra if up_norms is None else up_norms.to(coef.dtype) + extra
    if up is None and up_norms is None:
        return None, None, None, None, None
    if up is None:
        up = torch.zeros((), dtype=coef.dtype, device=coef.device)
    return grad_op(g, coef, norms, up, up_norms, backend), None, None, None, None


penalty_head.register_autograd(_head_backward, setup_context=_head_setup)


def _head_and_grad(g: Tensor, kind: int, center: float, weight: float,
                   shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(penalty, its gradient for an upstream of one) from one CPU kernel call, the gradient in the
    compute dtype: coef_i * g_i, the products the backward kernel forms for up = 1, so the same bits."""
    rows, cols = shape
    acc = compute_dtype(g.dtype)
    out = scalar(acc, g.device)
    grad = torch.empty_like(g) if g.dtype is acc else torch.empty(g.shape, dtype=acc)
    call_c("cpu", g.device, "penalty_head", g.data_ptr(), DTYPE_CODES[g.dtype], rows, cols, kind, center,
           weight, out.data_ptr(), 0, 0, 0, grad.data_ptr())
    return out, grad


class PenaltyHead(torch.autograd.Function):
    """Eager twin of ``pygan::penalty_head``: the same kernels and backward without the custom-op
    dispatch, which costs more than the kernels at GAN batch sizes. It takes the op's constants as one
    tuple, ``(kind, center, weight, backend, per_sample, norms)`` (autograd inspects every argument of
    ``apply``), and returns (penalty, norms), the penalty alone without ``norms`` (one output is the
    cheapest node autograd records), and the values too with ``per_sample``. pygan.penalties uses it
    outside ``torch.compile`` and the registered op inside.

    The penalty alone on the CPU takes its gradient in the forward pass, as the loss twins do: one
    kernel call, no factors kept, and a backward with an upstream of exactly 1 (``(loss +
    penalty).backward()``; reading it is free on the CPU) that only hands the gradient over. Any
    other upstream scales it in place; under ``create_graph``, or for a second backward after the
    first took it, the backward kernel runs from g as on the other backends."""

    @staticmethod
    def forward(ctx, g, consts):
        kind, center, weight, backend, per_sample, norms = consts
        shape = _rows_cols(g)
        ctx.state = (consts, shape)  # few attributes: each costs a fifth of a microsecond
        # The penalty alone: the norms share the factors' tensor, and the node saves g alone (its
        # backward never reads the norms).
        alone = not (per_sample or norms)
        if alone:
            ctx.save_for_backward(g)
            if ctx.needs_input_grad[0] and _backend.resolve(backend, g.device) == "cpu":
                out, ctx.grad = _head_and_grad(g, kind, center, weight, shape)
                return out
        out, norms_, coef, values = _head(g, kind, center, weight, backend, per_sample, twin=True,
                                          keep_norms=not alone, shape=shape)
        ctx.coef = coef
        if alone:
            return out
        ctx.save_for_backward(g, norms_)
        ctx.set_materialize_grads(False)  # an unused output needs no zero-filled upstream
        return (out, norms_, values) if per_sample else (out, norms_)

    @staticmethod
    def backward(ctx, up, up_norms=None, up_values=None):
        consts, shape = ctx.state
        backend = consts[3]
        saved = ctx.saved_tensors
        if len(saved) == 1:  # the penalty alone
            grad = getattr(ctx, "grad", None)
            if grad is not None and not torch.is_grad_enabled():
                ctx.grad = None  # handed over: autograd may keep it as .grad without a copy
                if up.item() != 1.0:
                    grad.mul_(up)
                return (grad if grad.dtype is saved[0].dtype else grad.to(saved[0].dtype)), None
            return _alone_grad(saved[0], consts[:4], up, shape, getattr(ctx, "coef", None)), None
        g, norms = saved
        return _head_grads(_head_grad, g, ctx.coef, norms, up, up_norms, up_values, backend)[:1] + (None,)


def _alone_grad(g: Tensor, head: tuple, up: Tensor, shape: tuple[int, int], coef: Optional[Tensor] = None) -> Tensor:
    """The penalty alone's gradient for the upstream ``up`` from the backward kernel, ``head`` =
    (kind, center, weight, backend); the factors ``coef`` from g again where the forward kept none
    (it took the gradient instead)."""
    if coef is None:
        coef = _head(g, *head, keep_norms=False, shape=shape)[2]
    return _head_grad(g, coef, coef, up, None, head[3], shape)


def _node_recompute(g: Tensor, kind: int, center: float, weight: float, up: Tensor) -> tuple:
    """The gradient pygan._autograd's C++ node cannot hand over from its forward pass (create_graph,
    or a second backward through a retained graph): :func:`_alone_grad`, as :class:`PenaltyHead`'s
    backward computes it there."""
    return (_alone_grad(g, (kind, center, weight, "cpu"), up, _rows_cols(g)),)


_nodes = node_module("penalty_head", _node_recompute)
_apply_penalty_head = eager_apply(PenaltyHead)
functorch_active = torch._C._are_functorch_transforms_active  # (eager_apply checks it for the twin)


def call_penalty_head(g: Tensor, consts: tuple) -> tuple[Tensor, ...]:
    """``pygan::penalty_head``'s (penalty, norms), (penalty,) without ``norms``, and the per-sample
    values too with ``per_sample``, for ``consts`` = (kind, center, weight, backend, per_sample,
    norms): the registered op where torch.compile traces, else its eager twin, or for the penalty
    alone of a plain CPU tensor the C++ node of pygan._autograd."""
    if torch.compiler.is_compiling():
        per_sample, norms = consts[4], consts[5]
        out = penalty_head(g, *consts[:5])
        return (out[0], out[1], out[3]) if per_sample else out[:2] if norms else out[:1]
    if (not (consts[4] or consts[5]) and type(g) is Tensor and not functorch_active()
            and _backend.resolve(consts[3], g.device) == "cpu"):
        nodes = _nodes()
        if nodes is not None:
            return (nodes.penalty_head(g, *consts[:3]),)
    out = _apply_penalty_head(g, consts)
    return out if consts[4] or consts[5] else (out,)
