#!/usr/bin/env bash
# The main job: builds pygan into .venv (scripts/setup.sh), then trains a GAN on the embedded ring
# of 8 Gaussians on the CPU (non-saturating GAN + R1, EMA of G; about 80 s on 2 cores) and writes
# runs/ring/{samples.png,losses.png,metrics.json,log.jsonl,checkpoint.pt}; then scores the generator
# against fresh data with every two-sample statistic (runs/ring/eval.json, about 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pygan train --data ring --out runs/ring --device "${DEVICE:-cpu}" "$@"
.venv/bin/python -m pygan eval --run runs/ring --device "${DEVICE:-cpu}"
