#!/usr/bin/env bash
# The main job (until the training engine lands): the fused-loss benchmark on this machine, for the
# GAN loss and the Jensen-Shannon f-GAN loss, written to runs/bench/*.json and printed as tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p runs/bench
for loss in gan js; do
  .venv/bin/python benchmarks/losses.py --loss "$loss" --sizes 4096 65536 1048576 --json "runs/bench/losses-$loss.json"
done
echo "results: runs/bench/losses-gan.json runs/bench/losses-js.json"
