r"""The f-divergences of f-GAN (Nowozin, Cseke and Tomioka, 2016, Tables 1 and 2).

For a convex, lower semicontinuous f with f(1) = 0,

.. math::  D_f(P \| Q) = E_Q[f(p/q)] \ge \sup_T \; E_P[T(x)] - E_Q[f^*(T(x))],

with the Fenchel conjugate :math:`f^*(t) = \sup_u (u t - f(u))`; the bound is tight at
:math:`T^*(x) = f'(p(x)/q(x))`. The critic is written :math:`T = g_f(v)` with an output activation
:math:`g_f` that maps a raw logit :math:`v` into :math:`\mathrm{dom}\, f^*`.

This module is the one Python source of truth for names and reference math: every entry gives
``f``, ``f_conj`` (:math:`f^*`), ``activation`` (:math:`g_f`), its inverse, ``f_prime`` and the domain
of :math:`f^*`, as float64 PyTorch functions. The loss kernels compute :math:`-g_f(v)` and
:math:`f^*(g_f(v))` in fused closed forms; the tests check those against the compositions here.

=================== ========================== =================================== ===================
name                f(u)                       f*(t)                               g_f(v)
=================== ========================== =================================== ===================
kl                  u log u                    exp(t - 1)                          v
reverse_kl          -log u                     -1 - log(-t)                        -exp(-v)
pearson             (u - 1)^2                  t^2/4 + t                           v
neyman              (1 - u)^2 / u              2 - 2 sqrt(1 - t)                   1 - exp(-v)
squared_hellinger   (sqrt(u) - 1)^2            t / (1 - t)                         1 - exp(-v)
jeffrey             (u - 1) log u              W(e^(1-t)) + 1/W(e^(1-t)) + t - 2   v
js                  -(u+1) log((1+u)/2)        -log(2 - exp(t))                    log 2 - log(1 + exp(-v))
                    + u log u
gan                 u log u - (u+1) log(u+1)   -log(1 - exp(t))                    -log(1 + exp(-v))
total_variation     |u - 1| / 2                t  (|t| <= 1/2)                     tanh(v) / 2
alpha, a < 1        (u^a - 1 - a(u-1))         ((1 + (a-1) t)^(a/(a-1)) - 1) / a   1/(1-a) - log(1 + exp(-v))
                    / (a (a-1))                (t < 1/(1-a))
alpha, a > 1        same                       same, and -1/a for t <= 1/(1-a)     v
=================== ========================== =================================== ===================

W is Lambert's W function. With these generators ``js`` gives :math:`D_f = 2\,\mathrm{JSD}(P\|Q)` and
``gan`` gives :math:`D_f = 2\,\mathrm{JSD}(P\|Q) - \log 4`, the value of the minimax game at the optimal
discriminator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Fn = Callable[[Tensor], Tensor]

LOG2 = math.log(2.0)


@dataclass(frozen=True)
class Divergence:
    """One f-divergence: its generator, conjugate, output activation and their helpers.

    All callables take and return float64 tensors (any dtype works; float64 is the reference).
    ``in_domain(t)`` is True where ``t`` lies in dom f*; ``activation_inverse(t)`` maps a critic value
    back to the logit, so ``activation_inverse(f_prime(p / q))`` is the optimal logit v*.
    """

    name: str
    f: Fn
    f_conj: Fn
    activation: Fn
    activation_inverse: Fn
    f_prime: Fn
    in_domain: Fn
    domain: str
    alpha: float | None = None


def log_wright_omega_1m(u: Tensor, steps: int = 6) -> Tensor:
    r"""z = log W(e^(1-u)), the solution of :math:`e^z + z = 1 - u` (Wright's omega is :math:`e^z`).

    Halley's method on :math:`\mathrm{expm1}(z) + z + u` (exact for u near 0, where 1 - u would
    round u away) from a start within about 0.2 of the root; ``steps = 6`` reaches float64
    precision on the whole real line (the kernels use 4 in float64 and 3 in float32). Written
    in log space so that W(e^(1-u)) may underflow or be huge while z stays exact.
    """
    y = 1.0 - u
    big = torch.clamp(y, min=1.0)
    z = torch.where(
        y < -2.0,
        y - torch.exp(y),
        torch.where(y <= 1.0, 0.7066 * (y - 1.0), torch.log(big - torch.log(big))),
    )
    for _ in range(steps):
        ez = torch.exp(z)
        h = torch.expm1(z) + z + u
        h1 = ez + 1.0
        z = z - h / (h1 - h * ez / (2.0 * h1))
    return z


def lambert_w_exp(y: Tensor) -> Tensor:
    """W(e^y) for real y (the principal branch), without forming e^y."""
    return torch.exp(log_wright_omega_1m(1.0 - y))


def _softplus_inverse(y: Tensor) -> Tensor:
    """log(e^y - 1), the inverse of softplus, without overflow for large y."""
    return y + torch.log(-torch.expm1(-y))


def _xlogx(u: Tensor) -> Tensor:
    return torch.special.xlogy(u, u)


def _alpha(a: float) -> Divergence:
    if a in (0.0, 1.0) or not math.isfinite(a):
        raise ValueError(f"alpha must be a finite number other than 0 and 1, got {a!r}")
    c = 1.0 / (a * (a - 1.0))

    def f(u: Tensor) -> Tensor:
        return c * (u.pow(a) - 1.0 - a * (u - 1.0))

    def f_conj(t: Tensor) -> Tensor:
        s = 1.0 + (a - 1.0) * t
        if a > 1.0:
            s = torch.clamp(s, min=0.0)  # sup at u -> 0 for t <= 1/(1-a): f* = -1/a there
        else:
            s = torch.where(s > 0, s, torch.full_like(s, math.nan))
        return (s.pow(a / (a - 1.0)) - 1.0) / a

    def f_prime(u: Tensor) -> Tensor:
        return (u.pow(a - 1.0) - 1.0) / (a - 1.0)

    if a < 1.0:
        bound = 1.0 / (1.0 - a)
        return Divergence(
            name="alpha", f=f, f_conj=f_conj,
            activation=lambda v: bound - F.softplus(-v),
            activation_inverse=lambda t: -_softplus_inverse(bound - t),
            f_prime=f_prime, in_domain=lambda t: t < bound, domain=f"t < 1/(1 - alpha) = {bound:g}",
            alpha=a,
        )
    return Divergence(
        name="alpha", f=f, f_conj=f_conj, activation=lambda v: v, activation_inverse=lambda t: t,
        f_prime=f_prime, in_domain=lambda t: torch.isfinite(t), domain="all real t", alpha=a,
    )


_TABLE: dict[str, Divergence] = {
    "kl": Divergence(
        "kl", f=_xlogx, f_conj=lambda t: torch.exp(t - 1.0), activation=lambda v: v,
        activation_inverse=lambda t: t, f_prime=lambda u: torch.log(u) + 1.0,
        in_domain=lambda t: torch.isfinite(t), domain="all real t",
    ),
    "reverse_kl": Divergence(
        "reverse_kl", f=lambda u: -torch.log(u), f_conj=lambda t: -1.0 - torch.log(-t),
        activation=lambda v: -torch.exp(-v), activation_inverse=lambda t: -torch.log(-t),
        f_prime=lambda u: -1.0 / u, in_domain=lambda t: t < 0, domain="t < 0",
    ),
    "pearson": Divergence(
        "pearson", f=lambda u: (u - 1.0) ** 2, f_conj=lambda t: 0.25 * t * t + t,
        activation=lambda v: v, activation_inverse=lambda t: t, f_prime=lambda u: 2.0 * (u - 1.0),
        in_domain=lambda t: torch.isfinite(t), domain="all real t",
    ),
    "neyman": Divergence(
        "neyman", f=lambda u: (1.0 - u) ** 2 / u, f_conj=lambda t: 2.0 - 2.0 * torch.sqrt(1.0 - t),
        activation=lambda v: -torch.expm1(-v), activation_inverse=lambda t: -torch.log1p(-t),
        f_prime=lambda u: 1.0 - 1.0 / (u * u), in_domain=lambda t: t < 1, domain="t < 1",
    ),
    "squared_hellinger": Divergence(
        "squared_hellinger", f=lambda u: (torch.sqrt(u) - 1.0) ** 2, f_conj=lambda t: t / (1.0 - t),
        activation=lambda v: -torch.expm1(-v), activation_inverse=lambda t: -torch.log1p(-t),
        f_prime=lambda u: 1.0 - 1.0 / torch.sqrt(u), in_domain=lambda t: t < 1, domain="t < 1",
    ),
    "jeffrey": Divergence(
        "jeffrey", f=lambda u: (u - 1.0) * torch.log(u),
        f_conj=lambda t: (lambda w: w + 1.0 / w + t - 2.0)(lambert_w_exp(1.0 - t)),
        activation=lambda v: v, activation_inverse=lambda t: t,
        f_prime=lambda u: torch.log(u) + 1.0 - 1.0 / u,
        in_domain=lambda t: torch.isfinite(t), domain="all real t",
    ),
    "js": Divergence(
        "js", f=lambda u: -(u + 1.0) * torch.log((1.0 + u) / 2.0) + _xlogx(u),
        f_conj=lambda t: -torch.log(2.0 - torch.exp(t)),
        activation=lambda v: LOG2 - F.softplus(-v),
        activation_inverse=lambda t: -_softplus_inverse(LOG2 - t),
        f_prime=lambda u: torch.log(2.0 * u / (1.0 + u)),
        in_domain=lambda t: t < LOG2, domain="t < log 2",
    ),
    "gan": Divergence(
        "gan", f=lambda u: _xlogx(u) - (u + 1.0) * torch.log(u + 1.0),
        f_conj=lambda t: -torch.log(-torch.expm1(t)),
        activation=lambda v: -F.softplus(-v), activation_inverse=lambda t: -_softplus_inverse(-t),
        f_prime=lambda u: torch.log(u / (u + 1.0)), in_domain=lambda t: t < 0, domain="t < 0",
    ),
    "total_variation": Divergence(
        "total_variation", f=lambda u: 0.5 * torch.abs(u - 1.0),
        f_conj=lambda t: torch.where(torch.abs(t) <= 0.5, t, torch.full_like(t, math.inf)),
        activation=lambda v: 0.5 * torch.tanh(v), activation_inverse=lambda t: torch.atanh(2.0 * t),
        f_prime=lambda u: 0.5 * torch.sign(u - 1.0),
        in_domain=lambda t: torch.abs(t) <= 0.5, domain="|t| <= 1/2",
    ),
}

NAMES: tuple[str, ...] = tuple(_TABLE) + ("alpha",)


def divergence(name: str, *, alpha: float | None = None) -> Divergence:
    """The table entry ``name`` (one of :data:`NAMES`); ``alpha`` is required for ``"alpha"``."""
    if name == "alpha":
        if alpha is None:
            raise ValueError("the 'alpha' divergence needs its parameter: pass alpha=<float not 0 or 1>")
        return _alpha(float(alpha))
    if alpha is not None:
        raise ValueError(f"only the 'alpha' divergence takes alpha; {name!r} does not")
    try:
        return _TABLE[name]
    except KeyError:
        raise ValueError(f"unknown divergence {name!r}; valid names: {', '.join(NAMES)}") from None


def optimal_logit(name: str, density_ratio: Tensor, *, alpha: float | None = None) -> Tensor:
    r"""The logit of the optimal critic, :math:`v^* = g_f^{-1}(f'(p/q))`, for a given ratio p/q."""
    d = divergence(name, alpha=alpha)
    return d.activation_inverse(d.f_prime(density_ratio))


def exact(name: str, p: Tensor, q: Tensor, *, alpha: float | None = None) -> Tensor:
    r""":math:`D_f(P\|Q) = \sum_x q(x) f(p(x)/q(x))` for discrete distributions p, q (last dim)."""
    d = divergence(name, alpha=alpha)
    p = p.double()
    q = q.double()
    return (q * d.f(p / q)).sum(-1)
