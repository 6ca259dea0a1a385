// Built instead of adversarial_loss.cu when no CUDA compiler was found: the CUDA entry points exist
// and say why they cannot run.
#include <stdexcept>

#include "../adversarial_loss.h"

namespace pygan {

namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "pygan was built without CUDA kernels (no nvcc found at build time, or PYGAN_CUDA=0); "
      "rebuild with nvcc on PATH, or use backend='triton'");
}
}  // namespace

bool cuda_compiled() { return false; }
int64_t loss_forward_tiles(int64_t, int64_t) { unavailable(); }
void loss_forward_cuda(const Side&, const Side&, double, int, uintptr_t, uintptr_t, uintptr_t, int,
                       uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t) { unavailable(); }
void loss_backward_cuda(const Side&, const Side&, double, int, uintptr_t, int, uintptr_t, uintptr_t,
                        uintptr_t, uintptr_t, uintptr_t) { unavailable(); }

}  // namespace pygan
