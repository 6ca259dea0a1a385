// CUDA kernels of the gradient-penalty head.
//
// Head forward, one launch: rows of at least WIDE_ROW elements get a block each; shorter rows (the
// usual 2-D toy data) a warp each, eight to a block. Each block writes the sum of its rows' penalty
// terms to partials[block]; the last block adds them in block order (reduce.cuh), so the penalty is
// reproducible, nothing allocates and nothing waits on the host: the launch is graph-capturable.
#include <cuda_runtime.h>

#include <algorithm>

#include "../penalty_head.h"
#include "reduce.cuh"

namespace pygan {
namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int64_t WIDE_ROW = 1024;

template <class Acc> __device__ Acc warp_sum(Acc v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // valid in lane 0
}

// Per-row outputs: the norm, the derivative factor, the weighted term when asked; the term returned.
template <class Acc> struct RowOut {
  Acc center, scale, weight;
  Acc *norms, *coef, *values;  // values may be null
};

template <class Acc> __device__ Acc finish_row(int64_t i, Acc s, int kind, const RowOut<Acc>& o) {
  Acc phi, k;
  penalty_phi<Acc>(kind, s, o.center, o.norms[i], phi, k);
  o.coef[i] = o.scale * k;
  if (o.values != nullptr) o.values[i] = o.weight * phi;
  return phi;
}

template <class Acc, bool WIDE>
__global__ void __launch_bounds__(THREADS)
head_kernel(const void* g, int dtype, int64_t rows, int64_t cols, int kind, RowOut<Acc> o, Acc* out,
            Acc* partials, unsigned* counter) {
  Acc block_phi = 0;
  if (WIDE) {
    const int64_t i = blockIdx.x;
    Acc s = 0;
    for (int64_t j = threadIdx.x; j < cols; j += THREADS) {
      const Acc v = load_as<Acc>(g, i * cols + j, dtype);
      s += v * v;
    }
    s = block_sum<THREADS>(s);
    if (threadIdx.x == 0) block_phi = finish_row(i, s, kind, o);
  } else {
    __shared__ Acc row_phi[WARPS];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t i = int64_t(blockIdx.x) * WARPS + warp;
    Acc phi = 0;
    if (i < rows) {
      Acc s = 0;
      for (int64_t j = lane; j < cols; j += 32) {
        const Acc v = load_as<Acc>(g, i * cols + j, dtype);
        s += v * v;
      }
      s = warp_sum(s);
      if (lane == 0) phi = finish_row(i, s, kind, o);
    }
    if (lane == 0) row_phi[warp] = phi;
    __syncthreads();
    if (threadIdx.x == 0)
      for (int w = 0; w < WARPS; ++w) block_phi += row_phi[w];  // row order
  }
  finish_in_last_block<THREADS>(block_phi, partials, counter, [&](Acc sum) { *out = sum * o.scale; });
}

template <class Acc>
__global__ void head_backward_kernel(const void* g, int dtype, int64_t n, int64_t cols,
                                     const Acc* coef, const Acc* up, const Acc* norms,
                                     const Acc* up_norms, void* grad) {
  const Acc u = *up;
  for (int64_t idx = int64_t(blockIdx.x) * THREADS + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * THREADS) {
    const int64_t i = idx / cols;
    const Acc k = penalty_row_factor(u, coef[i], norms, up_norms, i);
    store_as<Acc>(grad, idx, dtype, k * load_as<Acc>(g, idx, dtype));
  }
}

int64_t blocks_for(int64_t rows, int64_t cols) {
  return cols >= WIDE_ROW ? rows : (rows + WARPS - 1) / WARPS;
}

template <class Acc>
void launch_head(uintptr_t g, int dtype, int64_t rows, int64_t cols, int kind, double center,
                 double weight, uintptr_t out, uintptr_t norms, uintptr_t coef, uintptr_t values,
                 uintptr_t partials, uintptr_t counter, cudaStream_t st) {
  const unsigned blocks = unsigned(blocks_for(rows, cols));
  auto kernel = cols >= WIDE_ROW ? head_kernel<Acc, true> : head_kernel<Acc, false>;
  const RowOut<Acc> o{Acc(center), Acc(weight / double(rows)), Acc(weight), reinterpret_cast<Acc*>(norms),
                      reinterpret_cast<Acc*>(coef), reinterpret_cast<Acc*>(values)};
  kernel<<<blocks, THREADS, 0, st>>>(reinterpret_cast<const void*>(g), dtype, rows, cols, kind, o,
                                     reinterpret_cast<Acc*>(out), reinterpret_cast<Acc*>(partials),
                                     reinterpret_cast<unsigned*>(counter));
}

}  // namespace

int64_t penalty_head_blocks(int64_t rows, int64_t cols) { return blocks_for(rows, cols); }

void penalty_head_cuda(uintptr_t g, int dtype, int64_t rows, int64_t cols, int kind, double center,
                       double weight, uintptr_t out, uintptr_t norms, uintptr_t coef, uintptr_t values,
                       uintptr_t partials, uintptr_t counter, uintptr_t stream) {
  if (rows == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  if (dtype == F64)
    launch_head<double>(g, dtype, rows, cols, kind, center, weight, out, norms, coef, values, partials, counter, st);
  else
    launch_head<float>(g, dtype, rows, cols, kind, center, weight, out, norms, coef, values, partials, counter, st);
  check_launch("penalty_head");
}

void penalty_head_backward_cuda(uintptr_t g, int dtype, int64_t rows, int64_t cols, uintptr_t coef,
                                uintptr_t up, uintptr_t norms, uintptr_t up_norms, uintptr_t grad,
                                uintptr_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const unsigned blocks = unsigned(std::min<int64_t>((n + THREADS - 1) / THREADS, 65535));
  const void* x = reinterpret_cast<const void*>(g);
  void* out = reinterpret_cast<void*>(grad);
  auto run = [&](auto zero) {
    using Acc = decltype(zero);
    head_backward_kernel<Acc><<<blocks, THREADS, 0, st>>>(
        x, dtype, n, cols, reinterpret_cast<const Acc*>(coef), reinterpret_cast<const Acc*>(up),
        reinterpret_cast<const Acc*>(norms), reinterpret_cast<const Acc*>(up_norms), out);
  };
  if (dtype == F64) run(0.0);
  else run(0.0f);
  check_launch("penalty_head_backward");
}

}  // namespace pygan
