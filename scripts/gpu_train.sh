#!/usr/bin/env bash
# One command for the GPU machine: install the carried wheels, find the carried offline data (built here when
# this machine can fetch its packages; a lent GPU machine cannot: see README), then (default) continue
# the shipped model vvc-lean-vr inside a wall-clock budget and keep the result only if its test-split
# ST-LPIPS curve improved (scripts/campaign.py: the record gains a history entry either way; OUT/models
# holds the files to commit), or (SCRATCH=1) train the zoo recipe from scratch and leave last.ckpt (in
# parts), metrics.csv, run_config.yaml and summary.json in $OUT. Runs from the repository root, without
# installing this package (its packages are mapped from top-level folders, so a copy under /tmp is put on
# PYTHONPATH instead).
#
#   bash scripts/gpu_train.sh                 # GPU; BUDGET_S (default 450) bounds the whole run; trains the
#                                             # record's joint stage at lr 2e-4 (STAGE=NAME another of its
#                                             # stages, LR=...) with the device settings of
#                                             # configs/gpu_campaign.yaml, also after a CPU run (cpu_train.sh)
#   CPU_SMOKE=1 bash scripts/gpu_train.sh     # the same steps on this CPU, a few tiny steps, on a copy of
#                                             # the shipped model in $OUT/smoke_models (never the real one)
#   SCRATCH=1 bash scripts/gpu_train.sh       # the zoo recipe from scratch (no model replaced)
#   after a campaign: cp $OUT/models/* vvc_lightning/assets/models/ && git add ... (record, and weights if accepted)
#
# Wheels: scripts/gpu_wheels.sh fills .whl/ (carried to the device machine; see README).
set -euo pipefail
export VVC_SCRIPT_START=$(date +%s)
OUT=${OUT:-runs/gpu_out}
BUDGET_S=${BUDGET_S:-450}
. scripts/device_env.sh
$PY -c "import vvc_lightning.datamodules, vvc_lightning.backbones, compressai, av, webdataset, omegaconf, stlpips_pytorch; print('imports ok')"
ensure_data
echo "data ready after $(( $(date +%s) - VVC_SCRIPT_START )) s"
PATHS="data.train_images=$DATA/stills data.train_shards=$DATA/shards/train data.val_shards=$DATA/shards/val data.test_dir=$DATA/test"

[ -n "${CPU_SMOKE:-}" ] || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if [ -n "${SCRATCH:-}" ]; then
  RUN_DIR=${RUN_DIR:-runs/zoo_lean_vr_gpu}
  if [ -n "${CPU_SMOKE:-}" ]; then
    $PY scripts/gpu_train.py --smoke --out "$OUT" --budget-s 60 --max-steps "${SMOKE_STEPS:-12}" \
      run_dir=${RUN_DIR} $PATHS "$@"
  else
    $PY scripts/gpu_train.py --out "$OUT" --budget-s "$BUDGET_S" run_dir=${RUN_DIR} $PATHS \
      trainer.enable_progress_bar=false "$@"
  fi
else
  RUN_DIR=${RUN_DIR:-runs/campaign_$(date -u +%Y%m%d-%H%M%S)}
  MODELS=vvc_lightning/assets/models
  if [ -n "${CPU_SMOKE:-}" ]; then  # a copy: a smoke run never replaces the shipped model
    mkdir -p "$OUT/smoke_models" && cp "$MODELS/${MODEL:-vvc-lean-vr}".* "$OUT/smoke_models/"
    $PY scripts/campaign.py --smoke --out "$OUT" --budget-s 600 --steps "${SMOKE_STEPS:-4}" --qualities 0,7 \
      --max-frames 9 --models-dir "$OUT/smoke_models" --name "${MODEL:-vvc-lean-vr}" \
      --config configs/gpu_campaign.yaml --stage "${STAGE:-joint}" --lr "${LR:-2e-4}" --data-dir "$DATA" \
      --test-data "$DATA/test" run_dir=$RUN_DIR $PATHS "$@"
  else
    $PY scripts/campaign.py --out "$OUT" --budget-s "$BUDGET_S" --models-dir "$MODELS" --name "${MODEL:-vvc-lean-vr}" \
      --config configs/gpu_campaign.yaml --stage "${STAGE:-joint}" --lr "${LR:-2e-4}" --data-dir "$DATA" --test-data "$DATA/test" run_dir=$RUN_DIR $PATHS trainer.enable_progress_bar=false "$@"
  fi
fi
ls -la "$OUT"
if [ -z "${CPU_SMOKE:-}" ] && [ -f "$RUN_DIR/final.ckpt" ]; then  # cross-device exactness of the entropy path
  $PY scripts/gpu_exactness.py "$RUN_DIR/final.ckpt" "$DATA/test/carphone.mkv" "$OUT" --frames 17 \
    || echo "exactness check failed"
fi
