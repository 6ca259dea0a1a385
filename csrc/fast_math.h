// Math policies for the loss terms.
//
// `StdMath` calls the platform's libm (host) or CUDA's device math library; it serves float64
// everywhere and every dtype on CUDA. `VecMath` is for float32 loops on the CPU: exp and log written
// as polynomials on bit fields, without calls or data-dependent branches, so that the compiler turns
// each loop into SIMD code. Accuracy is about 2 ulp over the whole float range, with inf, NaN, zero
// and subnormal inputs handled.
//
// Every policy builds log1p, expm1, sigmoid, softplus, tanh and sech^2 from exp and log in the forms
// below, which stay accurate where the naive formulas cancel (see each function's comment).
#pragma once
#include <cmath>
#include <limits>
#include "common.h"

namespace pygan {

// Derived functions, written once for any policy M providing exp(T) and log(T).
template <class M> struct Derived {
  // log(1 + y): Goldberg's correction makes log(w) * y / (w - 1) exact to a few ulp even when 1 + y
  // rounds; w == 1 means y is below half an ulp of 1.
  template <class T> static PYGAN_HD T log1p(T y) {
    const T w = T(1) + y;
    const T d = w - T(1);
    const T r = M::log(w) * (y / (d == T(0) ? T(1) : d));
    return d == T(0) ? y : (w == std::numeric_limits<T>::infinity() ? w : r);
  }
  // exp(x) - 1 by Kahan's formula (u - 1) * x / log(u), which cancels the rounding error of u.
  template <class T> static PYGAN_HD T expm1(T x) {
    const T u = M::exp(x);
    const T um1 = u - T(1);
    const T lu = M::log(u);
    T r = um1 * (x / (lu == T(0) ? T(1) : lu));
    r = (um1 == T(-1)) ? T(-1) : r;
    r = (u == std::numeric_limits<T>::infinity()) ? u : r;
    return (u == T(1)) ? x : r;
  }
  // 1 / (1 + exp(-x)) without overflow for either sign.
  template <class T> static PYGAN_HD T sigmoid(T x) {
    const T e = M::exp(-(x < T(0) ? -x : x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? r : e * r;
  }
  // log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); never overflows, exact for large |x|.
  template <class T> static PYGAN_HD T softplus(T x) {
    const T ax = x < T(0) ? -x : x;
    return (x > T(0) ? x : T(0)) + M::log1p(M::exp(-ax)) + (x - x);  // (x - x) keeps NaN
  }
  // log(softplus(x)); for x < -20 softplus(x) = exp(x) to within 1e-9 relative, so the log is x.
  template <class T> static PYGAN_HD T log_softplus(T x) {
    return x < T(-20) ? x : M::log(softplus(x));
  }
  // tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x: accurate near 0 and at +-inf.
  template <class T> static PYGAN_HD T tanh(T x) {
    const T ax = x < T(0) ? -x : x;
    const T e = M::expm1(T(-2) * ax);
    const T t = -e / (T(2) + e);
    return x < T(0) ? -t : t;
  }
  // sech^2(x) = 1 - tanh^2(x) = 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation for large |x|.
  template <class T> static PYGAN_HD T sech2(T x) {
    const T ax = x < T(0) ? -x : x;
    const T e = M::exp(T(-2) * ax);
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

struct VecMath : Derived<VecMath> {
  // exp: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^n by the exponent field.
  static inline float exp(float x) {
    const float hi = 88.7228394f, lo = -103.972084f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = (xc != xc) ? 0.0f : xc;
    // floor by truncation of a positive number: vectorizes without SSE4.1 (xc >= -104 here).
    const float n = float(int(xc * 1.44269504088896341f + 128.5f)) - 128.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n in two factors so that n down to -150 (subnormal results) and up to 128 stay representable.
    const int ni = int(n);
    const int n1 = ni / 2, n2 = ni - n1;
    const float s1 = bits_to_float(uint32_t(n1 + 127) << 23);
    const float s2 = bits_to_float(uint32_t(n2 + 127) << 23);
    float out = p * s1 * s2;
    out = x > hi ? std::numeric_limits<float>::infinity() : out;
    out = x < lo ? 0.0f : out;
    return (x != x) ? x : out;
  }
  // log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1.
  static inline float log(float x) {
    // Subnormals: scale into the normal range first.
    const bool tiny = x < 1.17549435e-38f;
    const float xs = tiny ? x * 8388608.0f : x;  // 2^23
    const uint32_t b = float_to_bits(xs);
    int e = int((b >> 23) & 0xff) - 126;
    float m = bits_to_float((b & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
    const bool small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    const float ef = float(e) - (tiny ? 23.0f : 0.0f);
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * ef;
    y += -0.5f * z;
    float out = m + y + 0.693359375f * ef;
    out = (x == 0.0f) ? -std::numeric_limits<float>::infinity() : out;
    out = (x < 0.0f) ? std::numeric_limits<float>::quiet_NaN() : out;
    out = (x == std::numeric_limits<float>::infinity()) ? x : out;
    return (x != x) ? x : out;
  }
};

}  // namespace pygan
