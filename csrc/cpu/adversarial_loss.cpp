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

void loss_forward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                      uintptr_t out1, uintptr_t out, int out_dtype, uintptr_t grad0,
                      uintptr_t grad1) {
  const ChunkKernels& k = *active_kernels().load();
  double total = 0.0;
  const Side* sides[2] = {&s0, &s1};
  const uintptr_t outs[2] = {out0, out1};
  const uintptr_t grads[2] = {reduction == NONE ? 0 : grad0, reduction == NONE ? 0 : grad1};
  for (int j = 0; j < 2; ++j) {
    const Side& s = *sides[j];
    if (s.n == 0) continue;
    const int64_t n_chunks = (s.n + CHUNK - 1) / CHUNK;
    const double w = side_weight(s, reduction);
    std::vector<double> partial(n_chunks, 0.0);
    parallel_chunks(s.n, [&](int64_t c) {
      partial[c] = k.forward(s, alpha, reduction, outs[j], grads[j], w, c * CHUNK,
                             std::min(s.n, (c + 1) * CHUNK));
    });
    double sum = 0.0;
    for (double p : partial) sum += p;  // chunk order: the same result for any thread count
    total += sum * w;
  }
  if (reduction != NONE) store_as<double>(reinterpret_cast<void*>(out), 0, out_dtype, total);
}

void loss_backward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t up,
                       int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0, uintptr_t grad1) {
  const ChunkKernels& k = *active_kernels().load();
  const double up_scalar =
      reduction == NONE ? 1.0 : load_as<double>(reinterpret_cast<const void*>(up), 0, up_dtype);
  const Side* sides[2] = {&s0, &s1};
  const uintptr_t ups[2] = {reduction == NONE ? up0 : 0, reduction == NONE ? up1 : 0};
  const uintptr_t grads[2] = {grad0, grad1};
  for (int j = 0; j < 2; ++j) {
    const Side& s = *sides[j];
    if (s.n == 0) continue;
    const double scale = up_scalar * side_weight(s, reduction);
    parallel_chunks(s.n, [&](int64_t c) {
      k.backward(s, alpha, scale, ups[j], grads[j], c * CHUNK, std::min(s.n, (c + 1) * CHUNK));
    });
  }
}

}  // namespace pygan
