"""Numerically stable elementwise math for Triton kernels, built only from ``tl.exp`` and ``tl.log``
(so the same code runs compiled and under the interpreter). The forms match csrc/fast_math.h and
csrc/loss_terms.h, which explain each choice; the term codes are named below."""

import triton
import triton.language as tl

LOG2 = 0.6931471805599453

# The term codes of csrc/loss_terms.h (PYGAN_TERMS), by name; a test compares the three tables.
NEG = tl.constexpr(0)
POS = tl.constexpr(1)
EXP_U_MINUS_1 = tl.constexpr(2)
EXP_NEG = tl.constexpr(3)
U_MINUS_1 = tl.constexpr(4)
PEARSON_FAKE = tl.constexpr(5)
EXPM1_NEG = tl.constexpr(6)
NEYMAN_FAKE = tl.constexpr(7)
EXPM1 = tl.constexpr(8)
JEFFREY_FAKE = tl.constexpr(9)
SOFTPLUS_NEG = tl.constexpr(10)
SOFTPLUS = tl.constexpr(11)
JS_REAL = tl.constexpr(12)
JS_FAKE = tl.constexpr(13)
TV_REAL = tl.constexpr(14)
TV_FAKE = tl.constexpr(15)
ALPHA_LT1_REAL = tl.constexpr(16)
ALPHA_LT1_FAKE = tl.constexpr(17)
ALPHA_GT1_FAKE = tl.constexpr(18)
HINGE_REAL = tl.constexpr(19)
HINGE_FAKE = tl.constexpr(20)
HALF_SQ_U_MINUS_1 = tl.constexpr(21)
HALF_SQ = tl.constexpr(22)


@triton.jit
def log1p(y):
    # Goldberg: log(w) * y / (w - 1) cancels the rounding of w = 1 + y.
    w = 1.0 + y
    d = w - 1.0
    r = tl.log(w) * (y / tl.where(d == 0.0, 1.0, d))
    r = tl.where(w == float("inf"), w, r)
    return tl.where(d == 0.0, y, r)


@triton.jit
def expm1(x):
    # Kahan: (u - 1) * x / log(u) cancels the rounding of u = exp(x).
    u = tl.exp(x)
    um1 = u - 1.0
    lu = tl.log(u)
    r = um1 * (x / tl.where(lu == 0.0, 1.0, lu))
    r = tl.where(um1 == -1.0, -1.0, r)
    r = tl.where(u == float("inf"), u, r)
    return tl.where(u == 1.0, x, r)


@triton.jit
def sigmoid(x):
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    return tl.where(x >= 0.0, r, e * r)


@triton.jit
def softplus(x):
    return tl.maximum(x, 0.0) + log1p(tl.exp(-tl.abs(x))) + (x - x)


@triton.jit
def log_softplus(x):
    return tl.where(x < -20.0, x, tl.log(softplus(x)))


@triton.jit
def tanh(x):
    e = expm1(-2.0 * tl.abs(x))
    t = -e / (2.0 + e)
    return tl.where(x < 0.0, -t, t)


@triton.jit
def sech2(x):
    e = tl.exp(-2.0 * tl.abs(x))
    d = 1.0 + e
    return 4.0 * e / (d * d)


@triton.jit
def log_wright_omega_1m(u, STEPS: tl.constexpr):
    # (z, e^z - 1) with exp(z) + z = 1 - u, by Halley's method on expm1(z) + z + u; e^z - 1 at the
    # last z from the last step's (csrc/loss_terms.h).
    y = 1.0 - u
    big = tl.maximum(y, 1.0)
    lb = tl.log(big)
    z = tl.where(y < -2.0, y, tl.where(y <= 1.0, 0.7066 * (y - 1.0), lb - lb / big))
    em1 = z * 0.0
    step = z * 0.0
    for _ in tl.static_range(STEPS):
        em1 = expm1(z)
        h = em1 + z + u
        h1 = em1 + 2.0
        step = h / (h1 - h * (em1 + 1.0) / (2.0 * h1))
        z = z - step
    t = -step
    return z, em1 + (em1 + 1.0) * (t * (1.0 + t * (0.5 + t * (1.0 / 6.0))))


@triton.jit
def alpha_lt1_log_s(u, a):
    """log S, S = (1-a) softplus(-u): the alpha < 1 fake term's base (csrc/loss_terms.h)."""
    return tl.log(1.0 - a) + log_softplus(-u)


@triton.jit
def alpha_lt1_slope(ls, u, a):
    """f*'(u) = S^(1/(a-1)) sigmoid(-u) in log space, from ls = log S."""
    return tl.exp(ls / (a - 1.0) - softplus(u))


@triton.jit
def alpha_gt1_log_s(e):
    """log s = log1p(e), e = (a-1) u, clamped to -inf where s <= 0 (alpha > 1)."""
    return log1p(tl.maximum(e, -1.0))


@triton.jit
def js_real(u):
    # -log1p(tanh(u/2)) near 0, softplus(-u) - log 2 for u < -1 (see csrc/loss_terms.h).
    return tl.where(u < -1.0, softplus(-u) - LOG2, -log1p(tanh(0.5 * u)))


@triton.jit
def term(u, a, TERM: tl.constexpr, STEPS: tl.constexpr):
    """Value and derivative of loss term TERM at u (see csrc/loss_terms.h for the formulas)."""
    if TERM == NEG:
        v = -u
        d = tl.full(u.shape, -1.0, u.dtype)
    elif TERM == POS:
        v = u
        d = tl.full(u.shape, 1.0, u.dtype)
    elif TERM == EXP_U_MINUS_1:
        v = tl.exp(u - 1.0)
        d = v
    elif TERM == EXP_NEG:
        v = tl.exp(-u)
        d = -v
    elif TERM == U_MINUS_1:
        v = u - 1.0
        d = tl.full(u.shape, 1.0, u.dtype)
    elif TERM == PEARSON_FAKE:
        v = u * (0.25 * u + 1.0)
        d = 0.5 * u + 1.0
    elif TERM == EXPM1_NEG:
        v = expm1(-u)
        d = -tl.exp(-u)
    elif TERM == NEYMAN_FAKE:
        v = -2.0 * expm1(-0.5 * u)
        d = tl.exp(-0.5 * u)
    elif TERM == EXPM1:
        v = expm1(u)
        d = tl.exp(u)
    elif TERM == JEFFREY_FAKE:
        z, wm1 = log_wright_omega_1m(u, STEPS)
        d = tl.exp(-z)
        v = -(wm1 * d) - z
    elif TERM == SOFTPLUS_NEG:
        v = softplus(-u)
        d = -sigmoid(-u)
    elif TERM == SOFTPLUS:
        v = softplus(u)
        d = sigmoid(u)
    elif TERM == JS_REAL:
        v = js_real(u)
        d = -sigmoid(-u)
    elif TERM == JS_FAKE:
        v = js_real(-u)
        d = sigmoid(u)
    elif TERM == TV_REAL:
        v = -0.5 * tanh(u)
        d = -0.5 * sech2(u)
    elif TERM == TV_FAKE:
        v = 0.5 * tanh(u)
        d = 0.5 * sech2(u)
    elif TERM == ALPHA_LT1_REAL:
        v = softplus(-u) - 1.0 / (1.0 - a)
        d = -sigmoid(-u)
    elif TERM == ALPHA_LT1_FAKE:
        ls = alpha_lt1_log_s(u, a)
        v = expm1(a / (a - 1.0) * ls) / a
        d = alpha_lt1_slope(ls, u, a)
    elif TERM == ALPHA_GT1_FAKE:
        ls = alpha_gt1_log_s((a - 1.0) * u)
        v = expm1(a / (a - 1.0) * ls) / a
        d = tl.exp(ls / (a - 1.0))
        v = tl.where(u != u, u, v)
        d = tl.where(u != u, u, d)
    elif TERM == HINGE_REAL:
        m = 1.0 - u
        v = tl.where(m > 0.0, m, tl.where(m != m, m, 0.0))
        d = tl.where(m > 0.0, -1.0, tl.where(m != m, m, 0.0))
    elif TERM == HINGE_FAKE:
        m = 1.0 + u
        v = tl.where(m > 0.0, m, tl.where(m != m, m, 0.0))
        d = tl.where(m > 0.0, 1.0, tl.where(m != m, m, 0.0))
    elif TERM == HALF_SQ_U_MINUS_1:
        m = u - 1.0
        v = 0.5 * m * m
        d = m
    else:  # HALF_SQ
        v = 0.5 * u * u
        d = u
    return v, d


@triton.jit
def term2(u, a, TERM: tl.constexpr, STEPS: tl.constexpr):
    """Second derivative of loss term TERM at u (csrc/loss_terms.h term2 has the derivations)."""
    if TERM == NEG or TERM == POS or TERM == U_MINUS_1:
        d2 = tl.zeros(u.shape, u.dtype)
    elif TERM == EXP_U_MINUS_1:
        d2 = tl.exp(u - 1.0)
    elif TERM == EXP_NEG or TERM == EXPM1_NEG:
        d2 = tl.exp(-u)
    elif TERM == PEARSON_FAKE:
        d2 = tl.full(u.shape, 0.5, u.dtype)
    elif TERM == NEYMAN_FAKE:
        d2 = -0.5 * tl.exp(-0.5 * u)
    elif TERM == EXPM1:
        d2 = tl.exp(u)
    elif TERM == JEFFREY_FAKE:
        z, wm1 = log_wright_omega_1m(u, STEPS)
        d2 = tl.exp(-z) / (wm1 + 2.0)
    elif TERM == SOFTPLUS_NEG or TERM == SOFTPLUS or TERM == JS_REAL or TERM == JS_FAKE or TERM == ALPHA_LT1_REAL:
        d2 = 0.25 * sech2(0.5 * u)  # the softplus family: sigmoid(u) sigmoid(-u)
    elif TERM == TV_REAL:
        d2 = sech2(u) * tanh(u)
    elif TERM == TV_FAKE:
        d2 = -(sech2(u) * tanh(u))
    elif TERM == ALPHA_LT1_FAKE:
        ls = alpha_lt1_log_s(u, a)
        d2 = alpha_lt1_slope(ls, u, a) * (tl.exp(-softplus(u) - ls) - sigmoid(u))
    elif TERM == ALPHA_GT1_FAKE:
        e = (a - 1.0) * u
        d2 = tl.where(e > -1.0, tl.exp(alpha_gt1_log_s(e) * ((2.0 - a) / (a - 1.0))), 0.0)
        d2 = tl.where(u != u, u, d2)
    elif TERM == HINGE_REAL or TERM == HINGE_FAKE:
        d2 = tl.where(u != u, u, 0.0)
    else:  # HALF_SQ_U_MINUS_1, HALF_SQ
        d2 = tl.full(u.shape, 1.0, u.dtype)
    return d2
