#!/usr/bin/env bash
# One device run of benchmarks/bench_train_throughput.py, in the environment scripts/gpu_train.sh makes
# (carried wheels, the package copied under $VVC_SITE, the carried offline data, built when absent and the
# packages can be fetched; else one line saying to build it elsewhere and carry it). JSON to $OUT.
#
#   OUT=$OUT bash benchmarks/gpu_throughput.sh                       # all options, batches 8..64, <= BUDGET_S
#   OUT=$OUT bash benchmarks/gpu_throughput.sh --flags bf16,tf32      # extra arguments go to the benchmark
set -euo pipefail
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu_out}
SITE=${VVC_SITE:-/tmp/vvc_site}
DATA=${DATA:-data/offline}
export PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1  # never import the bare ./vvc_lightning folder from the cwd
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE/deps" .whl/*.whl
  export PYTHONPATH="$SITE/deps:${PYTHONPATH:-}"
fi
rm -rf "$SITE/src" && mkdir -p "$SITE/src"
cp -r vvc_lightning "$SITE/src/vvc_lightning"
for sub in backbones datamodules configs; do cp -r "$sub" "$SITE/src/vvc_lightning/$sub"; done
export PYTHONPATH="$SITE/src:${PYTHONPATH:-}"
if [ ! -f "$DATA/manifest.json" ]; then  # no network on a lent GPU machine: one line saying to build here and carry
  $PY scripts/build_training_data.py --can-build -o "$DATA" || exit 2
  $PY scripts/build_training_data.py -o "$DATA"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
mkdir -p "$OUT"
$PY benchmarks/bench_train_throughput.py --data "$DATA" --budget-s "${BUDGET_S:-300}" \
  -o "$OUT/bench_train_throughput_${NAME:-gpu}.json" "$@"
