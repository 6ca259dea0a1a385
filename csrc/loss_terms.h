// The elementwise terms of every adversarial loss: value and derivative with respect to the logit,
// in closed forms that stay finite and accurate wherever the math is finite.
//
// A loss is a sum over both logit tensors of weighted terms, loss = sum_k w_k * sum_i term_k(u_i),
// where u = logit - shift (the shift is the other side's mean for relativistic_average, else 0).
// Which term serves which side of which loss is decided in Python (pygan/_ops/loss_terms.py, the table that
// maps loss names to these codes); the codes below must match TERM_CODES there, which a test checks.
//
// For the f-divergences, REAL terms are -g_f(v) and FAKE terms are f*(g_f(v)), after the f-GAN
// bound E_P[g_f(v)] - E_Q[f*(g_f(v))] (Nowozin et al. 2016); pygan/divergences.py holds f, f*, g_f.
#pragma once
#include <type_traits>

#include "fast_math.h"

namespace pygan {
inline namespace PYGAN_ISA {

// The terms and their codes: one list, expanded into the enum, the dispatch switch and the names
// exported to Python (a test compares them with pygan/_ops/loss_terms.py and the Triton constants).
//   NEG                -u                                  (kl, pearson, jeffrey, alpha>1 real; wasserstein)
//   POS                u                                   (wasserstein fake)
//   EXP_U_MINUS_1      exp(u - 1)                          kl fake: f*(t) = exp(t - 1)
//   EXP_NEG            exp(-u)                             reverse_kl real: g = -exp(-v)
//   U_MINUS_1          u - 1                               reverse_kl fake: -1 - log(exp(-u))
//   PEARSON_FAKE       u^2 / 4 + u
//   EXPM1_NEG          expm1(-u) = -(1 - exp(-u))          neyman / squared_hellinger real
//   NEYMAN_FAKE        2 - 2 sqrt(exp(-u)) = -2 expm1(-u/2)
//   EXPM1              (1 - e^-u) / e^-u = expm1(u)        squared_hellinger fake
//   JEFFREY_FAKE       W + 1/W + u - 2, W = W(e^(1-u)); as expm1(-z) - z with z = log W
//   SOFTPLUS_NEG       softplus(-u) = -log sigmoid(u)      gan real, non-saturating G, relativistic
//   SOFTPLUS           softplus(u) = -log(1 - sigmoid(u))  gan fake
//   JS_REAL            softplus(-u) - log 2 = -log(2 sigmoid(u))
//   JS_FAKE            softplus(u) - log 2 = -log(2 - exp(log 2 - softplus(-u)))
//   TV_REAL            -tanh(u) / 2
//   TV_FAKE            tanh(u) / 2
//   ALPHA_LT1_REAL     softplus(-u) - 1/(1-a)              alpha < 1: g = 1/(1-a) - softplus(-v)
//   ALPHA_LT1_FAKE     (((1-a) softplus(-u))^(a/(a-1)) - 1) / a
//   ALPHA_GT1_FAKE     (max(1 + (a-1) u, 0)^(a/(a-1)) - 1) / a    alpha > 1: g = v
//   HINGE_REAL         max(0, 1 - u)
//   HINGE_FAKE         max(0, 1 + u)
//   HALF_SQ_U_MINUS_1  (u - 1)^2 / 2                       least_squares real and G
//   HALF_SQ            u^2 / 2                             least_squares fake
#define PYGAN_TERMS(X)                                                                            \
  X(NEG) X(POS) X(EXP_U_MINUS_1) X(EXP_NEG) X(U_MINUS_1) X(PEARSON_FAKE) X(EXPM1_NEG)              \
  X(NEYMAN_FAKE) X(EXPM1) X(JEFFREY_FAKE) X(SOFTPLUS_NEG) X(SOFTPLUS) X(JS_REAL) X(JS_FAKE)        \
  X(TV_REAL) X(TV_FAKE) X(ALPHA_LT1_REAL) X(ALPHA_LT1_FAKE) X(ALPHA_GT1_FAKE) X(HINGE_REAL)        \
  X(HINGE_FAKE) X(HALF_SQ_U_MINUS_1) X(HALF_SQ)

enum Term : int {
#define PYGAN_ENUM(C) C,
  PYGAN_TERMS(PYGAN_ENUM)
#undef PYGAN_ENUM
  NUM_TERMS
};

// z = log W(e^(1-u)), the solution of e^z + z = 1 - u (W: Lambert W; e^z is Wright's omega at 1-u),
// and wm1 = e^z - 1 at that z.
// Halley's method on h(z) = expm1(z) + z + u, which keeps u exact near 0 (forming y = 1 - u would
// round it away), from a start within 0.18 of the root: float64 precision in 4 steps, float32
// in 2 (within 1.9 ulps of z over logits in [-120, 30]).
// wm1 comes from the last step's expm1 without another: e^(z - s) - 1 = em1 + e^z expm1(-s) for
// the step s, whose cubic Taylor polynomial is exact in either dtype (|s| < 2e-4 in float32).
// Tests check the terms against mpmath's lambertw.
template <class M, class T> PYGAN_HD T log_wright_omega_1m(T u, T& wm1) {
  const T y = T(1) - u;
  // Start: z ~ y for y < -2 (off by e^y < 0.14); a line through (-2, -2.12) and (1, 0) in between;
  // z ~ log(y - log y) ~ L - L / y, L = log y (the asymptote of W) for y > 1.
  const T big = select(y > T(1), y, T(1));
  const T l = M::log(big);
  T z = select(y < T(-2), y, select(y <= T(1), T(0.7066) * (y - T(1)), l - l / big));
  const int steps = std::is_same<T, double>::value ? 4 : 2;
  T em1 = T(0), step = T(0);
  for (int k = 0; k < steps; ++k) {
    em1 = M::expm1(z);  // e^z - 1: h and, plus 1 or 2, h' = e^z + 1 and h'' = e^z
    const T h = em1 + z + u;
    const T h1 = em1 + T(2);
    step = h / (h1 - h * (em1 + T(1)) / (T(2) * h1));
    z = z - step;
  }
  const T t = -step;
  wm1 = em1 + (em1 + T(1)) * (t * (T(1) + t * (T(0.5) + t * T(1.0 / 6.0))));
  return z;
}

// softplus(-u) - log 2 = -log(2 sigmoid(u)) = -log1p(tanh(u/2)): the last form keeps relative
// accuracy near its zero at u = 0, the first has no cancellation for u < -1.
template <class M, class T> PYGAN_HD T js_real(T u) {
  const T near = -M::log1p(M::tanh(T(0.5) * u));
  return select(u < T(-1), M::softplus(-u) - T(0.693147180559945309), near);
}

// max(0, m) and its derivative slope * [m > 0], with NaN kept in both.
// The alpha-divergence's fake terms (Amari), written once for term and term2. With a < 1,
// S = (1-a) softplus(-u) and log S in log space; f*'(u) = S^(1/(a-1)) sigmoid(-u), also in log
// space, so that S -> 0 and S -> inf give 0 or inf, never 0 * inf.
template <class M, class T> PYGAN_HD T alpha_lt1_log_s(T u, T a) {
  return M::log(T(1) - a) + M::log_softplus(-u);
}
template <class M, class T> PYGAN_HD T alpha_lt1_slope(T ls, T u, T a) {
  return M::exp(ls / (a - T(1)) - M::softplus(u));
}
// With a > 1, s = 1 + (a-1) u; log s = log1p((a-1) u), exact near u = 0, and -inf where s <= 0
// (f* is the constant -1/a there). `e` = (a-1) u.
template <class M, class T> PYGAN_HD T alpha_gt1_log_s(T e) {
  return M::log1p(select(e > T(-1), e, T(-1)));
}

template <class T> PYGAN_HD void hinge(T m, T slope, T& v, T& d) {
  const T zero_or_nan = select(m != m, m, T(0));
  v = select(m > T(0), m, zero_or_nan);
  d = select(m > T(0), slope, zero_or_nan);
}

// Value v and derivative d of term C at u; a is the alpha-divergence parameter (ignored otherwise).
template <int C, class M, class T> PYGAN_HD void term(T u, T a, T& v, T& d) {
  if constexpr (C == NEG) { v = -u; d = T(-1); }
  else if constexpr (C == POS) { v = u; d = T(1); }
  else if constexpr (C == EXP_U_MINUS_1) { v = M::exp(u - T(1)); d = v; }
  else if constexpr (C == EXP_NEG) { v = M::exp(-u); d = -v; }
  else if constexpr (C == U_MINUS_1) { v = u - T(1); d = T(1); }
  else if constexpr (C == PEARSON_FAKE) { v = u * (T(0.25) * u + T(1)); d = T(0.5) * u + T(1); }
  else if constexpr (C == EXPM1_NEG) { v = M::expm1(-u); d = -M::exp(-u); }
  else if constexpr (C == NEYMAN_FAKE) { v = T(-2) * M::expm1(T(-0.5) * u); d = M::exp(T(-0.5) * u); }
  else if constexpr (C == EXPM1) { v = M::expm1(u); d = M::exp(u); }
  else if constexpr (C == JEFFREY_FAKE) {
    // f*(u) = W + 1/W + u - 2 with W = e^z; since W + z = 1 - u this is 1/W - z - 1 = expm1(-z) - z
    // = -(W - 1) / W - z, free of the cancellation between W and u for u << 0 (both parts have
    // z's sign). f*'(u) = 1/W = e^-z, taken by exp: 1 / (wm1 + 1) would lose a small W.
    T wm1;
    const T z = log_wright_omega_1m<M>(u, wm1);
    d = M::exp(-z);
    v = -(wm1 * d) - z;
  }
  else if constexpr (C == SOFTPLUS_NEG) { v = M::softplus(-u); d = -M::sigmoid(-u); }
  else if constexpr (C == SOFTPLUS) { v = M::softplus(u); d = M::sigmoid(u); }
  else if constexpr (C == JS_REAL) { v = js_real<M>(u); d = -M::sigmoid(-u); }
  else if constexpr (C == JS_FAKE) { v = js_real<M>(-u); d = M::sigmoid(u); }
  else if constexpr (C == TV_REAL) { v = T(-0.5) * M::tanh(u); d = T(-0.5) * M::sech2(u); }
  else if constexpr (C == TV_FAKE) { v = T(0.5) * M::tanh(u); d = T(0.5) * M::sech2(u); }
  else if constexpr (C == ALPHA_LT1_REAL) { v = M::softplus(-u) - T(1) / (T(1) - a); d = -M::sigmoid(-u); }
  else if constexpr (C == ALPHA_LT1_FAKE) {
    // s = (1-a) softplus(-u) = 1 + (a-1) t; f*(t) = (s^(a/(a-1)) - 1)/a; f*'(t) = s^(1/(a-1)),
    // g'(u) = sigmoid(-u) = exp(-softplus(u)); both powers taken in log space so that s -> 0 and
    // s -> inf give 0 or inf, never 0 * inf.
    const T ls = alpha_lt1_log_s<M>(u, a);
    v = M::expm1(a / (a - T(1)) * ls) / a;
    d = alpha_lt1_slope<M>(ls, u, a);
  }
  else if constexpr (C == ALPHA_GT1_FAKE) {
    // For a > 1, f* is -1/a (its value at s = 0) for all s <= 0: the supremum sits at u -> 0.
    // log s = log1p((a-1) u), exact near u = 0; -inf at s <= 0 gives v = -1/a, d = 0.
    const T ls = alpha_gt1_log_s<M>((a - T(1)) * u);
    v = M::expm1(a / (a - T(1)) * ls) / a;
    d = M::exp(ls / (a - T(1)));
    v = select(u != u, u, v);
    d = select(u != u, u, d);
  }
  else if constexpr (C == HINGE_REAL) { hinge(T(1) - u, T(-1), v, d); }
  else if constexpr (C == HINGE_FAKE) { hinge(T(1) + u, T(1), v, d); }
  else if constexpr (C == HALF_SQ_U_MINUS_1) { const T m = u - T(1); v = T(0.5) * m * m; d = m; }
  else if constexpr (C == HALF_SQ) { v = T(0.5) * u * u; d = u; }
  else { static_assert(C < NUM_TERMS, "unknown term"); }
}

// Second derivative term_C''(u), for double backward (gradients of gradients: unrolled GANs,
// penalties on the loss's gradient). The same stable pieces as the first derivatives:
// sigmoid(u) sigmoid(-u) and sech^2(u), formed from exp(-|u|)-type factors, have no cancellation
// for either sign (sigmoid - sigmoid^2 and 1 - tanh^2 do). Terms linear in u have 0; the hinges 0
// off their kink (NaN kept), as autograd's relu gives.
template <int C, class M, class T> PYGAN_HD T term2(T u, T a) {
  if constexpr (C == NEG || C == POS || C == U_MINUS_1) { return T(0); }
  else if constexpr (C == EXP_U_MINUS_1) { return M::exp(u - T(1)); }
  else if constexpr (C == EXP_NEG || C == EXPM1_NEG) { return M::exp(-u); }
  else if constexpr (C == PEARSON_FAKE) { return T(0.5); }
  else if constexpr (C == NEYMAN_FAKE) { return T(-0.5) * M::exp(T(-0.5) * u); }
  else if constexpr (C == EXPM1) { return M::exp(u); }
  else if constexpr (C == JEFFREY_FAKE) {
    // f*' = e^-z with e^z + z = 1 - u, so z' = -1 / (e^z + 1) and f*'' = e^-z / (e^z + 1).
    T wm1;
    const T z = log_wright_omega_1m<M>(u, wm1);
    return M::exp(-z) / (wm1 + T(2));
  }
  else if constexpr (C == SOFTPLUS_NEG || C == SOFTPLUS || C == JS_REAL || C == JS_FAKE ||
                     C == ALPHA_LT1_REAL) {
    // sigmoid(u) sigmoid(-u) = sech^2(u/2) / 4: one exp and one division for both sigmoids.
    return T(0.25) * M::sech2(T(0.5) * u);
  }
  else if constexpr (C == TV_REAL) { return M::sech2(u) * M::tanh(u); }
  else if constexpr (C == TV_FAKE) { return -(M::sech2(u) * M::tanh(u)); }
  else if constexpr (C == ALPHA_LT1_FAKE) {
    // f*'(u) = S^(1/(a-1)) sigmoid(-u) with S = (1-a) softplus(-u) and S' = (a-1) sigmoid(-u):
    // f*'' = f*' (sigmoid(-u) / S - sigmoid(u)), the ratio taken in log space like f*'.
    const T ls = alpha_lt1_log_s<M>(u, a);
    return alpha_lt1_slope<M>(ls, u, a) * (M::exp(-M::softplus(u) - ls) - M::sigmoid(u));
  }
  else if constexpr (C == ALPHA_GT1_FAKE) {
    // f*' = s^(1/(a-1)) with s = 1 + (a-1) u, so f*'' = s^((2-a)/(a-1)) for s > 0 and 0 where f*
    // is the constant -1/a (s <= 0; the power alone would give inf or NaN there for a >= 2).
    const T e = (a - T(1)) * u;
    const T d2 = select(e > T(-1), M::exp(alpha_gt1_log_s<M>(e) * ((T(2) - a) / (a - T(1)))), T(0));
    return select(u != u, u, d2);
  }
  else if constexpr (C == HINGE_REAL || C == HINGE_FAKE) { return select(u != u, u, T(0)); }
  else if constexpr (C == HALF_SQ_U_MINUS_1 || C == HALF_SQ) { return T(1); }
  else { static_assert(C < NUM_TERMS, "unknown term"); return T(0); }
}

// The ORDER-th derivative (1 or 2) of term C at u: what a backward pass of that order multiplies.
template <int C, int ORDER, class M, class T> PYGAN_HD T derivative(T u, T a) {
  if constexpr (ORDER == 2) {
    return term2<C, M>(u, a);
  } else {
    T v, d;
    term<C, M>(u, a, v, d);
    return d;
  }
}

template <int C> using TermTag = std::integral_constant<int, C>;

// Calls f(TermTag<C>{}) for the term code given at run time; used to pick a specialized loop (CPU)
// or a branch that is uniform across a thread block (CUDA).
template <class F> PYGAN_HD void dispatch_term(int code, F&& f) {
  switch (code) {
#define PYGAN_CASE(C) case C: f(TermTag<C>{}); break;
    PYGAN_TERMS(PYGAN_CASE)
#undef PYGAN_CASE
    default: break;
  }
}

// Names of the codes, exported to Python so a test can check they match pygan/_ops/loss_terms.py.
static const char* const TERM_NAMES[NUM_TERMS] = {
#define PYGAN_NAME(C) #C,
    PYGAN_TERMS(PYGAN_NAME)
#undef PYGAN_NAME
};

}  // namespace PYGAN_ISA
}  // namespace pygan
