// The fused adversarial-loss op, as the backends (CPU, CUDA) see it: raw pointers, sizes and dtype
// codes, owned by the caller. Nothing here allocates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pygan {

// One logit tensor and how it enters the loss: sum_i weight * term(x[i] - shift).
struct Side {
  uintptr_t x = 0;       // logits, `n` elements of `dtype`; unused when n == 0
  int64_t n = 0;
  int dtype = 0;
  int term = 0;          // a Term code (loss_terms.h)
  double sign = 1.0;     // +1, or -1 for the saturating generator loss, 0 to leave the side out
  uintptr_t shift = 0;   // 0, or a pointer to one value of the compute type subtracted from x
};

// Reduction: MEAN weights each side by sign / n, SUM by sign, NONE writes sign * term per element.
enum Reduction : int { NONE = 0, MEAN = 1, SUM = 2 };

inline double side_weight(const Side& s, int reduction) {
  return reduction == MEAN ? (s.n > 0 ? s.sign / double(s.n) : 0.0) : s.sign;
}

// One loss of a forward call, as CPU and CUDA loops take it: both sides (terms and signs), their
// weights for `reduction` (W: double on the CPU, the compute type on CUDA) and their gradient
// outputs (none for NONE, which writes terms instead).
template <class W> struct LossPass {
  Side sides[2];
  W weights[2];
  uintptr_t grads[2];

  LossPass(const Side& s0, const Side& s1, int reduction, uintptr_t grad0, uintptr_t grad1)
      : sides{s0, s1},
        weights{W(side_weight(s0, reduction)), W(side_weight(s1, reduction))},
        grads{reduction == NONE ? 0 : grad0, reduction == NONE ? 0 : grad1} {}
};

// Forward. NONE: out0 / out1 get the elementwise terms in each side's dtype.
// MEAN / SUM: `out` gets the scalar loss in `out_dtype`; when grad0 / grad1 are not null the same
// pass writes the loss's gradient for an upstream of one, weight_k * term_k'(x_k[i] - shift_k), in
// the compute dtype, so that backward is one multiply (the "loss and gradient in one pass" mode).
void loss_forward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                      uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                      uintptr_t grad1);

// Minimax: the discriminator's loss (sides d0, d1) and the generator's (g0, g1) over the same logits
// in one pass: g_k must equal d_k but for term and sign (the generator applies its own terms to the
// logits D produced; sign 0 leaves a side out). Each loss is MEAN-reduced into its scalar (d_out,
// g_out, of `out_dtype`) and its gradients for an upstream of one are written in the compute dtype
// (d_grad_k, g_grad_k): the upstream gradients a simultaneous update backpropagates.
void minimax_forward_cpu(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                         uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                         uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1);

// The relativistic losses in one call, for logits in the compute dtype (float32 or float64), with
// MEAN or SUM reduction and both gradients for an upstream of one (grad0, grad1: the inputs' dtype).
// PAIRED: s0 holds a and the term and sign of the loss, s1 holds b (same size and dtype; its term
//   and sign are unused): loss = w * sum_i term(a[i] - b[i]); grad0 = w * term'(a - b), grad1 = -grad0.
// AVERAGED: each side shifted by the other side's mean, m_k = mean(x_k):
//   loss = w0 * sum_i term0(x0[i] - m1) + w1 * sum_j term1(x1[j] - m0); through the means each side's
//   gradient gathers minus the other side's summed gradient over its own size:
//   grad0 = w0 * term0'(x0 - m1) - sum(w1 * term1'(x1 - m0)) / n0, and the same with 0 and 1 swapped.
// One call forms the differences, the means and the corrections that would otherwise be a native op
// each, chunk by chunk where the chunk is in cache.
enum Relative : int { PAIRED = 1, AVERAGED = 2 };
void relative_forward_cpu(const Side& s0, const Side& s1, int mode, double alpha, int reduction,
                          uintptr_t out, int out_dtype, uintptr_t grad0, uintptr_t grad1);
// The relativistic average loss of both players in one call (the means taken once), MEAN-reduced,
// with their gradients through the means: the sides as minimax_forward_cpu takes them.
void averaged_minimax_cpu(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                          uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                          uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1);

// The error for a generator side that differs from its discriminator side in more than term and sign.
void check_minimax_sides(const Side& d0, const Side& d1, const Side& g0, const Side& g1);

// Backward of order 1 or 2: grad_k[i] = U * weight_k * E_k[i] * term_k^(order)(x_k[i] - shift_k),
// with U the one value at `up` (of `up_dtype`), or 1 when `up` is null, and E_k the elementwise
// upstream up_k (in side k's dtype), or 1 when null. The first backward of MEAN / SUM takes U, that
// of NONE takes E_k; double backward (order 2: the derivative of a gradient) multiplies by the
// gradient's own upstream elementwise, so it may take both. Gradients are in each side's dtype.
void loss_backward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, int order,
                       uintptr_t up, int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                       uintptr_t grad1);

// The CPU instruction sets the loops were built for and this CPU runs ("base", "avx2"), the one in
// use, and a switch between them (tests compare them; PYGAN_CPU_ISA=base picks base at start).
std::vector<std::string> cpu_isas();
std::string cpu_isa();
void set_cpu_isa(const std::string& name);

// CUDA versions (compiled when nvcc is available). `partials` holds one accumulator of the compute
// type per tile (loss_forward_tiles), `counter` one zeroed unsigned int that the kernel leaves zeroed.
int64_t loss_forward_tiles(int64_t n0, int64_t n1);
bool cuda_compiled();
void loss_forward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                       uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                       uintptr_t grad1, uintptr_t partials, uintptr_t counter, uintptr_t stream);
void minimax_forward_cuda(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                          uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                          uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1, uintptr_t partials,
                          uintptr_t counter, uintptr_t stream);  // partials: 2 per tile
void loss_backward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, int order,
                        uintptr_t up, int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                        uintptr_t grad1, uintptr_t stream);

}  // namespace pygan
