// CUDA kernels of the fused adversarial loss. One launch per direction covers both logit tensors:
// block t handles tile t of the concatenation [side 0 tiles | side 1 tiles].
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

template <class Acc> __device__ Acc shift_of(const Side& s) {
  return s.shift ? load_as<Acc>(reinterpret_cast<const void*>(s.shift), 0, s.dtype == F64 ? F64 : F32)
                 : Acc(0);
}

template <class Acc>
__global__ void __launch_bounds__(THREADS)
forward_kernel(Side s0, Side s1, Acc alpha, int reduction, Acc w0, Acc w1, int64_t tiles0,
               uintptr_t out0, uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
               uintptr_t grad1, Acc* partials, unsigned* counter) {
  const int64_t t = blockIdx.x;
  const bool first = t < tiles0;
  const Side& s = first ? s0 : s1;
  void* o = reinterpret_cast<void*>(first ? out0 : out1);
  void* g = reduction == NONE ? nullptr : reinterpret_cast<void*>(first ? grad0 : grad1);
  const Acc w = first ? w0 : w1;
  const int64_t base = (first ? t : t - tiles0) * TILE;
  const Acc shift = shift_of<Acc>(s);
  const void* x = reinterpret_cast<const void*>(s.x);
  Acc acc = 0;
  dispatch_term(s.term, [&](auto tag) {
        constexpr int C = decltype(tag)::value;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int64_t i = base + int64_t(j) * THREADS + threadIdx.x;
      if (i < s.n) {
        Acc v, d;
        term<C, StdMath>(load_as<Acc>(x, i, s.dtype) - shift, alpha, v, d);
        if (reduction == NONE) store_as<Acc>(o, i, s.dtype, w * v);
        else acc += v;
        if (g) store_as<Acc>(g, i, sizeof(Acc) == 8 ? F64 : F32, w * d);  // compute dtype
      }
    }
  });
  if (reduction == NONE) return;
  acc = block_sum<THREADS>(acc);
  finish_in_last_block<THREADS>(acc * w, partials, counter,
                                [&](Acc sum) { store_as<Acc>(reinterpret_cast<void*>(out), 0, out_dtype, sum); });
}

template <class Acc>
__global__ void __launch_bounds__(THREADS)
backward_kernel(Side s0, Side s1, Acc alpha, int reduction, Acc w0, Acc w1, int64_t tiles0,
                uintptr_t up, int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                uintptr_t grad1) {
  const int64_t t = blockIdx.x;
  const bool first = t < tiles0;
  const Side& s = first ? s0 : s1;
  const void* u_el = reinterpret_cast<const void*>(first ? up0 : up1);
  void* g = reinterpret_cast<void*>(first ? grad0 : grad1);
  const Acc w = first ? w0 : w1;
  const int64_t base = (first ? t : t - tiles0) * TILE;
  const Acc shift = shift_of<Acc>(s);
  const Acc up_scalar = reduction == NONE ? Acc(0) : load_as<Acc>(reinterpret_cast<const void*>(up), 0, up_dtype);
  const void* x = reinterpret_cast<const void*>(s.x);
  dispatch_term(s.term, [&](auto tag) {
        constexpr int C = decltype(tag)::value;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int64_t i = base + int64_t(j) * THREADS + threadIdx.x;
      if (i < s.n) {
        Acc v, d;
        term<C, StdMath>(load_as<Acc>(x, i, s.dtype) - shift, alpha, v, d);
        const Acc upstream = reduction == NONE ? load_as<Acc>(u_el, i, s.dtype) : up_scalar;
        store_as<Acc>(g, i, s.dtype, upstream * w * d);
      }
    }
  });
}

int64_t tiles_of(int64_t n) { return (n + TILE - 1) / TILE; }

}  // namespace

bool cuda_compiled() { return true; }

int64_t loss_forward_tiles(int64_t n0, int64_t n1) { return tiles_of(n0) + tiles_of(n1); }

void loss_forward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                       uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                       uintptr_t grad1, uintptr_t partials, uintptr_t counter, uintptr_t stream) {
  const int64_t tiles0 = tiles_of(s0.n), tiles = tiles0 + tiles_of(s1.n);
  if (tiles == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const double w0 = side_weight(s0, reduction), w1 = side_weight(s1, reduction);
  if (s0.dtype == F64 || s1.dtype == F64) {
    forward_kernel<double><<<unsigned(tiles), THREADS, 0, st>>>(
        s0, s1, alpha, reduction, w0, w1, tiles0, out0, out1, out, out_dtype, grad0, grad1,
        reinterpret_cast<double*>(partials), reinterpret_cast<unsigned*>(counter));
  } else {
    forward_kernel<float><<<unsigned(tiles), THREADS, 0, st>>>(
        s0, s1, float(alpha), reduction, float(w0), float(w1), tiles0, out0, out1, out, out_dtype,
        grad0, grad1, reinterpret_cast<float*>(partials), reinterpret_cast<unsigned*>(counter));
  }
  check_launch("loss_forward");
}

void loss_backward_cuda(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t up,
                        int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                        uintptr_t grad1, uintptr_t stream) {
  const int64_t tiles0 = tiles_of(s0.n), tiles = tiles0 + tiles_of(s1.n);
  if (tiles == 0) return;
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const double w0 = side_weight(s0, reduction), w1 = side_weight(s1, reduction);
  if (s0.dtype == F64 || s1.dtype == F64) {
    backward_kernel<double><<<unsigned(tiles), THREADS, 0, st>>>(
        s0, s1, alpha, reduction, w0, w1, tiles0, up, up_dtype, up0, up1, grad0, grad1);
  } else {
    backward_kernel<float><<<unsigned(tiles), THREADS, 0, st>>>(
        s0, s1, float(alpha), reduction, float(w0), float(w1), tiles0, up, up_dtype, up0, up1,
        grad0, grad1);
  }
  check_launch("loss_backward");
}

}  // namespace pygan
