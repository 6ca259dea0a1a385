// The training path of the adversarial-loss op as a C++ node: one kernel pass writes the reduced
// loss and its gradients for an upstream of one (loss_forward_cpu with gradient outputs, or
// relative_forward_cpu for the relativistic losses), and the node's backward scales them by the
// upstream and hands them over. It records the same graph as LossAndGrad, GeneratorLossAndGrad,
// PairedLossAndGrad and AveragedLossAndGrad in pygan/_ops/adversarial_loss.py, which remain the path
// for everything this one refuses (_loss_and_grad_node there says when it is taken).
#include <string>

#include "nodes.h"
#include "torch_glue.h"

namespace pygan {
namespace autograd {
namespace {

// Which kernel: the loss of both sides (or of side 1 alone), or a relativistic loss of both
// (csrc/adversarial_loss.h Relative).
enum Mode : int { PLAIN = 0, PAIRED_MODE = PAIRED, AVERAGED_MODE = AVERAGED };

struct Consts {
  int term[2];
  double sign[2];
  double alpha;
  int reduction;
  int mode;
};

// Outputs: one per input, (x0, x1), or (x1) for a plain loss of side 1 alone (G's own).
class LossAndGradBackward final : public SavedGradNode {
 public:
  LossAndGradBackward(const Consts& consts, bool two_sided) : consts_(consts), two_sided_(two_sided) {}

  std::string name() const override {
    switch (consts_.mode) {
      case PAIRED_MODE: return "pygan::PairedLossAndGradBackward";
      case AVERAGED_MODE: return "pygan::AveragedLossAndGradBackward";
      default: return two_sided_ ? "pygan::LossAndGradBackward" : "pygan::GeneratorLossAndGradBackward";
    }
  }

 private:
  variable_list recompute(const at::Tensor& up) override {
    // Unpacked before taking the GIL (a freed graph raises torch's own error there).
    at::Tensor x0 = input(0), x1 = two_sided_ ? input(1) : at::Tensor();
    pybind11::gil_scoped_acquire gil;
    PyObject* r = call_python(
        recompute_loss, "NNiidddiNi", two_sided_ ? THPVariable_Wrap(x0) : Py_NewRef(Py_None),
        THPVariable_Wrap(two_sided_ ? x1 : x0), consts_.term[0], consts_.term[1], consts_.sign[0],
        consts_.sign[1], consts_.alpha, consts_.reduction, THPVariable_Wrap(up), consts_.mode);
    return unpack_grads(r, *this, "loss");
  }

  Consts consts_;
  bool two_sided_;
};

Side side_of(const at::Tensor& x, int term, double sign) {
  return Side{uintptr_t(x.const_data_ptr()), x.numel(), dtype_code(x.scalar_type()), term, sign, 0};
}

}  // namespace

PyObject* loss_and_grad(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (!entry_ready("loss_and_grad", nargs, 9, recompute_loss)) return nullptr;
  const bool two_sided = args[0] != Py_None;
  const at::Tensor* x1 = cpu_tensor(args[1], "loss_and_grad", "x1");
  const at::Tensor* x0 = two_sided ? cpu_tensor(args[0], "loss_and_grad", "x0") : x1;
  Consts c;
  if (!x1 || !x0 || !load_int(args[2], c.term[0]) || !load_int(args[3], c.term[1]) ||
      !load_double(args[4], c.sign[0]) || !load_double(args[5], c.sign[1]) || !load_double(args[6], c.alpha) ||
      !load_int(args[7], c.reduction) || !load_int(args[8], c.mode)) {
    return nullptr;
  }
  if (c.reduction != MEAN && c.reduction != SUM) {
    PyErr_SetString(PyExc_ValueError, "loss_and_grad: reduction must be 1 (mean) or 2 (sum)");
    return nullptr;
  }
  const at::ScalarType t0 = x0->scalar_type(), t1 = x1->scalar_type();
  const at::ScalarType acc = compute_type(t0, t1);
  if (c.mode != PLAIN) {
    // The relativistic kernel reads and writes the compute dtype, pairs elements one to one.
    if (c.mode != PAIRED_MODE && c.mode != AVERAGED_MODE) {
      PyErr_SetString(PyExc_ValueError, "loss_and_grad: mode must be 0 (plain), 1 (paired) or 2 (averaged)");
      return nullptr;
    }
    if (!two_sided || t0 != acc || t1 != acc || (c.mode == PAIRED_MODE && x0->numel() != x1->numel())) {
      PyErr_SetString(PyExc_ValueError, "loss_and_grad: a relativistic loss takes two tensors of one compute "
                                        "dtype (float32 or float64), of one size when paired");
      return nullptr;
    }
  }
  const auto options = x1->options();
  at::Tensor out = at::empty({}, options.dtype(at::promote_types(t0, t1)));
  at::Tensor grad0 = two_sided ? at::empty(x0->sizes(), options.dtype(acc)) : at::Tensor();
  at::Tensor grad1 = at::empty(x1->sizes(), options.dtype(acc));
  const uintptr_t g0 = two_sided ? uintptr_t(grad0.data_ptr()) : 0, g1 = uintptr_t(grad1.data_ptr());
  const uintptr_t o = uintptr_t(out.data_ptr());
  const int out_code = dtype_code(out.scalar_type());
  const Side s1 = side_of(*x1, c.term[1], c.sign[1]);
  run_kernel(x0->numel() + x1->numel(), [&] {
    if (c.mode == PLAIN) {
      const Side s0 = two_sided ? side_of(*x0, c.term[0], c.sign[0]) : Side{};
      kernels->loss_forward(s0, s1, c.alpha, c.reduction, 0, 0, o, out_code, g0, g1);
    } else {
      // Paired: the loss's term and sign ride on side 0 (side 1 is the subtrahend), from the side
      // that is in the loss (pygan/_ops/adversarial_loss.py _relative).
      const bool own = c.mode == AVERAGED_MODE || c.sign[0] != 0.0;
      const Side s0 = side_of(*x0, own ? c.term[0] : c.term[1], own ? c.sign[0] : c.sign[1]);
      kernels->relative_forward(s0, s1, c.mode, c.alpha, c.reduction, o, out_code, g0, g1);
    }
  });
  if (at::GradMode::is_enabled() && ((two_sided && x0->requires_grad()) || x1->requires_grad())) {
    NodePtr node = make_node<LossAndGradBackward>(c, two_sided);
    auto* n = static_cast<LossAndGradBackward*>(node.get());
    if (two_sided) {
      n->set_next_edges(torch::autograd::collect_next_edges(*x0, *x1));
      n->save(0, *x0, std::move(grad0));
      n->save(1, *x1, std::move(grad1));
    } else {
      n->set_next_edges(torch::autograd::collect_next_edges(*x1));
      n->save(0, *x1, std::move(grad1));
    }
    torch::autograd::set_history(out, node);
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

}  // namespace autograd
}  // namespace pygan
