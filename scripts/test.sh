#!/usr/bin/env bash
# The test command: sets up .venv (scripts/setup.sh) and runs the whole suite. Triton kernels run
# under TRITON_INTERPRET=1 on machines without a GPU; tests marked gpu are skipped there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
