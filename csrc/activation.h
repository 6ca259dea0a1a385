// Fused bias + LeakyReLU with a bit-packed activation mask, as the backends see it.
//
// Forward: y = leaky(x + b[channel]), with leaky(v) = v for v > 0, slope * v otherwise, and bit i of
// the mask set where x_i + b > 0 (byte j holds elements 8j .. 8j+7, lowest bit first). x is viewed
// as (outer, channels, inner): element i belongs to channel (i / inner) % channels.
// Backward (and, since it is linear in its input, its own backward too): out = g * (bit ? 1 : slope).
// The mask is all that the derivatives need: one bit per element instead of a saved input.
#pragma once
#include <cstdint>

#include "common.h"

namespace pygan {

inline namespace PYGAN_ISA {

template <class T> PYGAN_HD T leaky(T v, T slope) { return v > T(0) ? v : v * slope; }

}  // namespace PYGAN_ISA

// x, bias (0 for none) and y in `dtype`; mask holds (n + 7) / 8 bytes.
void bias_leaky_relu_cpu(uintptr_t x, uintptr_t bias, int dtype, int64_t n, int64_t channels,
                         int64_t inner, double slope, uintptr_t y, uintptr_t mask);
void leaky_relu_grad_cpu(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope, uintptr_t out);
// The first backward of bias_leaky_relu in one call: out = g * (bit ? 1 : slope), where g is one value
// for every element when `g_broadcast` is 1 (the expanded upstream of a sum), and, when bias_grad is
// not 0, bias_grad[c] = the sum of out over channel c's elements (accumulated in float64, written in
// `dtype`; each channel summed in a fixed order, whatever the thread count).
void bias_leaky_relu_backward_cpu(uintptr_t g, int g_broadcast, int dtype, int64_t n, int64_t channels,
                                  int64_t inner, uintptr_t mask, double slope, uintptr_t out,
                                  uintptr_t bias_grad);

void bias_leaky_relu_cuda(uintptr_t x, uintptr_t bias, int dtype, int64_t n, int64_t channels,
                          int64_t inner, double slope, uintptr_t y, uintptr_t mask, uintptr_t stream);
void leaky_relu_grad_cuda(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope,
                          uintptr_t out, uintptr_t stream);

}  // namespace pygan
