// CPU kernel sums: one work item per row tile, handed out dynamically (tile I visits tiles - I
// column tiles, so a static split would leave the first thread the most work). Each item writes its
// own slot of the partials, so the result never depends on the thread count.
#include <string>

#include "../kernel_sums.h"
#include "isa.h"
#if defined(_OPENMP)
#include <omp.h>
#endif
#include "parallel.h"

namespace pygan {

PYGAN_CPU_BUILDS(void kernel_sum_row_tile(const KernelSumArgs& a, int64_t tile);)

void kernel_sums_cpu(const KernelSumArgs& a) {
  const auto tile_fn = PYGAN_CPU_BUILD(kernel_sum_row_tile);
  const int64_t tiles = kernel_sum_tiles(a.n);
  // Work in pair evaluations: small problems stay on the calling thread.
  const int threads = num_threads(tiles, a.n * a.n * (a.d + a.n_params) / 64);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < tiles; ++t) tile_fn(a, t);
#else
  (void)threads;
  for (int64_t t = 0; t < tiles; ++t) tile_fn(a, t);
#endif
}

}  // namespace pygan
