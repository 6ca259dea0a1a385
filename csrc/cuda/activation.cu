// CUDA kernels of the fused bias + LeakyReLU and its mask-driven derivative (activation.h). One
// thread per mask byte (8 elements) in the forward, so every byte has a single writer.
#include <cuda_runtime.h>

#include <algorithm>

#include "../activation.h"
#include "reduce.cuh"

namespace pygan {
namespace {

constexpr int THREADS = 256;

template <class Acc>
__global__ void bias_leaky_kernel(const void* x, const void* bias, int dtype, int64_t n,
                                  int64_t channels, int64_t inner, Acc slope, void* y, uint8_t* mask) {
  const int64_t bytes = (n + 7) / 8;
  for (int64_t byte = int64_t(blockIdx.x) * THREADS + threadIdx.x; byte < bytes;
       byte += int64_t(gridDim.x) * THREADS) {
    uint8_t bits = 0;
    for (int k = 0; k < 8; ++k) {
      const int64_t i = byte * 8 + k;
      if (i >= n) break;
      Acc v = load_as<Acc>(x, i, dtype);
      if (bias) v += load_as<Acc>(bias, (i / inner) % channels, dtype);
      bits |= uint8_t(v > Acc(0)) << k;
      store_as<Acc>(y, i, dtype, leaky(v, slope));
    }
    mask[byte] = bits;
  }
}

template <class Acc>
__global__ void leaky_grad_kernel(const void* g, int dtype, int64_t n, const uint8_t* mask,
                                  Acc slope, void* out) {
  for (int64_t i = int64_t(blockIdx.x) * THREADS + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * THREADS) {
    const bool on = (mask[i >> 3] >> (i & 7)) & 1;
    store_as<Acc>(out, i, dtype, load_as<Acc>(g, i, dtype) * (on ? Acc(1) : slope));
  }
}

unsigned blocks_for(int64_t work) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>((work + THREADS - 1) / THREADS, 65535)));
}

}  // namespace

void bias_leaky_relu_cuda(uintptr_t x, uintptr_t bias, int dtype, int64_t n, int64_t channels,
                          int64_t inner, double slope, uintptr_t y, uintptr_t mask, uintptr_t stream) {
  if (n == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  auto run = [&](auto zero) {
    using Acc = decltype(zero);
    bias_leaky_kernel<Acc><<<blocks_for((n + 7) / 8), THREADS, 0, st>>>(
        reinterpret_cast<const void*>(x), reinterpret_cast<const void*>(bias), dtype, n, channels,
        inner, Acc(slope), reinterpret_cast<void*>(y), reinterpret_cast<uint8_t*>(mask));
  };
  if (dtype == F64) run(0.0);
  else run(0.0f);
  check_launch("bias_leaky_relu");
}

void leaky_relu_grad_cuda(uintptr_t g, int dtype, int64_t n, uintptr_t mask, double slope,
                          uintptr_t out, uintptr_t stream) {
  if (n == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  auto run = [&](auto zero) {
    using Acc = decltype(zero);
    leaky_grad_kernel<Acc><<<blocks_for(n), THREADS, 0, st>>>(
        reinterpret_cast<const void*>(g), dtype, n, reinterpret_cast<const uint8_t*>(mask),
        Acc(slope), reinterpret_cast<void*>(out));
  };
  if (dtype == F64) run(0.0);
  else run(0.0f);
  check_launch("leaky_relu_grad");
}

}  // namespace pygan
