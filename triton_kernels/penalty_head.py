"""Triton kernels of the gradient-penalty head (as csrc/cuda/penalty_head.cu).

Forward, one launch: program p takes ROWS rows (samples) of the inner gradient, viewed as
rows x cols, sums their squares in BLOCK_C-wide steps, writes each row's norm and derivative factor
phi'(n) / n scaled by weight / rows (and with HAS_VALUES its weight * phi(n)), and adds its rows' phi(n) to the deterministic reduction
(reduce.py). Backward is one elementwise pass: grad = (up * coef[row] + up_norms[row] / norms[row]) * g.
The kinds and phi match csrc/penalty_head.h: 0 two-sided (n - c)^2, 1 one-sided max(0, n - c)^2,
2 squared n^2.
"""

import triton
import triton.language as tl

from .reduce import finish_in_last_program

BLOCK = 1024


@triton.jit(do_not_specialize=["rows", "cols"])
def head_kernel(g, rows, cols, center_hi, center_lo, weight_hi, weight_lo, out, norms, coef, values, partials,
                counter, KIND: tl.constexpr, HAS_VALUES: tl.constexpr, ACC: tl.constexpr, ROWS: tl.constexpr,
                BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    # Float arguments arrive as float32: each parameter comes as a float32 pair whose sum in ACC
    # restores it to 48 bits (enough for float64 results within 1e-14).
    center = tl.cast(center_hi, ACC) + tl.cast(center_lo, ACC)
    weight = tl.cast(weight_hi, ACC) + tl.cast(weight_lo, ACC)
    scale = weight / tl.cast(rows, ACC)
    r = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_ok = r < rows
    acc = tl.zeros((ROWS, BLOCK_C), ACC)
    for start in range(0, cols, BLOCK_C):
        c = start + tl.arange(0, BLOCK_C)
        mask = row_ok[:, None] & (c < cols)[None, :]
        v = tl.load(g + r[:, None] * cols + c[None, :], mask=mask, other=0.0).to(ACC)
        acc += v * v
    s = tl.sum(acc, axis=1)
    n = tl.sqrt(s)
    if KIND == 2:
        phi = s
        k = tl.full((ROWS,), 2.0, ACC)
    else:
        excess = n - center
        if KIND == 1:
            excess = tl.maximum(excess, 0.0)
        phi = excess * excess
        k = tl.where(n > 0, 2.0 * excess / tl.where(n > 0, n, 1.0), 0.0)
    tl.store(norms + r, n, mask=row_ok)
    tl.store(coef + r, (k * scale).to(ACC), mask=row_ok)
    if HAS_VALUES:
        tl.store(values + r, (weight * phi).to(ACC), mask=row_ok)
    total = tl.sum(tl.where(row_ok, phi, 0.0), axis=0)
    finish_in_last_program(total, partials, counter, out, scale, ACC, BLOCK)


@triton.jit(do_not_specialize=["n", "cols"])
def head_backward_kernel(g, n, cols, coef, up, norms, up_norms, grad, HAS_UP_NORMS: tl.constexpr,
                         ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    row = offs // cols
    k = tl.load(up).to(ACC) * tl.load(coef + row, mask=mask, other=0.0)
    if HAS_UP_NORMS:
        nr = tl.load(norms + row, mask=mask, other=0.0)
        un = tl.load(up_norms + row, mask=mask, other=0.0)
        k += tl.where(nr > 0, un / tl.where(nr > 0, nr, 1.0), 0.0)
    v = tl.load(g + offs, mask=mask, other=0.0).to(ACC)
    tl.store(grad + offs, (k * v).to(grad.dtype.element_ty), mask=mask)
