#!/usr/bin/env bash
# Creates .venv (once) with the CPU build of torch and everything pygan's tests and benchmarks
# need, then builds and installs pygan into it (CUDA kernels too when nvcc is on PATH).
# Source it or run it; afterwards .venv/bin/python has pygan.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned to the CPU build that lies on this machine's disk; an unpinned torch would pull a
# multi-GB CUDA build. Install it first so that pygan's "torch>=2.4" is already satisfied.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q numpy pytest scipy triton "pybind11>=2.11" "setuptools>=64" wheel matplotlib scikit-learn
.venv/bin/python -m pip install -q --no-build-isolation --no-deps -e .
.venv/bin/python -c "import pygan; print('pygan', pygan.__version__, pygan.available_backends())"
