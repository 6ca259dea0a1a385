"""Triton kernel sums for MMD (as csrc/kernel_sums.h and csrc/cuda/kernel_sums.cu).

Program I takes row tile I of the pooled sample and walks the column tiles J >= I, never holding
more than one TILE x TILE block of the kernel matrix: the dot products by ``tl.dot`` over BK-wide
feature slices (tensor cores: bf16/fp16 natively, float32 as tf32x3, which keeps float32 accuracy),
squared distances from them and the row norms (from the differences for near-duplicate pairs), the kernel for each of NB bandwidths, and the label
products K @ L_J by a second ``tl.dot`` (tf32x3, or float64). Sums go to float64 accumulators and then to program I's own
slot of ``partials`` ([total, u_0..u_{P-1}, q_0..q_{P-1}] per bandwidth), added in tile order by the
caller: deterministic. Kinds: 0 gaussian exp(-s c), 1 laplace exp(-sqrt(s) c), 2 inverse
multiquadric 1 / sqrt(1 + s c), 3 polynomial (c a.b + coef0)^DEGREE.
"""

import triton
import triton.language as tl

BK = 32  # features per tl.dot slice (TILE comes from pygan._kernel_sums)


@triton.jit(do_not_specialize=["n", "d", "P"])
def kernel_sums_kernel(z, norms, labels, params, partials, n, d, P, coef0, KIND: tl.constexpr,
                       NB: tl.constexpr, NBP: tl.constexpr, DEGREE: tl.constexpr, PB: tl.constexpr,
                       ACC: tl.constexpr, PRECISION: tl.constexpr, LABEL_PRECISION: tl.constexpr, UPCAST: tl.constexpr, DIRECT: tl.constexpr, TILE: tl.constexpr, BK: tl.constexpr):
    I = tl.program_id(0)
    rows = I.to(tl.int64) * TILE + tl.arange(0, TILE)
    row_ok = rows < n
    ps = tl.arange(0, PB)
    p_ok = ps < P
    ni = tl.load(norms + rows, mask=row_ok, other=0.0).to(ACC)
    li = tl.load(labels + rows[:, None] * P + ps[None, :], mask=row_ok[:, None] & p_ok[None, :],
                 other=0.0).to(ACC)
    bs = tl.arange(0, NBP)
    acc_total = tl.zeros((NBP,), tl.float64)
    acc_u = tl.zeros((NBP, PB), tl.float64)
    acc_q = tl.zeros((NBP, PB), tl.float64)
    c0 = tl.cast(coef0, ACC)
    tiles = tl.cdiv(n, TILE)
    for J in range(I, tiles):
        cols = tl.arange(0, TILE).to(tl.int64) + J * TILE  # int64 offsets: n * d may pass 2^31
        col_ok = cols < n
        dot = tl.zeros((TILE, TILE), ACC)
        for k0 in range(0, d, BK):
            ks = k0 + tl.arange(0, BK)
            k_ok = ks < d
            a = tl.load(z + rows[:, None] * d + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(z + cols[:, None] * d + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
            if UPCAST:  # the interpreter's bfloat16 dot is wrong: multiply in float32 there
                a = a.to(ACC)
                b = b.to(ACC)
            dot += tl.dot(a, tl.trans(b), input_precision=PRECISION, out_dtype=ACC)
        nj = tl.load(norms + cols, mask=col_ok, other=0.0).to(ACC)
        # ||a - b||^2 from the norms, or from the differences for the near-duplicate pairs, whose
        # squared distance falls below DIRECT times the norms' sum (csrc/kernel_sums.h needs_direct).
        norm_sum = ni[:, None] + nj[None, :]
        s = norm_sum - 2.0 * dot
        if KIND != 3:
            near = s < DIRECT * norm_sum
            if tl.max(tl.max(near.to(tl.int32), axis=1), axis=0) > 0:  # few tiles hold such pairs
                direct = tl.zeros((TILE, TILE), ACC)
                for k in range(0, d):
                    ak = tl.load(z + rows * d + k, mask=row_ok, other=0.0).to(ACC)
                    bk = tl.load(z + cols * d + k, mask=col_ok, other=0.0).to(ACC)
                    diff = ak[:, None] - bk[None, :]
                    direct += diff * diff
                s = tl.where(near, direct, s)
        valid = row_ok[:, None] & col_ok[None, :] & (rows[:, None] != cols[None, :])
        lj = tl.load(labels + cols[:, None] * P + ps[None, :], mask=col_ok[:, None] & p_ok[None, :],
                     other=0.0).to(ACC)
        weight = tl.where(J == I, 1.0, 2.0)
        for b in tl.static_range(NB):
            c = tl.load(params + b).to(ACC)
            if KIND == 0:
                kv = tl.exp(-s * c)
            elif KIND == 1:
                kv = tl.exp(-tl.sqrt(s) * c)
            elif KIND == 2:
                kv = 1.0 / tl.sqrt(1.0 + s * c)
            else:
                base = c * dot + c0
                kv = base
                for _ in tl.static_range(DEGREE - 1):
                    kv = kv * base
            kv = tl.where(valid, kv, 0.0)
            rs = tl.sum(kv, axis=1)
            cs = tl.sum(kv, axis=0)
            m = tl.dot(kv, lj, input_precision=LABEL_PRECISION, out_dtype=ACC)
            q = tl.sum(li * m, axis=0)
            u = tl.sum(cs[:, None] * lj, axis=0) + tl.where(J > I, tl.sum(rs[:, None] * li, axis=0), 0.0)
            sel = bs == b
            acc_total += tl.where(sel, (weight * tl.sum(rs, axis=0)).to(tl.float64), 0.0)
            acc_u += tl.where(sel[:, None], u.to(tl.float64)[None, :], 0.0)
            acc_q += tl.where(sel[:, None], (weight * q).to(tl.float64)[None, :], 0.0)
    stride = 1 + 2 * P
    base = partials + I.to(tl.int64) * NB * stride + bs * stride
    b_ok = bs < NB
    tl.store(base, acc_total, mask=b_ok)
    both = b_ok[:, None] & p_ok[None, :]
    tl.store(base[:, None] + 1 + ps[None, :], acc_u, mask=both)
    tl.store(base[:, None] + 1 + P + ps[None, :], acc_q, mask=both)
