// The training path of the adversarial-loss op as a C++ node: one kernel pass writes the reduced
// loss and its gradients for an upstream of one (loss_forward_cpu with gradient outputs), and the
// node's backward scales them by the upstream and hands them over. It records the same graph as
// LossAndGrad / GeneratorLossAndGrad in pygan/_ops/adversarial_loss.py, which remain the path for
// everything this one refuses (see pygan/_ops/adversarial_loss.py _loss_and_grad_node for when it is taken).
#include <string>

#include "nodes.h"
#include "torch_glue.h"

namespace pygan {
namespace autograd {
namespace {

// What the kernels compute in (pygan/_ops/launch.py compute_dtype).
at::ScalarType compute_type(at::ScalarType a, at::ScalarType b) {
  return a == at::kDouble || b == at::kDouble ? at::kDouble : at::kFloat;
}

// Whether the 0-dim upstream is exactly 1 (loss.backward()): then the saved gradients are the answer
// and need no pass at all.
bool is_one(const at::Tensor& up) {
  if (!up.is_cpu() || up.dim() != 0) return false;
  switch (up.scalar_type()) {
    case at::kFloat: return *up.const_data_ptr<float>() == 1.0f;
    case at::kDouble: return *up.const_data_ptr<double>() == 1.0;
    default: return up.item<double>() == 1.0;
  }
}

struct Consts {
  int term[2];
  double sign[2];
  double alpha;
  int reduction;
};

// Outputs (the gradients it returns) are one per input: (x0, x1), or (x1) for a loss of side 1 alone.
class LossAndGradBackward final : public Node {
 public:
  LossAndGradBackward(const Consts& consts, bool two_sided) : consts_(consts), two_sided_(two_sided) {}

  std::string name() const override {
    return two_sided_ ? "pygan::LossAndGradBackward" : "pygan::GeneratorLossAndGradBackward";
  }

  void release_variables() override {
    x_[0].reset_data();
    x_[1].reset_data();
    grad_[0].reset();
    grad_[1].reset();
  }

  variable_list apply(variable_list&& grads) override {
    const at::Tensor& up = grads[0];
    variable_list out(num_outputs());
    if (!up.defined()) return out;
    // Under create_graph a product with the saved gradient (a constant) would hide the second
    // derivative, and a second backward through a retained graph finds the saved ones consumed:
    // both recompute through the Python op, which is differentiable again.
    if (at::GradMode::is_enabled() || !fresh_) return recompute(up);
    fresh_ = false;
    const bool one = is_one(up);
    for (size_t i = 0; i < out.size(); ++i) {
      const int side = two_sided_ ? int(i) : 1;
      at::Tensor g = std::move(grad_[side]);
      if (!task_should_compute_output(i)) continue;
      if (!one) g.mul_(up);
      if (g.scalar_type() != dtype_[side]) g = g.to(dtype_[side]);
      out[i] = std::move(g);
    }
    grad_[0].reset();
    grad_[1].reset();
    return out;
  }

  SavedVariable x_[2];
  at::Tensor grad_[2];
  at::ScalarType dtype_[2] = {at::kFloat, at::kFloat};

 private:
  variable_list recompute(const at::Tensor& up) {
    // Unpacked before taking the GIL: a graph already freed raises torch's own error here.
    at::Tensor x0 = two_sided_ ? x_[0].unpack() : at::Tensor();
    at::Tensor x1 = x_[1].unpack();
    pybind11::gil_scoped_acquire gil;
    PyObject* r = call_python(
        recompute_loss, "NNiidddiN", two_sided_ ? THPVariable_Wrap(x0) : Py_NewRef(Py_None),
        THPVariable_Wrap(x1), consts_.term[0], consts_.term[1], consts_.sign[0], consts_.sign[1],
        consts_.alpha, consts_.reduction, THPVariable_Wrap(up));
    return unpack_grads(r, *this, "loss");
  }

  Consts consts_;
  bool two_sided_;
  bool fresh_ = true;  // the gradients saved by the forward pass are still here
};

}  // namespace

PyObject* loss_and_grad(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (!entry_ready("loss_and_grad", nargs, 8, recompute_loss)) return nullptr;
  const bool two_sided = args[0] != Py_None;
  const at::Tensor* x1 = cpu_tensor(args[1], "loss_and_grad", "x1");
  const at::Tensor* x0 = two_sided ? cpu_tensor(args[0], "loss_and_grad", "x0") : x1;
  Consts c;
  if (!x1 || !x0 || !load_int(args[2], c.term[0]) || !load_int(args[3], c.term[1]) ||
      !load_double(args[4], c.sign[0]) || !load_double(args[5], c.sign[1]) || !load_double(args[6], c.alpha) ||
      !load_int(args[7], c.reduction)) {
    return nullptr;
  }
  if (c.reduction != MEAN && c.reduction != SUM) {
    PyErr_SetString(PyExc_ValueError, "loss_and_grad: reduction must be 1 (mean) or 2 (sum)");
    return nullptr;
  }
  const at::ScalarType t0 = x0->scalar_type(), t1 = x1->scalar_type();
  const at::ScalarType acc = compute_type(t0, t1);
  const auto options = x1->options();
  at::Tensor out = at::empty({}, options.dtype(at::promote_types(t0, t1)));
  at::Tensor grad0 = two_sided ? at::empty(x0->sizes(), options.dtype(acc)) : at::Tensor();
  at::Tensor grad1 = at::empty(x1->sizes(), options.dtype(acc));
  Side s0, s1;
  if (two_sided) {
    s0 = Side{uintptr_t(x0->const_data_ptr()), x0->numel(), dtype_code(t0), c.term[0], c.sign[0], 0};
  }
  s1 = Side{uintptr_t(x1->const_data_ptr()), x1->numel(), dtype_code(t1), c.term[1], c.sign[1], 0};
  const uintptr_t g0 = two_sided ? uintptr_t(grad0.data_ptr()) : 0;
  run_kernel(s0.n + s1.n, [&] {
    kernels->loss_forward(s0, s1, c.alpha, c.reduction, 0, 0, uintptr_t(out.data_ptr()),
                          dtype_code(out.scalar_type()), g0, uintptr_t(grad1.data_ptr()));
  });
  const bool needs0 = two_sided && x0->requires_grad();
  if (at::GradMode::is_enabled() && (needs0 || x1->requires_grad())) {
    NodePtr node = make_node<LossAndGradBackward>(c, two_sided);
    auto* n = static_cast<LossAndGradBackward*>(node.get());
    if (two_sided) {
      n->set_next_edges(torch::autograd::collect_next_edges(*x0, *x1));
      n->x_[0] = SavedVariable(*x0, false);
      n->dtype_[0] = t0;
      n->grad_[0] = std::move(grad0);
    } else {
      n->set_next_edges(torch::autograd::collect_next_edges(*x1));
    }
    n->x_[1] = SavedVariable(*x1, false);
    n->dtype_[1] = t1;
    n->grad_[1] = std::move(grad1);
    torch::autograd::set_history(out, node);
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

}  // namespace autograd
}  // namespace pygan
