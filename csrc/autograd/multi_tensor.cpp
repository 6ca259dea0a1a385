// The multi-tensor updates' per-call check in C++: pygan.ema.EMA confirms before each update that
// the module trees it walked still hold the same parameter and buffer objects and that each
// parameter's data has not moved (pygan/ema.py EMA._pairs). In Python that was one identity test
// per dict slot and one data_ptr() call per tensor, about 5 us of a small model's 15 us update.
#include "nodes.h"
#include "torch_glue.h"

namespace pygan {
namespace autograd {

namespace {

// Every value of the dicts in `slots` (a list), in order, is the object at the same place in
// `members` (a list), and there are as many.
bool same_members(PyObject* slots, PyObject* members) {
  const Py_ssize_t n = PyList_GET_SIZE(members);
  Py_ssize_t k = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); ++i) {
    PyObject* d = PyList_GET_ITEM(slots, i);
    if (!PyDict_Check(d)) return false;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
      if (k >= n || PyList_GET_ITEM(members, k) != value) return false;
      ++k;
    }
  }
  return k == n;
}

// Each tensor of `tensors` (a list) has its data at the pointer at the same place in `ptrs`.
bool same_pointers(PyObject* tensors, PyObject* ptrs) {
  const Py_ssize_t n = PyList_GET_SIZE(tensors);
  if (PyList_GET_SIZE(ptrs) != n) return false;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* t = PyList_GET_ITEM(tensors, i);
    if (!THPVariable_Check(t)) return false;
    const uintptr_t p = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(ptrs, i));
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    if (uintptr_t(THPVariable_Unpack(t).const_data_ptr()) != p) return false;
  }
  return true;
}

}  // namespace

PyObject* walk_unchanged(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 6) {
    PyErr_Format(PyExc_TypeError, "walk_unchanged takes 6 arguments, got %zd", nargs);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < 6; ++i) {
    if (!PyList_Check(args[i])) {
      PyErr_SetString(PyExc_TypeError, "walk_unchanged takes lists: slots, members, dst, dst pointers, src, src pointers");
      return nullptr;
    }
  }
  const bool same = same_members(args[0], args[1]) && same_pointers(args[2], args[3]) &&
                    same_pointers(args[4], args[5]);
  return PyBool_FromLong(same);
  END_HANDLE_TH_ERRORS
}

}  // namespace autograd
}  // namespace pygan
