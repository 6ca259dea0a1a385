// CPU kernels of the fused bias + LeakyReLU and its mask-driven derivative (activation.h): the
// threading and the choice of build; the loops are in activation_chunks.cpp, compiled once per
// instruction set. Chunks are multiples of 8 elements, so no mask byte is shared between threads.
#include <algorithm>

#include "../activation.h"
#include "isa.h"
#include "parallel.h"

namespace pygan {

PYGAN_CPU_BUILDS(
    void bias_leaky_relu_chunk(const void* x, const void* bias, int dtype, int64_t channels, int64_t inner,
                               double slope, void* y, uint8_t* mask, int64_t lo, int64_t hi);
    void leaky_relu_grad_chunk(const void* g, int dtype, const uint8_t* mask, double slope, void* out,
                               int64_t lo, int64_t hi);)

static_assert(CHUNK % 8 == 0, "mask bytes must not straddle chunks");

namespace {
// Runs fn(chunk) over n elements' chunks. An element here costs a fraction of a loss term's, and on
// a training batch (512 x 128) a second thread pays for itself from 32K elements (torch splits its
// LeakyReLU there too): count each element four times against parallel.h's threshold.
template <class F> void activation_chunks(int64_t n, F&& fn) {
  parallel_items((n + CHUNK - 1) / CHUNK, 4 * n, fn);
}
}  // namespace

void bias_leaky_relu_cpu(uintptr_t x, uintptr_t bias, int dtype, int64_t n, int64_t channels,
                         int64_t inner, double slope, uintptr_t y, uintptr_t mask) {
  const auto chunk = PYGAN_CPU_BUILD(bias_leaky_relu_chunk);
  const void* xp = reinterpret_cast<const void*>(x);
  const void* bp = reinterpret_cast<const void*>(bias);
  void* yp = reinterpret_cast<void*>(y);
  uint8_t* mp = reinterpret_cast<uint8_t*>(mask);
  activation_chunks(n, [&](int64_t c) {
    chunk(xp, bp, dtype, channels, inner, slope, yp, mp, c * CHUNK, std::min(n, (c + 1) * CHUNK));
  });
}

void leaky_relu_grad_cpu(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope, uintptr_t out) {
  const auto chunk = PYGAN_CPU_BUILD(leaky_relu_grad_chunk);
  const void* gp = reinterpret_cast<const void*>(g);
  const uint8_t* mp = reinterpret_cast<const uint8_t*>(mask);
  void* op = reinterpret_cast<void*>(out);
  activation_chunks(n, [&](int64_t c) {
    chunk(gp, dtype, mp, slope, op, c * CHUNK, std::min(n, (c + 1) * CHUNK));
  });
}

}  // namespace pygan
