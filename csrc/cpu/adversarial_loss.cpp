// CPU kernels of the fused adversarial loss: threading, reductions and the choice of instruction
// set; the loops themselves are in loss_chunks.cpp.
//
// Work is cut into fixed chunks of CHUNK elements whatever the thread count, and partial sums are
// added in chunk order, so results are bitwise reproducible across runs and thread counts (for one
// instruction set: the AVX2 build contracts multiply-adds, so its last bits differ from the base's).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "../adversarial_loss.h"
#include "loss_chunks.h"
#include "parallel.h"

namespace pygan {
namespace {

// The builds of the loops this CPU can run, in order of preference (the last is the default).
const std::vector<const ChunkKernels*>& runnable_kernels() {
  static const std::vector<const ChunkKernels*> kernels = [] {
    std::vector<const ChunkKernels*> k{&isa_base::chunk_kernels};
#if defined(PYGAN_HAVE_AVX2)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k.push_back(&isa_avx2::chunk_kernels);
#endif
    return k;
  }();
  return kernels;
}

// The build called `name`; an error naming `what` and the runnable builds if there is none.
const ChunkKernels* find_kernels(const std::string& name, const char* what) {
  std::string names;
  for (const ChunkKernels* k : runnable_kernels()) {
    if (name == k->name) return k;
    names += std::string(names.empty() ? "" : ", ") + k->name;
  }
  throw std::invalid_argument(std::string(what) + " '" + name +
                              "' is not available on this CPU or build; available: " + names);
}

// The build in use: the preferred one, or the one PYGAN_CPU_ISA names at start-up.
std::atomic<const ChunkKernels*>& active_kernels() {
  static std::atomic<const ChunkKernels*> active{[] {
    const char* env = std::getenv("PYGAN_CPU_ISA");
    return env && *env ? find_kernels(env, "PYGAN_CPU_ISA") : runnable_kernels().back();
  }()};
  return active;
}

}  // namespace

std::vector<std::string> cpu_isas() {
  std::vector<std::string> names;
  for (const ChunkKernels* k : runnable_kernels()) names.push_back(k->name);
  return names;
}

std::string cpu_isa() { return active_kernels().load()->name; }

void set_cpu_isa(const std::string& name) {
  active_kernels() = find_kernels(name, "cpu isa");
}

namespace {

// Both sides' chunks as one list of work items, so that one parallel region covers the whole loss.
struct SideChunks {
  const Side* sides[2];
  int64_t first[3];  // items of side j are [first[j], first[j + 1])

  SideChunks(const Side& s0, const Side& s1) : sides{&s0, &s1} {
    first[0] = 0;
    for (int j = 0; j < 2; ++j) first[j + 1] = first[j] + (sides[j]->n + CHUNK - 1) / CHUNK;
  }
  int64_t items() const { return first[2]; }
  int64_t work() const { return sides[0]->n + sides[1]->n; }
  // Calls fn(side index, lo, hi) for work item `item`.
  template <class F> void run(int64_t item, F&& fn) const {
    const int j = item < first[1] ? 0 : 1;
    const int64_t lo = (item - first[j]) * CHUNK;
    fn(j, lo, std::min(sides[j]->n, lo + CHUNK));
  }
};

// The sum over side j's chunks of one value per chunk (every `stride`-th entry of `values` from
// `offset`), added in chunk order: the same result for any thread count.
double side_sum(const SideChunks& chunks, const std::vector<double>& values, int j, int stride = 1,
                int offset = 0) {
  double sum = 0.0;
  for (int64_t c = chunks.first[j]; c < chunks.first[j + 1]; ++c) sum += values[c * stride + offset];
  return sum;
}

using Pass = LossPass<double>;

// Runs `n_passes` losses over both sides' chunks in one parallel region and returns each reduced
// loss in totals[p]. A chunk's passes run back to back, so every pass after the first reads its
// logits from cache: one trip through memory for any number of losses of the same logits.
void forward_passes(const Pass* passes, int n_passes, double alpha, int reduction, uintptr_t out0,
                    uintptr_t out1, double* totals) {
  const ChunkKernels& k = *active_kernels().load();
  const SideChunks chunks(passes[0].sides[0], passes[0].sides[1]);
  const uintptr_t outs[2] = {out0, out1};
  std::vector<double> partial(chunks.items() * n_passes, 0.0);
  parallel_items(chunks.items(), chunks.work() * n_passes, [&](int64_t c) {
    chunks.run(c, [&](int j, int64_t lo, int64_t hi) {
      for (int p = 0; p < n_passes; ++p) {
        const Pass& q = passes[p];
        // A side out of this loss (sign 0) whose gradient nobody wants: nothing to compute.
        if (reduction != NONE && q.sides[j].sign == 0.0 && !q.grads[j]) continue;
        partial[c * n_passes + p] =
            k.forward(q.sides[j], alpha, reduction, outs[j], q.grads[j], q.weights[j], lo, hi);
      }
    });
  });
  for (int p = 0; p < n_passes; ++p) {
    totals[p] = 0.0;
    for (int j = 0; j < 2; ++j) totals[p] += side_sum(chunks, partial, j, n_passes, p) * passes[p].weights[j];
  }
}

}  // namespace

void loss_forward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                      uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                      uintptr_t grad1) {
  const Pass pass(s0, s1, reduction, grad0, grad1);
  double total;
  forward_passes(&pass, 1, alpha, reduction, out0, out1, &total);
  if (reduction != NONE) store_as<double>(reinterpret_cast<void*>(out), 0, out_dtype, total);
}

namespace {

// The sum of x[lo, hi) in float64. Four accumulators keep the dependency chain short.
template <class T> double sum_range(const T* x, int64_t lo, int64_t hi) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = lo;
  for (; i + 4 <= hi; i += 4)
    for (int l = 0; l < 4; ++l) acc[l] += double(x[i + l]);
  for (; i < hi; ++i) acc[0] += double(x[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// PAIRED: chunk by chunk, the differences go into grad1 (b's gradient buffer, free until the end of
// the chunk), the loss pass reads them and writes grad0, and grad1 becomes -grad0.
template <class T> double paired(const ChunkKernels& k, const Side& s0, const Side& s1, double alpha,
                                 int reduction, T* grad0, T* grad1) {
  const T* a = reinterpret_cast<const T*>(s0.x);
  const T* b = reinterpret_cast<const T*>(s1.x);
  Side diff = s0;
  diff.x = reinterpret_cast<uintptr_t>(grad1);
  const double w = side_weight(s0, reduction);
  const SideChunks chunks(diff, Side{});
  std::vector<double> partial(chunks.items(), 0.0);
  parallel_items(chunks.items(), chunks.work(), [&](int64_t c) {
    chunks.run(c, [&](int, int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) grad1[i] = a[i] - b[i];
      partial[c] = k.forward(diff, alpha, reduction, 0, reinterpret_cast<uintptr_t>(grad0), w, lo, hi);
      for (int64_t i = lo; i < hi; ++i) grad1[i] = -grad0[i];
    });
  });
  return side_sum(chunks, partial, 0) * w;
}

// AVERAGED: three trips over both sides: the means; the loss passes (one per loss of the same
// logits: D's, and G's for the minimax step) at the shifted logits, with the sums of their gradients
// (each chunk summed while in cache); the corrections. totals[p] gets loss p.
template <class T> void averaged(const ChunkKernels& k, const Pass* passes, int n_passes, double alpha,
                                 double* totals) {
  const Side &s0 = passes[0].sides[0], &s1 = passes[0].sides[1];  // the logits every pass reads
  const SideChunks chunks(s0, s1);
  const T* x[2] = {reinterpret_cast<const T*>(s0.x), reinterpret_cast<const T*>(s1.x)};
  std::vector<double> partial(chunks.items() * n_passes, 0.0), gsum(chunks.items() * n_passes, 0.0);
  parallel_items(chunks.items(), chunks.work(), [&](int64_t c) {
    chunks.run(c, [&](int j, int64_t lo, int64_t hi) { partial[c] = sum_range(x[j], lo, hi); });
  });
  // An empty side's mean is 0 / 0 = NaN, as torch's mean of no elements.
  const T means[2] = {T(side_sum(chunks, partial, 0) / double(s0.n)),
                      T(side_sum(chunks, partial, 1) / double(s1.n))};
  std::vector<Pass> shifted(passes, passes + n_passes);
  for (Pass& q : shifted) {
    q.sides[0].shift = reinterpret_cast<uintptr_t>(&means[1]);
    q.sides[1].shift = reinterpret_cast<uintptr_t>(&means[0]);
  }
  parallel_items(chunks.items(), chunks.work() * n_passes, [&](int64_t c) {
    chunks.run(c, [&](int j, int64_t lo, int64_t hi) {
      for (int p = 0; p < n_passes; ++p) {
        const Pass& q = shifted[p];
        partial[c * n_passes + p] = k.forward(q.sides[j], alpha, MEAN, 0, q.grads[j], q.weights[j], lo, hi);
        gsum[c * n_passes + p] = sum_range(reinterpret_cast<const T*>(q.grads[j]), lo, hi);
      }
    });
  });
  std::vector<double> correction(2 * n_passes);
  for (int p = 0; p < n_passes; ++p) {
    totals[p] = side_sum(chunks, partial, 0, n_passes, p) * shifted[p].weights[0] +
                side_sum(chunks, partial, 1, n_passes, p) * shifted[p].weights[1];
    correction[2 * p] = side_sum(chunks, gsum, 1, n_passes, p) / double(s0.n);
    correction[2 * p + 1] = side_sum(chunks, gsum, 0, n_passes, p) / double(s1.n);
  }
  parallel_items(chunks.items(), chunks.work() * n_passes, [&](int64_t c) {
    chunks.run(c, [&](int j, int64_t lo, int64_t hi) {
      for (int p = 0; p < n_passes; ++p) {
        T* g = reinterpret_cast<T*>(shifted[p].grads[j]);
        const double cj = correction[2 * p + j];
        for (int64_t i = lo; i < hi; ++i) g[i] = T(double(g[i]) - cj);
      }
    });
  });
}

// The checks every relativistic entry makes: pygan/_ops/adversarial_loss.py validates all of this,
// but a wrong call must not write out of bounds.
void check_relative(const Side& s0, const Side& s1, uintptr_t out, uintptr_t grad0, uintptr_t grad1) {
  if (s0.dtype != s1.dtype || (s0.dtype != F32 && s0.dtype != F64))
    throw std::invalid_argument("relative_forward: both sides must be float32 or both float64");
  if (!out || (s0.n && !grad0) || (s1.n && !grad1)) throw std::invalid_argument("relative_forward: null output");
}

}  // namespace

void relative_forward_cpu(const Side& s0, const Side& s1, int mode, double alpha, int reduction,
                          uintptr_t out, int out_dtype, uintptr_t grad0, uintptr_t grad1) {
  if (mode != PAIRED && mode != AVERAGED) throw std::invalid_argument("relative_forward: mode must be PAIRED or AVERAGED");
  if (reduction != MEAN && reduction != SUM) throw std::invalid_argument("relative_forward: reduction must be MEAN or SUM");
  check_relative(s0, s1, out, grad0, grad1);
  if (mode == PAIRED && s0.n != s1.n) throw std::invalid_argument("relative_forward: paired sides differ in size");
  const ChunkKernels& k = *active_kernels().load();
  const bool f64 = s0.dtype == F64;
  double total;
  if (mode == PAIRED) {
    total = f64 ? paired<double>(k, s0, s1, alpha, reduction, reinterpret_cast<double*>(grad0), reinterpret_cast<double*>(grad1))
                : paired<float>(k, s0, s1, alpha, reduction, reinterpret_cast<float*>(grad0), reinterpret_cast<float*>(grad1));
  } else {
    const Pass pass(s0, s1, reduction, grad0, grad1);
    if (f64) averaged<double>(k, &pass, 1, alpha, &total);
    else averaged<float>(k, &pass, 1, alpha, &total);
  }
  store_as<double>(reinterpret_cast<void*>(out), 0, out_dtype, total);
}

void averaged_minimax_cpu(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                          uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                          uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1) {
  check_minimax_sides(d0, d1, g0, g1);
  check_relative(d0, d1, d_out, d_grad0, d_grad1);
  check_relative(g0, g1, g_out, g_grad0, g_grad1);
  const ChunkKernels& k = *active_kernels().load();
  const Pass passes[2] = {Pass(d0, d1, MEAN, d_grad0, d_grad1), Pass(g0, g1, MEAN, g_grad0, g_grad1)};
  double totals[2];
  if (d0.dtype == F64) averaged<double>(k, passes, 2, alpha, totals);
  else averaged<float>(k, passes, 2, alpha, totals);
  store_as<double>(reinterpret_cast<void*>(d_out), 0, out_dtype, totals[0]);
  store_as<double>(reinterpret_cast<void*>(g_out), 0, out_dtype, totals[1]);
}

void check_minimax_sides(const Side& d0, const Side& d1, const Side& g0, const Side& g1) {
  const Side* pairs[2][2] = {{&d0, &g0}, {&d1, &g1}};
  for (const auto& pair : pairs) {
    const Side &d = *pair[0], &g = *pair[1];
    if (d.x != g.x || d.n != g.n || d.dtype != g.dtype || d.shift != g.shift)
      throw std::invalid_argument("minimax: a generator side must be its discriminator side (same "
                                  "logits, size, dtype and shift) with another term and sign");
  }
}

void minimax_forward_cpu(const Side& d0, const Side& d1, const Side& g0, const Side& g1, double alpha,
                         uintptr_t d_out, uintptr_t g_out, int out_dtype, uintptr_t d_grad0,
                         uintptr_t d_grad1, uintptr_t g_grad0, uintptr_t g_grad1) {
  check_minimax_sides(d0, d1, g0, g1);
  const Pass passes[2] = {Pass(d0, d1, MEAN, d_grad0, d_grad1), Pass(g0, g1, MEAN, g_grad0, g_grad1)};
  double totals[2];
  forward_passes(passes, 2, alpha, MEAN, 0, 0, totals);
  store_as<double>(reinterpret_cast<void*>(d_out), 0, out_dtype, totals[0]);
  store_as<double>(reinterpret_cast<void*>(g_out), 0, out_dtype, totals[1]);
}

void loss_backward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, int order,
                       uintptr_t up, int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0,
                       uintptr_t grad1) {
  const ChunkKernels& k = *active_kernels().load();
  const double up_scalar = up ? load_as<double>(reinterpret_cast<const void*>(up), 0, up_dtype) : 1.0;
  const SideChunks chunks(s0, s1);
  const uintptr_t ups[2] = {up0, up1};
  const uintptr_t grads[2] = {grad0, grad1};
  const double scales[2] = {up_scalar * side_weight(s0, reduction), up_scalar * side_weight(s1, reduction)};
  parallel_items(chunks.items(), chunks.work(), [&](int64_t c) {
    chunks.run(c, [&](int j, int64_t lo, int64_t hi) {
      k.backward(*chunks.sides[j], alpha, scales[j], ups[j], grads[j], order, lo, hi);
    });
  });
}

}  // namespace pygan
