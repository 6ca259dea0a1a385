// The fused bias + LeakyReLU as a C++ node: bias_leaky_relu_cpu writes y and the 1-bit mask, and
// the node's backward is one bias_leaky_relu_backward_cpu call (the masked scaling and the bias
// gradient). It records the same graph as BiasLeakyReLU in pygan/_ops/activation.py, which remains
// the path for everything this one refuses (activation.py _bias_leaky_relu_node says when).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "nodes.h"
#include "torch_glue.h"

namespace pygan {
namespace autograd {
namespace {

// Outputs (the gradients it returns): (x, bias).
class BiasLeakyReLUBackward final : public Node {
 public:
  BiasLeakyReLUBackward(at::Tensor mask, double slope, int64_t channels, int64_t inner)
      : mask_(std::move(mask)), slope_(slope), channels_(channels), inner_(inner) {}

  std::string name() const override { return "pygan::BiasLeakyReLUBackward"; }

  void release_variables() override { mask_.reset(); }

  variable_list apply(variable_list&& grads) override {
    at::Tensor gy = std::move(grads[0]);
    if (!gy.defined()) return variable_list(2);
    TORCH_CHECK(mask_.defined(), "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed); pygan's activation node keeps its mask only "
                "with retain_graph=True");
    const bool bias_grad = bias_options_.has_value() && task_should_compute_output(1);
    if (at::GradMode::is_enabled()) {
      // create_graph: the gradient must be recorded, so that it can be differentiated again.
      pybind11::gil_scoped_acquire gil;
      PyObject* r = call_python(recompute_activation, "NNdO", THPVariable_Wrap(gy), THPVariable_Wrap(mask_),
                                slope_, bias_grad ? Py_True : Py_False);
      return unpack_grads(r, *this, "activation");
    }
    // The upstream of a sum is one value expanded to every element: read as that one value.
    int broadcast = 0;
    if (!gy.is_contiguous()) {
      const auto strides = gy.strides();
      if (gy.numel() && std::all_of(strides.begin(), strides.end(), [](int64_t s) { return s == 0; })) {
        broadcast = 1;
      } else {
        gy = gy.contiguous();
      }
    }
    const int code = dtype_code(gy.scalar_type());
    TORCH_CHECK(code >= 0, "pygan: the activation's upstream gradient has dtype ", gy.scalar_type());
    at::Tensor gx = at::empty(gy.sizes(), gy.options());
    at::Tensor gb = bias_grad ? at::empty({channels_}, *bias_options_) : at::Tensor();
    run_kernel(gy.numel(), [&] {
      kernels->bias_leaky_relu_backward(uintptr_t(gy.const_data_ptr()), broadcast, code, gy.numel(),
                                        bias_grad ? channels_ : 0, bias_grad ? inner_ : 0,
                                        uintptr_t(mask_.const_data_ptr()), slope_, uintptr_t(gx.data_ptr()),
                                        bias_grad ? uintptr_t(gb.data_ptr()) : 0);
    });
    variable_list out(2);
    if (task_should_compute_output(0)) out[0] = std::move(gx);
    out[1] = std::move(gb);
    return out;
  }

  std::optional<at::TensorOptions> bias_options_;  // the bias's, where there is one

 private:
  at::Tensor mask_;  // made by the forward pass, never seen outside: no version to check
  double slope_;
  int64_t channels_, inner_;
};

}  // namespace

PyObject* bias_leaky_relu(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (!entry_ready("bias_leaky_relu", nargs, 3, recompute_activation)) return nullptr;
  const at::Tensor* x = cpu_tensor(args[0], "bias_leaky_relu", "x");
  const bool has_bias = args[1] != Py_None;
  const at::Tensor* bias = has_bias ? cpu_tensor(args[1], "bias_leaky_relu", "bias") : x;
  double slope;
  if (!x || !bias || !load_double(args[2], slope)) return nullptr;
  // x as (outer, channels, inner), channels on dim 1 (activation.py _layout).
  const int64_t dim = x->dim();
  const int64_t channels = dim >= 2 ? x->size(1) : 1;
  int64_t inner = 1;
  for (int64_t d = 2; d < dim; ++d) inner *= x->size(d);
  if (has_bias && (bias->dim() != 1 || bias->size(0) != channels || bias->scalar_type() != x->scalar_type())) {
    PyErr_SetString(PyExc_ValueError, "bias_leaky_relu: bias must be (channels,) of x's dtype");
    return nullptr;
  }
  const int64_t n = x->numel();
  at::Tensor y = at::empty(x->sizes(), x->options());
  at::Tensor mask = at::empty({(n + 7) / 8}, x->options().dtype(at::kByte));
  run_kernel(n, [&] {
    kernels->bias_leaky_relu(uintptr_t(x->const_data_ptr()), has_bias ? uintptr_t(bias->const_data_ptr()) : 0,
                             dtype_code(x->scalar_type()), n, channels, inner, slope, uintptr_t(y.data_ptr()),
                             uintptr_t(mask.data_ptr()));
  });
  if (at::GradMode::is_enabled() && (x->requires_grad() || (has_bias && bias->requires_grad()))) {
    NodePtr node = make_node<BiasLeakyReLUBackward>(std::move(mask), slope, channels, inner);
    auto* nd = static_cast<BiasLeakyReLUBackward*>(node.get());
    if (has_bias) {
      nd->bias_options_ = bias->options();
      nd->set_next_edges(torch::autograd::collect_next_edges(*x, *bias));
    } else {
      nd->set_next_edges(torch::autograd::collect_next_edges(*x, at::Tensor()));
    }
    torch::autograd::set_history(y, node);
  }
  return THPVariable_Wrap(std::move(y));
  END_HANDLE_TH_ERRORS
}

}  // namespace autograd
}  // namespace pygan
