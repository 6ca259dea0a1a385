// The inner loops of the CPU loss kernels, built once per instruction set: loss_chunks.cpp for any
// x86-64 / other CPU (isa_base), loss_chunks_avx2.cpp for CPUs with AVX2 and FMA (isa_avx2).
// adversarial_loss.cpp owns threading and reductions and picks one set at run time.
//
// Nothing here takes a std:: type or an inline helper shared with other files: the AVX2 copy must
// not leak into code that runs on CPUs without AVX2.
#pragma once
#include <cstdint>

#include "../adversarial_loss.h"
#include "../common.h"

namespace pygan {

struct ChunkKernels {
  // Elements [lo, hi) of one side. reduction NONE: writes sign * term into `out` (same dtype as x)
  // and returns 0; otherwise returns the plain sum of term over the range, in float64, and when
  // `grad` is not null also writes grad[i] = gscale * term'(x[i] - shift) in the same pass, in the
  // compute dtype (float32, or float64 for float64 inputs).
  double (*forward)(const Side& s, double alpha, int reduction, uintptr_t out, uintptr_t grad,
                    double gscale, int64_t lo, int64_t hi);
  // grad[i] = scale * term^(order)(x[i] - shift), times up[i] when `up` (same dtype as x) is not
  // null; order 1 (backward) or 2 (double backward).
  void (*backward)(const Side& s, double alpha, double scale, uintptr_t up, uintptr_t grad,
                   int order, int64_t lo, int64_t hi);
  const char* name;
};

namespace isa_base { extern const ChunkKernels chunk_kernels; }
namespace isa_avx2 { extern const ChunkKernels chunk_kernels; }

}  // namespace pygan
