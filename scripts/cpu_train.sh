#!/usr/bin/env bash
# The CPU recipe, for when no GPU is lent: continue the shipped model vvc-lean-vr on this machine inside a
# wall-clock budget and keep the result only if its test-split ST-LPIPS curve improved, as
# scripts/gpu_train.sh does on a GPU (the same scripts/campaign.py: the record gains a history entry either
# way; OUT/models holds the files to commit) with 128-pixel crops (configs/cpu_campaign.yaml). It continues
# the record's joint stage at lr 5e-5; STAGE=decoder trains a new stage on the decoding side only
# (backbone.decoder, codec.g_s, the inverse y gains), which keeps the bits at every quality where they are.
# Runs from the repository root in the environment the README installs.
#
#   bash scripts/cpu_train.sh                  # BUDGET_S (default 7200) bounds the whole run, both test-split
#                                              # measurements included (about 5 min each here)
#   STAGE=decoder LR=2e-4 BUDGET_S=3600 bash scripts/cpu_train.sh data.crop_size=96  # overrides: the config
#   after it: git add vvc_lightning/assets/models/vvc-lean-vr.* (replaced in place when accepted)
set -euo pipefail
export VVC_SCRIPT_START=$(date +%s)
OUT=${OUT:-runs/cpu_out}
BUDGET_S=${BUDGET_S:-7200}
DATA=${DATA:-data/offline}
PY=${PY:-python}
if [ ! -f "$DATA/manifest.json" ]; then
  echo "no training data in $DATA: building it (scripts/build_training_data.py, a few minutes)"
  $PY scripts/build_training_data.py -o "$DATA"
fi
STAGE=${STAGE:-joint}
TRAIN=()
DEFAULT_LR=5e-5
if [ "$STAGE" = decoder ]; then
  TRAIN=(--train backbone.decoder,codec.g_s,codec.gain.y_inv)
  DEFAULT_LR=2e-4
fi
LR=${LR:-$DEFAULT_LR}
$PY scripts/campaign.py --out "$OUT" --budget-s "$BUDGET_S" --name "${MODEL:-vvc-lean-vr}" \
  --config configs/cpu_campaign.yaml --stage "$STAGE" "${TRAIN[@]}" --lr "$LR" \
  --data-dir "$DATA" --test-data "$DATA/test" \
  run_dir="${RUN_DIR:-runs/cpu_campaign_$(date -u +%Y%m%d-%H%M%S)}" \
  data.train_images="$DATA/stills" data.train_shards="$DATA/shards/train" data.val_shards="$DATA/shards/val" \
  data.test_dir="$DATA/test" trainer.enable_progress_bar=false "$@"
