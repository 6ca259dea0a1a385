"""Kernel sums for MMD as a registered PyTorch op (kernels: csrc/kernel_sums.h,
csrc/cpu/kernel_sums.cpp + kernel_sum_tiles.cpp, csrc/cuda/kernel_sums.cu,
triton_kernels/kernel_sums.py). Tiled: memory O(N (d + P)), never the N x N kernel matrix.

``pygan::kernel_sums(z, sq_norms, labels, kind, params, coef0, degree, backend)`` returns a
(B, 1 + 2P) float64 tensor: per kernel parameter b, ``[total, u_0..u_{P-1}, q_0..q_{P-1}]`` with

    total = sum_{i != j} k(z_i, z_j),   u_p = sum_{i != j} k(z_i, z_j) L_jp,   q_p = sum_{i != j} L_ip k(z_i, z_j) L_jp

from which :func:`block_sums` forms the sums over the XX, XY and YY blocks for each label column.
Inputs arrive validated (pygan.metrics checks them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import backend as _backend
from .launch import DTYPE_CODES, call_c, compute_dtype, device_context, triton_acc

# csrc/kernel_sums.h KernelKind; the constant c each kind takes from the bandwidth sigma.
KINDS = {"gaussian": 0, "laplace": 1, "imq": 2, "polynomial": 3}
# csrc/kernel_sums.h KERNEL_TILE (rows and columns per tile on every backend; the Triton kernel
# gets it as TILE), MAX_KERNEL_PARAMS and DIRECT_BELOW; pygan._C reports them (kernel_tile, max_kernel_params,
# direct_below) and a test compares.
TILE = 64
MAX_PARAMS = 8
DIRECT_BELOW = 1.0 / 64.0  # csrc/kernel_sums.h: squared distances below this share of the norms' sum come from the differences
MAX_LABELS_CUDA = 256  # label columns per CUDA launch


def kernel_constant(kind: str, bandwidth: float) -> float:
    """c of csrc/kernel_sums.h for ``kind`` at bandwidth sigma: 1/(2 sigma^2) gaussian,
    1/sigma laplace, 1/sigma^2 inverse multiquadric."""
    return {"gaussian": 0.5 / bandwidth**2, "laplace": 1.0 / bandwidth, "imq": 1.0 / bandwidth**2}[kind]


def _run(z: Tensor, sq_norms: Tensor, labels: Tensor, kind: int, params: list[float], coef0: float,
         degree: int, backend: str) -> Tensor:
    n, d = z.shape
    P = labels.shape[1]
    B = len(params)
    name = _backend.resolve(backend, z.device)
    tiles = -(-n // TILE)
    partials = torch.zeros((max(tiles, 1), B, 1 + 2 * P), dtype=torch.float64, device=z.device)
    if n == 0:
        return partials.sum(0)
    if name in ("cpu", "cuda"):
        # The CPU loops take float32 and float64; on CUDA every float dtype.
        zc = z if name == "cuda" or z.dtype in (torch.float32, torch.float64) else z.float()
        call_c(name, z.device, "kernel_sums", zc.data_ptr(), DTYPE_CODES[zc.dtype], n, d, sq_norms.data_ptr(),
               labels.data_ptr(), P, kind, params, coef0, degree, partials.data_ptr())
    else:
        k, _ = _backend._load_triton("kernel_sums")
        acc = compute_dtype(z.dtype)
        upcast = z.dtype == torch.bfloat16 and _backend.triton_interpreted()
        precision = "tf32x3" if z.dtype == torch.float32 or upcast else ("ieee" if acc == torch.float64 else None)
        params_t = torch.tensor(params, dtype=acc).to(z.device, non_blocking=True)
        with device_context(z.device):
            k.kernel_sums_kernel[(tiles,)](
                z, sq_norms, labels, params_t, partials, n, d, P, coef0, KIND=kind, NB=B,
                NBP=max(2, 1 << (B - 1).bit_length()), DEGREE=degree,
                PB=max(16, 1 << (P - 1).bit_length()), ACC=triton_acc(acc),
                PRECISION=precision, UPCAST=upcast,
                DIRECT=DIRECT_BELOW, LABEL_PRECISION="ieee" if acc == torch.float64 else "tf32x3",
                TILE=TILE, BK=k.BK)
    # Tiles in order: the same sum whatever ran them.
    return partials.sum(0)


@torch.library.custom_op("pygan::kernel_sums", mutates_args=())
def kernel_sums(z: Tensor, sq_norms: Tensor, labels: Tensor, kind: int, params: list[float],
                coef0: float, degree: int, backend: str) -> Tensor:
    """(B, 1 + 2P) float64 sums of the kernel matrix of ``z`` (see the module docstring)."""
    return _run(z, sq_norms, labels, kind, params, coef0, degree, backend)


@kernel_sums.register_fake
def _(z, sq_norms, labels, kind, params, coef0, degree, backend):
    return z.new_empty((len(params), 1 + 2 * labels.shape[1]), dtype=torch.float64)


def block_sums(sums: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(S_xx, S_xy, S_yy), each (B, P): the off-diagonal kernel sums within X, between X and Y
    (counted once), and within Y, from the op's output: x'Kx, 1'Kx - x'Kx and (1-x)'K(1-x)."""
    P = (sums.shape[1] - 1) // 2
    total = sums[:, :1]
    u, q = sums[:, 1:1 + P], sums[:, 1 + P:]
    return q, u - q, total - 2 * u + q
