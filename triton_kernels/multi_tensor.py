"""Triton multi-tensor updates (as csrc/cuda/multi_tensor.cu): program (t, tile) updates one tile
of tensor t in place; ``dst`` and ``src`` are tables of the tensors' addresses (all of element type
DTYPE), so one launch covers every tensor. OP 0 clamps to [-bound, bound] (NaN passes through, as
torch.clamp lets it); OP 1 is the EMA step dst += w * (src - dst) with w read from ``scalar``.
"""

import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def multi_tensor_kernel(dst, src, sizes, scalar, OP: tl.constexpr, DTYPE: tl.constexpr, BLOCK: tl.constexpr):
    t = tl.program_id(0)
    d_ptr = tl.load(dst + t).to(tl.pointer_type(DTYPE))
    n = tl.load(sizes + t)
    offs = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    acc: tl.constexpr = tl.float64 if DTYPE == tl.float64 else tl.float32
    d = tl.load(d_ptr + offs, mask=mask).to(acc)
    c = tl.load(scalar).to(acc)
    if OP == 0:
        # where, not minimum / maximum: NaN passes through. Every result is d or the bound, which
        # the caller stores in DTYPE, so the store rounds nothing.
        d = tl.where(d < -c, -c, tl.where(d > c, c, d))
    else:
        s_ptr = tl.load(src + t).to(tl.pointer_type(DTYPE))
        s = tl.load(s_ptr + offs, mask=mask).to(acc)
        d = d + c * (s - d)
    tl.store(d_ptr + offs, d.to(DTYPE), mask=mask)
