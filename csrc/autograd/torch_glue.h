// What every C++ node of pygan._autograd needs from torch: the node pointer type of this torch,
// the dtype codes of csrc/common.h, argument loading, and Python errors carried through autograd.
#pragma once
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "../common.h"
#include "nodes.h"

namespace pygan {
namespace autograd {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Nodes are held by std::shared_ptr up to some torch releases and by c10::intrusive_ptr after.
using NodePtr = decltype(torch::autograd::Edge::function);

template <class T, class... A> NodePtr make_node(A&&... args) {
  if constexpr (std::is_same_v<NodePtr, std::shared_ptr<Node>>) {
    return std::make_shared<T>(std::forward<A>(args)...);
  } else {
    return c10::make_intrusive<T>(std::forward<A>(args)...);
  }
}

// The kernels' dtype code (csrc/common.h DType) of a torch dtype; -1 for one they do not take.
inline int dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return F32;
    case at::kDouble: return F64;
    case at::kHalf: return F16;
    case at::kBFloat16: return BF16;
    default: return -1;
  }
}

// What the kernels compute in for inputs of these dtypes (pygan/_ops/launch.py compute_dtype).
inline at::ScalarType compute_type(at::ScalarType a, at::ScalarType b) {
  return a == at::kDouble || b == at::kDouble ? at::kDouble : at::kFloat;
}

// The tensor `obj` as the kernels read it (contiguous, CPU, a kernel dtype, no forward-mode
// tangent, which a node without a forward derivative would drop), or null with a Python error
// naming `what` of `entry`.
inline const at::Tensor* cpu_tensor(PyObject* obj, const char* entry, const char* what) {
  if (!THPVariable_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s: %s must be a tensor", entry, what);
    return nullptr;
  }
  const at::Tensor& x = THPVariable_Unpack(obj);
  if (!x.defined() || !x.is_cpu() || x.layout() != at::kStrided || !x.is_contiguous() ||
      dtype_code(x.scalar_type()) < 0) {
    PyErr_Format(PyExc_TypeError, "%s: %s must be a contiguous CPU tensor of float32, float64, float16 or bfloat16",
                 entry, what);
    return nullptr;
  }
  if (x._fw_grad(/*level=*/0).defined()) {
    PyErr_Format(PyExc_RuntimeError, "pygan's fused ops have no forward-mode derivative (%s has a tangent)", what);
    return nullptr;
  }
  return &x;
}

// Whether an entry may run: `nargs` arguments where it takes `want`, and the module initialized
// (the kernel table from _C, the op's recomputation from its Python module); else a Python error.
inline bool entry_ready(const char* entry, Py_ssize_t nargs, Py_ssize_t want, PyObject* recompute) {
  if (nargs != want) {
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments, got %zd", entry, want, nargs);
    return false;
  }
  if (!kernels || !recompute) {
    PyErr_Format(PyExc_RuntimeError, "pygan._autograd's %s is not initialized (import pygan first)", entry);
    return false;
  }
  return true;
}

inline bool load_int(PyObject* o, int& out) {
  const long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred()) return false;
  out = int(v);
  return true;
}

inline bool load_double(PyObject* o, double& out) {
  out = PyFloat_AsDouble(o);
  return !(out == -1.0 && PyErr_Occurred());
}

// Runs `f` (a kernel call) with the GIL released where this thread holds it (a forward call from
// Python; a node's backward runs without it) and the work is large enough to let other Python
// threads run meanwhile; at training sizes releasing it would cost a tenth of the call.
template <class F> void run_kernel(int64_t work, F&& f) {
  PyThreadState* state = work >= (int64_t(1) << 16) && PyGILState_Check() ? PyEval_SaveThread() : nullptr;
  try {
    f();
  } catch (...) {
    if (state) PyEval_RestoreThread(state);
    throw;
  }
  if (state) PyEval_RestoreThread(state);
}

// Calls a node's Python recomputation (held by the module, nodes.h) with the GIL taken; its
// exception, if any, reaches the caller of backward with its type and message.
template <class... A> PyObject* call_python(PyObject* fn, const char* format, A... args) {
  PyObject* r = PyObject_CallFunction(fn, format, args...);
  if (!r) {
    python_error e;
    e.persist();
    throw std::move(e);
  }
  return r;
}

// The gradients a recomputation returned (a tuple, one entry per node output; None for none),
// for the outputs `node` must compute. Steals `r`.
inline variable_list unpack_grads(PyObject* r, Node& node, const char* what) {
  variable_list out(node.num_outputs());
  const bool ok = PyTuple_Check(r) && size_t(PyTuple_GET_SIZE(r)) == out.size();
  for (size_t i = 0; ok && i < out.size(); ++i) {
    PyObject* g = PyTuple_GET_ITEM(r, i);
    if (g != Py_None && THPVariable_Check(g) && node.task_should_compute_output(i)) out[i] = THPVariable_Unpack(g);
  }
  Py_DECREF(r);
  TORCH_CHECK(ok, "pygan: the ", what, " node's recomputation returned not ", out.size(), " gradients");
  return out;
}

// Whether the 0-dim upstream is exactly 1 (loss.backward()): then saved gradients are the answer
// and need no pass at all.
inline bool is_one(const at::Tensor& up) {
  if (!up.is_cpu() || up.dim() != 0) return false;
  switch (up.scalar_type()) {
    case at::kFloat: return *up.const_data_ptr<float>() == 1.0f;
    case at::kDouble: return *up.const_data_ptr<double>() == 1.0;
    default: return up.item<double>() == 1.0;
  }
}

// A node of a scalar whose forward pass wrote the gradients of its inputs for an upstream of one
// (in the compute dtype): backward scales them by the upstream in place and hands them over, one
// per input, cast to the input's dtype. Under create_graph a product with a saved gradient (a
// constant) would hide the second derivative, and a second backward through a retained graph finds
// them handed over: both call recompute(), which goes back to the Python op.
class SavedGradNode : public Node {
 public:
  void release_variables() override {
    for (auto& x : inputs_) x.reset_data();
    for (auto& g : grads_) g.reset();
  }

  variable_list apply(variable_list&& grads) override {
    const at::Tensor& up = grads[0];
    if (!up.defined()) return variable_list(num_outputs());
    if (at::GradMode::is_enabled()) return recompute(up);
    bool taken;
    {
      // Two threads may run backward through one retained graph at once: one takes the saved
      // gradients, the other recomputes.
      std::lock_guard<std::mutex> lock(mutex_);
      taken = !fresh_;
      fresh_ = false;
    }
    if (taken) return recompute(up);
    const bool one = is_one(up);
    variable_list out(num_outputs());
    for (size_t i = 0; i < out.size(); ++i) {
      at::Tensor g = std::move(grads_[i]);
      if (!task_should_compute_output(i)) continue;
      if (!one) g.mul_(up);
      if (g.scalar_type() != dtypes_[i]) g = g.to(dtypes_[i]);
      out[i] = std::move(g);
    }
    return out;
  }

  // Input i (output i's tensor), saved for the recomputation, and its gradient for an upstream of one.
  void save(size_t i, const at::Tensor& x, at::Tensor grad) {
    inputs_[i] = SavedVariable(x, false);
    dtypes_[i] = x.scalar_type();
    grads_[i] = std::move(grad);
  }

 protected:
  virtual variable_list recompute(const at::Tensor& up) = 0;

  // Input i as saved; torch's own error where the graph was freed or the tensor modified in place.
  at::Tensor input(size_t i) { return inputs_[i].unpack(); }

 private:
  SavedVariable inputs_[2];
  at::Tensor grads_[2];
  at::ScalarType dtypes_[2] = {at::kFloat, at::kFloat};
  bool fresh_ = true;  // the gradients saved by the forward pass are still here
};

}  // namespace autograd
}  // namespace pygan
