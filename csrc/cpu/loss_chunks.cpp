// Inner loops of the fused adversarial loss on the CPU, for the instruction set this file is built
// for (see loss_chunks.h). float32, bf16 and fp16 inputs are computed in float32 VecF lanes with
// VecMath; float64 runs scalar with libm.
#include <type_traits>

#include "../loss_terms.h"
#include "loss_chunks.h"

namespace pygan {
inline namespace PYGAN_ISA {
namespace {

struct Half {};
struct BFloat {};

// Storage type of each input dtype and its conversion to and from the compute type.
template <class S> struct Storage {
  using type = S;
  static S load(S x) { return x; }
  static S store(S x) { return x; }
};
template <> struct Storage<Half> {
  using type = uint16_t;
  static float load(uint16_t x) { return f16_to_float(x); }
  static uint16_t store(float x) { return float_to_f16(x); }
};
template <> struct Storage<BFloat> {
  using type = uint16_t;
  static float load(uint16_t x) { return bf16_to_float(x); }
  static uint16_t store(float x) { return float_to_bf16(x); }
};

template <class S> struct StorageTag { using type = S; };

template <class F> void dispatch_dtype(int dtype, F&& f) {
  switch (dtype) {
    case F64: f(StorageTag<double>{}); break;
    case F16: f(StorageTag<Half>{}); break;
    case BF16: f(StorageTag<BFloat>{}); break;
    default: f(StorageTag<float>{}); break;
  }
}

// `count` lanes from p (the rest zero), converted to float32.
template <class S> PYGAN_INLINE VecF load_lanes(const typename Storage<S>::type* p, int count) {
  float buf[VEC_WIDTH] = {};
  for (int l = 0; l < count; ++l) buf[l] = Storage<S>::load(p[l]);
  return VecF::load(buf);
}

template <class S> PYGAN_INLINE void store_lanes(typename Storage<S>::type* p, VecF v, int count) {
  float buf[VEC_WIDTH];
  v.store(buf);
  for (int l = 0; l < count; ++l) p[l] = Storage<S>::store(buf[l]);
}

template <class T> T read_shift(const Side& s) {
  return s.shift ? *reinterpret_cast<const T*>(s.shift) : T(0);
}

template <int C>
double forward_f64(const Side& s, double alpha, int reduction, uintptr_t out, uintptr_t grad,
                   double gscale, int64_t lo, int64_t hi) {
  const double* x = reinterpret_cast<const double*>(s.x);
  const double shift = read_shift<double>(s);
  double v, d, sum = 0.0;
  if (reduction == NONE) {
    double* o = reinterpret_cast<double*>(out);
    for (int64_t i = lo; i < hi; ++i) {
      term<C, StdMath>(x[i] - shift, alpha, v, d);
      o[i] = s.sign * v;
    }
    return 0.0;
  }
  double* g = reinterpret_cast<double*>(grad);
  for (int64_t i = lo; i < hi; ++i) {
    term<C, StdMath>(x[i] - shift, alpha, v, d);
    sum += v;
    if (g) g[i] = gscale * d;
  }
  return sum;
}

// float32 lanes; two accumulators (alternating vectors) keep the sum's rounding error small and
// its dependency chain short. Lane sums are added in lane order, so the result depends only on
// [lo, hi), never on threads.
template <class S, int C>
double forward_f32(const Side& s, double alpha, int reduction, uintptr_t out, uintptr_t grad,
                   double gscale, int64_t lo, int64_t hi) {
  using ST = typename Storage<S>::type;
  const ST* x = reinterpret_cast<const ST*>(s.x);
  const VecF shift = read_shift<float>(s);
  const VecF a = float(alpha);
  VecF v, d;
  if (reduction == NONE) {
    ST* o = reinterpret_cast<ST*>(out);
    const VecF sign = float(s.sign);
    for (int64_t i = lo; i < hi; i += VEC_WIDTH) {
      const int count = hi - i < VEC_WIDTH ? int(hi - i) : VEC_WIDTH;
      term<C, VecMath>(load_lanes<S>(x + i, count) - shift, a, v, d);
      store_lanes<S>(o + i, sign * v, count);
    }
    return 0.0;
  }
  float* g = reinterpret_cast<float*>(grad);  // compute dtype, whatever the storage
  const VecF gs = float(gscale);
  VecF acc0 = 0.0f, acc1 = 0.0f;  // named, not an array indexed by parity: they stay in registers
  int64_t i = lo;
  for (; i + 2 * VEC_WIDTH <= hi; i += 2 * VEC_WIDTH) {
    term<C, VecMath>(load_lanes<S>(x + i, VEC_WIDTH) - shift, a, v, d);
    acc0 += v;
    if (g) (gs * d).store(g + i);
    term<C, VecMath>(load_lanes<S>(x + i + VEC_WIDTH, VEC_WIDTH) - shift, a, v, d);
    acc1 += v;
    if (g) (gs * d).store(g + i + VEC_WIDTH);
  }
  for (; i < hi; i += VEC_WIDTH) {
    const int count = hi - i < VEC_WIDTH ? int(hi - i) : VEC_WIDTH;
    term<C, VecMath>(load_lanes<S>(x + i, count) - shift, a, v, d);
    acc0 += select(lane_index() < VecF(count), v, VecF(0.0f));
    if (g) store_lanes<float>(g + i, gs * d, count);
  }
  double sum = 0.0;
  for (int l = 0; l < VEC_WIDTH; ++l) sum += double(acc0[l]) + double(acc1[l]);
  return sum;
}

template <int C, int ORDER>
void backward_f64(const Side& s, double alpha, double scale, uintptr_t up, uintptr_t grad,
                  int64_t lo, int64_t hi) {
  const double* x = reinterpret_cast<const double*>(s.x);
  const double* u = reinterpret_cast<const double*>(up);
  double* g = reinterpret_cast<double*>(grad);
  const double shift = read_shift<double>(s);
  for (int64_t i = lo; i < hi; ++i) {
    g[i] = (u ? u[i] * scale : scale) * derivative<C, ORDER, StdMath>(x[i] - shift, alpha);
  }
}

template <class S, int C, int ORDER>
void backward_f32(const Side& s, double alpha, double scale, uintptr_t up, uintptr_t grad,
                  int64_t lo, int64_t hi) {
  using ST = typename Storage<S>::type;
  const ST* x = reinterpret_cast<const ST*>(s.x);
  const ST* u = reinterpret_cast<const ST*>(up);
  ST* g = reinterpret_cast<ST*>(grad);
  const VecF shift = read_shift<float>(s);
  const VecF a = float(alpha);
  const VecF w = float(scale);
  for (int64_t i = lo; i < hi; i += VEC_WIDTH) {
    const int count = hi - i < VEC_WIDTH ? int(hi - i) : VEC_WIDTH;
    const VecF d = derivative<C, ORDER, VecMath>(load_lanes<S>(x + i, count) - shift, a);
    const VecF scaled = u ? load_lanes<S>(u + i, count) * w : w;
    store_lanes<S>(g + i, scaled * d, count);
  }
}

double forward_range(const Side& s, double alpha, int reduction, uintptr_t out, uintptr_t grad,
                     double gscale, int64_t lo, int64_t hi) {
  double result = 0.0;
  dispatch_dtype(s.dtype, [&](auto st) {
    using S = typename decltype(st)::type;
    dispatch_term(s.term, [&](auto tt) {
      constexpr int C = decltype(tt)::value;
      if constexpr (std::is_same_v<S, double>) result = forward_f64<C>(s, alpha, reduction, out, grad, gscale, lo, hi);
      else result = forward_f32<S, C>(s, alpha, reduction, out, grad, gscale, lo, hi);
    });
  });
  return result;
}

template <int ORDER>
void backward_order(const Side& s, double alpha, double scale, uintptr_t up, uintptr_t grad,
                    int64_t lo, int64_t hi) {
  dispatch_dtype(s.dtype, [&](auto st) {
    using S = typename decltype(st)::type;
    dispatch_term(s.term, [&](auto tt) {
      constexpr int C = decltype(tt)::value;
      if constexpr (std::is_same_v<S, double>) backward_f64<C, ORDER>(s, alpha, scale, up, grad, lo, hi);
      else backward_f32<S, C, ORDER>(s, alpha, scale, up, grad, lo, hi);
    });
  });
}

void backward_range(const Side& s, double alpha, double scale, uintptr_t up, uintptr_t grad,
                    int order, int64_t lo, int64_t hi) {
  if (order == 2) backward_order<2>(s, alpha, scale, up, grad, lo, hi);
  else backward_order<1>(s, alpha, scale, up, grad, lo, hi);
}

}  // namespace

extern const ChunkKernels chunk_kernels = {forward_range, backward_range, PYGAN_ISA_NAME};

}  // namespace PYGAN_ISA
}  // namespace pygan
