"""The loss terms once more in mpmath at 50 digits, straight from their definitions: the oracle of
the float64 references in tests/reference.py (and through them of the kernels). Derivatives are
mpmath's numerical derivatives at that precision, so nothing here shares a formula with the code
it checks."""

from __future__ import annotations

import mpmath

DIGITS = 50


def _softplus(u):
    return mpmath.log1p(mpmath.exp(u))


def _jeffrey_fake(u, a):
    w = mpmath.lambertw(mpmath.exp(1 - u)).real  # f*(t) = W + 1/W + t - 2 with W = W(e^(1-t))
    return w + 1 / w + u - 2


def _alpha_lt1_fake(u, a):
    return (((1 - a) * _softplus(-u)) ** (a / (a - 1)) - 1) / a


def _alpha_gt1_fake(u, a):
    s = 1 + (a - 1) * u
    return (s ** (a / (a - 1)) - 1) / a if s > 0 else -1 / a


TERMS = {
    "NEG": lambda u, a: -u,
    "POS": lambda u, a: u,
    "EXP_U_MINUS_1": lambda u, a: mpmath.exp(u - 1),
    "EXP_NEG": lambda u, a: mpmath.exp(-u),
    "U_MINUS_1": lambda u, a: u - 1,
    "PEARSON_FAKE": lambda u, a: u * u / 4 + u,
    "EXPM1_NEG": lambda u, a: mpmath.expm1(-u),
    "NEYMAN_FAKE": lambda u, a: 2 - 2 * mpmath.exp(-u / 2),
    "EXPM1": lambda u, a: mpmath.expm1(u),
    "JEFFREY_FAKE": _jeffrey_fake,
    "SOFTPLUS_NEG": lambda u, a: _softplus(-u),
    "SOFTPLUS": lambda u, a: _softplus(u),
    "JS_REAL": lambda u, a: _softplus(-u) - mpmath.log(2),
    "JS_FAKE": lambda u, a: _softplus(u) - mpmath.log(2),
    "TV_REAL": lambda u, a: -mpmath.tanh(u) / 2,
    "TV_FAKE": lambda u, a: mpmath.tanh(u) / 2,
    "ALPHA_LT1_REAL": lambda u, a: _softplus(-u) - 1 / (1 - a),
    "ALPHA_LT1_FAKE": _alpha_lt1_fake,
    "ALPHA_GT1_FAKE": _alpha_gt1_fake,
    "HINGE_REAL": lambda u, a: max(0, 1 - u),
    "HINGE_FAKE": lambda u, a: max(0, 1 + u),
    "HALF_SQ_U_MINUS_1": lambda u, a: (u - 1) ** 2 / 2,
    "HALF_SQ": lambda u, a: u * u / 2,
}


def term(name: str, u: float, alpha: float = 0.0, order: int = 1) -> tuple[float, ...]:
    """The term ``name`` at ``u`` and its derivatives up to ``order``, each rounded to float64."""
    with mpmath.workdps(DIGITS):
        x, a = mpmath.mpf(u), mpmath.mpf(alpha)
        f = lambda t: TERMS[name](t, a)  # noqa: E731
        return (float(f(x)),) + tuple(float(mpmath.diff(f, x, k)) for k in range(1, order + 1))
