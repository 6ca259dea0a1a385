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
    {
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
    for (int64_t i = lo; i < hi; ++i) {
      const bool on = (mp[i >> 3] >> (i & 7)) & 1;
      store_as<Acc>(op, i, DT, load_as<Acc>(gp, i, DT) * pick(on, Acc(1), Acc(slope)));
    }
  });
}

}  // namespace pygan
