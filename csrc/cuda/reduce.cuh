// Block reductions and launch checks shared by pygan's CUDA kernels.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pygan {
namespace {

// Sum over a block of THREADS threads (a multiple of 32); the result is valid in thread 0. The order
// of additions is fixed, so the sum is reproducible.
template <int THREADS, class Acc> __device__ Acc block_sum(Acc v) {
  __shared__ Acc warp_sums[THREADS / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < THREADS / 32 ? warp_sums[threadIdx.x] : Acc(0);
  if (warp == 0)
    for (int o = THREADS / 64; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}

// The deterministic one-launch reduction's last step, for K sums at once: every block calls this
// with its K partials in thread 0 (partial k goes to partials[k * gridDim.x + block]); the last block
// to arrive (an atomic ticket after a fence) adds each sum's partials in block order, hands them to
// store(k, sum) in thread 0 and resets the ticket counter for the next launch.
template <int THREADS, int K, class Acc, class Store>
__device__ void finish_in_last_block(const Acc (&partial)[K], Acc* partials, unsigned* counter, Store store) {
  __shared__ bool last;
  if (threadIdx.x == 0) {
    for (int k = 0; k < K; ++k) partials[int64_t(k) * gridDim.x + blockIdx.x] = partial[k];
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const volatile Acc* p = partials;
  for (int k = 0; k < K; ++k) {
    Acc sum = 0;
    for (int64_t b = threadIdx.x; b < int64_t(gridDim.x); b += THREADS) sum += p[int64_t(k) * gridDim.x + b];
    sum = block_sum<THREADS>(sum);
    if (threadIdx.x == 0) store(k, sum);
  }
  if (threadIdx.x == 0) *counter = 0u;
}

// The same for one sum.
template <int THREADS, class Acc, class Store>
__device__ void finish_in_last_block(Acc partial, Acc* partials, unsigned* counter, Store store) {
  const Acc one[1] = {partial};
  finish_in_last_block<THREADS, 1>(one, partials, counter, [&](int, Acc sum) { store(sum); });
}

inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("pygan CUDA kernel ") + what + " failed to launch: " +
                             cudaGetErrorString(err));
}

}  // namespace
}  // namespace pygan
