// pygan._C: the pybind11 module. It takes raw device pointers, sizes, dtype codes and CUDA streams
// from Python and never links libtorch, so it builds in seconds and survives torch upgrades. Python
// owns every buffer; validation happens in Python before any call reaches here. The entries a
// training step calls on every op are plain CPython functions (fastcall.h): pybind11's dispatcher
// cost as much as a small kernel.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <stdexcept>
#include <string>

#include "activation.h"
#include "adversarial_loss.h"
#include "fastcall.h"
#include "kernel_sums.h"
#include "kernel_table.h"
#include "penalty_head.h"
#include "loss_terms.h"
#include "multi_tensor.h"

namespace py = pybind11;
using namespace pygan;

PYBIND11_MODULE(_C, m) {
  m.doc() = "pygan's compiled kernels (CPU C++ always, CUDA C++ when built with nvcc)";

  m.def("term_codes", [] {
    std::map<std::string, int> codes;
    for (int i = 0; i < NUM_TERMS; ++i) codes[TERM_NAMES[i]] = i;
    return codes;
  });
  m.def("cuda_compiled", &cuda_compiled);
  m.def("cpu_isas", &cpu_isas);
  m.def("cpu_isa", &cpu_isa);
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"));
  static const KernelTable table{KERNEL_TABLE_VERSION, &loss_forward_cpu, &loss_backward_cpu, &relative_forward_cpu,
                                 &penalty_head_cpu, &bias_leaky_relu_cpu, &bias_leaky_relu_backward_cpu};
  m.attr("kernel_table") = py::capsule(&table, KERNEL_TABLE_CAPSULE);

  const auto release = py::call_guard<py::gil_scoped_release>();
  using fastcall::fast_entry;
  static PyMethodDef entries[] = {
      fast_entry<&loss_forward_cpu>("loss_forward_cpu", "Loss forward (adversarial_loss.h)."),
      fast_entry<&loss_backward_cpu>("loss_backward_cpu", "Loss backward of order 1 or 2."),
      fast_entry<&minimax_forward_cpu>("minimax_forward_cpu", "Both players' losses in one pass."),
      fast_entry<&relative_forward_cpu>("relative_forward_cpu", "A relativistic loss in one call."),
      fast_entry<&averaged_minimax_cpu>("averaged_minimax_cpu", "Both players' relativistic average losses."),
      fast_entry<&loss_forward_cuda>("loss_forward_cuda", "Loss forward on a CUDA stream."),
      fast_entry<&loss_backward_cuda>("loss_backward_cuda", "Loss backward on a CUDA stream."),
      fast_entry<&minimax_forward_cuda>("minimax_forward_cuda", "Both players' losses on a CUDA stream."),
      fast_entry<&penalty_head_cpu>("penalty_head_cpu", "Penalty head (penalty_head.h)."),
      fast_entry<&penalty_head_backward_cpu>("penalty_head_backward_cpu", "Penalty head backward."),
      fast_entry<&penalty_head_cuda>("penalty_head_cuda", "Penalty head on a CUDA stream."),
      fast_entry<&penalty_head_backward_cuda>("penalty_head_backward_cuda", "Penalty head backward, CUDA."),
      fast_entry<&bias_leaky_relu_cpu>("bias_leaky_relu_cpu", "Bias + LeakyReLU with a bit mask (activation.h)."),
      fast_entry<&leaky_relu_grad_cpu>("leaky_relu_grad_cpu", "The masked LeakyReLU derivative."),
      fast_entry<&bias_leaky_relu_backward_cpu>("bias_leaky_relu_backward_cpu",
                                                "The masked derivative and the bias gradient."),
      fast_entry<&ema_weight_cpu>("ema_weight_cpu", "The EMA's counter and weight step (multi_tensor.h)."),
      fast_entry<&ema_update_cpu>("ema_update_cpu", "The EMA's weight step and update from a packed table."),
      fast_entry<&bias_leaky_relu_cuda>("bias_leaky_relu_cuda", "Bias + LeakyReLU on a CUDA stream."),
      fast_entry<&leaky_relu_grad_cuda>("leaky_relu_grad_cuda", "The masked derivative on a CUDA stream."),
      {nullptr, nullptr, 0, nullptr}};
  if (PyModule_AddFunctions(m.ptr(), entries) != 0) throw py::error_already_set();
  m.def("loss_forward_tiles", &loss_forward_tiles);
  m.def("penalty_head_blocks", &penalty_head_blocks);

  // Multi-tensor updates: (op, dst, src, sizes, dtypes, bound, weight[, stream]).
  auto args = [](int op, std::vector<uintptr_t> dst, std::vector<uintptr_t> src,
                 std::vector<int64_t> sizes, std::vector<int> dtypes, double bound, uintptr_t weight) {
    MultiTensorArgs a;
    a.op = op; a.dst = std::move(dst); a.src = std::move(src); a.sizes = std::move(sizes);
    a.dtypes = std::move(dtypes); a.bound = bound; a.weight = weight;
    return a;
  };
  m.def("multi_tensor_cpu", [args](int op, std::vector<uintptr_t> dst, std::vector<uintptr_t> src,
                                   std::vector<int64_t> sizes, std::vector<int> dtypes, double bound,
                                   uintptr_t weight) {
    multi_tensor_cpu(args(op, dst, src, sizes, dtypes, bound, weight));
  }, release);
  m.def("multi_tensor_cuda", [args](int op, std::vector<uintptr_t> dst, std::vector<uintptr_t> src,
                                    std::vector<int64_t> sizes, std::vector<int> dtypes, double bound,
                                    uintptr_t weight, uintptr_t stream) {
    multi_tensor_cuda(args(op, dst, src, sizes, dtypes, bound, weight), stream);
  }, release);

  // Kernel sums for MMD: (z, dtype, n, d, sq_norms, labels, p, kind, params, coef0, degree,
  // partials[, stream]); see kernel_sums.h.
  auto ks_args = [](uintptr_t z, int dtype, int64_t n, int64_t d, uintptr_t sq_norms, uintptr_t labels,
                    int64_t p, int kind, std::vector<double> params, double coef0, int degree,
                    uintptr_t partials) {
    if (params.empty() || params.size() > size_t(MAX_KERNEL_PARAMS))
      throw std::invalid_argument("kernel sums take 1 to " + std::to_string(MAX_KERNEL_PARAMS) + " kernel parameters");
    KernelSumArgs a;
    a.z = z; a.dtype = dtype; a.n = n; a.d = d; a.sq_norms = sq_norms; a.labels = labels; a.p = p;
    a.kind = kind; a.n_params = int(params.size()); a.coef0 = coef0; a.degree = degree;
    a.partials = partials;
    for (size_t i = 0; i < params.size(); ++i) a.params[i] = params[i];
    return a;
  };
  m.def("kernel_sums_cpu", [ks_args](uintptr_t z, int dtype, int64_t n, int64_t d, uintptr_t sq_norms,
                                     uintptr_t labels, int64_t p, int kind, std::vector<double> params,
                                     double coef0, int degree, uintptr_t partials) {
    const KernelSumArgs a = ks_args(z, dtype, n, d, sq_norms, labels, p, kind, params, coef0, degree, partials);
    py::gil_scoped_release nogil;
    kernel_sums_cpu(a);
  });
  m.def("kernel_sums_cuda", [ks_args](uintptr_t z, int dtype, int64_t n, int64_t d, uintptr_t sq_norms,
                                      uintptr_t labels, int64_t p, int kind, std::vector<double> params,
                                      double coef0, int degree, uintptr_t partials, uintptr_t stream) {
    const KernelSumArgs a = ks_args(z, dtype, n, d, sq_norms, labels, p, kind, params, coef0, degree, partials);
    py::gil_scoped_release nogil;
    kernel_sums_cuda(a, stream);
  });
  m.def("kernel_tile", [] { return KERNEL_TILE; });
  m.def("max_kernel_params", [] { return MAX_KERNEL_PARAMS; });
  m.def("direct_below", [] { return DIRECT_BELOW; });

}
