// pygan._autograd's module: its entries, and the kernel table taken from pygan._C at import.
#include <Python.h>

#include <cstring>

#include "nodes.h"

namespace pygan {
namespace autograd {

const KernelTable* kernels = nullptr;
PyObject* recompute_loss = nullptr;
PyObject* recompute_activation = nullptr;
PyObject* recompute_penalty = nullptr;

namespace {

PyObject* set_recompute(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyCallable_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "set_recompute takes an op name and a callable");
    return nullptr;
  }
  const char* op = PyUnicode_AsUTF8(args[0]);
  PyObject** slot = std::strcmp(op, "adversarial_loss") == 0 ? &recompute_loss
                    : std::strcmp(op, "activation") == 0    ? &recompute_activation
                    : std::strcmp(op, "penalty_head") == 0  ? &recompute_penalty
                                                            : nullptr;
  if (!slot) {
    PyErr_Format(PyExc_ValueError, "set_recompute: no C++ node for op %R", args[0]);
    return nullptr;
  }
  Py_INCREF(args[1]);
  Py_XSETREF(*slot, args[1]);  // the module keeps it for its lifetime
  Py_RETURN_NONE;
}

// A METH_FASTCALL entry as the PyCFunction a method table holds.
PyCFunction fastcall(PyObject* (*f)(PyObject*, PyObject* const*, Py_ssize_t)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(f));
}

PyMethodDef methods[] = {
    {"loss_and_grad", fastcall(&loss_and_grad),
     METH_FASTCALL,
     "loss_and_grad(x0, x1, term0, term1, sign0, sign1, alpha, reduction, mode): the reduced adversarial "
     "loss of CPU logits (x0 None: side 0 out of the loss; mode 1 / 2: relativistic paired / averaged) "
     "from one kernel pass that also writes its gradients, with a node whose backward hands them over."},
    {"penalty_head", fastcall(&penalty_head),
     METH_FASTCALL,
     "penalty_head(g, kind, center, weight): the gradient penalty of g's rows, with its gradient from "
     "the same kernel call, handed over by the node."},
    {"bias_leaky_relu", fastcall(&bias_leaky_relu),
     METH_FASTCALL,
     "bias_leaky_relu(x, bias, slope): leaky(x + bias along dim 1) of a CPU tensor, with a node that "
     "keeps the 1-bit mask."},
    {"walk_unchanged", fastcall(&walk_unchanged),
     METH_FASTCALL,
     "walk_unchanged(slots, members, dst, dst_ptrs, src, src_ptrs): whether the dicts in slots hold "
     "exactly the objects in members, in order, and each tensor of dst and src has its data at the "
     "pointer listed for it (pygan.ema.EMA's check before an update)."},
    {"set_recompute", fastcall(&set_recompute),
     METH_FASTCALL,
     "set_recompute(op, fn): the Python recomputation of op's node, which returns its gradients, "
     "recorded, under create_graph: \"adversarial_loss\": fn(x0, x1, term0, term1, sign0, sign1, alpha, "
     "reduction, up, mode); \"activation\": fn(gy, mask, slope, bias_grad); \"penalty_head\": "
     "fn(g, kind, center, weight, up)."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_autograd",
                      "pygan's autograd nodes in C++ (the CPU training path of its ops)", -1, methods};

}  // namespace
}  // namespace autograd
}  // namespace pygan

PyMODINIT_FUNC PyInit__autograd() {
  using namespace pygan;
  // The kernels come from pygan._C: a module without them has nothing to run.
  PyObject* c = PyImport_ImportModule("pygan._C");
  if (!c) return nullptr;
  PyObject* capsule = PyObject_GetAttrString(c, "kernel_table");
  Py_DECREF(c);
  if (!capsule) return nullptr;
  auto* table = static_cast<const KernelTable*>(PyCapsule_GetPointer(capsule, KERNEL_TABLE_CAPSULE));
  Py_DECREF(capsule);  // the table is a static of _C, which stays loaded
  if (!table) return nullptr;
  if (table->version < KERNEL_TABLE_VERSION) {
    PyErr_Format(PyExc_ImportError,
                 "pygan._C's kernel table is version %d, pygan._autograd needs %d: rebuild pygan",
                 table->version, KERNEL_TABLE_VERSION);
    return nullptr;
  }
  autograd::kernels = table;
  PyObject* m = PyModule_Create(&autograd::module);
  // A module built against another torch is refused by pygan (pygan/_ops/backend.py) before use.
  if (m && PyModule_AddStringConstant(m, "torch_version", PYGAN_TORCH_VERSION) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
