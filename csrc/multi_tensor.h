// Multi-tensor elementwise updates as the backends see them: one pass over many tensors (a model's
// parameters), in place. Raw pointers, element counts and dtype codes, owned by the caller.
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"

namespace pygan {

enum MultiTensorOp : int {
  CLIP = 0,  // dst[i] = clamp(dst[i], -bound, bound); NaN passes through, as torch.clamp lets it
  LERP = 1,  // dst[i] += w * (src[i] - dst[i]), w = *weight (one float64); the EMA update
};

// dst[t] (and src[t] for LERP: same size and dtype) for each tensor t; `bound` is CLIP's c,
// `weight` LERP's pointer to w (host memory on the CPU, device memory on CUDA, so that a captured
// CUDA graph reads the current value). Arithmetic in float32 (float64 for float64 tensors).
struct MultiTensorArgs {
  int op = CLIP;
  std::vector<uintptr_t> dst, src;
  std::vector<int64_t> sizes;
  std::vector<int> dtypes;
  double bound = 0.0;
  uintptr_t weight = 0;
};

inline namespace PYGAN_ISA {  // one copy per CPU build (common.h)

// One element of the update, shared by the CPU and CUDA loops.
template <class Acc>
PYGAN_HD Acc multi_tensor_value(int op, Acc d, Acc s, Acc bound, Acc w) {
  if (op == CLIP) {
    // Two one-sided clamps in the forms x86's maxps / minps compute (the second operand wins a
    // comparison with NaN, so NaN passes through): one instruction each where nested selects took
    // three compares and two blends. bound >= 0 (clip_weights_ checks c > 0).
    const Acc lo = d < -bound ? -bound : d;
    return lo > bound ? bound : lo;
  }
  return d + w * (s - d);
}

}  // namespace PYGAN_ISA

void multi_tensor_cpu(const MultiTensorArgs& a);

// The EMA's step of its counter and weight (host memory, one float64 each): t = *counter + 1 is
// stored back, and *weight = 1 - beta_t, beta_t = min(decay, (1 + t) / (10 + t)) with `rampup`, else
// decay (pygan/ema.py has the formula; on a device the same arithmetic runs as tensor ops).
void ema_weight_cpu(uintptr_t counter, uintptr_t weight, double decay, int rampup);
// One EMA update in one call: ema_weight_cpu, then the LERP of n tensor pairs whose arguments are
// packed in one int64 table, [dst pointers (n), src pointers (n), sizes (n), dtype codes (n)], built
// once per walk of the module trees (pygan/ema.py): no lists to convert per update.
void ema_update_cpu(uintptr_t table, int64_t n, uintptr_t counter, uintptr_t weight, double decay,
                    int rampup);
void multi_tensor_cuda(const MultiTensorArgs& a, uintptr_t stream);

}  // namespace pygan
