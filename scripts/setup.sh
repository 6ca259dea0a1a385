#!/usr/bin/env bash
# Creates .venv (once) with the CPU build of torch and everything pygan's tests and benchmarks
# need, then builds and installs pygan into it. Source it or run it; afterwards .venv/bin/python
# has pygan. A repeated run installs nothing and rebuilds only the sources that changed: the
# packages are installed when their list changes, the build folder (build/) is kept, and once
# pygan is installed a rebuild is an incremental `cmake --build` there.
#
# CUDA kernels: PYGAN_CUDA=1 builds them (for PYGAN_CUDA_ARCHS, default the visible GPU's
# architecture, else 90-real as a compile check), PYGAN_CUDA=0 does not. Unset, an existing build
# keeps its choice, and a first build compiles them only where a GPU and nvcc are both present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$(date +%s)

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

# torch is pinned to the CPU build that lies on this machine's disk; an unpinned torch would pull a
# multi-GB CUDA build. It goes first so that pygan's "torch>=2.4" is already satisfied.
TORCH='torch==2.13.0'
DEPS='numpy pytest scipy triton pybind11>=2.11 setuptools>=64 wheel matplotlib scikit-learn mlxtend'
if [ "$(cat .venv/.pygan-deps 2>/dev/null)" != "$TORCH $DEPS" ]; then
  .venv/bin/python -m pip install -q "$TORCH"
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q $DEPS
  echo "$TORCH $DEPS" > .venv/.pygan-deps
fi

gpu_arch() {  # the first visible GPU's architecture in CMake's form (90-real), or nothing
  command -v nvidia-smi > /dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' \
    | sed -n 's/^\([0-9][0-9]*\)$/\1-real/p'
}
previous=$(cat .venv/.pygan-build 2>/dev/null || true)
if [ -z "${PYGAN_CUDA:-}" ]; then
  case "$previous" in
    *cuda=1*) PYGAN_CUDA=1 ;;
    *cuda=0*) PYGAN_CUDA=0 ;;
    *) if command -v nvcc > /dev/null 2>&1 && [ -n "$(gpu_arch)" ]; then PYGAN_CUDA=1; else PYGAN_CUDA=0; fi ;;
  esac
fi
case "$PYGAN_CUDA" in 1|on|ON|true|yes) PYGAN_CUDA=1 ;; *) PYGAN_CUDA=0 ;; esac
if [ -z "${PYGAN_CUDA_ARCHS:-}" ]; then
  PYGAN_CUDA_ARCHS=$(gpu_arch)
  if [ -z "$PYGAN_CUDA_ARCHS" ]; then
    # No GPU here: keep an earlier build's architectures, else compile for one as a check.
    PYGAN_CUDA_ARCHS=$(printf '%s\n' "$previous" | sed -n 's/.*archs=\([^ ]*\).*/\1/p')
    PYGAN_CUDA_ARCHS=${PYGAN_CUDA_ARCHS:-90-real}
  fi
fi
export PYGAN_CUDA PYGAN_CUDA_ARCHS

# What a plain `cmake --build` cannot pick up: the build settings and the packaging files. The
# build folder is the one setup.py names (build/<extension>-<python tag>).
# (The torch pin too: pygan._autograd compiles against that torch.)
config="cuda=$PYGAN_CUDA archs=$PYGAN_CUDA_ARCHS $TORCH meta=$(cat pyproject.toml setup.py | cksum | cut -d' ' -f1)"
build_dir=build/pygan._C-$(.venv/bin/python -c 'import sys; print(sys.implementation.cache_tag)')
# A build folder made for another checkout (a moved or copied tree) cannot build this one.
if [ -f "$build_dir/CMakeCache.txt" ] && ! grep -qF "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd -P)" "$build_dir/CMakeCache.txt"; then
  rm -rf "$build_dir"
fi
if [ "$previous" = "$config" ] && [ -f "$build_dir/CMakeCache.txt" ] \
   && .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("pygan") is None)' 2>/dev/null; then
  cmake --build "$build_dir" --parallel "${PYGAN_BUILD_JOBS:-$(nproc)}" > "$build_dir/last-build.log" 2>&1 \
    || { tail -40 "$build_dir/last-build.log"; exit 1; }
  # The editable install imports pygan/ from the source tree: put the module there (a rename, so
  # that a process that has the old one loaded keeps its copy).
  for so in "$build_dir"/lib/_C.* "$build_dir"/lib/_autograd.*; do
    [ -e "$so" ] || continue
    target=pygan/$(basename "$so")
    if ! cmp -s "$so" "$target"; then cp "$so" "$target.tmp" && mv -f "$target.tmp" "$target"; fi
  done
else
  rm -f .venv/.pygan-build
  .venv/bin/python -m pip install -q --no-build-isolation --no-deps -e .
  echo "$config" > .venv/.pygan-build
fi
# The C++ kernels must load: a module that built but cannot be imported is a failed setup, not a
# silent fall-back that every later command would pay for.
.venv/bin/python -c "
import pathlib, sys, pygan
from pygan._ops import backend
backends = pygan.available_backends()
print('pygan', pygan.__version__, backends)
if backends['cpu'] != 'available':
    sys.exit('setup: the C++ kernels (pygan._C) do not load: ' + backends['cpu'])
if list(pathlib.Path(pygan.__file__).parent.glob('_autograd.*')) and backend.load_nodes() is None:
    sys.exit('setup: the C++ autograd nodes (pygan._autograd) were built but do not load for this torch')"
echo "setup: $(( $(date +%s) - start )) s (CUDA kernels: $([ "$PYGAN_CUDA" = 1 ] && echo "built for $PYGAN_CUDA_ARCHS" || echo 'not built'))"
