// The per-chunk loops of the fused bias + LeakyReLU and its mask-driven derivative (activation.h),
// built once per instruction set like the loss loops: this file for any CPU,
// activation_chunks_avx2.cpp with AVX2 + FMA; activation.cpp owns the threading and picks the build.
// float32 runs 8 elements per step: the sum, the select and one mask byte from the comparison's sign
// bits (VecF of simd.h with AVX2, SSE2 intrinsics in the base x86 build). Other dtypes take the scalar loops. The channel of each element is
// tracked by counting, not by dividing.
#include <algorithm>
#include <cstring>
#include <type_traits>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "../activation.h"
#include "../simd.h"

namespace pygan {
inline namespace PYGAN_ISA {
namespace {

// c ? a : b through bit masks: the sign of random activations defeats branch prediction, and a
// mispredicted branch per element costs more than the rest of the loop.
template <class T> inline T pick(bool c, T a, T b) {
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  Bits ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const Bits m = Bits(0) - Bits(c);
  const Bits r = (ua & m) | (ub & ~m);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

#if defined(__SSE2__) && !defined(__AVX__)
// The base x86 build: GCC lowers VecF's 8-lane comparisons to scalar code without AVX, so the
// 8-element steps are written with 4-lane SSE2 intrinsics there.

// y[0:8] = leaky(x[0:8] + b); returns the mask byte (lane k in bit k).
inline unsigned leaky8(const float* __restrict x, VecF b, float slope, float* __restrict y) {
  const __m128 s = _mm_set1_ps(slope), zero = _mm_setzero_ps();
  __m128 bh[2];
  std::memcpy(bh, &b.v, sizeof(bh));
  unsigned bits = 0;
  for (int h = 0; h < 8; h += 4) {
    const __m128 v = _mm_add_ps(_mm_loadu_ps(x + h), bh[h / 4]);
    const __m128 on = _mm_cmpgt_ps(v, zero);
    _mm_storeu_ps(y + h, _mm_or_ps(_mm_and_ps(on, v), _mm_andnot_ps(on, _mm_mul_ps(v, s))));
    bits |= unsigned(_mm_movemask_ps(on)) << h;
  }
  return bits;
}

// out[0:8] = g[0:8] * (bit ? 1 : slope) for the bits of mask byte `byte`.
inline void grad8(const float* g, unsigned byte, float slope, float* out) {
  const __m128 s = _mm_set1_ps(slope), one = _mm_set1_ps(1.0f);
  for (int h = 0; h < 8; h += 4) {
    const __m128i w = _mm_setr_epi32(1 << h, 2 << h, 4 << h, 8 << h);
    const __m128 on = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32(int(byte)), w), w));
    const __m128 f = _mm_or_ps(_mm_and_ps(on, one), _mm_andnot_ps(on, s));
    _mm_storeu_ps(out + h, _mm_mul_ps(_mm_loadu_ps(g + h), f));
  }
}
#else
// One bit per lane of a comparison, lane k in bit k (a mask byte).
inline unsigned mask_bits(MaskF m) {
#if defined(__AVX__)
  return unsigned(_mm256_movemask_ps(reinterpret_cast<__m256>(m.m)));
#else
  unsigned bits = 0;
  for (int k = 0; k < VEC_WIDTH; ++k) bits |= unsigned(m.m[k] != 0) << k;
  return bits;
#endif
}

inline unsigned leaky8(const float* __restrict x, VecF b, float slope, float* __restrict y) {
  const VecF v = VecF::load(x) + b;
  const MaskF on = v > VecF(0.0f);
  select(on, v, v * VecF(slope)).store(y);
  return mask_bits(on);
}

inline void grad8(const float* g, unsigned byte, float slope, float* out) {
  const i32x8 weights = {1, 2, 4, 8, 16, 32, 64, 128};
  const MaskF on{((i32x8{} + int32_t(byte)) & weights) != 0};
  (VecF::load(g) * select(on, VecF(1.0f), VecF(slope))).store(out);
}
#endif

// float32, 8 elements per step from i (a multiple of 8): y and the mask byte. `channel`/`pos` track
// element i's channel and its place in the channel's run of `inner` elements.
void forward_f32(const float* __restrict x, const float* __restrict bias, int64_t channels, int64_t inner, float slope,
                 float* __restrict y, uint8_t* __restrict mask, int64_t lo, int64_t hi) {
  int64_t channel = (lo / inner) % channels, pos = lo % inner;
  int64_t i = lo;
  for (; i + 8 <= hi; i += 8) {
    VecF b(0.0f);
    if (bias) {
      if (inner == 1 && channel + 8 <= channels) {  // (rows, channels): 8 consecutive channels
        b = VecF::load(bias + channel);
      } else if (pos + 8 <= inner) {  // inside one channel's run: one value for all 8 lanes
        b = VecF(bias[channel]);
      } else {  // the vector crosses channel runs: gather by counting
        float lanes[8];
        int64_t c = channel, p = pos;
        for (int k = 0; k < 8; ++k) {
          lanes[k] = bias[c];
          if (++p == inner) {
            p = 0;
            c = c + 1 == channels ? 0 : c + 1;
          }
        }
        b = VecF::load(lanes);
      }
    }
    mask[i >> 3] = uint8_t(leaky8(x + i, b, slope, y + i));
    pos += 8;  // advance the channel by the 8 elements
    if (pos >= inner) {
      const int64_t runs = inner == 1 ? 8 : pos / inner;
      pos -= runs * inner;
      channel += runs;
      while (channel >= channels) channel -= channels;  // at most 8 / channels + 1 times
    }
  }
  if (i < hi) {  // the last partial byte
    uint8_t bits = 0;
    for (; i < hi; ++i) {
      const float v = x[i] + (bias ? bias[channel] : 0.0f);
      const bool on = v > 0.0f;
      bits |= uint8_t(on) << (i & 7);
      y[i] = pick(on, v, v * slope);
      if (++pos == inner) {
        pos = 0;
        channel = channel + 1 == channels ? 0 : channel + 1;
      }
    }
    mask[(hi - 1) >> 3] = bits;
  }
}

// g_step 1: g[i] per element; 0: g[0] for every element (eight copies of it serve each step).
void grad_f32(const float* g, int64_t g_step, const uint8_t* mask, float slope, float* out, int64_t lo,
              int64_t hi) {
  float same[8];
  if (!g_step) std::fill(same, same + 8, g[0]);
  int64_t i = lo;
  for (; i + 8 <= hi; i += 8) grad8(g_step ? g + i : same, mask[i >> 3], slope, out + i);
  for (; i < hi; ++i) out[i] = g[i * g_step] * pick(((mask[i >> 3] >> (i & 7)) & 1) != 0, 1.0f, slope);
}

// Channels [c0, c0 + 4 * NG) of a float32 (rows, channels) matrix summed over its rows in float64:
// one lane per channel, so each channel still adds its values in memory order (the scalar loop's
// bits), with NG independent vector chains where the scalar loop ran one chain per channel
// and a conversion per element (ten times torch's own column sum on a 16384 x 32 activation).
template <int NG>
void row_sums_f32(const float* __restrict v, int64_t rows, int64_t channels, int64_t c0, double* __restrict sums) {
  typedef float f32x4 __attribute__((vector_size(16)));
  typedef double f64x4 __attribute__((vector_size(32)));
  f64x4 acc[NG] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v + r * channels + c0;
    for (int g = 0; g < NG; ++g) {
      f32x4 x;
      std::memcpy(&x, row + 4 * g, sizeof(x));
      acc[g] += __builtin_convertvector(x, f64x4);
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int k = 0; k < 4; ++k) sums[4 * g + k] = acc[g][k];
}

}  // namespace

void channel_row_sums_f32(const float* v, int64_t rows, int64_t channels, int64_t c0, int64_t nc, double* sums) {
  const int64_t vec = std::min<int64_t>(nc, 16) / 4 * 4;  // whole groups of 4 channels, up to 16
  switch (vec / 4) {
    case 4: row_sums_f32<4>(v, rows, channels, c0, sums); break;
    case 3: row_sums_f32<3>(v, rows, channels, c0, sums); break;
    case 2: row_sums_f32<2>(v, rows, channels, c0, sums); break;
    case 1: row_sums_f32<1>(v, rows, channels, c0, sums); break;
    default: break;
  }
  for (int64_t c = vec; c < nc; ++c) {  // the rest, one channel at a time in the same order
    double acc = 0.0;
    for (int64_t r = 0; r < rows; ++r) acc += double(v[r * channels + c0 + c]);
    sums[c] = acc;
  }
}

void bias_leaky_relu_chunk(const void* xp, const void* bp, int dtype, int64_t channels, int64_t inner,
                           double slope, void* yp, uint8_t* mp, int64_t lo, int64_t hi) {
  if (dtype == F32) {
    forward_f32(static_cast<const float*>(xp), static_cast<const float*>(bp), channels, inner,
                float(slope), static_cast<float*>(yp), mp, lo, hi);
    return;
  }
  dispatch_dtype(dtype, [&](auto tag) {
    constexpr int DT = decltype(tag)::value;
    using Acc = std::conditional_t<DT == F64, double, float>;
    const Acc s = Acc(slope);
    int64_t channel = (lo / inner) % channels, pos = lo % inner;  // of element i, kept by counting
    Acc b = bp ? load_as<Acc>(bp, channel, DT) : Acc(0);
    uint8_t bits = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const Acc v = load_as<Acc>(xp, i, DT) + b;
      const bool on = v > Acc(0);
      bits |= uint8_t(on) << (i & 7);
      store_as<Acc>(yp, i, DT, pick(on, v, v * s));
      if ((i & 7) == 7 || i + 1 == hi) {
        mp[i >> 3] = bits;
        bits = 0;
      }
      if (bp && ++pos == inner) {
        pos = 0;
        channel = channel + 1 == channels ? 0 : channel + 1;
        b = load_as<Acc>(bp, channel, DT);
      }
    }
  });
}

void leaky_relu_grad_chunk(const void* gp, int64_t g_step, int dtype, const uint8_t* mp, double slope,
                           void* op, int64_t lo, int64_t hi) {
  if (dtype == F32) {
    grad_f32(static_cast<const float*>(gp), g_step, mp, float(slope), static_cast<float*>(op), lo, hi);
    return;
  }
  dispatch_dtype(dtype, [&](auto tag) {
    constexpr int DT = decltype(tag)::value;
    using Acc = std::conditional_t<DT == F64, double, float>;
    const Acc s = Acc(slope);
    for (int64_t i = lo; i < hi; ++i) {
      const bool on = ((mp[i >> 3] >> (i & 7)) & 1) != 0;
      store_as<Acc>(op, i, DT, load_as<Acc>(gp, i * g_step, DT) * pick(on, Acc(1), s));
    }
  });
}

}  // namespace PYGAN_ISA
}  // namespace pygan
