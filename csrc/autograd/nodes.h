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

// The Python callable a node calls for the gradients it cannot hand over from its forward pass
// (create_graph, or a second backward through a retained graph); set by pygan/_ops/adversarial_loss.py.
extern PyObject* recompute;

// loss_and_grad(x0 or None, x1, term0, term1, sign0, sign1, alpha, reduction) -> the reduced loss.
PyObject* loss_and_grad(PyObject* self, PyObject* const* args, Py_ssize_t nargs);

}  // namespace autograd
}  // namespace pygan
