#!/usr/bin/env bash
# The main job: builds pygan into .venv (scripts/setup.sh), then trains a GAN on the embedded ring
# of 8 Gaussians on the CPU (non-saturating GAN + R1, EMA of G; 30,000 steps, about 5 minutes on 2 cores) and writes
# runs/ring/{samples.png,losses.png,metrics.json,log.jsonl,checkpoint.pt}; then scores the generator
# against fresh data with every two-sample statistic (eval.json in the same folder, about 15 s).
# Arguments go to `python -m pygan train` (`bash scripts/demo.sh --steps 500 --out runs/short`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=runs/ring
prev=
for arg in "$@"; do  # the run folder that `train` will use: its last --out, as argparse takes it
  case "$arg" in --out=*) out=${arg#--out=} ;; esac
  [ "$prev" = --out ] && out=$arg
  prev=$arg
done
.venv/bin/python -m pygan train --data ring --out runs/ring --overwrite --device "${DEVICE:-cpu}" "$@"
.venv/bin/python -m pygan eval --run "$out" --device "${DEVICE:-cpu}"
