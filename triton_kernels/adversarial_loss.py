"""Triton kernels of the fused adversarial loss; the same design as csrc/cuda/adversarial_loss.cu.

One launch per direction covers both logit tensors: program t handles tile t of
[side 0 tiles | side 1 tiles]. The forward reduction is deterministic in that one launch: every
program stores its tile's weighted sum in ``partials[t]``, and the last program adds them in tile
order (reduce.py).
With GRAD the forward also writes the loss's gradient (upstream one), so backward is a multiply;
with TWO it evaluates a second loss (the generator's terms) on the same loaded logits (minimax).
"""

import triton
import triton.language as tl

from .math import term, term2
from .reduce import finish_two_in_last_program

BLOCK = 1024


@triton.jit
def _tile_logits(x_ptr, n, shift_ptr, tile, HAS_SHIFT: tl.constexpr, ACC: tl.constexpr,
                 BLOCK: tl.constexpr):
    offs = tile.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    u = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_SHIFT:
        u = u - tl.load(shift_ptr).to(ACC)
    return offs, mask, u


@triton.jit
def _side_weight(sign, n, MEAN: tl.constexpr, ACC: tl.constexpr):
    """A side's weight: sign / n for a mean, sign for a sum (csrc/adversarial_loss.h side_weight)."""
    w = tl.cast(sign, ACC)
    if MEAN:
        w = w / tl.cast(n, ACC)
    return w


@triton.jit
def _side_loss(u, offs, mask, n, sign, out_ptr, grad_ptr, alpha, TERM: tl.constexpr,
               REDUCE: tl.constexpr, MEAN: tl.constexpr, GRAD: tl.constexpr, ACC: tl.constexpr,
               STEPS: tl.constexpr):
    v, d = term(u, tl.cast(alpha, ACC), TERM, STEPS)
    w = _side_weight(sign, n, MEAN, ACC)
    if REDUCE:
        total = tl.sum(tl.where(mask, v, 0.0), axis=0) * w
        if GRAD:  # the loss's gradient for an upstream of one, from the same pass
            tl.store(grad_ptr + offs, (w * d).to(grad_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(out_ptr + offs, (v * w).to(out_ptr.dtype.element_ty), mask=mask)
        total = tl.zeros((), ACC)
    return total


@triton.jit
def _forward_side(x_ptr, n, shift_ptr, sign, out_ptr, grad_ptr, gsign, ggrad_ptr, alpha, tile,
                  HAS_SHIFT: tl.constexpr, TERM: tl.constexpr, GTERM: tl.constexpr, G: tl.constexpr,
                  REDUCE: tl.constexpr, MEAN: tl.constexpr, GRAD: tl.constexpr, ACC: tl.constexpr,
                  STEPS: tl.constexpr, BLOCK: tl.constexpr):
    """This side's tile of the loss (TERM) and, with G, of the second loss (GTERM, minimax) on the
    same loaded logits."""
    offs, mask, u = _tile_logits(x_ptr, n, shift_ptr, tile, HAS_SHIFT, ACC, BLOCK)
    total = _side_loss(u, offs, mask, n, sign, out_ptr, grad_ptr, alpha, TERM, REDUCE, MEAN, GRAD,
                       ACC, STEPS)
    if G:
        total_g = _side_loss(u, offs, mask, n, gsign, out_ptr, ggrad_ptr, alpha, GTERM, REDUCE, MEAN,
                             GRAD, ACC, STEPS)
    else:
        total_g = tl.zeros((), ACC)
    return total, total_g


# Sizes are never specialized: n == 1 would otherwise become a compile-time constant.
# Minimax (TWO): a second loss over the same logits, GTERM0 / GTERM1 with signs gsign0 / gsign1, its
# gradients in ggrad0 / ggrad1 and its scalar in gout; G0 / G1 say which sides enter it (only with TWO).
@triton.jit(do_not_specialize=["n0", "n1", "tiles0"])
def forward_kernel(x0, n0, sh0, sign0, out0, grad0, x1, n1, sh1, sign1, out1, grad1, out, partials,
                   counter, alpha, tiles0, gsign0, ggrad0, gsign1, ggrad1, gout,
                   HAS_SH0: tl.constexpr, HAS_SH1: tl.constexpr, TERM0: tl.constexpr,
                   TERM1: tl.constexpr, REDUCE: tl.constexpr, MEAN: tl.constexpr, GRAD: tl.constexpr,
                   ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr,
                   TWO: tl.constexpr = False, GTERM0: tl.constexpr = 0, GTERM1: tl.constexpr = 0,
                   G0: tl.constexpr = False, G1: tl.constexpr = False):
    pid = tl.program_id(0)
    if pid < tiles0:
        total, total_g = _forward_side(x0, n0, sh0, sign0, out0, grad0, gsign0, ggrad0, alpha, pid,
                                       HAS_SH0, TERM0, GTERM0, G0, REDUCE, MEAN, GRAD, ACC,
                                       STEPS, BLOCK)
    else:
        total, total_g = _forward_side(x1, n1, sh1, sign1, out1, grad1, gsign1, ggrad1, alpha,
                                       pid - tiles0, HAS_SH1, TERM1, GTERM1, G1, REDUCE, MEAN,
                                       GRAD, ACC, STEPS, BLOCK)
    if REDUCE:
        finish_two_in_last_program(total, total_g, partials, counter, out, gout, 1.0, TWO, ACC, BLOCK)


@triton.jit
def _backward_side(x_ptr, n, shift_ptr, sign, up_scalar, up_ptr, grad_ptr, alpha, tile,
                   HAS_SHIFT: tl.constexpr, TERM: tl.constexpr, MEAN: tl.constexpr,
                   UP_EL: tl.constexpr, ORDER: tl.constexpr, ACC: tl.constexpr, STEPS: tl.constexpr,
                   BLOCK: tl.constexpr):
    offs, mask, u = _tile_logits(x_ptr, n, shift_ptr, tile, HAS_SHIFT, ACC, BLOCK)
    if ORDER == 2:
        d = term2(u, tl.cast(alpha, ACC), TERM, STEPS)
    else:
        v, d = term(u, tl.cast(alpha, ACC), TERM, STEPS)
    scale = up_scalar * _side_weight(sign, n, MEAN, ACC)
    if UP_EL:
        scale = tl.load(up_ptr + offs, mask=mask, other=0.0).to(ACC) * scale
    tl.store(grad_ptr + offs, (scale * d).to(grad_ptr.dtype.element_ty), mask=mask)


# Backward of order ORDER (csrc/adversarial_loss.h loss_backward_cpu): grad_k = U * w_k * E_k *
# term_k^(ORDER), U the value at `up` (UP) or 1, E_k the elements of up_k (UP_EL) or 1.
@triton.jit(do_not_specialize=["n0", "n1", "tiles0"])
def backward_kernel(x0, n0, sh0, sign0, up0, grad0, x1, n1, sh1, sign1, up1, grad1, up, alpha,
                    tiles0, HAS_SH0: tl.constexpr, HAS_SH1: tl.constexpr, TERM0: tl.constexpr,
                    TERM1: tl.constexpr, MEAN: tl.constexpr, UP: tl.constexpr, UP_EL: tl.constexpr,
                    ORDER: tl.constexpr, ACC: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if UP:
        up_scalar = tl.load(up).to(ACC)
    else:
        up_scalar = tl.full((), 1.0, ACC)
    if pid < tiles0:
        _backward_side(x0, n0, sh0, sign0, up_scalar, up0, grad0, alpha, pid, HAS_SH0, TERM0, MEAN,
                       UP_EL, ORDER, ACC, STEPS, BLOCK)
    else:
        _backward_side(x1, n1, sh1, sign1, up_scalar, up1, grad1, alpha, pid - tiles0, HAS_SH1,
                       TERM1, MEAN, UP_EL, ORDER, ACC, STEPS, BLOCK)
