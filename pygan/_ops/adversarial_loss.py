"""The fused adversarial-loss op, registered with ``torch.library.custom_op`` so that autograd,
``torch.compile(fullgraph=True)``, CUDA-graph capture and DDP see ordinary PyTorch ops.

``pygan::adversarial_loss`` returns the reduced scalar (mean or sum); ``pygan::adversarial_loss_terms``
the elementwise terms of both sides; ``pygan::adversarial_loss_backward`` the gradients of either,
recomputing the terms from the logits (one read of each logit and one write of each gradient, no
saved intermediates), and, with ``order=2``, their second derivatives: it has a backward of its
own, so every loss op is twice differentiable (gradient penalties on the loss's gradient, unrolled
GANs). ``pygan::adversarial_minimax`` gives both players' losses and upstream
gradients from one pass (the fused simultaneous step). ``pygan::adversarial_loss_and_grad`` is the training path: one pass returns
the reduced loss and its gradients for an upstream of one (in the compute dtype, so that a large
upstream such as a loss scale meets unrounded values), and backward is a multiply. The ops allocate their outputs through PyTorch's allocator and never
synchronize with the host. Inputs arrive validated and contiguous (pygan.losses checks them).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from . import backend as _backend
from .launch import (DTYPE_CODES, c_entry, call_c, compute_dtype, counter, device_context, empty, node_module, ptr,
                     scalar, shared_empty, triton_acc, twin_call)

def _out_dtype(x0: Tensor, x1: Tensor) -> torch.dtype:
    return torch.promote_types(x0.dtype, x1.dtype)


# (dtype of x0, dtype of x1) -> (the loss's dtype, the compute dtype): one lookup per call where two
# promotions cost a tenth of a small call's host time.
_PAIR_DTYPES = {(a, b): (torch.promote_types(a, b), compute_dtype(a, b))
                for a in DTYPE_CODES for b in DTYPE_CODES}


def _c_side(x: Tensor, term: int, sign: float, shift: Optional[Tensor]) -> tuple:
    """A ``Side`` of csrc/adversarial_loss.h as the C entries take it: (x, n, dtype, term, sign, shift)."""
    return (x.data_ptr(), x.numel(), DTYPE_CODES[x.dtype], term, sign,
            shift.data_ptr() if shift is not None else 0)


def _forward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
             out0, out1, out, grad0=None, grad1=None, minimax=None):
    """Runs the forward kernel of ``backend``; writes out0/out1 (reduction 0) or out, and grad0 and
    grad1 (the gradients for an upstream of one, compute dtype) when given. ``minimax``, with a mean
    reduction and gradients: ((gterm0, gterm1), (gsign0, gsign1), g_out, g_grad0, g_grad1), a second
    loss on the same logits in the same pass; a side without g_grad is out of it (its sign is 0)."""
    device = x0.device
    name = _backend.resolve(backend, device)
    passes = 2 if minimax else 1  # the one-launch reductions' partial sums: one set per loss
    if minimax:
        (gterm0, gterm1), (gsign0, gsign1), g_out, g_grad0, g_grad1 = minimax
    if name == "cpu" or name == "cuda":
        # The sides inline rather than through _c_side: at training sizes each helper frame is a
        # tenth of a microsecond of a call whose kernel takes a few.
        sides = ((x0.data_ptr(), x0.numel(), DTYPE_CODES[x0.dtype], term0, sign0,
                  shift0.data_ptr() if shift0 is not None else 0),
                 (x1.data_ptr(), x1.numel(), DTYPE_CODES[x1.dtype], term1, sign1,
                  shift1.data_ptr() if shift1 is not None else 0))
        if minimax:
            kernel = "minimax_forward"
            args = (*sides, _c_side(x0, gterm0, gsign0, shift0), _c_side(x1, gterm1, gsign1, shift1),
                    alpha, out.data_ptr(), g_out.data_ptr(), DTYPE_CODES[out.dtype], ptr(grad0),
                    ptr(grad1), ptr(g_grad0), ptr(g_grad1))
        else:
            kernel = "loss_forward"
            args = (*sides, alpha, reduction, out0.data_ptr(), out1.data_ptr(),
                    out.data_ptr() if out is not None else 0, DTYPE_CODES[out.dtype] if out is not None else 0,
                    grad0.data_ptr() if grad0 is not None else 0, grad1.data_ptr() if grad1 is not None else 0)
        if name == "cuda":
            c, _ = _backend._load_c()
            tiles = c.loss_forward_tiles(x0.numel(), x1.numel())
            partials = torch.empty(max(tiles, 1) * passes, dtype=compute_dtype(x0.dtype, x1.dtype),
                                   device=device)
            args += (partials.data_ptr(), counter(device).data_ptr())
            call_c(name, device, kernel, *args)
        else:
            c_entry(kernel, name)(*args)
        return
    acc = compute_dtype(x0.dtype, x1.dtype)
    k, _ = _backend._load_triton()
    block = k.BLOCK
    tiles0, tiles1 = math.ceil(x0.numel() / block), math.ceil(x1.numel() / block)
    tiles = tiles0 + tiles1
    partials = torch.empty(max(tiles, 1) * passes, dtype=acc, device=device)
    ticket = counter(device)
    dummy = partials  # stands in for absent pointers; never read
    if minimax:
        minimax_args = (gsign0, g_grad0 if g_grad0 is not None else dummy, gsign1,
                        g_grad1 if g_grad1 is not None else dummy, g_out)
        minimax_flags = dict(TWO=True, GTERM0=gterm0, GTERM1=gterm1, G0=g_grad0 is not None,
                             G1=g_grad1 is not None)
    else:
        minimax_args, minimax_flags = (0.0, dummy, 0.0, dummy, dummy), {}
    with device_context(device):
        k.forward_kernel[(tiles,)](
            x0, x0.numel(), shift0 if shift0 is not None else dummy, sign0, out0,
            grad0 if grad0 is not None else dummy,
            x1, x1.numel(), shift1 if shift1 is not None else dummy, sign1, out1,
            grad1 if grad1 is not None else dummy,
            out if out is not None else dummy, partials, ticket, alpha, tiles0,
            *minimax_args,
            HAS_SH0=shift0 is not None, HAS_SH1=shift1 is not None, TERM0=term0, TERM1=term1,
            REDUCE=reduction != 0, MEAN=reduction == 1, GRAD=grad0 is not None, **minimax_flags,
            ACC=triton_acc(acc),
            STEPS=4 if acc == torch.float64 else 3, BLOCK=block,
        )


def _backward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
              up, up0, up1, grad0, grad1, order=1):
    """grad_k = U * w_k * E_k * term_k^(order)(x_k - shift_k): U the scalar ``up`` or 1, E_k the
    elementwise ``up0`` / ``up1`` (both or neither) or 1 (csrc/adversarial_loss.h)."""
    device = x0.device
    name = _backend.resolve(backend, device)
    if name in ("cpu", "cuda"):
        call_c(name, device, "loss_backward", _c_side(x0, term0, sign0, shift0),
               _c_side(x1, term1, sign1, shift1), alpha, reduction, order, ptr(up),
               DTYPE_CODES[up.dtype] if up is not None else 0, ptr(up0), ptr(up1),
               grad0.data_ptr(), grad1.data_ptr())
        return
    k, _ = _backend._load_triton()
    block = k.BLOCK
    tiles0, tiles1 = math.ceil(x0.numel() / block), math.ceil(x1.numel() / block)
    acc = compute_dtype(x0.dtype, x1.dtype)
    dummy = grad0 if grad0.numel() else grad1
    with device_context(device):
        k.backward_kernel[(tiles0 + tiles1,)](
            x0, x0.numel(), shift0 if shift0 is not None else dummy, sign0,
            up0 if up0 is not None else dummy, grad0,
            x1, x1.numel(), shift1 if shift1 is not None else dummy, sign1,
            up1 if up1 is not None else dummy, grad1,
            up if up is not None else dummy, alpha, tiles0,
            HAS_SH0=shift0 is not None, HAS_SH1=shift1 is not None, TERM0=term0, TERM1=term1,
            MEAN=reduction == 1, UP=up is not None, UP_EL=up0 is not None, ORDER=order,
            ACC=triton_acc(acc), STEPS=4 if acc == torch.float64 else 3, BLOCK=block,
        )



# ---------------------------------------------------------------------------------------------
# Registered ops
# ---------------------------------------------------------------------------------------------

@torch.library.custom_op("pygan::adversarial_loss", mutates_args=())
def adversarial_loss(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                     term0: int, term1: int, sign0: float, sign1: float, alpha: float,
                     reduction: int, backend: str) -> Tensor:
    """sum_k w_k sum_i term_k(x_k[i] - shift_k), w_k = sign_k / n_k (mean) or sign_k (sum)."""
    out = scalar(_out_dtype(x0, x1), x0.device)
    _forward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
             x0, x1, out)
    return out


@adversarial_loss.register_fake
def _(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend):
    return x0.new_empty((), dtype=_out_dtype(x0, x1))


def _loss_and_grad(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
                   share_empty=False):
    """The loss and its gradients in the compute dtype; ``share_empty``: an empty side's gradient is
    the shared empty tensor (no allocation; the eager twin never hands it out)."""
    out_dtype, acc = _PAIR_DTYPES[x0.dtype, x1.dtype]
    out = scalar(out_dtype, x0.device)
    # The common case inline (a logit tensor in the compute dtype): a helper's frame per side costs
    # as much as the allocation.
    grad0 = torch.empty_like(x0) if x0.dtype is acc and x0.numel() else _grad_buffer(x0, acc, share_empty)
    grad1 = torch.empty_like(x1) if x1.dtype is acc and x1.numel() else _grad_buffer(x1, acc, share_empty)
    _forward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
             x0, x1, out, grad0, grad1)
    return out, grad0, grad1


def _grad_buffer(x: Tensor, acc: torch.dtype, share_empty: bool) -> Tensor:
    if share_empty and not x.numel():
        # No element is ever written: an empty side of the compute dtype (the shared one, which
        # needs no gradient) serves as its own buffer.
        return x if x.dtype is acc and not x.requires_grad else empty(acc, x.device)
    return torch.empty_like(x) if x.dtype == acc else torch.empty(x.shape, dtype=acc, device=x.device)


@torch.library.custom_op("pygan::adversarial_loss_and_grad", mutates_args=())
def adversarial_loss_and_grad(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                              term0: int, term1: int, sign0: float, sign1: float, alpha: float,
                              reduction: int, backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """The reduced loss of ``adversarial_loss`` and, from the same pass, d loss / d x_k for an
    upstream of one: w_k * term_k'(x_k - shift_k), in the compute dtype."""
    return _loss_and_grad(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend)


@adversarial_loss_and_grad.register_fake
def _(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend):
    acc = compute_dtype(x0.dtype, x1.dtype)
    return (x0.new_empty((), dtype=_out_dtype(x0, x1)), x0.new_empty(x0.shape, dtype=acc),
            x1.new_empty(x1.shape, dtype=acc))


@torch.library.custom_op("pygan::adversarial_loss_terms", mutates_args=())
def adversarial_loss_terms(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                           term0: int, term1: int, sign0: float, sign1: float, alpha: float,
                           backend: str) -> tuple[Tensor, Tensor]:
    """The elementwise terms sign_k * term_k(x_k - shift_k), shaped and typed like each x_k."""
    out0, out1 = torch.empty_like(x0), torch.empty_like(x1)
    _forward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, 0, backend, out0, out1, None)
    return out0, out1


@adversarial_loss_terms.register_fake
def _(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, backend):
    return torch.empty_like(x0), torch.empty_like(x1)


# The highest derivative order the kernels implement (csrc/loss_terms.h term2).
MAX_ORDER = 2


@torch.library.custom_op("pygan::adversarial_loss_backward", mutates_args=())
def adversarial_loss_backward(x0: Tensor, x1: Tensor, shift0: Optional[Tensor],
                              shift1: Optional[Tensor], term0: int, term1: int, sign0: float,
                              sign1: float, alpha: float, reduction: int, backend: str,
                              up: Optional[Tensor], up0: Optional[Tensor],
                              up1: Optional[Tensor], order: int = 1) -> tuple[Tensor, Tensor]:
    """grad_k = U * w_k * E_k * term_k^(order)(x_k - shift_k), shaped and typed like each x_k.

    ``order=1`` is the gradient of either forward op for its upstream: U = ``up`` (the scalar of a
    reduced loss) or E_k = ``up_k`` (the terms' elementwise upstreams). ``order=2`` is what double
    backward multiplies: the second derivatives, scaled by both. Absent upstreams count as 1; the
    elementwise ones come both or neither. This op is itself differentiable (its backward calls it
    with ``order + 1`` for x and with ``order`` for the upstreams), which makes every loss op twice
    differentiable."""
    return _loss_backward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
                          up, up0, up1, order)


def _loss_backward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
                   up, up0, up1, order=1):
    grad0, grad1 = torch.empty_like(x0), torch.empty_like(x1)
    if up0 is not None:
        up0, up1 = up0.contiguous(), up1.contiguous()
    _backward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend,
              up, up0, up1, grad0, grad1, order)
    return grad0, grad1


@adversarial_loss_backward.register_fake
def _(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend, up, up0, up1, order=1):
    return torch.empty_like(x0), torch.empty_like(x1)


def _setup_loss_backward(ctx, inputs, output, op=None):
    x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, reduction, backend, up, up0, up1 = inputs[:14]
    ctx.consts = (term0, term1, sign0, sign1, alpha, reduction, backend)
    ctx.order = inputs[14] if len(inputs) > 14 else 1
    ctx.op = op or adversarial_loss_backward  # what the backward calls: this op or its eager twin
    ctx.save_for_backward(x0, x1, shift0, shift1, up, up0, up1)


def _loss_backward_backward(ctx, gg0, gg1):
    """The derivatives of grad_k = U * w_k * E_k * t_k^(o)(x_k - shift_k), for its upstreams gg_k:
    x_k: gg_k U w_k E_k t_k^(o+1) (and shift_k minus its sum); U: the sum of gg_k w_k E_k t_k^(o);
    E_k: gg_k U w_k t_k^(o). Each is this op again, so the result is differentiable in turn."""
    x0, x1, shift0, shift1, up, up0, up1 = ctx.saved_tensors
    consts, order, op = ctx.consts, ctx.order, ctx.op
    needs = ctx.needs_input_grad
    gx0 = gx1 = gs0 = gs1 = g_up = g_up0 = g_up1 = None
    if any(needs[:4]) or (up is not None and needs[11]):
        # gg_k E_k: the elementwise upstream of both the logits' and the scalar upstream's derivative.
        e0, e1 = (gg0, gg1) if up0 is None else (gg0 * up0, gg1 * up1)
    if any(needs[:4]):
        if order >= MAX_ORDER:
            raise RuntimeError(f"pygan's loss ops are differentiable {MAX_ORDER} times; a derivative of "
                               f"order {order + 1} is not implemented")
        gx0, gx1 = op(x0, x1, shift0, shift1, *consts, up, e0, e1, order + 1)
        gs0, gs1 = _shift_grads(needs, shift0, shift1, gx0, gx1)
    if up is not None and needs[11]:
        r0, r1 = op(x0, x1, shift0, shift1, *consts, None, e0, e1, order)
        g_up = (r0.sum(dtype=up.dtype) + r1.sum(dtype=up.dtype)).reshape(up.shape)
    if up0 is not None and (needs[12] or needs[13]):
        g_up0, g_up1 = op(x0, x1, shift0, shift1, *consts, up, gg0, gg1, order)
    return (gx0, gx1, gs0, gs1, None, None, None, None, None, None, None, g_up, g_up0, g_up1, None)


adversarial_loss_backward.register_autograd(_loss_backward_backward, setup_context=_setup_loss_backward)


def _minimax(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor], term0: int,
            term1: int, sign0: float, sign1: float, gterm0: int, gterm1: int, gsign0: float,
            gsign1: float, alpha: float, backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Two mean losses of the same logits in one pass: D's (terms term_k, signs sign_k) and G's
    (gterm_k, gsign_k), and each one's gradients for an upstream of one, in the compute dtype:
    ``(d_loss, g_loss, d_grad0, d_grad1, g_grad0, g_grad1)``. A side with gsign 0 is out of G's
    loss; its G gradient is an empty tensor (nothing computed, nothing allocated). The gradients are with respect to x_k - shift_k (the shifts are
    constants here)."""
    out_dtype, acc = _PAIR_DTYPES[x0.dtype, x1.dtype]
    d_out, g_out = scalar(out_dtype, x0.device), scalar(out_dtype, x0.device)
    # (empty_like and new_empty parse fewer arguments than torch.empty: a tenth of a small call)
    d_grads = [torch.empty_like(x) if x.dtype is acc else x.new_empty(x.shape, dtype=acc) for x in (x0, x1)]
    g_grads = [(torch.empty_like(x) if x.dtype is acc else x.new_empty(x.shape, dtype=acc)) if sign
               else x.new_empty(0, dtype=acc) for x, sign in ((x0, gsign0), (x1, gsign1))]
    _forward(x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha, 1, backend, x0, x1, d_out,
             *d_grads, minimax=((gterm0, gterm1), (gsign0, gsign1), g_out,
                                *(g if sign else None for g, sign in zip(g_grads, (gsign0, gsign1)))))
    return d_out, g_out, *d_grads, *g_grads


@torch.library.custom_op("pygan::adversarial_minimax", mutates_args=())
def adversarial_minimax(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                        term0: int, term1: int, sign0: float, sign1: float, gterm0: int, gterm1: int,
                        gsign0: float, gsign1: float, alpha: float,
                        backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`_minimax` as a registered op (for torch.compile and CUDA graphs). Its outputs are
    values, not differentiable functions of the inputs."""
    return _minimax(x0, x1, shift0, shift1, term0, term1, sign0, sign1, gterm0, gterm1, gsign0, gsign1,
                   alpha, backend)


@adversarial_minimax.register_fake
def _(x0, x1, shift0, shift1, term0, term1, sign0, sign1, gterm0, gterm1, gsign0, gsign1, alpha, backend):
    out_dtype, acc = _out_dtype(x0, x1), compute_dtype(x0.dtype, x1.dtype)
    return (x0.new_empty((), dtype=out_dtype), x0.new_empty((), dtype=out_dtype),
            x0.new_empty(x0.shape, dtype=acc), x1.new_empty(x1.shape, dtype=acc),
            x0.new_empty(x0.shape if gsign0 else (0,), dtype=acc),
            x1.new_empty(x1.shape if gsign1 else (0,), dtype=acc))


def _setup_context(ctx, inputs, output):
    x0, x1, shift0, shift1, term0, term1, sign0, sign1, alpha = inputs[:9]
    # (term0, term1, sign0, sign1, alpha, reduction, backend): the terms op has no reduction (0).
    ctx.consts = (term0, term1, sign0, sign1, alpha, inputs[9] if len(inputs) == 11 else 0, inputs[-1])
    ctx.save_for_backward(x0, x1, shift0, shift1)


def _shift_grads(needs, shift0, shift1, g0, g1):
    # d/dshift of sum_i term(x_i - shift) is minus the sum of the gradients of the x_i; `needs` is
    # ctx.needs_input_grad of an op whose inputs start (x0, x1, shift0, shift1).
    s0 = -g0.sum(dtype=shift0.dtype).reshape(shift0.shape) if shift0 is not None and needs[2] else None
    s1 = -g1.sum(dtype=shift1.dtype).reshape(shift1.shape) if shift1 is not None and needs[3] else None
    return s0, s1


def _backward_reduced(ctx, grad, op=adversarial_loss_backward):
    x0, x1, shift0, shift1 = ctx.saved_tensors
    g0, g1 = op(x0, x1, shift0, shift1, *ctx.consts, grad.contiguous(), None, None, 1)
    s0, s1 = _shift_grads(ctx.needs_input_grad, shift0, shift1, g0, g1)
    return g0, g1, s0, s1, None, None, None, None, None, None, None


def _backward_terms(ctx, grad0, grad1):
    x0, x1, shift0, shift1 = ctx.saved_tensors
    grad0 = grad0 if grad0 is not None else torch.zeros_like(x0)
    grad1 = grad1 if grad1 is not None else torch.zeros_like(x1)
    g0, g1 = adversarial_loss_backward(x0, x1, shift0, shift1, *ctx.consts, None, grad0, grad1)
    s0, s1 = _shift_grads(ctx.needs_input_grad, shift0, shift1, g0, g1)
    return g0, g1, s0, s1, None, None, None, None, None, None


def _setup_with_grad(ctx, inputs, output):
    _setup_context(ctx, inputs, output)
    ctx.set_materialize_grads(False)  # the gradient outputs take no upstream: skip zero-filling one
    ctx.grads = output[1:]


def _backward_with_grad(ctx, grad, _grad0=None, _grad1=None):
    if grad is None:
        return (None,) * 11
    if torch.is_grad_enabled() or ctx.grads is None:
        # create_graph: a product with the saved gradient (a constant) would hide the second
        # derivative, so take the recomputing path, whose op is differentiable again. The same
        # path serves a second backward (retain_graph), after the first consumed the saved buffers.
        return _backward_reduced(ctx, grad)
    grads, ctx.grads = ctx.grads, None
    x0, x1, shift0, shift1 = ctx.saved_tensors
    up = grad.to(grads[0].dtype)
    g0, g1 = (up * grads[0]).to(x0.dtype), (up * grads[1]).to(x1.dtype)  # traced graphs stay functional
    del grads
    s0, s1 = _shift_grads(ctx.needs_input_grad, shift0, shift1, g0, g1)
    return g0, g1, s0, s1, None, None, None, None, None, None, None


adversarial_loss.register_autograd(_backward_reduced, setup_context=_setup_context)
adversarial_loss_and_grad.register_autograd(_backward_with_grad, setup_context=_setup_with_grad)
adversarial_loss_terms.register_autograd(_backward_terms, setup_context=_setup_context)


def _take_grads(ctx, grad: Tensor, used: tuple[bool, bool] = (True, True)) -> Optional[tuple]:
    """The gradients the forward pass saved on ``ctx`` (the first two entries of ``ctx.grads``; any
    further entries ride along and come back with them), scaled by the upstream ``grad`` in place and
    handed over (autograd can then keep them as .grad without a copy; nothing else holds them), or
    None where the caller must recompute: under ``create_graph`` (a product with a saved constant
    would hide the second derivative) or for a second backward after the first took them. Sides not
    ``used`` are left alone (the shared empty side). An upstream of exactly 1 (``loss.backward()``)
    needs no pass at all; on the CPU reading it is free."""
    grads = ctx.grads
    if grads is None or torch.is_grad_enabled():
        return None
    ctx.grads = None
    if not grad.is_cpu or grad.item() != 1.0:
        for g, use in zip(grads, used):
            if use:
                g.mul_(grad)
    return grads


class LossAndGrad(torch.autograd.Function):
    """Eager twin of ``pygan::adversarial_loss_and_grad``: the same kernels without the custom-op
    dispatch, which at small sizes costs more than the kernel. It takes the op's constants as one
    tuple (autograd inspects every argument of ``apply``), returns the loss only and keeps the
    gradients on its context (one output is the cheapest node autograd records); its backward hands
    them over. pygan.losses uses it outside ``torch.compile`` and the registered op inside."""

    @staticmethod
    def forward(ctx, x0, x1, shift0, shift1, consts):
        out, grad0, grad1 = _loss_and_grad(x0, x1, shift0, shift1, *consts, share_empty=True)
        # Two attributes (each costs a fifth of a microsecond): the gradients with what their
        # backward needs besides (the logits' dtypes, whether a shift takes a gradient), and the
        # constants for the recomputing path.
        ctx.grads = (grad0, grad1, x0.dtype, x1.dtype, shift0 is not None or shift1 is not None)
        ctx.consts = consts
        ctx.save_for_backward(x0, x1, shift0, shift1)
        return out

    @staticmethod
    def backward(ctx, grad):
        needs = ctx.needs_input_grad
        used = (needs[0] or needs[2], needs[1] or needs[3])  # a shift's gradient sums its side's
        grads = _take_grads(ctx, grad, used)
        if grads is None:
            return _backward_reduced(ctx, grad, LossBackward.apply)[:4] + (None,)
        g0, g1, d0, d1, shifted = grads
        if g0.dtype is not d0 and used[0]:
            g0 = g0.to(d0)
        if g1.dtype is not d1 and used[1]:
            g1 = g1.to(d1)
        s0 = s1 = None
        if shifted:
            _, _, shift0, shift1 = ctx.saved_tensors
            s0, s1 = _shift_grads(needs, shift0, shift1, g0, g1)
        return g0 if needs[0] else None, g1 if needs[1] else None, s0, s1, None


class GeneratorLossAndGrad(torch.autograd.Function):
    """:class:`LossAndGrad` for a loss of one side, G's own (``x`` on side 1; side 0, the real
    logits, is out of the loss): the same kernel call, with the absent side the shared empty tensor
    made here rather than handed in. Every non-relativistic generator step takes this path, where
    the two-sided call's extra frames and node input were a twentieth of its host time."""

    @staticmethod
    def forward(ctx, x, consts):
        out_dtype, acc = _PAIR_DTYPES[x.dtype, x.dtype]
        out = scalar(out_dtype, x.device)
        grad = torch.empty_like(x) if x.dtype is acc else x.new_empty(x.shape, dtype=acc)
        none = shared_empty(x.dtype, x.device)  # no element: never read or written
        _forward(none, x, None, None, *consts, none, x, out, none, grad)
        ctx.grads, ctx.consts = (grad, x.dtype), consts
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):
        grads = _take_grads(ctx, grad, (True, False))
        if grads is None:  # create_graph or a second backward: the recomputing, differentiable op
            return _recompute(None, *ctx.saved_tensors, ctx.consts, grad)[0], None
        g, dtype = grads
        return (g if g.dtype is dtype else g.to(dtype)), None


def _recompute(x0: Optional[Tensor], x1: Tensor, consts: tuple, up: Tensor) -> tuple:
    """The gradients of the reduced loss op for the upstream ``up``, recomputed by the
    differentiable :class:`LossBackward` (create_graph, or a second backward after the saved ones
    were handed over): ``(d/dx0, d/dx1)``, or ``(d/dx1,)`` where ``x0`` is None (side 0 out of the
    loss, G's own). No shifts."""
    if x0 is None:
        none = shared_empty(x1.dtype, x1.device)
        return LossBackward.apply(none, x1, None, None, *consts, up.contiguous(), None, None, 1)[1:]
    return LossBackward.apply(x0, x1, None, None, *consts, up.contiguous(), None, None, 1)


def _node_recompute(x0: Optional[Tensor], x1: Tensor, term0: int, term1: int, sign0: float, sign1: float,
                    alpha: float, reduction: int, up: Tensor, mode: int) -> tuple:
    """The gradients a C++ node of pygan._autograd (CPU backend) cannot hand over from its forward
    pass: under create_graph, recorded (:func:`_recompute`, :func:`_paired_recorded`,
    :func:`_averaged_recorded`); for a second backward through a retained graph, a relativistic
    loss's kernel call again (the same bits, as its Python node gives)."""
    consts = (term0, term1, sign0, sign1, alpha, reduction, "cpu")
    if mode == 0:
        return _recompute(x0, x1, consts, up)
    if torch.is_grad_enabled():
        return (_paired_recorded if mode == PAIRED else _averaged_recorded)(x0, x1, consts, up)
    _, g0, g1 = _relative(mode, x0, x1, consts)
    return g0.mul_(up), g1.mul_(up)


_nodes = node_module("adversarial_loss", _node_recompute)


def _offer_node(x0: Optional[Tensor], x1: Tensor, consts: tuple, mode: int) -> Optional[Tensor]:
    """The reduced loss through pygan._autograd's C++ node (``mode`` 0: the loss of both sides, or
    of side 1 alone where ``x0`` is None; PAIRED, AVERAGED: a relativistic loss), or None where that
    does not apply: another backend than the CPU's, or a tensor subclass (whose own dispatch must
    see the call)."""
    if (type(x1) is Tensor and (x0 is None or type(x0) is Tensor)
            and _backend.resolve(consts[6], x1.device) == "cpu"):
        nodes = _nodes()
        if nodes is not None:
            return nodes.loss_and_grad(x0, x1, *consts[:6], mode)
    return None


def _loss_and_grad_node(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                        consts: tuple) -> Optional[Tensor]:
    """:class:`LossAndGrad`'s loss through the C++ node (:func:`_offer_node`), sides without shifts."""
    return _offer_node(x0, x1, consts, 0) if shift0 is None and shift1 is None else None


def _generator_loss_and_grad_node(x: Tensor, consts: tuple) -> Optional[Tensor]:
    """:class:`GeneratorLossAndGrad`'s loss through the C++ node (:func:`_offer_node`)."""
    return _offer_node(None, x, consts, 0)


def _paired_node(a: Tensor, b: Tensor, consts: tuple) -> Optional[Tensor]:
    """:class:`PairedLossAndGrad`'s loss through the C++ node (:func:`_offer_node`)."""
    return _offer_node(a, b, consts, PAIRED)


def _averaged_node(x0: Tensor, x1: Tensor, consts: tuple) -> Optional[Tensor]:
    """:class:`AveragedLossAndGrad`'s loss through the C++ node (:func:`_offer_node`)."""
    return _offer_node(x0, x1, consts, AVERAGED)


# csrc/adversarial_loss.h Relative: which relativistic loss relative_forward_cpu computes.
PAIRED, AVERAGED = 1, 2


def _relative(mode: int, x0: Tensor, x1: Tensor, consts: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """A relativistic loss and its gradients for an upstream of one, (loss, d/dx0, d/dx1), inputs in
    the compute dtype. PAIRED: the loss op at ``x0 - x1`` on the side whose sign in ``consts`` is not
    0, with gradients ``g`` and ``-g``. AVERAGED: the loss op at ``x0 - mean(x1)`` and
    ``x1 - mean(x0)``; through the means each side's gradient gathers minus the other side's summed
    gradient over its own size, ``d/dx0 = g0 - sum(g1) / n0`` and ``d/dx1 = g1 - sum(g0) / n1``.
    The CPU forms the differences, means and corrections inside one kernel call; the other backends
    compose them from native ops around the loss kernel."""
    term0, term1, sign0, sign1, alpha, reduction, backend = consts
    device = x0.device
    if _backend.resolve(backend, device) == "cpu":
        out = scalar(_PAIR_DTYPES[x0.dtype, x1.dtype][0], device)
        grad0, grad1 = torch.empty_like(x0), torch.empty_like(x1)
        s0 = _c_side(x0, term0, sign0, None) if mode == AVERAGED or sign0 else _c_side(x0, term1, sign1, None)
        call_c("cpu", device, "relative_forward", s0, _c_side(x1, term1, sign1, None), mode, alpha,
               reduction, out.data_ptr(), DTYPE_CODES[out.dtype], grad0.data_ptr(), grad1.data_ptr())
        return out, grad0, grad1
    if mode == PAIRED:
        side = 0 if sign0 else 1
        x0, x1 = _paired_sides(torch.sub(x0, x1), side)
        out, grad0, grad1 = _loss_and_grad(x0, x1, None, None, *consts, share_empty=True)
        g = (grad0, grad1)[side]
        return out, g, torch.neg(g)
    out, grad0, grad1 = _loss_and_grad(x0, x1, x1.mean(), x0.mean(), *consts)
    return (out, *_averaged_corrections(grad0, grad1, torch.sub))


def _averaged_corrections(g0: Tensor, g1: Tensor, sub) -> tuple[Tensor, Tensor]:
    """``(g0 - sum(g1) / n0, g1 - sum(g0) / n1)`` with ``sub`` = torch.sub (new tensors,
    differentiable) or Tensor.sub_ (in place)."""
    s0, s1 = g0.sum(), g1.sum()
    return sub(g0, s1, alpha=1.0 / g0.numel()), sub(g1, s0, alpha=1.0 / g1.numel())


def _relative_grads(ctx, grad: Tensor, mode: int) -> Optional[tuple]:
    """The gradients of a relativistic node for the upstream ``grad`` (:func:`_take_grads`); for a
    second backward (retain_graph) the same kernel call again, so that every backward without
    create_graph gives the same bits. None under create_graph."""
    used = ctx.needs_input_grad[:2]
    grads = _take_grads(ctx, grad, used)
    if grads is None and not torch.is_grad_enabled():
        ctx.grads = _relative(mode, *ctx.saved_tensors, ctx.consts)[1:]
        grads = _take_grads(ctx, grad, used)
    return grads


class PairedLossAndGrad(torch.autograd.Function):
    """The relativistic pairing loss in one node (:func:`_relative` PAIRED) of ``a`` and ``b``.
    Forming the difference inside the node saves the subtraction's autograd node, which costs more
    than the kernel at training sizes. ``a`` and ``b`` share the compute dtype (pygan.losses casts
    otherwise)."""

    @staticmethod
    def forward(ctx, a, b, consts):
        out, grad_a, grad_b = _relative(PAIRED, a, b, consts)
        ctx.grads, ctx.consts = (grad_a, grad_b), consts
        ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        needs = ctx.needs_input_grad
        grads = _relative_grads(ctx, grad, PAIRED)
        if grads is None:  # create_graph: recompute the gradient at a - b differentiably
            grads = _paired_recorded(*ctx.saved_tensors, ctx.consts, grad)
        return grads[0] if needs[0] else None, grads[1] if needs[1] else None, None


class AveragedLossAndGrad(torch.autograd.Function):
    """The relativistic average loss in one node (:func:`_relative` AVERAGED). Taking the means
    inside the node saves their autograd nodes and the shift gradients, which cost three times the
    rest of the loss at training sizes. Both inputs are in the compute dtype."""

    @staticmethod
    def forward(ctx, x0, x1, consts):
        out, grad0, grad1 = _relative(AVERAGED, x0, x1, consts)
        ctx.grads, ctx.consts = (grad0, grad1), consts
        ctx.save_for_backward(x0, x1)
        return out

    @staticmethod
    def backward(ctx, grad):
        needs = ctx.needs_input_grad
        grads = _relative_grads(ctx, grad, AVERAGED)
        if grads is None:  # create_graph: recompute with means that autograd sees
            grads = _averaged_recorded(*ctx.saved_tensors, ctx.consts, grad)
        return grads[0] if needs[0] else None, grads[1] if needs[1] else None, None


def _paired_recorded(a: Tensor, b: Tensor, consts: tuple, grad: Tensor) -> tuple[Tensor, Tensor]:
    """The relativistic pairing loss's gradients (d/da, d/db) for the upstream ``grad``, recorded
    (create_graph): the differentiable :class:`LossBackward` at ``a - b``."""
    side = 0 if consts[2] else 1
    x0, x1 = _paired_sides(a - b, side)
    g = LossBackward.apply(x0, x1, None, None, *consts, grad.contiguous(), None, None, 1)[side]
    return g, -g


def _averaged_recorded(x0: Tensor, x1: Tensor, consts: tuple, grad: Tensor) -> tuple[Tensor, Tensor]:
    """The relativistic average loss's gradients for the upstream ``grad``, recorded (create_graph):
    :class:`LossBackward` with means that autograd sees, and the corrections through them."""
    g0, g1 = LossBackward.apply(x0, x1, x1.mean(), x0.mean(), *consts, grad.contiguous(), None, None, 1)
    return _averaged_corrections(g0, g1, torch.sub)


def _paired_sides(diff: Tensor, side: int) -> tuple[Tensor, Tensor]:
    """(x0, x1) with ``diff`` on ``side`` and the shared empty tensor on the other."""
    other = empty(diff.dtype, diff.device)
    return (diff, other) if side == 0 else (other, diff)


class LossBackward(torch.autograd.Function):
    """Eager twin of ``pygan::adversarial_loss_backward`` (as :class:`LossAndGrad` is of its op):
    the create_graph backward of the training path calls it, and its own backward calls it again,
    so a gradient of a gradient pays no custom-op dispatch."""

    @staticmethod
    def forward(ctx, *inputs):
        out = _loss_backward(*inputs)
        _setup_loss_backward(ctx, inputs, out, LossBackward.apply)
        return out

    @staticmethod
    def backward(ctx, gg0, gg1):
        return _loss_backward_backward(ctx, gg0, gg1)


# ---------------------------------------------------------------------------------------------
# How callers run these ops: the registered op where torch.compile traces (it sees an ordinary
# PyTorch op), the eager twin elsewhere (no custom-op dispatch). The choice is made here only.
# ---------------------------------------------------------------------------------------------

def _registered_loss_and_grad(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
                              consts: tuple) -> Tensor:
    """``pygan::adversarial_loss_and_grad(x0, x1, shift0, shift1, *consts)``'s reduced loss,
    differentiable (twice); ``consts`` = (term0, term1, sign0, sign1, alpha, reduction, backend)."""
    return adversarial_loss_and_grad(x0, x1, shift0, shift1, *consts)[0]


def _registered_generator_loss_and_grad(x: Tensor, consts: tuple) -> Tensor:
    """:func:`_registered_loss_and_grad` with ``x`` on side 1 and side 0 empty (G's own loss)."""
    return adversarial_loss_and_grad(empty(x.dtype, x.device), x, None, None, *consts)[0]


def _registered_paired(a: Tensor, b: Tensor, consts: tuple) -> Tensor:
    """The reduced loss op at ``a - b`` on the side whose sign in ``consts`` is not 0, differentiable
    (twice) in ``a`` and ``b``; ``consts`` as for :func:`call_loss_and_grad`."""
    x0, x1 = _paired_sides(a - b, 0 if consts[2] else 1)
    return adversarial_loss_and_grad(x0, x1, None, None, *consts)[0]


def _registered_averaged(x0: Tensor, x1: Tensor, consts: tuple) -> Tensor:
    """The reduced loss op at ``x0 - mean(x1)`` and ``x1 - mean(x0)``, differentiable (twice) in
    both; ``consts`` as for :func:`call_loss_and_grad`."""
    return adversarial_loss_and_grad(x0, x1, x1.mean(), x0.mean(), *consts)[0]


# Each op's one call: the registered op where torch.compile traces, else the eager twin.
call_loss_and_grad = twin_call(LossAndGrad, _registered_loss_and_grad, "call_loss_and_grad",
                               _loss_and_grad_node)
call_generator_loss_and_grad = twin_call(GeneratorLossAndGrad, _registered_generator_loss_and_grad,
                                         "call_generator_loss_and_grad", _generator_loss_and_grad_node)
call_paired_loss_and_grad = twin_call(PairedLossAndGrad, _registered_paired, "call_paired_loss_and_grad",
                                      _paired_node)
call_averaged_loss_and_grad = twin_call(AveragedLossAndGrad, _registered_averaged, "call_averaged_loss_and_grad",
                                        _averaged_node)


def call_averaged_minimax(x0: Tensor, x1: Tensor, consts: tuple,
                          g_consts: tuple) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`call_minimax` for the relativistic average loss (the logits in the compute dtype): both
    players' losses at ``x0 - mean(x1)`` and ``x1 - mean(x0)`` (``consts`` D's, ``g_consts`` G's;
    the sides' terms and signs, mean reduction) and their gradients through the means,
    ``(d_loss, g_loss, d_grad0, d_grad1, g_grad0, g_grad1)``. On the CPU one kernel call takes the
    means, both losses and the corrections; elsewhere one minimax pass and the corrections."""
    if not torch.compiler.is_compiling() and _backend.resolve(consts[6], x0.device) == "cpu":
        out_dtype = _PAIR_DTYPES[x0.dtype, x1.dtype][0]
        d_loss, g_loss = scalar(out_dtype, x0.device), scalar(out_dtype, x0.device)
        grads = [torch.empty_like(x) for x in (x0, x1, x0, x1)]
        call_c("cpu", x0.device, "averaged_minimax", _c_side(x0, consts[0], consts[2], None),
               _c_side(x1, consts[1], consts[3], None), _c_side(x0, g_consts[0], g_consts[2], None),
               _c_side(x1, g_consts[1], g_consts[3], None), consts[4], d_loss.data_ptr(), g_loss.data_ptr(),
               DTYPE_CODES[out_dtype], *[g.data_ptr() for g in grads])
        return d_loss, g_loss, *grads
    d_loss, g_loss, d0, d1, g0, g1 = call_minimax(x0, x1, x1.mean(), x0.mean(), *consts[:4], *g_consts[:4],
                                                  consts[4], consts[6])
    return (d_loss, g_loss, *_averaged_corrections(d0, d1, torch.sub), *_averaged_corrections(g0, g1, torch.sub))


def call_minimax(*args) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``pygan::adversarial_minimax(*args)``: both players' losses and upstream gradients."""
    if torch.compiler.is_compiling():
        return adversarial_minimax(*args)
    return _minimax(*args)
