"""Triton kernels of the fused adversarial loss; the same design as csrc/cuda/adversarial_loss.cu.

One launch per direction covers both logit tensors: program t handles tile t of
[side 0 tiles | side 1 tiles]. The forward reduction is deterministic in that one launch: every
program stores its tile's weighted sum in ``partials[t]``, and the last program adds them in tile
order (reduce.py).
With GRAD the forward also writes the loss's gradient (upstream one), so backward is a multiply.
"""

import triton
import triton.language as tl

from .math import term
from .reduce import finish_in_last_program

BLOCK = 1024


@triton.jit
def _tile_values(x_ptr, n, shift_ptr, sign, alpha, tile, HAS_SHIFT: tl.constexpr, TERM: tl.constexpr,
                 ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offs = tile.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    u = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_SHIFT:
        u = u - tl.load(shift_ptr).to(ACC)
    v, d = term(u, tl.cast(alpha, ACC), TERM, STEPS)
    return offs, mask, v, d


@triton.jit
def _forward_side(x_ptr, n, shift_ptr, sign, out_ptr, grad_ptr, alpha, tile, HAS_SHIFT: tl.constexpr,
                  TERM: tl.constexpr, REDUCE: tl.constexpr, MEAN: tl.constexpr, GRAD: tl.constexpr,
                  ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offs, mask, v, d = _tile_values(x_ptr, n, shift_ptr, sign, alpha, tile, HAS_SHIFT, TERM, ACC,
                                    STEPS, BLOCK)
    w = tl.cast(sign, ACC)
    if MEAN:
        w = w / tl.cast(n, ACC)
    if REDUCE:
        total = tl.sum(tl.where(mask, v, 0.0), axis=0) * w
        if GRAD:  # the loss's gradient for an upstream of one, from the same pass
            tl.store(grad_ptr + offs, (w * d).to(grad_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(out_ptr + offs, (v * w).to(out_ptr.dtype.element_ty), mask=mask)
        total = tl.zeros((), ACC)
    return total


# Sizes are never specialized: n == 1 would otherwise become a compile-time constant.
@triton.jit(do_not_specialize=["n0", "n1", "tiles0"])
def forward_kernel(x0, n0, sh0, sign0, out0, grad0, x1, n1, sh1, sign1, out1, grad1, out, partials,
                   counter, alpha, tiles0, HAS_SH0: tl.constexpr, HAS_SH1: tl.constexpr,
                   TERM0: tl.constexpr, TERM1: tl.constexpr, REDUCE: tl.constexpr,
                   MEAN: tl.constexpr, GRAD: tl.constexpr, ACC: tl.constexpr, STEPS: tl.constexpr,
                   BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if pid < tiles0:
        total = _forward_side(x0, n0, sh0, sign0, out0, grad0, alpha, pid, HAS_SH0, TERM0, REDUCE,
                              MEAN, GRAD, ACC, STEPS, BLOCK)
    else:
        total = _forward_side(x1, n1, sh1, sign1, out1, grad1, alpha, pid - tiles0, HAS_SH1, TERM1,
                              REDUCE, MEAN, GRAD, ACC, STEPS, BLOCK)
    if REDUCE:
        finish_in_last_program(total, partials, counter, out, 1.0, ACC, BLOCK)


@triton.jit
def _backward_side(x_ptr, n, shift_ptr, sign, up_scalar, up_ptr, grad_ptr, alpha, tile,
                   HAS_SHIFT: tl.constexpr, TERM: tl.constexpr, REDUCE: tl.constexpr,
                   MEAN: tl.constexpr, ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offs, mask, v, d = _tile_values(x_ptr, n, shift_ptr, sign, alpha, tile, HAS_SHIFT, TERM, ACC,
                                    STEPS, BLOCK)
    w = tl.cast(sign, ACC)
    if MEAN:
        w = w / tl.cast(n, ACC)
    if REDUCE:
        g = up_scalar * w * d
    else:
        g = tl.load(up_ptr + offs, mask=mask, other=0.0).to(ACC) * w * d
    tl.store(grad_ptr + offs, g.to(grad_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n0", "n1", "tiles0"])
def backward_kernel(x0, n0, sh0, sign0, up0, grad0, x1, n1, sh1, sign1, up1, grad1, up, alpha,
                    tiles0, HAS_SH0: tl.constexpr, HAS_SH1: tl.constexpr, TERM0: tl.constexpr,
                    TERM1: tl.constexpr, REDUCE: tl.constexpr, MEAN: tl.constexpr,
                    ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if REDUCE:
        up_scalar = tl.load(up).to(ACC)
    else:
        up_scalar = tl.zeros((), ACC)
    if pid < tiles0:
        _backward_side(x0, n0, sh0, sign0, up_scalar, up0, grad0, alpha, pid, HAS_SH0, TERM0, REDUCE,
                       MEAN, ACC, STEPS, BLOCK)
    else:
        _backward_side(x1, n1, sh1, sign1, up_scalar, up1, grad1, alpha, pid - tiles0, HAS_SH1,
                       TERM1, REDUCE, MEAN, ACC, STEPS, BLOCK)
