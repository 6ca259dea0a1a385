#!/usr/bin/env bash
# Regenerates the tables of docs/benchmarks.md on this machine: each block's benchmark writes its
# rows (benchmarks/_timing.py's schema) and scripts/bench_tables.py renders them between the
# block's <!-- generated:NAME --> markers; the rows stay in runs/bench/ (a table re-renders from
# them: python scripts/bench_tables.py TABLE runs/bench/BLOCK.*.json). Run it on a quiet machine:
# the ratios are only as good as the load allows (the prose around each table reads its numbers;
# check it after a run).
#   bash scripts/bench_docs.sh                    # every block, CPU (about 25 minutes on 2 cores)
#   bash scripts/bench_docs.sh penalties mmd      # these blocks
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(pwd)/${PYTHON:-.venv/bin/python}
DOC=$(pwd)/docs/benchmarks.md
rows=$(pwd)/runs/bench
mkdir -p "$rows"

# bench BLOCK SCRIPT ARGS...: one run of benchmarks/SCRIPT into BLOCK's rows; a block with several
# runs (threads, models) calls it once per run before `render BLOCK TABLE`.
bench() {
  local block=$1 script=$2 n
  shift 2
  n=$(ls "$rows" | grep -c "^$block\.[0-9]*\.json$" || true)
  echo "== $block: $script $*"
  (cd benchmarks && "$PY" "$script" --device cpu --json "$rows/$block.$n.json" "$@")
}
render() {
  "$PY" scripts/bench_tables.py "$2" "$rows/$1".*.json --update "$DOC" --block "$1"
}

blocks=("$@")
[ ${#blocks[@]} -gt 0 ] || blocks=(losses losses-minimax losses-second-order overhead penalties penalties-r1
                                   train_step multi_tensor activation conv mmd)
for block in "${blocks[@]}"; do
  rm -f "$rows/$block".*.json  # this run's rows only
  case "$block" in
    losses) bench losses losses.py && render losses losses ;;
    losses-minimax) bench losses-minimax losses.py --minimax --sizes 256 4096 65536 1048576 &&
                    render losses-minimax losses ;;
    losses-second-order)
      for t in 1 2; do
        bench losses-second-order losses.py --second-order --threads $t --no-compile \
          --sizes 8 512 4096 65536 1048576
      done
      render losses-second-order losses ;;
    overhead) bench overhead overhead.py --blocks 21 && render overhead overhead ;;  # 21: this VM needs many
                                                                                  # blocks for a quiet one
    penalties)  # DCGAN-64 at batch 256 takes minutes per step on a CPU: batch 64 only
      bench penalties penalties.py --no-compile --models mlp --batches 64 256
      bench penalties penalties.py --no-compile --models dcgan64 --batches 64 --blocks 3 --reps 1
      render penalties penalties ;;
    penalties-r1)
      for t in 1 2; do
        bench penalties-r1 penalties.py --step r1 --no-compile --models mlp --batches 64 512 --threads $t
      done
      render penalties-r1 penalties ;;
    train_step)
      for t in 1 2; do
        bench train_step train_step.py --cases demo ring --no-compile --threads $t
      done
      render train_step train_step ;;
    multi_tensor) bench multi_tensor multi_tensor.py --no-compile --blocks 9 &&
                  render multi_tensor multi_tensor ;;
    activation)
      for t in 1 2; do
        bench activation activation.py --threads $t
      done
      render activation activation ;;
    conv) bench conv conv.py --threads 2 && render conv conv ;;
    mmd) bench mmd mmd.py && render mmd mmd ;;
    *) echo "unknown block $block" >&2; exit 2 ;;
  esac
done
