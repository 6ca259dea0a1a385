r"""Kernel two-sample statistics: MMD and KID, from fused tiled kernels that never hold the kernel
matrix (memory O((n + m) d), so 10^5 samples fit where an n x m matrix does not).

The squared maximum mean discrepancy of a kernel k between P and Q is

.. math::  \mathrm{MMD}^2 = E\,k(x, x') + E\,k(y, y') - 2 E\,k(x, y),

zero iff P = Q for a characteristic kernel (gaussian, laplace, inverse multiquadric). From samples,
the unbiased estimate (Gretton et al., 2012) drops the diagonal terms:

.. math::  \widehat{\mathrm{MMD}}^2_u = \frac{S_{xx}}{n(n-1)} + \frac{S_{yy}}{m(m-1)} - \frac{2 S_{xy}}{nm}

with :math:`S_{xx} = \sum_{i \ne j} k(x_i, x_j)` and likewise; the biased (V-statistic) form keeps
the diagonals and divides by :math:`n^2, m^2`. Kernels, with bandwidth :math:`\sigma`:
gaussian :math:`e^{-\|a-b\|^2 / 2\sigma^2}`, laplace :math:`e^{-\|a-b\| / \sigma}` (Euclidean),
imq :math:`(1 + \|a-b\|^2/\sigma^2)^{-1/2}`, polynomial :math:`(\gamma\, a \cdot b + c_0)^{\text{degree}}`
(default :math:`\gamma = 1/d, c_0 = 1`, degree 3: KID's kernel, Binkowski et al., 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor

from .._ops import backend as _backend
from .._ops.kernel_sums import KINDS, MAX_LABELS_CUDA, MAX_PARAMS, block_sums, kernel_constant, kernel_sums
from .._ops.launch import compute_dtype
from .two_sample import _check_permutations, _pair, p_value, permutation_statistics
from .._validate import positive_int

__all__ = ["KERNELS", "MMDResult", "KIDResult", "mmd2", "kid", "median_bandwidth"]

KERNELS = tuple(KINDS)

Bandwidth = Union[str, float, Sequence[float]]


@dataclass
class MMDResult:
    """``value``: the MMD^2 estimate per bandwidth (a (B,) float64 tensor; 0-d for one bandwidth or
    the polynomial kernel); ``p_value``: the permutation p-value of each (None without
    permutations); ``bandwidths``: the sigmas used (empty for the polynomial kernel)."""

    value: Tensor
    bandwidths: list[float]
    p_value: Optional[Tensor]
    permutations: int

    def __float__(self) -> float:
        return float(self.value)

    def as_dict(self) -> dict:
        return {"mmd2": self.value.tolist(), "bandwidths": self.bandwidths,
                "p_value": None if self.p_value is None else self.p_value.tolist(),
                "permutations": self.permutations}


@dataclass
class KIDResult:
    """Kernel inception distance: mean and standard deviation of the unbiased polynomial-kernel
    MMD^2 over ``subsets`` random subsets of ``subset_size`` samples from each side."""

    mean: float
    std: float
    subsets: int
    subset_size: int

    def as_dict(self) -> dict:
        return {"kid": self.mean, "kid_std": self.std, "subsets": self.subsets, "subset_size": self.subset_size}


def median_bandwidth(x: Any, y: Any, *, max_samples: int = 1000, seed: int = 0) -> float:
    """The median heuristic: the median Euclidean distance between distinct points of the pooled
    sample (a seeded random subset of ``max_samples`` of them when larger), in float64; for an even
    number of distances the mean of the two middle ones, as ``numpy.median``."""
    x, y = _pair(x, y)
    z = torch.cat([x, y]).double()
    if z.shape[0] > max_samples:
        idx = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:max_samples]
        z = z[idx.to(z.device)]
    dist = torch.pdist(z).sort().values
    # numpy's (and scikit-learn's) median: the mean of the two middle values of an even count
    # (torch.median takes the lower one).
    n = dist.numel()
    med = float((dist[(n - 1) // 2] + dist[n // 2]) / 2) if n else 0.0
    if not med > 0:
        raise ValueError("median_bandwidth: the pooled sample has no two distinct points; pass bandwidth=")
    return med


def _bandwidths(bandwidth: Bandwidth, x: Tensor, y: Tensor) -> list[float]:
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"bandwidth must be 'median', a positive float or a list of them, got {bandwidth!r}")
        return [median_bandwidth(x, y)]
    values = [bandwidth] if isinstance(bandwidth, (int, float)) else list(bandwidth)
    if not values or len(values) > MAX_PARAMS:
        raise ValueError(f"bandwidth takes 1 to {MAX_PARAMS} values per call, got {len(values)}")
    for v in values:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"every bandwidth must be a positive finite float, got {v!r}")
    return [float(v) for v in values]


def _prepare(x: Tensor, y: Tensor, kernel: str) -> tuple[Tensor, Tensor]:
    """The pooled sample and its squared row norms, in the compute dtype. The distance kernels get
    it centred, which keeps the kernels' ||a||^2 + ||b||^2 - 2 a.b accurate far from the origin;
    float16 / bfloat16 inputs are centred in float32 and stay there (rounding the centred values
    back would change the sample by half a unit in the last place)."""
    dtype = torch.promote_types(x.dtype, y.dtype)
    if dtype not in _backend.FLOAT_DTYPES:
        raise ValueError(f"x and y must be float16, bfloat16, float32 or float64, got {dtype}")
    acc = compute_dtype(dtype)
    z = torch.cat([x.to(dtype), y.to(dtype)])
    if kernel != "polynomial":
        z = z.to(acc)
        z = z - z.mean(0)
    z = z.contiguous()
    za = z.to(acc)
    return z, (za * za).sum(1).contiguous()


def mmd2(x: Any, y: Any, *, kernel: str = "gaussian", bandwidth: Bandwidth = "median",
         unbiased: bool = True, permutations: int = 0, seed: int = 0, degree: int = 3,
         gamma: Optional[float] = None, coef0: float = 1.0, backend: Optional[str] = None) -> MMDResult:
    """MMD^2 between samples ``x`` (n, d) and ``y`` (m, d) for each bandwidth in one pass, with a
    permutation p-value per bandwidth when ``permutations`` > 0 (see the module docstring).

    ``bandwidth``: ``"median"`` (:func:`median_bandwidth`), a float, or up to 8 floats evaluated
    together. ``degree``, ``gamma`` (default 1/d) and ``coef0`` parametrize the polynomial kernel.
    Inputs: float16, bfloat16, float32 (computed in float32) or float64, on the CPU or a CUDA GPU;
    the result is float64.
    """
    if kernel not in KINDS:
        raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
    x, y = _pair(x, y, min_size=2 if unbiased else 1)
    permutations = _check_permutations(permutations)
    backend = _backend.check_backend(backend)
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if kernel == "polynomial":
        if not isinstance(bandwidth, str) or bandwidth != "median":
            raise ValueError("the polynomial kernel takes degree, gamma and coef0, not bandwidth")
        positive_int("degree", degree)
        gamma = 1.0 / d if gamma is None else float(gamma)
        if not math.isfinite(gamma) or not math.isfinite(coef0):
            raise ValueError(f"gamma and coef0 must be finite, got {gamma} and {coef0}")
        sigmas, params = [], [gamma]
    else:
        sigmas = _bandwidths(bandwidth, x, y)
        params = [kernel_constant(kernel, s) for s in sigmas]
    z, sq_norms = _prepare(x, y, kernel)
    if kernel == "polynomial":
        diag = (gamma * sq_norms.double() + coef0) ** degree
    else:
        diag = torch.ones(n + m, dtype=torch.float64, device=z.device)

    def statistic(labels: Tensor) -> Tensor:
        sums = kernel_sums(z, sq_norms, labels, KINDS[kernel], params, float(coef0), int(degree), backend)
        sxx, sxy, syy = block_sums(sums)
        if unbiased:
            return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
        lx = labels.double()
        dx, dy = lx.T @ diag, (1 - lx).T @ diag
        return (sxx + dx) / n**2 + (syy + dy) / m**2 - 2 * sxy / (n * m)

    t = permutation_statistics(n, m, permutations, seed, statistic, chunk=MAX_LABELS_CUDA,
                               dtype=compute_dtype(z.dtype), device=z.device)  # (B, 1 + permutations)
    value = t[:, 0]
    p = p_value(value, t[:, 1:]) if permutations else None
    if len(params) == 1:
        value = value[0]
        p = None if p is None else p[0]
    return MMDResult(value, sigmas, p, permutations)


def kid(features_x: Any, features_y: Any, *, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, gamma: Optional[float] = None, coef0: float = 1.0, seed: int = 0,
        backend: Optional[str] = None) -> KIDResult:
    """Kernel inception distance (Binkowski et al., 2018) of two feature sets: the unbiased
    polynomial-kernel MMD^2 averaged over ``subsets`` draws of ``subset_size`` samples from each
    side without replacement. ``kid_std`` is the population standard deviation (ddof 0) of the
    subsets' values, as torch-fidelity and torchmetrics report it; a ``subset_size`` larger than
    either sample is an error, as there."""
    fx, fy = _pair(features_x, features_y, min_size=2)
    positive_int("subsets", subsets)
    positive_int("subset_size", subset_size)
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2 (an unbiased MMD^2 needs two samples), got {subset_size}")
    if subset_size > min(fx.shape[0], fy.shape[0]):
        raise ValueError(f"subset_size={subset_size} is larger than the samples ({fx.shape[0]} and {fy.shape[0]}); "
                         "pass a subset_size of at most the smaller one")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        ix = torch.randperm(fx.shape[0], generator=gen)[:subset_size].to(fx.device)
        iy = torch.randperm(fy.shape[0], generator=gen)[:subset_size].to(fy.device)
        values.append(float(mmd2(fx[ix], fy[iy], kernel="polynomial", degree=degree, gamma=gamma,
                                 coef0=coef0, backend=backend)))
    v = torch.tensor(values, dtype=torch.float64)
    return KIDResult(float(v.mean()), float(v.std(correction=0)), subsets, subset_size)
