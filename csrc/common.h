// Shared definitions for pygan's C++ kernels (CPU and CUDA): host/device qualifiers,
// dtype codes and conversions between storage types and the compute type.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

// Always inlined: the math is small functions whose constants and lanes must stay in registers
// inside each kernel loop; a call per function (what the inliner chooses for big kernels) costs
// more than the math.
#define PYGAN_INLINE inline __attribute__((always_inline))
#if defined(__CUDACC__)
#define PYGAN_HD __host__ __device__ __forceinline__
#else
#define PYGAN_HD PYGAN_INLINE
#endif

// The CPU kernels are compiled once per instruction set (cpu/loss_chunks*.cpp). Everything they
// inline lives in an inline namespace named after the set, so that the copies never merge at link
// time: a generic build must not end up calling an AVX2 copy of a shared helper.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__CUDACC__)
#define PYGAN_ISA isa_avx2
#define PYGAN_ISA_NAME "avx2"
#else
#define PYGAN_ISA isa_base
#define PYGAN_ISA_NAME "base"
#endif

namespace pygan {
inline namespace PYGAN_ISA {

// Dtype codes shared with Python (pygan/_ops/backend.py DTYPE_CODES).
enum DType : int { F32 = 0, F64 = 1, F16 = 2, BF16 = 3 };

PYGAN_HD float bits_to_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, 4);
  return f;
#endif
}

PYGAN_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
#endif
}

// bfloat16 is the top half of a float32.
PYGAN_HD float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

// Round to nearest even; NaN stays a quiet NaN (the rounding add would otherwise carry into the
// sign bit for some payloads).
PYGAN_HD uint16_t float_to_bf16(float f) {
  uint32_t b = float_to_bits(f);
  uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return (f != f) ? uint16_t(0x7fc0u | ((b >> 16) & 0x8000u)) : uint16_t(rounded);
}

// IEEE binary16 -> float32, exact, including subnormals, inf and NaN. Written without branches on
// data so that the CPU loops that use it still vectorize.
PYGAN_HD float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t body = uint32_t(h & 0x7fffu) << 13;   // exponent and mantissa in float position
  const uint32_t exp = body & 0x0f800000u;
  const uint32_t normal = body + (112u << 23);          // rebias 15 -> 127
  const uint32_t infnan = body + (224u << 23);          // exponent 31 -> 255
  // Subnormal: place the mantissa under exponent 113, then subtract 2^-14.
  const float sub = bits_to_float(body + (113u << 23)) - bits_to_float(113u << 23);
  uint32_t out = (exp == 0x0f800000u) ? infnan : normal;
  out = (exp == 0) ? float_to_bits(sub) : out;
  return bits_to_float(out | sign);
}

// float32 -> IEEE binary16, round to nearest even, overflow to inf, NaN stays NaN.
PYGAN_HD uint16_t float_to_f16(float f) {
  uint32_t b = float_to_bits(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  // Too large (or inf / NaN).
  const uint32_t big = (b > 0x7f800000u) ? 0x7e00u : 0x7c00u;
  // Subnormal half: let the float adder do the rounding by adding a magic number.
  const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const uint32_t sub = float_to_bits(bits_to_float(b) + bits_to_float(denorm_magic)) - denorm_magic;
  // Normal half: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t mant_odd = (b >> 13) & 1u;
  const uint32_t norm = (b + (uint32_t(15 - 127) << 23) + 0xfffu + mant_odd) >> 13;
  uint32_t out = (b >= (143u << 23)) ? big : ((b < (113u << 23)) ? sub : norm);
  return uint16_t(out | (sign >> 16));
}

template <class T> PYGAN_HD T load_as(const void* p, int64_t i, int dtype);

template <> PYGAN_HD float load_as<float>(const void* p, int64_t i, int dtype) {
  switch (dtype) {
    case F64: return float(static_cast<const double*>(p)[i]);
    case F16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    case BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

template <> PYGAN_HD double load_as<double>(const void* p, int64_t i, int dtype) {
  switch (dtype) {
    case F64: return static_cast<const double*>(p)[i];
    default: return double(load_as<float>(p, i, dtype));
  }
}

template <class T> PYGAN_HD void store_as(void* p, int64_t i, int dtype, T v) {
  switch (dtype) {
    case F64: static_cast<double*>(p)[i] = double(v); break;
    case F16: static_cast<uint16_t*>(p)[i] = float_to_f16(float(v)); break;
    case BF16: static_cast<uint16_t*>(p)[i] = float_to_bf16(float(v)); break;
    default: static_cast<float*>(p)[i] = float(v); break;
  }
}

// Calls f(std::integral_constant<int, DT>{}) for the dtype code, so that loops are compiled once per
// storage type (no switch per element).
template <class F> inline void dispatch_dtype(int dtype, F&& f) {
  switch (dtype) {
    case F64: f(std::integral_constant<int, F64>{}); break;
    case F16: f(std::integral_constant<int, F16>{}); break;
    case BF16: f(std::integral_constant<int, BF16>{}); break;
    default: f(std::integral_constant<int, F32>{}); break;
  }
}

}  // namespace PYGAN_ISA
}  // namespace pygan
