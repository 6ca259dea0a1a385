// Kernel entries as plain CPython METH_FASTCALL functions. pybind11's generic dispatcher (argument
// loaders, overload records, call guards) cost about 2 us per call of a loss entry inside a training
// step, where caches are cold: as much as the whole kernel at training sizes. The launch entries take
// only integers, floats and loss Sides, so a direct conversion does the same job.
//
//   fast_entry<&loss_forward_cpu>("loss_forward_cpu", "doc")  ->  a PyMethodDef
//
// Arguments are positional and converted exactly (an int where an int is declared); the GIL is
// released around the kernel; std::invalid_argument becomes ValueError and any other exception
// RuntimeError, as with pybind11.
#pragma once
#include <Python.h>

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "adversarial_loss.h"

namespace pygan {
namespace fastcall {

inline bool load(PyObject* o, uintptr_t& out) {
  out = uintptr_t(PyLong_AsUnsignedLongLong(o));
  return !PyErr_Occurred();
}
inline bool load(PyObject* o, int64_t& out) {
  out = PyLong_AsLongLong(o);
  return !PyErr_Occurred();
}
inline bool load(PyObject* o, int& out) {
  const long v = PyLong_AsLong(o);
  if (PyErr_Occurred()) return false;
  if (v < INT32_MIN || v > INT32_MAX) {
    PyErr_SetString(PyExc_OverflowError, "integer argument out of range for int");
    return false;
  }
  out = int(v);
  return true;
}
inline bool load(PyObject* o, double& out) {
  out = PyFloat_AsDouble(o);
  return !PyErr_Occurred();
}
// A Side is the tuple (x, n, dtype, term, sign, shift) (pygan/_ops/adversarial_loss.py _c_side).
inline bool load(PyObject* o, Side& s) {
  if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 6) {
    PyErr_SetString(PyExc_TypeError, "a loss side is a tuple (x, n, dtype, term, sign, shift)");
    return false;
  }
  return load(PyTuple_GET_ITEM(o, 0), s.x) && load(PyTuple_GET_ITEM(o, 1), s.n) &&
         load(PyTuple_GET_ITEM(o, 2), s.dtype) && load(PyTuple_GET_ITEM(o, 3), s.term) &&
         load(PyTuple_GET_ITEM(o, 4), s.sign) && load(PyTuple_GET_ITEM(o, 5), s.shift);
}

template <auto F> struct Entry;

template <class... A, void (*F)(A...)> struct Entry<F> {
  using Args = std::tuple<std::decay_t<A>...>;

  template <size_t... I>
  static bool load_all(PyObject* const* args, Args& vals, std::index_sequence<I...>) {
    return (load(args[I], std::get<I>(vals)) && ...);
  }

  static PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    constexpr Py_ssize_t arity = sizeof...(A);
    if (nargs != arity) {
      PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", arity, nargs);
      return nullptr;
    }
    Args vals;
    if (!load_all(args, vals, std::index_sequence_for<A...>{})) return nullptr;
    std::string error;
    PyObject* type = nullptr;
    Py_BEGIN_ALLOW_THREADS
    try {
      std::apply(F, vals);
    } catch (const std::invalid_argument& e) {
      error = e.what();
      type = PyExc_ValueError;
    } catch (const std::exception& e) {
      error = e.what();
      type = PyExc_RuntimeError;
    }
    Py_END_ALLOW_THREADS
    if (type) {
      PyErr_SetString(type, error.c_str());
      return nullptr;
    }
    Py_RETURN_NONE;
  }
};

template <auto F> PyMethodDef fast_entry(const char* name, const char* doc) {
  return PyMethodDef{name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&Entry<F>::call)),
                     METH_FASTCALL, doc};
}

}  // namespace fastcall
}  // namespace pygan
