// CPU kernels of the fused bias + LeakyReLU and its mask-driven derivative (activation.h): the
// threading and the choice of build; the loops are in activation_chunks.cpp, compiled once per
// instruction set. Chunks are multiples of 8 elements, so no mask byte is shared between threads.
#include <algorithm>
#include <type_traits>

#include "../common.h"

#include "../activation.h"
#include "isa.h"
#include "parallel.h"

namespace pygan {

PYGAN_CPU_BUILDS(
    void bias_leaky_relu_chunk(const void* x, const void* bias, int dtype, int64_t channels, int64_t inner,
                               double slope, void* y, uint8_t* mask, int64_t lo, int64_t hi);
    void leaky_relu_grad_chunk(const void* g, int64_t g_step, int dtype, const uint8_t* mask, double slope,
                               void* out, int64_t lo, int64_t hi);
    void channel_row_sums_f32(const float* v, int64_t rows, int64_t channels, int64_t c0, int64_t nc,
                              double* sums);)

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

namespace {

void masked_scale(uintptr_t g, int64_t g_step, int dtype, int64_t n, uintptr_t mask, double slope,
                  uintptr_t out) {
  const auto chunk = PYGAN_CPU_BUILD(leaky_relu_grad_chunk);
  const void* gp = reinterpret_cast<const void*>(g);
  const uint8_t* mp = reinterpret_cast<const uint8_t*>(mask);
  void* op = reinterpret_cast<void*>(out);
  activation_chunks(n, [&](int64_t c) {
    chunk(gp, g_step, dtype, mp, slope, op, c * CHUNK, std::min(n, (c + 1) * CHUNK));
  });
}

// A float64 sum: plain for float32 and narrower values (float64's 29 extra bits already make the
// sum exact to float32), compensated (Kahan) for float64 values, whose sum must hold to a few ulps
// of the sum of magnitudes whatever the count (a plain running sum loses one ulp per addition).
template <class T> struct Accumulator {
  double sum = 0.0;
  void add(T v) { sum += double(v); }
};
template <> struct Accumulator<double> {
  double sum = 0.0, carry = 0.0;
  void add(double v) {
    const double y = v - carry, t = sum + y;
    carry = (t - sum) - y;
    sum = t;
  }
};

// Channels summed side by side. One channel's sum is one chain of dependent additions (an add's
// latency each, a quarter of what the adders can do), which made the bias gradient of a
// 64 x 32 x 16 x 16 activation cost nine times its masked scaling: BLOCK chains interleaved keep the
// adders busy, and blocks of BLOCK channels give a second thread work. Each channel still adds its
// values in memory order (outer by outer, position by position), so the sums are the same bits for
// any blocking and thread count.
constexpr int64_t BLOCK = 8;  // channels per work item
// A (rows, channels) matrix (inner 1: a linear layer's output, or a channels-last activation) holds a
// row's channels side by side: blocks of 16 read one cache line of float32 per row, where blocks of 8
// read half of one and leave the other half to another thread.
constexpr int64_t ROW_BLOCK = 16;
static_assert(ROW_BLOCK <= 16, "channel_row_sums_f32 vectorizes up to 16 channels");

// sums[c - c0] = the sum over channel c of v (storage type DT), for channels [c0, c1) (at most
// MAX), v viewed as (outer, channels, inner). NC: c1 - c0 when it is MAX (the loop unrolled and kept
// in registers), else 0.
template <int DT, int64_t MAX, int64_t NC>
void channel_sums(const void* v, int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t c1,
                  double* sums) {
  using T = std::conditional_t<DT == F64, double, float>;  // float16 / bfloat16 widen to float exactly
  const int64_t nc = NC ? NC : c1 - c0;
  Accumulator<T> acc[MAX];
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t row = (o * channels + c0) * inner;
    for (int64_t k = 0; k < inner; ++k)  // the block's channels at one position, then the next
      for (int64_t c = 0; c < nc; ++c) acc[c].add(load_as<T>(v, row + c * inner + k, DT));
  }
  for (int64_t c = 0; c < nc; ++c) sums[c] = acc[c].sum;
}

template <int64_t MAX>
void bias_grad_blocks(const void* p, int dtype, int64_t n, int64_t channels, int64_t inner, void* bias_grad) {
  const int64_t outer = n / (channels * inner);
  parallel_items((channels + MAX - 1) / MAX, n, [&](int64_t b) {
    const int64_t c0 = b * MAX, c1 = std::min(channels, c0 + MAX);
    double sums[MAX];
    if (dtype == F32 && inner == 1) {  // (rows, channels): the vectorized loop, in the same order
      PYGAN_CPU_BUILD(channel_row_sums_f32)(static_cast<const float*>(p), outer, channels, c0, c1 - c0, sums);
    } else {
      dispatch_dtype(dtype, [&](auto dt) {
        if (c1 - c0 == MAX) {
          channel_sums<decltype(dt)::value, MAX, MAX>(p, outer, channels, inner, c0, c1, sums);
        } else {
          channel_sums<decltype(dt)::value, MAX, 0>(p, outer, channels, inner, c0, c1, sums);
        }
      });
    }
    for (int64_t c = c0; c < c1; ++c) store_as<double>(bias_grad, c, dtype, sums[c - c0]);
  }, Schedule::BLOCKED);
}

// bias_grad[c] = the sum of v over channel c. Threads take blocks of channels: each channel is summed
// by one thread in one order.
void bias_grad_sums(uintptr_t v, int dtype, int64_t n, int64_t channels, int64_t inner, uintptr_t bias_grad) {
  const void* p = reinterpret_cast<const void*>(v);
  void* out = reinterpret_cast<void*>(bias_grad);
  if (inner == 1) {
    bias_grad_blocks<ROW_BLOCK>(p, dtype, n, channels, inner, out);
  } else {
    bias_grad_blocks<BLOCK>(p, dtype, n, channels, inner, out);
  }
}

}  // namespace

void leaky_relu_grad_cpu(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope, uintptr_t out) {
  masked_scale(g, 1, dtype, n, mask, slope, out);
}

void bias_leaky_relu_backward_cpu(uintptr_t g, int g_broadcast, int dtype, int64_t n, int64_t channels,
                                  int64_t inner, uintptr_t mask, double slope, uintptr_t out,
                                  uintptr_t bias_grad) {
  masked_scale(g, g_broadcast ? 0 : 1, dtype, n, mask, slope, out);
  if (bias_grad && channels > 0 && inner > 0) bias_grad_sums(out, dtype, n, channels, inner, bias_grad);
}

}  // namespace pygan
