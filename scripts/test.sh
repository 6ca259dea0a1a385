#!/usr/bin/env bash
# The test command: sets up .venv (scripts/setup.sh) and runs the whole suite. Where nvcc is on the
# PATH the CUDA kernels are compiled too (without a GPU, for one architecture: a compile check).
# Triton kernels run under TRITON_INTERPRET=1 on machines without a GPU; tests marked gpu are
# skipped there. Arguments go to pytest (`bash scripts/test.sh tests/test_losses.py -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYGAN_CUDA:-}" ] && command -v nvcc > /dev/null 2>&1; then
  export PYGAN_CUDA=1
fi
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
