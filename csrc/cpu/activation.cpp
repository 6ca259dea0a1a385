// CPU kernels of the fused bias + LeakyReLU and its mask-driven derivative (activation.h). Chunks
// are multiples of 8 elements, so no mask byte is shared between threads. Loops are compiled per
// storage type, and the channel of each element is tracked by counting, not by dividing.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "../activation.h"
#include "parallel.h"

namespace pygan {
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

// Runs f(dtype tag, lo, hi) over the CHUNK-sized chunks of n elements, compiled per storage type.
template <class F> void typed_chunks(int dtype, int64_t n, F&& f) {
  dispatch_dtype(dtype, [&](auto tag) {
    parallel_chunks(n, [&](int64_t c) { f(tag, c * CHUNK, std::min(n, (c + 1) * CHUNK)); });
  });
}

}  // namespace

static_assert(CHUNK % 8 == 0, "mask bytes must not straddle chunks");

// Where x + b > 0, from y = leaky(x + b) itself: for slope >= 0 (and only then) y > 0 exactly where
// x + b > 0, including after rounding to the storage type (a positive sum of two values of one
// floating-point type is at least its smallest subnormal, so it never rounds to zero).
template <int DT> void pack_bits(const void* yp, uint8_t* mp, int64_t lo, int64_t hi) {
  using Acc = std::conditional_t<DT == F64, double, float>;
  int64_t j = lo;
  if constexpr (DT == F32 || DT == F64) {
    const Acc* __restrict ys = static_cast<const Acc*>(yp);
    for (; j + 8 <= hi; j += 8) {
      unsigned bits = 0;
      for (int k = 0; k < 8; ++k) bits |= unsigned(ys[j + k] > Acc(0)) << k;
      mp[j >> 3] = uint8_t(bits);
    }
  }
  for (; j < hi; j += 8) {
    uint8_t bits = 0;
    const int64_t end = std::min(hi, j + 8);
    for (int64_t i = j; i < end; ++i) bits |= uint8_t(load_as<Acc>(yp, i, DT) > Acc(0)) << (i - j);
    mp[j >> 3] = bits;
  }
}

void bias_leaky_relu_cpu(uintptr_t x, uintptr_t bias, int dtype, int64_t n, int64_t channels,
                         int64_t inner, double slope, uintptr_t y, uintptr_t mask) {
  const void* xp = reinterpret_cast<const void*>(x);
  const void* bp = reinterpret_cast<const void*>(bias);
  void* yp = reinterpret_cast<void*>(y);
  uint8_t* mp = reinterpret_cast<uint8_t*>(mask);
  typed_chunks(dtype, n, [&](auto tag, int64_t lo, int64_t hi) {
    constexpr int DT = decltype(tag)::value;
    using Acc = std::conditional_t<DT == F64, double, float>;
    const Acc s = Acc(slope);
    if (slope >= 0) {
      // Two passes: y over runs of one bias value (a plain loop the compiler vectorizes), then the
      // mask from y's sign.
      int64_t i = lo;
      while (i < hi) {
        const int64_t channel = (i / inner) % channels;
        const int64_t run_end = inner == 1 ? std::min(hi, i + (channels - channel))
                                           : std::min(hi, (i / inner + 1) * inner);
        if constexpr (DT == F32 || DT == F64) {  // typed, unaliased pointers: the loops vectorize
          using T = Acc;
          const T* __restrict xs = static_cast<const T*>(xp) + i;
          T* __restrict ys = static_cast<T*>(yp) + i;
          const int64_t len = run_end - i;
          if (inner == 1 && bp) {  // (rows, channels): the bias varies along the run
            const T* __restrict bs = static_cast<const T*>(bp) + channel;
            for (int64_t k = 0; k < len; ++k) ys[k] = leaky(xs[k] + bs[k], s);
          } else {
            const T b = bp ? static_cast<const T*>(bp)[channel] : T(0);
            for (int64_t k = 0; k < len; ++k) ys[k] = leaky(xs[k] + b, s);
          }
        } else if (inner == 1 && bp) {
          for (int64_t k = i; k < run_end; ++k)
            store_as<Acc>(yp, k, DT, leaky(load_as<Acc>(xp, k, DT) + load_as<Acc>(bp, channel + (k - i), DT), s));
        } else {
          const Acc b = bp ? load_as<Acc>(bp, channel, DT) : Acc(0);
          for (int64_t k = i; k < run_end; ++k) store_as<Acc>(yp, k, DT, leaky(load_as<Acc>(xp, k, DT) + b, s));
        }
        i = run_end;
      }
      pack_bits<DT>(yp, mp, lo, hi);
      return;
    }
    // A negative slope: y's sign no longer tells x + b's, so the mask comes from x + b itself.
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

void leaky_relu_grad_cpu(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope, uintptr_t out) {
  const void* gp = reinterpret_cast<const void*>(g);
  const uint8_t* mp = reinterpret_cast<const uint8_t*>(mask);
  void* op = reinterpret_cast<void*>(out);
  typed_chunks(dtype, n, [&](auto tag, int64_t lo, int64_t hi) {
    constexpr int DT = decltype(tag)::value;
    using Acc = std::conditional_t<DT == F64, double, float>;
    const Acc s = Acc(slope), rise = Acc(1) - Acc(slope);
    // factor = slope + (1 - slope) * bit: arithmetic instead of a select, so the loop vectorizes;
    // used where it is exact (bit 1 must give exactly 1), else the select.
    const bool arithmetic = slope >= -1.0 && slope <= 1.0 && Acc(s + rise) == Acc(1);
    if constexpr (DT == F32 || DT == F64) {
      if (arithmetic) {  // typed, unaliased pointers, eight elements per mask byte
        const Acc* __restrict gs = static_cast<const Acc*>(gp);
        Acc* __restrict os = static_cast<Acc*>(op);
        int64_t i = lo;
        for (; i + 8 <= hi; i += 8) {
          const unsigned m = mp[i >> 3];
          for (int k = 0; k < 8; ++k) os[i + k] = gs[i + k] * (s + rise * Acc((m >> k) & 1u));
        }
        for (; i < hi; ++i) os[i] = gs[i] * (s + rise * Acc((mp[i >> 3] >> (i & 7)) & 1));
        return;
      }
    }
    for (int64_t i = lo; i < hi; ++i) {
      const int bit = (mp[i >> 3] >> (i & 7)) & 1;
      const Acc f = arithmetic ? s + rise * Acc(bit) : pick(bit != 0, Acc(1), s);
      store_as<Acc>(op, i, DT, load_as<Acc>(gp, i, DT) * f);
    }
  });
}

}  // namespace pygan
