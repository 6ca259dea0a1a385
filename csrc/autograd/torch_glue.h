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
#include <type_traits>
#include <utility>

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

// csrc/common.h DType, pygan/_ops/backend.py DTYPE_CODES; -1 for a dtype the kernels do not take.
inline int dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kHalf: return 2;
    case at::kBFloat16: return 3;
    default: return -1;
  }
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

}  // namespace autograd
}  // namespace pygan
