// Math policies for the loss terms.
//
// `StdMath` calls the platform's libm (host) or CUDA's device math library; it serves float64 on the
// CPU and every dtype on CUDA. `VecMath` serves the CPU's float32 lanes (VecF, simd.h): exp and log as
// polynomials on bit fields, without calls or branches, about 2 ulp over the whole float range with
// inf, NaN, zero and subnormal inputs handled.
//
// Every policy builds log1p, expm1, sigmoid, softplus, tanh and sech^2 from exp and log in the forms
// below, which stay accurate where the naive formulas cancel (see each function's comment). The
// forms use select() rather than `?:` so that they serve vectors as well as scalars.
#pragma once
#include <cmath>
#include <limits>
#include "common.h"
#include "simd.h"

namespace pygan {
inline namespace PYGAN_ISA {

template <class T> PYGAN_HD T infinity() { return T(std::numeric_limits<float>::infinity()); }

// Derived functions, written once for any policy M providing exp(T) and log(T).
template <class M> struct Derived {
  // log(1 + y): Goldberg's correction makes log(w) * y / (w - 1) exact to a few ulp even when 1 + y
  // rounds; w == 1 means y is below half an ulp of 1.
  template <class T> static PYGAN_HD T log1p(T y) {
    const T w = T(1) + y;
    const T d = w - T(1);
    const T r = M::log(w) * (y / select(d == T(0), T(1), d));
    return select(d == T(0), y, select(w == infinity<T>(), w, r));
  }
  // exp(x) - 1 by Kahan's formula (u - 1) * x / log(u), which cancels the rounding error of u.
  template <class T> static PYGAN_HD T expm1(T x) {
    const T u = M::exp(x);
    const T um1 = u - T(1);
    const T lu = M::log(u);
    T r = um1 * (x / select(lu == T(0), T(1), lu));
    r = select(um1 == T(-1), T(-1), r);
    r = select(u == infinity<T>(), u, r);
    return select(u == T(1), x, r);
  }
  template <class T> static PYGAN_HD T abs(T x) { return select(x < T(0), -x, x); }
  // exp(x) for x <= 0 or NaN; a policy may override it with something cheaper than exp.
  template <class T> static PYGAN_HD T exp_nonpositive(T x) { return M::exp(x); }
  // 1 / (1 + exp(-x)) without overflow for either sign.
  template <class T> static PYGAN_HD T sigmoid(T x) {
    const T e = M::exp_nonpositive(-abs(x));
    const T r = T(1) / (T(1) + e);
    return select(x >= T(0), r, e * r);
  }
  // log1p(y) for y in [0, 1]; a policy may override it with something cheaper than log1p.
  template <class T> static PYGAN_HD T log1p_unit(T y) { return M::log1p(y); }
  // log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); never overflows, exact for large |x|.
  template <class T> static PYGAN_HD T softplus(T x) {
    return select(x > T(0), x, T(0)) + M::log1p_unit(M::exp_nonpositive(-abs(x))) + (x - x);  // (x - x) keeps NaN
  }
  // log(softplus(x)); for x < -20 softplus(x) = exp(x) to within 1e-9 relative, so the log is x.
  template <class T> static PYGAN_HD T log_softplus(T x) {
    return select(x < T(-20), x, M::log(softplus(x)));
  }
  // tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x: accurate near 0 and at +-inf.
  template <class T> static PYGAN_HD T tanh(T x) {
    const T e = M::expm1(T(-2) * abs(x));
    const T t = -e / (T(2) + e);
    return select(x < T(0), -t, t);
  }
  // sech^2(x) = 1 - tanh^2(x) = 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation for large |x|.
  template <class T> static PYGAN_HD T sech2(T x) {
    const T e = M::exp_nonpositive(T(-2) * abs(x));
    const T d = T(1) + e;
    return T(4) * e / (d * d);
  }
};

struct StdMath : Derived<StdMath> {
  static PYGAN_HD float exp(float x) { return ::expf(x); }
  static PYGAN_HD double exp(double x) { return ::exp(x); }
  static PYGAN_HD float log(float x) { return ::logf(x); }
  static PYGAN_HD double log(double x) { return ::log(x); }
#if defined(__CUDA_ARCH__)
  // CUDA's own log1p/expm1 are accurate and faster than the derived forms.
  static PYGAN_HD float log1p(float x) { return ::log1pf(x); }
  static PYGAN_HD double log1p(double x) { return ::log1p(x); }
  static PYGAN_HD float expm1(float x) { return ::expm1f(x); }
  static PYGAN_HD double expm1(double x) { return ::expm1(x); }
#endif
};

#if !defined(__CUDACC__)
struct VecMath : Derived<VecMath> {
  static constexpr float EXP_HI = 88.7228394f;   // exp overflows above
  static constexpr float EXP_LO = -103.972084f;  // exp is below half the smallest subnormal under
  // xc = n ln2 + r with |r| <= ln2 / 2 (xc in [EXP_LO, EXP_HI], no NaN): n as integer lanes, and
  // expm1(r) = r + r^2 (c0 + c1 r + ... + c5 r^5), the polynomial of exp's reduced argument.
  static PYGAN_INLINE VecF expm1_reduced(VecF xc, i32x8& ni) {
    // floor by truncation of a positive number (xc >= -104 here), then back to n.
    ni = truncate_to_int(xc * 1.44269504088896341f + 128.5f) - 128;
    const VecF n = to_float(ni);
    VecF r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    // Estrin's scheme: three independent pairs, then r^2 and r^4, a dependency chain of 4
    // multiply-adds instead of Horner's 7.
    const VecF r2 = r * r;
    const VecF p01 = r * 1.6666665459e-1f + 5.0000001201e-1f;
    const VecF p23 = r * 8.3334519073e-3f + 4.1665795894e-2f;
    const VecF p45 = r * 1.9875691500e-4f + 1.3981999507e-3f;
    const VecF p = (r2 * r2) * p45 + (r2 * p23 + p01);
    return r2 * p + r;
  }
  // (1 + q) 2^n, with 2^n in two factors so that n down to -150 (subnormal results) and up to 128
  // stay representable.
  static PYGAN_INLINE VecF one_plus_times_pow2(VecF q, i32x8 ni) {
    const i32x8 n1 = ni >> 1, n2 = ni - n1;
    return (q + 1.0f) * from_bits((n1 + 127) << 23) * from_bits((n2 + 127) << 23);
  }
  // exp of xc in [EXP_LO, EXP_HI] (no NaN): (1 + expm1(r)) 2^n, a degree-6 polynomial and the
  // exponent field.
  static PYGAN_INLINE VecF exp_clamped(VecF xc) {
    i32x8 ni;
    const VecF q = expm1_reduced(xc, ni);
    return one_plus_times_pow2(q, ni);
  }
  // exp(x) - 1 from the same reduction: 2^n expm1(r) + (2^n - 1), where 2^n expm1(r) is exact and
  // the sum rounds once (for n = 0 it is expm1(r) itself, so tiny x keep their relative accuracy;
  // for n < 0 the terms cancel at most from 0.71 to 0.29). About 1 ulp, one exp's cost where the
  // derived form (Kahan's) takes an exp, a log and a division. Below -30 the result rounds to -1;
  // above 20 the - 1 is below rounding and the result is exp's.
  static PYGAN_INLINE VecF expm1(VecF x) {
    VecF xc = select(x > EXP_HI, VecF(EXP_HI), x);
    xc = select(xc < -30.0f, VecF(-30.0f), xc);
    xc = select(xc != xc, VecF(0.0f), xc);
    i32x8 ni;
    const VecF q = expm1_reduced(xc, ni);
    const VecF big = one_plus_times_pow2(q, ni);  // exp(xc), where the - 1 is below rounding
    const VecF s = from_bits((ni + 127) << 23);  // 2^n (n >= -44 here; inf past 127, where `big` serves)
    VecF out = select(xc > 20.0f, big, q * s + (s - 1.0f));
    out = select(x > EXP_HI, infinity<VecF>(), out);
    out = select(x == 0.0f, x, out);  // keeps the sign of zero
    return select(x != x, x, out);
  }
  static PYGAN_INLINE VecF exp(VecF x) {
    VecF xc = select(x > EXP_HI, VecF(EXP_HI), x);
    xc = select(xc < EXP_LO, VecF(EXP_LO), xc);
    xc = select(xc != xc, VecF(0.0f), xc);
    VecF out = exp_clamped(xc);
    out = select(x > EXP_HI, infinity<VecF>(), out);
    out = select(x < EXP_LO, VecF(0.0f), out);
    return select(x != x, x, out);
  }
  // exp(x) for x <= 0 (or NaN): the exp of every sigmoid and softplus, which call it on -|x|. Half
  // the range checks: no overflow, and one compare clamps both NaN (kept by the last select) and
  // x < EXP_LO, whose results (at most the smallest subnormal, 1.4e-45) stay instead of becoming 0.
  static PYGAN_INLINE VecF exp_nonpositive(VecF x) {
    const VecF out = exp_clamped(select(x > EXP_LO, x, VecF(EXP_LO)));
    return select(x != x, x, out);
  }
  // log1p(y) = 2 atanh(s), s = y / (2 + y) in [0, 1/3] for y in [0, 1]: atanh(s) / s as a degree-4
  // minimax polynomial in t = s^2 on [0, 1/9] (relative error 4e-9, below float32 rounding), with
  // one division and no exponent handling; the softplus of every GAN loss goes through here.
  static PYGAN_INLINE VecF log1p_unit(VecF y) {
    const VecF s = y / (y + 2.0f);
    const VecF t = s * s;
    const VecF t2 = t * t;  // Estrin's scheme (see exp_clamped)
    const VecF p = t2 * (t2 * 0.140891733f + (t * 0.139803050f + 0.200124544f)) + (t * 0.333331574f + 1.0f);
    return (s + s) * p;
  }
  // log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1.
  static PYGAN_INLINE VecF log(VecF x) {
    // Subnormals: scale into the normal range first.
    const MaskF tiny = x < 1.17549435e-38f;
    const VecF xs = select(tiny, x * 8388608.0f, x);  // 2^23
    const i32x8 b = as_bits(xs);
    const VecF m0 = from_bits((b & 0x007fffff) | 0x3f000000);  // [0.5, 1)
    const MaskF small = m0 < 0.707106781186547524f;
    const i32x8 e = ((b >> 23) & 0xff) - 126 + small.m;  // small.m is -1 where set
    const VecF m = select(small, m0 + m0 - 1.0f, m0 - 1.0f);
    const VecF ef = to_float(e) - select(tiny, VecF(23.0f), VecF(0.0f));
    const VecF z = m * m;
    VecF y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y = y + ef * -2.12194440e-4f;
    y = y + z * -0.5f;
    VecF out = m + y + ef * 0.693359375f;
    out = select(x == 0.0f, -infinity<VecF>(), out);
    out = select(x < 0.0f, VecF(std::numeric_limits<float>::quiet_NaN()), out);
    out = select(x == infinity<VecF>(), x, out);
    return select(x != x, x, out);
  }
};
#endif  // !__CUDACC__

}  // namespace PYGAN_ISA
}  // namespace pygan
