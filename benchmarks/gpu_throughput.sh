#!/usr/bin/env bash
# One device run of benchmarks/bench_train_throughput.py, in the environment scripts/gpu_train.sh makes
# (carried wheels, the package copied under $VVC_SITE, the carried offline data, built when absent and the
# packages can be fetched; else one line saying to build it elsewhere and carry it). JSON to $OUT.
#
#   OUT=$OUT bash benchmarks/gpu_throughput.sh                       # all options, batches 8..64, <= BUDGET_S
#   OUT=$OUT bash benchmarks/gpu_throughput.sh --flags bf16,tf32      # extra arguments go to the benchmark
set -euo pipefail
OUT=${OUT:-runs/gpu_out}
. scripts/device_env.sh
ensure_data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
mkdir -p "$OUT"
$PY benchmarks/bench_train_throughput.py --data "$DATA" --budget-s "${BUDGET_S:-300}" \
  -o "$OUT/bench_train_throughput_${NAME:-gpu}.json" "$@"
