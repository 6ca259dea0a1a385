// The gradient-penalty head alone (the penalty, no norms or per-sample values) as a C++ node: one
// penalty_head_cpu call writes the penalty and its gradient for an upstream of one,
// coef_i * g_ij, and the node's backward scales that and hands it over. It records the same graph
// as PenaltyHead in pygan/_ops/penalty_head.py, which remains the path for everything else
// (call_penalty_head there says when this one is taken).
#include <string>

#include "nodes.h"
#include "torch_glue.h"

namespace pygan {
namespace autograd {
namespace {

// Output: the gradient of g.
class PenaltyHeadBackward final : public SavedGradNode {
 public:
  PenaltyHeadBackward(int kind, double center, double weight) : kind_(kind), center_(center), weight_(weight) {}

  std::string name() const override { return "pygan::PenaltyHeadBackward"; }

 private:
  variable_list recompute(const at::Tensor& up) override {
    at::Tensor g = input(0);
    pybind11::gil_scoped_acquire gil;
    PyObject* r = call_python(recompute_penalty, "NiddN", THPVariable_Wrap(g), kind_, center_, weight_,
                              THPVariable_Wrap(up));
    return unpack_grads(r, *this, "penalty head");
  }

  int kind_;
  double center_, weight_;
};

}  // namespace

PyObject* penalty_head(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (!entry_ready("penalty_head", nargs, 4, recompute_penalty)) return nullptr;
  const at::Tensor* g = cpu_tensor(args[0], "penalty_head", "g");
  int kind;
  double center, weight;
  if (!g || !load_int(args[1], kind) || !load_double(args[2], center) || !load_double(args[3], weight)) {
    return nullptr;
  }
  if (g->dim() < 1) {
    PyErr_SetString(PyExc_ValueError, "penalty_head: g must have a batch dimension (one row per sample)");
    return nullptr;
  }
  // One row per sample (penalty_head.py _rows_cols).
  const int64_t rows = g->size(0), cols = rows ? g->numel() / rows : 0;
  const at::ScalarType acc = compute_type(g->scalar_type(), g->scalar_type());
  at::Tensor out = at::empty({}, g->options().dtype(acc));
  const bool needs = at::GradMode::is_enabled() && g->requires_grad();
  at::Tensor grad = needs ? at::empty(g->sizes(), g->options().dtype(acc)) : at::Tensor();
  run_kernel(g->numel(), [&] {
    kernels->penalty_head(uintptr_t(g->const_data_ptr()), dtype_code(g->scalar_type()), rows, cols, kind, center,
                          weight, uintptr_t(out.data_ptr()), 0, 0, 0, needs ? uintptr_t(grad.data_ptr()) : 0);
  });
  if (needs) {
    NodePtr node = make_node<PenaltyHeadBackward>(kind, center, weight);
    auto* n = static_cast<PenaltyHeadBackward*>(node.get());
    n->set_next_edges(torch::autograd::collect_next_edges(*g));
    n->save(0, *g, std::move(grad));
    torch::autograd::set_history(out, node);
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

}  // namespace autograd
}  // namespace pygan
