"""Triton kernels of the fused bias + LeakyReLU with a bit-packed mask (as csrc/cuda/activation.cu).

Forward: y = leaky(x + b[(i // inner) % channels]) and one mask bit per element, set where
x + b > 0; a program packs its BLOCK elements into BLOCK // 8 bytes, lowest bit first. Backward
(and the backward's backward): out = g * (bit ? 1 : slope).
"""

import triton
import triton.language as tl

BLOCK = 1024


@triton.jit(do_not_specialize=["n", "channels", "inner"])
def bias_leaky_kernel(x, bias, n, channels, inner, slope_hi, slope_lo, y, mask, HAS_BIAS: tl.constexpr,
                      ACC: tl.constexpr, BLOCK: tl.constexpr):
    slope = tl.cast(slope_hi, ACC) + tl.cast(slope_lo, ACC)  # float32 pair: float64-exact slopes
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    v = tl.load(x + offs, mask=ok, other=0.0).to(ACC)
    if HAS_BIAS:
        v += tl.load(bias + (offs // inner) % channels, mask=ok, other=0.0).to(ACC)
    on = v > 0
    tl.store(y + offs, tl.where(on, v, v * slope).to(y.dtype.element_ty), mask=ok)
    bits = tl.reshape(tl.where(on & ok, 1, 0), (BLOCK // 8, 8)) << tl.arange(0, 8)[None, :]
    byte = pid * (BLOCK // 8) + tl.arange(0, BLOCK // 8)
    tl.store(mask + byte, tl.sum(bits, axis=1).to(tl.uint8), mask=byte * 8 < n)


@triton.jit(do_not_specialize=["n"])
def leaky_grad_kernel(g, n, mask, slope_hi, slope_lo, out, ACC: tl.constexpr, BLOCK: tl.constexpr):
    slope = tl.cast(slope_hi, ACC) + tl.cast(slope_lo, ACC)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    byte = tl.load(mask + offs // 8, mask=ok, other=0).to(tl.int32)
    on = ((byte >> (offs % 8).to(tl.int32)) & 1) != 0
    v = tl.load(g + offs, mask=ok, other=0.0).to(ACC)
    tl.store(out + offs, tl.where(on, v, v * slope).to(out.dtype.element_ty), mask=ok)
