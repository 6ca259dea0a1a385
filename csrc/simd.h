// Lane-wise selection and the CPU's SIMD float type, so that one body of math serves scalars (CPU
// float64, every CUDA thread) and vectors of float32 lanes (CPU float32, bf16 and fp16).
//
// The math in fast_math.h and loss_terms.h is written against a type T with arithmetic, the
// comparisons, T(constant) and select(mask, a, b) in place of `?:`. For scalars select is the
// ternary; for VecF it is a lane-wise blend. Vectors use GCC / Clang vector extensions: the compiler
// emits AVX2 when the translation unit is built with -mavx2 and pairs of SSE2 operations otherwise,
// which is how the CPU kernels get one build per instruction set (cpu/loss_chunks*.cpp).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"

namespace pygan {
inline namespace PYGAN_ISA {

template <class T> PYGAN_HD T select(bool c, T a, T b) { return c ? a : b; }

#if !defined(__CUDACC__)

constexpr int VEC_WIDTH = 8;  // float32 lanes per VecF (one AVX register)

typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

// Lane mask: all bits set where true (the result of a vector comparison).
struct MaskF {
  i32x8 m;
};

struct VecF {
  f32x8 v;
  VecF() = default;
  PYGAN_INLINE VecF(f32x8 x) : v(x) {}
  // Broadcast: lets math written as T(0.5) * u serve vectors unchanged.
  template <class S, class = std::enable_if_t<std::is_arithmetic_v<S>>>
  PYGAN_INLINE VecF(S c) : v(f32x8{} + float(c)) {}

  static PYGAN_INLINE VecF load(const float* p) { VecF r; std::memcpy(&r.v, p, sizeof(r.v)); return r; }
  PYGAN_INLINE void store(float* p) const { std::memcpy(p, &v, sizeof(v)); }
  PYGAN_INLINE float operator[](int i) const { return v[i]; }

  friend PYGAN_INLINE VecF operator+(VecF a, VecF b) { return {a.v + b.v}; }
  friend PYGAN_INLINE VecF operator-(VecF a, VecF b) { return {a.v - b.v}; }
  friend PYGAN_INLINE VecF operator*(VecF a, VecF b) { return {a.v * b.v}; }
  friend PYGAN_INLINE VecF operator/(VecF a, VecF b) { return {a.v / b.v}; }
  friend PYGAN_INLINE VecF operator-(VecF a) { return {-a.v}; }
  PYGAN_INLINE VecF& operator+=(VecF b) { v += b.v; return *this; }
  friend PYGAN_INLINE MaskF operator<(VecF a, VecF b) { return {a.v < b.v}; }
  friend PYGAN_INLINE MaskF operator<=(VecF a, VecF b) { return {a.v <= b.v}; }
  friend PYGAN_INLINE MaskF operator>(VecF a, VecF b) { return {a.v > b.v}; }
  friend PYGAN_INLINE MaskF operator>=(VecF a, VecF b) { return {a.v >= b.v}; }
  friend PYGAN_INLINE MaskF operator==(VecF a, VecF b) { return {a.v == b.v}; }
  friend PYGAN_INLINE MaskF operator!=(VecF a, VecF b) { return {a.v != b.v}; }
};

PYGAN_INLINE VecF select(MaskF c, VecF a, VecF b) { return {c.m ? a.v : b.v}; }

// Bit views and conversions used by the polynomial exp and log.
PYGAN_INLINE i32x8 as_bits(VecF x) { return reinterpret_cast<i32x8>(x.v); }
PYGAN_INLINE VecF from_bits(i32x8 b) { return {reinterpret_cast<f32x8>(b)}; }
PYGAN_INLINE i32x8 truncate_to_int(VecF x) { return __builtin_convertvector(x.v, i32x8); }
PYGAN_INLINE VecF to_float(i32x8 i) { return {__builtin_convertvector(i, f32x8)}; }

// Lanes 0, 1, ..., VEC_WIDTH - 1: compared with a count to mask off a partial last vector.
PYGAN_INLINE VecF lane_index() { return {f32x8{0, 1, 2, 3, 4, 5, 6, 7}}; }

#endif  // !__CUDACC__

}  // namespace PYGAN_ISA
}  // namespace pygan
