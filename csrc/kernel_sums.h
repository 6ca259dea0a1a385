// Kernel sums for MMD and its permutation test, as the backends see them: tiled passes over the
// pooled sample z (N rows of d features) that never hold the N x N kernel matrix. Raw pointers,
// sizes and dtype codes, owned by the caller; nothing here allocates on the device.
//
// For each kernel parameter b (a bandwidth) and each label column p (a 0/1 indicator of "in X",
// column 0 the true split and the others permutations), the pass computes over pairs i != j
//   total_b   = sum_{i != j} k_b(z_i, z_j)
//   u_{b,p}   = sum_{i != j} k_b(z_i, z_j) L_jp          (= 1' K x_p)
//   q_{b,p}   = sum_{i != j} L_ip k_b(z_i, z_j) L_jp     (= x_p' K x_p)
// from which the three blocks of the kernel matrix follow (pygan/_ops/kernel_sums.py):
//   S_xx = q,  S_xy = u - q,  S_yy = total - 2 u + q.
// K is symmetric, so a row tile I visits only column tiles J >= I and counts an off-diagonal tile
// twice. Each row tile writes its sums to its own slot of `partials` (tiles x B x (1 + 2P), float64,
// laid out [total, u_0..u_{P-1}, q_0..q_{P-1}] per b); the caller adds the slots in tile order, so
// the result does not depend on scheduling.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.h"

namespace pygan {

// The kernels, as functions of the squared distance s = ||a - b||^2 or the dot product a.b, with
// c = the per-parameter constant the caller precomputes from the bandwidth sigma:
//   GAUSSIAN     exp(-s c),              c = 1 / (2 sigma^2)
//   LAPLACE      exp(-sqrt(s) c),        c = 1 / sigma        (Euclidean distance)
//   IMQ          1 / sqrt(1 + s c),      c = 1 / sigma^2      (inverse multiquadric)
//   POLYNOMIAL   (c a.b + coef0)^degree, c = gamma            (KID's kernel: gamma = 1/d, coef0 = 1, degree 3)
enum KernelKind : int { GAUSSIAN = 0, LAPLACE = 1, IMQ = 2, POLYNOMIAL = 3 };

constexpr int MAX_KERNEL_PARAMS = 8;  // bandwidths per pass
constexpr int KERNEL_TILE = 64;       // rows (and columns) per tile, on every backend

inline namespace PYGAN_ISA {

// ||a - b||^2 from the norms and the dot product: ||a||^2 + ||b||^2 - 2 a.b, whose rounding error is
// a few units in the last place of ||a||^2 + ||b||^2. Relative to the distance that error grows
// without bound as a and b approach each other (near-duplicates: y = x + 1e-3 noise lost 2e-3 of
// a Laplace MMD in float32), so a pair whose squared distance by this form falls below
// DIRECT_BELOW times the norms' sum (where its relative error could exceed about 1e-5 in float32)
// has it recomputed from the differences, sum_k (a_k - b_k)^2, which is accurate to a few ulps of
// itself and exactly 0 for repeated points (which the Laplace kernel needs: exp(-sqrt(1e-16) / 1e-3)
// is 0.99999, not 1). Few pairs are that close, except in low dimensions, where d is small.
constexpr double DIRECT_BELOW = 1.0 / 64.0;
template <class T> PYGAN_HD T norm_distance(T ni, T nj, T dot) { return ni + nj - T(2) * dot; }
template <class T> PYGAN_HD bool needs_direct(T s, T ni, T nj) { return s < T(DIRECT_BELOW) * (ni + nj); }

template <class T> PYGAN_HD T kernel_value(int kind, T s, T dot, T c, T coef0, int degree) {
#if defined(__CUDA_ARCH__)
  if (kind == GAUSSIAN) return exp(-s * c);
  if (kind == LAPLACE) return exp(-sqrt(s) * c);
  if (kind == IMQ) return T(1) / sqrt(T(1) + s * c);
#else
  if (kind == GAUSSIAN) return std::exp(-s * c);
  if (kind == LAPLACE) return std::exp(-std::sqrt(s) * c);
  if (kind == IMQ) return T(1) / std::sqrt(T(1) + s * c);
#endif
  const T base = c * dot + coef0;
  T out = T(1);
  for (int e = 0; e < degree; ++e) out *= base;
  return out;
}

}  // namespace PYGAN_ISA

struct KernelSumArgs {
  uintptr_t z = 0;        // N x d, contiguous, compute dtype (CPU: float32 or float64; CUDA: any code)
  int dtype = 0;          // z's dtype code
  int64_t n = 0, d = 0;
  uintptr_t sq_norms = 0; // N values ||z_i||^2 in the compute dtype
  uintptr_t labels = 0;   // N x P, compute dtype, 0 or 1
  int64_t p = 1;
  int kind = GAUSSIAN;
  int n_params = 1;       // B <= MAX_KERNEL_PARAMS
  double params[MAX_KERNEL_PARAMS] = {};  // the constants c of each b
  double coef0 = 1.0;
  int degree = 3;
  uintptr_t partials = 0; // tiles x B x (1 + 2P) float64
};

PYGAN_HD int64_t kernel_sum_tiles(int64_t n) { return (n + KERNEL_TILE - 1) / KERNEL_TILE; }

// CPU: z and labels float32 or float64 (dtype F32 / F64); multithreaded over row tiles.
void kernel_sums_cpu(const KernelSumArgs& a);
// CUDA: z in any dtype code, computed in float32 (float64 for F64); labels and sq_norms in the
// compute dtype; one block per row tile; P <= 256 per launch.
void kernel_sums_cuda(const KernelSumArgs& a, uintptr_t stream);

}  // namespace pygan
