// Built instead of the .cu files when no CUDA compiler was found: the CUDA entry points exist and
// say why they cannot run. Each definition must match its header's declaration: CMake compiles this
// file with -Werror=missing-declarations, so a signature that drifts is a build error here rather
// than an undefined symbol when pygan._C is imported.
#include <stdexcept>

#include "../activation.h"
#include "../adversarial_loss.h"
#include "../kernel_sums.h"
#include "../penalty_head.h"
#include "../multi_tensor.h"

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
void minimax_forward_cuda(const Side&, const Side&, const Side&, const Side&, double, uintptr_t,
                          uintptr_t, int, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t,
                          uintptr_t, uintptr_t) { unavailable(); }
void loss_backward_cuda(const Side&, const Side&, double, int, int, uintptr_t, int, uintptr_t,
                        uintptr_t, uintptr_t, uintptr_t, uintptr_t) { unavailable(); }
int64_t penalty_head_blocks(int64_t, int64_t) { unavailable(); }
void penalty_head_cuda(uintptr_t, int, int64_t, int64_t, int, double, double, uintptr_t, uintptr_t,
                       uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t) { unavailable(); }
void penalty_head_backward_cuda(uintptr_t, int, int64_t, int64_t, uintptr_t, uintptr_t, uintptr_t,
                                uintptr_t, uintptr_t, uintptr_t) { unavailable(); }
void bias_leaky_relu_cuda(uintptr_t, uintptr_t, int, int64_t, int64_t, int64_t, double, uintptr_t,
                          uintptr_t, uintptr_t) { unavailable(); }
void leaky_relu_grad_cuda(uintptr_t, int, int64_t, uintptr_t, double, uintptr_t, uintptr_t) { unavailable(); }
void multi_tensor_cuda(const MultiTensorArgs&, uintptr_t) { unavailable(); }
void kernel_sums_cuda(const KernelSumArgs&, uintptr_t) { unavailable(); }

}  // namespace pygan
