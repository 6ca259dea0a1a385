// CUDA kernels of the fused adversarial loss. One launch per direction covers both logit tensors:
// block t handles tile t of the concatenation [side 0 tiles | side 1 tiles]. The minimax forward
// is the same launch with a second loss (the generator's terms) evaluated on the same loaded logits.
//
// Forward with a reduction is deterministic in one launch: each block writes its tile's weighted sum
// to partials[t]; the last block to finish (an atomic ticket after a fence) adds the partials in
// tile order, writes the scalar and resets the ticket counter to zero for the next launch. Nothing
// allocates, nothing synchronizes with the host, so the launch can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include "../adversarial_loss.h"
#include "../loss_terms.h"
#include "reduce.cuh"

namespace pygan {
namespace {

constexpr int THREADS = 256;
constexpr int ITEMS = 8;
constexpr int64_t TILE = int64_t(THREADS) * ITEMS;

// Calls fn(k, i) for each of this thread's ITEMS elements i (k-th of them) of the tile starting at
// `base`, up to element n.
template <class F> __device__ __forceinline__ void for_items(int64_t base, int64_t n, F&& fn) {
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const int64_t i = base + int64_t(k) * THREADS + threadIdx.x;
    if (i < n) fn(k, i);
  }
}

template <class Acc> __device__ Acc shift_of(const Side& s) {
  return s.shift ? load_as<Acc>(reinterpret_cast<const void*>(s.shift), 0, s.dtype == F64 ? F64 : F32)
                 : Acc(0);
}

template <class Acc> using Pass = LossPass<Acc>;

// PASSES losses of the same logits (1, or 2 for minimax): each thread loads its ITEMS logits once and
// evaluates every pass's term on them; pass p's partial sums go to partials[p * gridDim.x + tile].
template <class Acc, int PASSES>
__global__ void __launch_bounds__(THREADS)
forward_kernel(Pass<Acc> p0, Pass<Acc> p1, Acc alpha, int reduction, int64_t tiles0, uintptr_t out0,
               uintptr_t out1, uintptr_t out_a, uintptr_t out_b, int out_dtype, Acc* partials,
               unsigned* counter) {
  const int64_t t = blockIdx.x;
  const int j = t < tiles0 ? 0 : 1;
  const Side& s = p0.sides[j];
  void* o = reinterpret_cast<void*>(j == 0 ? out0 : out1);
  const int64_t base = (j == 0 ? t : t - tiles0) * TILE;
  const Acc shift = shift_of<Acc>(s);
  const void* x = reinterpret_cast<const void*>(s.x);
  Acc u[ITEMS];
  for_items(base, s.n, [&](int k, int64_t i) { u[k] = load_as<Acc>(x, i, s.dtype) - shift; });
  Acc acc[PASSES];
#pragma unroll
  for (int p = 0; p < PASSES; ++p) {
    const Pass<Acc>& q = p == 0 ? p0 : p1;
    const Acc w = q.weights[j];
    void* g = reduction == NONE ? nullptr : reinterpret_cast<void*>(q.grads[j]);
    acc[p] = 0;
    if (reduction != NONE && q.sides[j].sign == 0.0 && !g) continue;  // side out of this loss
    dispatch_term(q.sides[j].term, [&](auto tag) {
      for_items(base, s.n, [&](int k, int64_t i) {
        Acc v, d;
        term<decltype(tag)::value, StdMath>(u[k], alpha, v, d);
        if (reduction == NONE) store_as<Acc>(o, i, s.dtype, w * v);
        else acc[p] += v;
        if (g) store_as<Acc>(g, i, sizeof(Acc) == 8 ? F64 : F32, w * d);  // compute dtype
      });
    });
  }
  if (reduction == NONE) return;
#pragma unroll
  for (int p = 0; p < PASSES; ++p) acc[p] = block_sum<THREADS>(acc[p]) * (p == 0 ? p0 : p1).weights[j];
  finish_in_last_block<THREADS, PASSES>(acc, partials, counter, [&](int p, Acc sum) {
    store_as<Acc>(reinterpret_cast<void*>(p == 0 ? out_a : out_b), 0, out_dtype, sum);
  });
}

// Backward of order ORDER (loss_backward_cpu's contract): U is the value at `up` or 1, E_k the
// element of up_k or 1.
template <class Acc, int ORDER>
__global__ void __launch_bounds__(THREADS)
backward_kernel(Side s0, Side s1, Acc alpha, Acc w0, Acc w1, int64_t tiles0, uintptr_t up,
                int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0, uintptr_t grad1) {
  const int64_t t = blockIdx.x;
  const bool first = t < tiles0;
  const Side& s = first ? s0 : s1;
  const void* u_el = reinterpret_cast<const void*>(first ? up0 : up1);
  void* g = reinterpret_cast<void*>(first ? grad0 : grad1);
  const int64_t base = (first ? t : t - tiles0) * TILE;
  const Acc shift = shift_of<Acc>(s);
  const Acc scale = (first ? w0 : w1) *
                    (up ? load_as<Acc>(reinterpret_cast<const void*>(up), 0, up_dtype) : Acc(1));
  const void* x = reinterpret_cast<const void*>(s.x);
  dispatch_term(s.term, [&](auto tag) {
    for_items(base, s.n, [&](int, int64_t i) {
      const Acc d = derivative<decltype(tag)::value, ORDER, StdMath>(load_as<Acc>(x, i, s.dtype) - shift, alpha);
      const Acc upstream = u_el ? load_as<Acc>(u_el, i, s.dtype) * scale : scale;
      store_as<Acc>(g, i, s.dtype, upstream * d);
    });
  });
}

int64_t tiles_of(int64_t n) { return (n + TILE - 1) / TILE; }

}  // namespace

bool cuda_compiled() { return true; }

int64_t loss_forward_tiles(int64_t n0, int64_t n1) { return tiles_of(n0) + tiles_of(n1); }

namespace {

// Launches PASSES losses: (d0, d1) always, (g0, g1) as the second when PASSES is 2.
template <int PASSES>
void launch_forward(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                    int reduction, uintptr_t out0, uintptr_t out1, uintptr_t out_a, uintptr_t out_b,
                    int out_dtype, uintptr_t d_grad0, uintptr_t d_grad1, uintptr_t g_grad0,
                    uintptr_t g_grad1, uintptr_t partials, uintptr_t counter, uintptr_t stream) {
  const int64_t tiles0 = tiles_of(d0.n), tiles = tiles0 + tiles_of(d1.n);
  if (tiles == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  auto go = [&](auto zero) {
    using Acc = decltype(zero);
    forward_kernel<Acc, PASSES><<<unsigned(tiles), THREADS, 0, st>>>(
        Pass<Acc>(d0, d1, reduction, d_grad0, d_grad1), Pass<Acc>(g0, g1, reduction, g_grad0, g_grad1),
        Acc(alpha), reduction, tiles0, out0, out1, out_a, out_b, out_dtype, reinterpret_cast<Acc*>(partials),
        reinterpret_cast<unsigned*>(counter));
  };
  if (d0.dtype == F64 || d1.dtype == F64) go(0.0);
  else go(0.0f);
  check_launch(PASSES == 1 ? "loss_forward" : "minimax_forward");
}

}  // namespace

void loss_forward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                       uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                       uintptr_t grad1, uintptr_t partials, uintptr_t counter, uintptr_t stream) {
  launch_forward<1>(s0, s1, s0, s1, alpha, reduction, out0, out1, out, 0, out_dtype, grad0, grad1, 0, 0,
                    partials, counter, stream);
}

void minimax_forward_cuda(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                          uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                          uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1, uintptr_t partials,
                          uintptr_t counter, uintptr_t stream) {
  check_minimax_sides(d0, d1, g0, g1);
  launch_forward<2>(d0, d1, g0, g1, alpha, MEAN, 0, 0, d_out, g_out, out_dtype, d_grad0, d_grad1, g_grad0,
                    g_grad1, partials, counter, stream);
}

void loss_backward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, int order,
                        uintptr_t up, int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                        uintptr_t grad1, uintptr_t stream) {
  const int64_t tiles0 = tiles_of(s0.n), tiles = tiles0 + tiles_of(s1.n);
  if (tiles == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const double w0 = side_weight(s0, reduction), w1 = side_weight(s1, reduction);
  auto go = [&](auto zero, auto order_tag) {
    using Acc = decltype(zero);
    backward_kernel<Acc, decltype(order_tag)::value><<<unsigned(tiles), THREADS, 0, st>>>(
        s0, s1, Acc(alpha), Acc(w0), Acc(w1), tiles0, up, up_dtype, up0, up1, grad0, grad1);
  };
  auto with_order = [&](auto zero) {
    if (order == 2) go(zero, std::integral_constant<int, 2>{});
    else go(zero, std::integral_constant<int, 1>{});
  };
  if (s0.dtype == F64 || s1.dtype == F64) with_order(0.0);
  else with_order(0.0f);
  check_launch("loss_backward");
}

}  // namespace pygan
