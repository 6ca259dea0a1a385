r"""Exact divergences and distances: the ground truth that estimators and trained critics are
checked against. All in float64.

- :func:`kl_gaussians`: :math:`KL(N(\mu_0, \Sigma_0) \| N(\mu_1, \Sigma_1)) = \tfrac12[\mathrm{tr}(\Sigma_1^{-1}\Sigma_0)
  + (\mu_1-\mu_0)^\top \Sigma_1^{-1} (\mu_1-\mu_0) - k + \log\det\Sigma_1 - \log\det\Sigma_0]`.
- :func:`w1_1d`: the exact 1-Wasserstein distance between two 1-D empirical distributions,
  :math:`W_1 = \int |F_x(t) - F_y(t)|\,dt` (for equal sizes, the mean gap between sorted samples).
- :func:`jsd_discrete`: :math:`JSD(p, q) = \tfrac12 KL(p\|m) + \tfrac12 KL(q\|m)`, :math:`m = (p+q)/2`.
- :func:`f_divergence_1d`: any divergence of :mod:`pygan.divergences` between two 1-D densities,
  :math:`D_f(P\|Q) = \int q(x) f(p(x)/q(x))\,dx`, by composite Simpson quadrature.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..divergences import divergence as _divergence

__all__ = ["kl_gaussians", "w1_1d", "jsd_discrete", "f_divergence_1d", "gaussian_pdf"]


def _matrix(cov: Any, k: int) -> Tensor:
    c = torch.as_tensor(cov, dtype=torch.float64)
    if c.dim() == 0:
        return c * torch.eye(k, dtype=torch.float64)
    if c.dim() == 1:
        return torch.diag(c)
    return c


def kl_gaussians(mean0: Any, cov0: Any, mean1: Any, cov1: Any) -> float:
    """KL(N(mean0, cov0) || N(mean1, cov1)). Means are scalars or (k,) vectors; covariances are
    scalars (variance times the identity), (k,) diagonals or (k, k) matrices."""
    m0 = torch.as_tensor(mean0, dtype=torch.float64).reshape(-1)
    m1 = torch.as_tensor(mean1, dtype=torch.float64).reshape(-1)
    if m0.shape != m1.shape:
        raise ValueError(f"mean0 and mean1 must have one shape, got {tuple(m0.shape)} and {tuple(m1.shape)}")
    k = m0.shape[0]
    s0, s1 = _matrix(cov0, k), _matrix(cov1, k)
    for name, s in (("cov0", s0), ("cov1", s1)):
        if s.shape != (k, k):
            raise ValueError(f"{name} must be a scalar, ({k},) or ({k}, {k}), got {tuple(s.shape)}")
    l0 = torch.linalg.cholesky_ex(s0)
    l1 = torch.linalg.cholesky_ex(s1)
    for name, (_, info) in (("cov0", l0), ("cov1", l1)):
        if int(info) != 0:
            raise ValueError(f"{name} must be symmetric positive definite")
    l1 = l1[0]
    diff = (m1 - m0)[:, None]
    trace = torch.cholesky_solve(s0, l1).diagonal().sum()
    maha = (diff * torch.cholesky_solve(diff, l1)).sum()
    logdet = 2 * (l1.diagonal().log().sum() - l0[0].diagonal().log().sum())
    return float(0.5 * (trace + maha - k + logdet))


def _samples_1d(x: Any, name: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).flatten()
    if t.numel() == 0:
        raise ValueError(f"{name} is empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return t


def w1_1d(x: Any, y: Any) -> float:
    """The exact W1 distance between the empirical distributions of 1-D samples ``x`` and ``y``
    (any sizes): the area between their CDFs."""
    x, y = _samples_1d(x, "x").sort().values, _samples_1d(y, "y").sort().values
    grid = torch.cat([x, y]).sort().values
    gaps = grid.diff()
    fx = torch.searchsorted(x, grid[:-1], right=True).double() / x.numel()
    fy = torch.searchsorted(y, grid[:-1], right=True).double() / y.numel()
    return float(((fx - fy).abs() * gaps).sum())


def jsd_discrete(p: Any, q: Any, *, base: float = math.e) -> Tensor:
    """The Jensen-Shannon divergence of discrete distributions along the last dimension (inputs
    are normalized; zero entries contribute nothing). In nats, or bits with ``base=2``."""
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    for name, t in (("p", p), ("q", q)):
        if bool((t < 0).any()) or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must hold finite non-negative weights")
    p = p / p.sum(-1, keepdim=True)
    q = q / q.sum(-1, keepdim=True)
    m = 0.5 * (p + q)
    kl = lambda a: torch.where(a > 0, torch.xlogy(a, a) - torch.xlogy(a, m), torch.zeros_like(a)).sum(-1)  # noqa: E731
    return 0.5 * (kl(p) + kl(q)) / math.log(base)


def gaussian_pdf(mean: float, std: float) -> Callable[[Tensor], Tensor]:
    """The density of N(mean, std^2) as a function of a float64 tensor."""
    return lambda t: torch.exp(-0.5 * ((t - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def f_divergence_1d(name: str, p: Callable[[Tensor], Tensor], q: Callable[[Tensor], Tensor], *,
                    lower: float, upper: float, points: int = 200001, alpha: float | None = None) -> float:
    r""":math:`D_f(P\|Q) = \int q f(p/q)` for densities ``p`` and ``q`` (functions of a float64
    tensor) on [lower, upper], by composite Simpson's rule on ``points`` nodes (made odd); ``f``
    comes from :func:`pygan.divergences.divergence`. Where both densities underflow to 0 the
    integrand is 0."""
    f = _divergence(name, alpha=alpha).f
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"need finite lower < upper, got {lower} and {upper}")
    points = max(3, points | 1)
    t = torch.linspace(lower, upper, points, dtype=torch.float64)
    pt, qt = p(t), q(t)
    live = (pt > 0) | (qt > 0)
    vals = torch.where(live, qt * f(torch.where(live, pt / qt, torch.ones_like(pt))), torch.zeros_like(pt))
    w = torch.ones(points, dtype=torch.float64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return float((w * vals).sum() * (upper - lower) / (points - 1) / 3.0)
