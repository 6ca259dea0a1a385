// CPU multi-tensor updates: every CHUNK-element chunk of every tensor is one work item, numbered
// across the tensors, so one parallel pass covers a whole model however its sizes are spread. The
// loop itself is in multi_tensor_chunks.cpp, built once per instruction set.
#include <algorithm>

#include "../multi_tensor.h"
#include "isa.h"
#include "parallel.h"

namespace pygan {

PYGAN_CPU_BUILDS(void multi_tensor_chunk(int op, int dtype, void* d, const void* s, double bound, double w,
                                         int64_t lo, int64_t hi);)

void multi_tensor_cpu(const MultiTensorArgs& a) {
  const auto chunk = PYGAN_CPU_BUILD(multi_tensor_chunk);
  std::vector<int64_t> first(a.dst.size() + 1, 0);
  int64_t total = 0;
  for (size_t t = 0; t < a.dst.size(); ++t) {
    first[t + 1] = first[t] + (a.sizes[t] + CHUNK - 1) / CHUNK;
    total += a.sizes[t];
  }
  const double w = a.op == LERP ? *reinterpret_cast<const double*>(a.weight) : 0.0;
  parallel_items(first.back(), total, [&](int64_t item) {
    const size_t t = size_t(std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
    void* d = reinterpret_cast<void*>(a.dst[t]);
    const void* s = a.op == LERP ? reinterpret_cast<const void*>(a.src[t]) : d;
    const int64_t lo = (item - first[t]) * CHUNK, hi = std::min(a.sizes[t], lo + CHUNK);
    chunk(a.op, a.dtypes[t], d, s, a.bound, w, lo, hi);
  }, Schedule::BLOCKED);
}

void ema_weight_cpu(uintptr_t counter, uintptr_t weight, double decay, int rampup) {
  double* t = reinterpret_cast<double*>(counter);
  *t += 1.0;
  const double beta = rampup ? std::min((1.0 + *t) / (10.0 + *t), decay) : decay;
  *reinterpret_cast<double*>(weight) = 1.0 - beta;
}

void ema_update_cpu(uintptr_t table, int64_t n, uintptr_t counter, uintptr_t weight, double decay,
                    int rampup) {
  ema_weight_cpu(counter, weight, decay, rampup);
  const int64_t* t = reinterpret_cast<const int64_t*>(table);
  MultiTensorArgs a;
  a.op = LERP;
  a.dst.assign(t, t + n);
  a.src.assign(t + n, t + 2 * n);
  a.sizes.assign(t + 2 * n, t + 3 * n);
  a.dtypes.assign(t + 3 * n, t + 4 * n);
  a.weight = weight;
  multi_tensor_cpu(a);
}

}  // namespace pygan
