#!/usr/bin/env bash
# On a GPU machine (no network; its own python3 with torch, triton, pybind11, cmake, nvcc):
# builds pygan for sm_90, runs the whole test suite on the GPU (cuda and triton backends, gpu
# marks), then the loss (single and minimax), penalty, training-step, multi-tensor and MMD
# benchmarks, the ring demo (eager and captured, then evaluated) and a captured conv BiGAN on the
# digits. Everything is written under $RESULTS (default /tmp/pygan-gpu); $OUT (or ./runs/gpu) gets
# the two logs and one archive of the rest (the device tool brings back at most 8 files).
# `scripts/gpu.sh tests|bench|demo` runs one part after the build (each fits a 10-minute call);
# no argument runs all three.
set -uo pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}
run_part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
FINAL=${OUT:-runs/gpu}
OUT=${RESULTS:-/tmp/pygan-gpu}
mkdir -p "$OUT" "$FINAL"
pack() { cp "$OUT/tests.log" "$OUT/bench.log" "$FINAL/" 2>/dev/null; tar czf "$FINAL/gpu-results.tgz" -C "$OUT" .; }
trap pack EXIT
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
build() { PYGAN_CUDA_ARCHS=${PYGAN_CUDA_ARCHS:-90-real} python3 -m pip install --no-build-isolation --no-deps -e . \
  > "$OUT/$1" 2>&1; }
# The C++ autograd nodes compile against this machine's torch; where they do not, the kernels still
# get their GPU run (the failure stays in build.log).
if ! build build.log; then
  tail -30 "$OUT/build.log"
  echo "gpu.sh: build failed; building again without pygan._autograd (PYGAN_AUTOGRAD=0)"
  PYGAN_AUTOGRAD=0 build build-without-nodes.log || { tail -50 "$OUT/build-without-nodes.log"; exit 1; }
fi
if run_part tests; then
python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$OUT/tests.log" | tail -25
fi
if run_part bench; then
for dtype in float32 bfloat16; do
  for loss in gan js jeffrey; do
    python3 benchmarks/losses.py --device cuda --loss "$loss" --dtype "$dtype" \
      --json "$OUT/losses-$loss-$dtype.json" 2>&1 | tee -a "$OUT/bench.log"
  done
done
python3 benchmarks/losses.py --device cuda --minimax --json "$OUT/minimax-gan.json" 2>&1 | tee -a "$OUT/bench.log"
python3 benchmarks/multi_tensor.py --device cuda --json "$OUT/multi_tensor.json" 2>&1 | tee -a "$OUT/bench.log"
python3 benchmarks/penalties.py --device cuda --json "$OUT/penalties.json" 2>&1 | tee -a "$OUT/bench.log"
python3 benchmarks/train_step.py --device cuda --json "$OUT/train_step.json" 2>&1 | tee -a "$OUT/bench.log"
python3 benchmarks/mmd.py --device cuda --json "$OUT/mmd.json" 2>&1 | tee -a "$OUT/bench.log"
python3 benchmarks/mmd.py --device cuda --backend cuda --sizes 10000 50000 --dims 64 2048 --no-compile \
  --json "$OUT/mmd-cuda.json" 2>&1 | tee -a "$OUT/bench.log"
fi
if run_part demo; then
python3 -m pygan train --data ring --device cuda --out "$OUT/ring" --quiet 2>&1 | tee -a "$OUT/bench.log"
python3 -m pygan train --data ring --device cuda --capture --out "$OUT/ring-captured" --quiet 2>&1 | tee -a "$OUT/bench.log"
python3 -m pygan eval --run "$OUT/ring" --device cuda 2>&1 | tee -a "$OUT/bench.log"
python3 -m pygan train --model bigan-dcgan --data digits --device cuda --capture --out "$OUT/bigan-digits" \
  --quiet 2>&1 | tee -a "$OUT/bench.log"
fi
