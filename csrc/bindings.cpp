// pygan._C: the pybind11 module. It takes raw device pointers, sizes, dtype codes and CUDA streams
// from Python and never links libtorch, so it builds in seconds and survives torch upgrades. Python
// owns every buffer; validation happens in Python before any call reaches here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>

#include "activation.h"
#include "adversarial_loss.h"
#include "lipschitz.h"
#include "loss_terms.h"
#include "multi_tensor.h"

namespace py = pybind11;
using namespace pygan;

PYBIND11_MODULE(_C, m) {
  m.doc() = "pygan's compiled kernels (CPU C++ always, CUDA C++ when built with nvcc)";

  py::class_<Side>(m, "Side")
      .def(py::init([](uintptr_t x, int64_t n, int dtype, int term, double sign, uintptr_t shift) {
             Side s;
             s.x = x; s.n = n; s.dtype = dtype; s.term = term; s.sign = sign; s.shift = shift;
             return s;
           }),
           py::arg("x"), py::arg("n"), py::arg("dtype"), py::arg("term"), py::arg("sign"),
           py::arg("shift") = 0)
      .def_readonly("n", &Side::n)
      .def_readonly("term", &Side::term);

  m.def("term_codes", [] {
    std::map<std::string, int> codes;
    for (int i = 0; i < NUM_TERMS; ++i) codes[TERM_NAMES[i]] = i;
    return codes;
  });
  m.def("cuda_compiled", &cuda_compiled);
  m.def("cpu_isas", &cpu_isas);
  m.def("cpu_isa", &cpu_isa);
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"));

  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("loss_forward_cpu", &loss_forward_cpu, release);
  m.def("loss_backward_cpu", &loss_backward_cpu, release);
  m.def("loss_forward_tiles", &loss_forward_tiles);
  m.def("loss_forward_cuda", &loss_forward_cuda, release);
  m.def("loss_backward_cuda", &loss_backward_cuda, release);

  m.def("penalty_head_cpu", &penalty_head_cpu, release);
  m.def("penalty_head_backward_cpu", &penalty_head_backward_cpu, release);
  m.def("penalty_head_blocks", &penalty_head_blocks);
  m.def("penalty_head_cuda", &penalty_head_cuda, release);
  m.def("penalty_head_backward_cuda", &penalty_head_backward_cuda, release);

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

  m.def("bias_leaky_relu_cpu", &bias_leaky_relu_cpu, release);
  m.def("leaky_relu_grad_cpu", &leaky_relu_grad_cpu, release);
  m.def("bias_leaky_relu_cuda", &bias_leaky_relu_cuda, release);
  m.def("leaky_relu_grad_cuda", &leaky_relu_grad_cuda, release);
}
