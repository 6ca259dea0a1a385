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

// The deterministic one-launch reduction's last step: every block calls this with its partial in
// thread 0; the last block to arrive (an atomic ticket after a fence) adds the partials in block
// order, hands the sum to store() in thread 0 and resets the ticket counter for the next launch.
template <int THREADS, class Acc, class Store>
__device__ void finish_in_last_block(Acc partial, Acc* partials, unsigned* counter, Store store) {
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = partial;
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  Acc sum = 0;
  const volatile Acc* p = partials;
  for (int64_t k = threadIdx.x; k < int64_t(gridDim.x); k += THREADS) sum += p[k];
  sum = block_sum<THREADS>(sum);
  if (threadIdx.x == 0) {
    store(sum);
    *counter = 0u;
  }
}

inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("pygan CUDA kernel ") + what + " failed to launch: " +
                             cudaGetErrorString(err));
}

}  // namespace
}  // namespace pygan
