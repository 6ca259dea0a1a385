// The gradient-penalty head as the backends see it (weight clipping is in multi_tensor.h). Raw
// pointers, sizes and dtype codes, owned by the caller; nothing here allocates.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"

namespace pygan {

// The penalty's function of the per-sample gradient norm n = ||g_i||_2 (c is the center):
//   TWO_SIDED  phi(n) = (n - c)^2          (WGAN-GP, DRAGAN)
//   ONE_SIDED  phi(n) = max(0, n - c)^2    (Petzka et al.'s one-sided penalty)
//   SQUARED    phi(n) = n^2                (R1, R2)
enum PenaltyKind : int { TWO_SIDED = 0, ONE_SIDED = 1, SQUARED = 2 };

inline namespace PYGAN_ISA {

// The norm n, phi(n) and the factor k with d phi(||g||) / d g = k * g, i.e. phi'(n) / n, from the
// sum of squares s = n^2. At n = 0 the norm has no derivative; k is then 0 (the minimum-norm
// subgradient, what torch's norm backward gives), except for SQUARED, whose gradient 2 g is smooth.
template <class T> PYGAN_HD void penalty_phi(int kind, T s, T center, T& n, T& phi, T& k) {
#if defined(__CUDA_ARCH__)
  n = sqrt(s);
#else
  n = std::sqrt(s);
#endif
  if (kind == SQUARED) {
    phi = s;
    k = T(2);
    return;
  }
  T excess = n - center;
  if (kind == ONE_SIDED) excess = excess > T(0) ? excess : T(0);
  phi = excess * excess;
  k = n > T(0) ? T(2) * excess / n : T(0);
}

// The backward's factor for row i (see penalty_head_backward_cpu).
template <class T>
PYGAN_HD T penalty_row_factor(T up, T coef, const T* norms, const T* up_norms, int64_t i) {
  T k = up * coef;
  if (up_norms != nullptr && norms[i] > T(0)) k += up_norms[i] / norms[i];
  return k;
}

}  // namespace PYGAN_ISA

// Forward of the head over g viewed as rows x cols (one row per sample, any dtype code):
//   out[0]  = weight / rows * sum_i phi(||g_i||)        (compute dtype: float64 for F64, else float32)
//   norms[i] = ||g_i||,  coef[i] = weight / rows * phi'(n_i) / n_i   (compute dtype)
//   values[i] = weight * phi(n_i), the per-sample penalties, when values is not 0
// Rows are summed in row order, so the result is reproducible. On the CPU, norms and coef may be 0
// (none kept: norms 0 shares coef's memory, coef 0 is scratch), and when grad is not 0 the head also
// writes the gradient for an upstream of one, grad[i, j] = coef[i] * g[i, j], in the compute dtype
// (the same products the backward forms for up = 1).
void penalty_head_cpu(uintptr_t g, int dtype, int64_t rows, int64_t cols, int kind, double center,
                      double weight, uintptr_t out, uintptr_t norms, uintptr_t coef, uintptr_t values,
                      uintptr_t grad);
// Backward: grad[i, j] = (up * coef[i] + up_norms[i] / norms[i]) * g[i, j], written in g's dtype;
// `up` is one compute-dtype value, `up_norms` (the upstream of the norms output, compute dtype) may
// be 0 for none; a zero norm contributes nothing (the subgradient torch's norm uses).
void penalty_head_backward_cpu(uintptr_t g, int dtype, int64_t rows, int64_t cols, uintptr_t coef,
                               uintptr_t up, uintptr_t norms, uintptr_t up_norms, uintptr_t grad);

// CUDA versions. The head's forward sums the per-block partials deterministically in one launch:
// `partials` holds penalty_head_blocks(rows, cols) compute-dtype values, `counter` a zeroed unsigned
// that the kernel leaves zeroed (the same ticket scheme as the loss kernels).
int64_t penalty_head_blocks(int64_t rows, int64_t cols);
void penalty_head_cuda(uintptr_t g, int dtype, int64_t rows, int64_t cols, int kind, double center,
                       double weight, uintptr_t out, uintptr_t norms, uintptr_t coef, uintptr_t values,
                       uintptr_t partials, uintptr_t counter, uintptr_t stream);
void penalty_head_backward_cuda(uintptr_t g, int dtype, int64_t rows, int64_t cols, uintptr_t coef,
                                uintptr_t up, uintptr_t norms, uintptr_t up_norms, uintptr_t grad,
                                uintptr_t stream);

}  // namespace pygan
