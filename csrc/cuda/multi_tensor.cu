// CUDA multi-tensor updates: up to MAX_TENSORS tensors per launch, their pointers passed by value
// as the kernel's argument (no device table to allocate, so a CUDA graph can capture the launch).
// Block b works on tile b - first[t] of tensor t.
#include <cuda_runtime.h>

#include <algorithm>

#include "../multi_tensor.h"
#include "reduce.cuh"

namespace pygan {
namespace {

constexpr int THREADS = 256;
constexpr int MAX_TENSORS = 24;
constexpr int64_t TILE = int64_t(THREADS) * 8;

struct Batch {
  uintptr_t dst[MAX_TENSORS];
  uintptr_t src[MAX_TENSORS];
  int64_t n[MAX_TENSORS];
  int64_t first[MAX_TENSORS + 1];
  int dtype[MAX_TENSORS];
  int count;
};

template <class Acc>
__device__ void update_tile(int op, void* d, const void* s, int dtype, int64_t lo, int64_t hi,
                            Acc bound, Acc w) {
  for (int64_t i = lo + threadIdx.x; i < hi; i += THREADS)
    store_as<Acc>(d, i, dtype, multi_tensor_value<Acc>(op, load_as<Acc>(d, i, dtype),
                                                       load_as<Acc>(s, i, dtype), bound, w));
}

__global__ void __launch_bounds__(THREADS)
multi_tensor_kernel(Batch batch, int op, double bound, const double* weight) {
  const int64_t b = blockIdx.x;
  int t = 0;
  while (t + 1 < batch.count && batch.first[t + 1] <= b) ++t;
  void* d = reinterpret_cast<void*>(batch.dst[t]);
  const void* s = op == LERP ? reinterpret_cast<const void*>(batch.src[t]) : d;
  const int64_t lo = (b - batch.first[t]) * TILE, hi = min(batch.n[t], lo + TILE);
  const double w = op == LERP ? *weight : 0.0;
  if (batch.dtype[t] == F64) update_tile<double>(op, d, s, F64, lo, hi, bound, w);
  else update_tile<float>(op, d, s, batch.dtype[t], lo, hi, float(bound), float(w));
}

}  // namespace

void multi_tensor_cuda(const MultiTensorArgs& a, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  for (size_t start = 0; start < a.dst.size(); start += MAX_TENSORS) {
    Batch batch{};
    batch.count = int(std::min<size_t>(MAX_TENSORS, a.dst.size() - start));
    for (int t = 0; t < batch.count; ++t) {
      batch.dst[t] = a.dst[start + t];
      batch.src[t] = a.op == LERP ? a.src[start + t] : 0;
      batch.n[t] = a.sizes[start + t];
      batch.dtype[t] = a.dtypes[start + t];
      batch.first[t + 1] = batch.first[t] + (a.sizes[start + t] + TILE - 1) / TILE;
    }
    if (batch.first[batch.count] == 0) continue;
    multi_tensor_kernel<<<unsigned(batch.first[batch.count]), THREADS, 0, st>>>(
        batch, a.op, a.bound, reinterpret_cast<const double*>(a.weight));
    check_launch("multi_tensor");
  }
}

}  // namespace pygan
