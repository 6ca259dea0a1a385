"""The oracle's oracle: every float64 reference term of pygan._ops.loss_terms (the tests' reference for the
kernels and the benchmarks' eager baseline), its autograd derivative and its second derivative
against mpmath at 50 digits (tests/mp_reference.py), on a grid and on fresh random points.

A reference is only as good as its worst derivative: torch.expm1's backward forms expm1(u) + 1 and
torch.tanh's forms 1 - tanh(u)^2, which cancel (relative errors up to 1 at |u| = 30); pygan._ops.loss_terms
avoids both, and this test keeps it so."""

import math

import pytest
import torch

from pygan._ops.loss_terms import TERM_NAMES, reference_term

from . import mp_reference as mpr

EPS = torch.finfo(torch.float64).eps
# Each derivative f^(k)(u) within 32 ulps of what an exact evaluation gives at u perturbed by 32
# ulps: |error| <= 32 eps (|f^(k)(u)| + |u f^(k+1)(u)|). The second part is the term's conditioning:
# the first rounding in any float64 formula ((a - 1) u in the alpha terms) perturbs u, which near
# a steep point (alpha > 1 at s = 1 + (a - 1) u -> 0) moves the result by far more than its ulps.
# A value, a difference of O(1) quantities near its zeros, is also allowed 4 ulps of 1; below
# float64's normal range an absolute floor of its smallest normal number.
ULPS, ABS_VALUE, TINY = 32 * EPS, 4 * EPS, torch.finfo(torch.float64).tiny

CASES = [(name, a) for name in TERM_NAMES
         for a in ((-1.0, 0.5) if name.startswith("ALPHA_LT1") else (2.0, 3.5) if name.startswith("ALPHA_GT1") else (0.0,))]


def _kinks(name, a):
    """Where a term is not twice differentiable (mpmath's numerical derivative does not apply)."""
    if name.startswith("HINGE"):
        return (1.0, -1.0)
    if name == "ALPHA_GT1_FAKE":
        return (-1.0 / (a - 1.0),)
    return ()


@pytest.mark.parametrize("name,alpha", CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_reference_terms_match_mpmath(name, alpha, rng):
    grid = torch.linspace(-30.0, 30.0, 61, dtype=torch.float64)
    fresh = torch.randn(40, generator=rng, dtype=torch.float64) * 8.0
    small = torch.randn(8, generator=rng, dtype=torch.float64) * 1e-3
    u = torch.cat([grid, fresh, small, torch.tensor([0.5, -0.5, 0.25], dtype=torch.float64)])
    u = u[torch.stack([(u - k).abs() > 1e-3 for k in _kinks(name, alpha)] or [u == u]).all(0)]
    x = u.clone().requires_grad_()
    value = reference_term(name, x, alpha)
    (d1,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    d2 = torch.autograd.grad(d1.sum(), x)[0] if d1.requires_grad else torch.zeros_like(u)
    for i, ui in enumerate(u.tolist()):
        exact = mpr.term(name, ui, alpha, order=3)
        for k, (got, want) in enumerate(zip((value[i].item(), d1[i].item(), d2[i].item()), exact)):
            if not math.isfinite(want):
                assert got == want, (name, alpha, ui, k, got, want)
                continue
            bound = ULPS * (abs(want) + abs(ui * exact[k + 1])) + (ABS_VALUE if k == 0 else 0.0) + TINY
            assert abs(got - want) <= bound, (
                f"{name} alpha={alpha} at u={ui!r}: derivative {k} is {got!r}, exact {want!r} "
                f"(error {abs(got - want):.2e} > {bound:.2e}; seed={rng.initial_seed()})")
