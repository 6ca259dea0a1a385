// pygan._autograd: autograd nodes written in C++ for the ops whose host time is the whole cost of a
// training-size call. A Python autograd.Function records its node through a context object,
// attribute stores and a Python backward frame, which together cost more than the kernel; these
// nodes record the same graph for a third of that. They call the kernels of pygan._C through its
// kernel table (kernel_table.h) and link libtorch, which _C does not. Every path they do not take
// (torch.compile, other backends, create_graph) stays with the Python ops in pygan/_ops/, which
// this module calls back for the twice-differentiable recomputation.
#pragma once
#include <Python.h>

#include "../kernel_table.h"

namespace pygan {
namespace autograd {

// Set at import from pygan._C's capsule (module.cpp).
extern const KernelTable* kernels;

// The Python callables a node calls for the gradients it cannot give from what its forward pass
// saved (create_graph, which needs them recorded; for the loss also a second backward through a
// retained graph, after the saved ones were handed over); set by the op modules of pygan/_ops/
// (set_recompute, module.cpp).
extern PyObject* recompute_loss;        // adversarial_loss.py _node_recompute
extern PyObject* recompute_activation;  // activation.py _node_recompute
extern PyObject* recompute_penalty;     // penalty_head.py _node_recompute

// loss_and_grad(x0 or None, x1, term0, term1, sign0, sign1, alpha, reduction, mode) -> the reduced
// loss; mode 0: plain, 1 / 2: relativistic paired / averaged (csrc/adversarial_loss.h Relative).
PyObject* loss_and_grad(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
// penalty_head(g, kind, center, weight) -> the penalty of g's rows (csrc/penalty_head.h).
PyObject* penalty_head(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
// walk_unchanged(slots, members, dst, dst_ptrs, src, src_ptrs) -> whether an EMA's walked module
// trees still hold the same objects and data (multi_tensor.cpp; not a node, but torch's tensors).
PyObject* walk_unchanged(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
// bias_leaky_relu(x, bias or None, slope) -> leaky(x + bias along dim 1).
PyObject* bias_leaky_relu(PyObject* self, PyObject* const* args, Py_ssize_t nargs);

}  // namespace autograd
}  // namespace pygan
