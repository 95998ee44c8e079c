#!/usr/bin/env bash
# Train the shipped `small` SQ-GAN and the segmenter on a 2-core CPU inside a fixed time budget.
#
#   tools/train_small_cpu.sh [DATA] [RUNS]   (env: S1_MIN, S2_MIN, FT_MIN, SEG_ITERS, N_TRAIN, SQGAN)
#
# Two lanes, one thread each, so both cores stay busy:
#   lane A: stage 1 (G_s, at most the config's 6,000 steps or S1_MIN minutes), then the segmenter;
#   lane B: stage 2 (G_x on the true map, S2_MIN minutes), then stage 3 (--init stage 2,
#           --semantic-from stage 1 once lane A's stage 1 is done; FT_MIN minutes), which fits the
#           index priors into RUNS/finetune/model.pt.
# Stages stop on their own clock (--max-minutes) with a checkpoint, and a second call continues each
# one (--resume). Two CPU cores get far less done than a GPU (tools/train_gpu.sh): s_hat mIoU ~0.3
# here against ~0.44 after 14 GPU minutes.
# Data: training seeds 1..N_TRAIN and validation seeds 501/502, never the evaluation seeds (9001+).
set -euo pipefail
DATA=${1:-data/sim}
RUNS=${2:-runs/small}
SQGAN=${SQGAN:-.venv/bin/sqgan}
S1_MIN=${S1_MIN:-75}
S2_MIN=${S2_MIN:-75}
FT_MIN=${FT_MIN:-30}
SEG_ITERS=${SEG_ITERS:-2500}
export N_TRAIN=${N_TRAIN:-16}
mkdir -p "$RUNS"
log() { echo "[$(date +%T)] $*"; }
[ -d "$DATA/leftImg8bit/train" ] || bash tools/make_training_data.sh "$DATA"
common=(--data "$DATA" --device cpu --threads 1 --resume)

lane_a() {
  "$SQGAN" train semantic "${common[@]}" --out "$RUNS/semantic" --config small \
    --train-config configs/train/small_cpu_semantic.yaml --max-minutes "$S1_MIN" >"$RUNS/semantic.log" 2>&1
  touch "$RUNS/.stage1_done"
  log "stage 1 done: $RUNS/semantic/model.pt; segmenter ($SEG_ITERS iterations)"
  local resume=(); [ -d "$RUNS/segmenter" ] && resume=(--resume)
  OMP_NUM_THREADS=1 "$SQGAN" train segmenter --data "$DATA" --work-dir "$RUNS/segmenter" \
    --output "$RUNS/segmenter_fastscnn.pt" --iters "$SEG_ITERS" --batch-size 8 --crop 128 256 \
    --val-interval 1000 "${resume[@]}" >"$RUNS/segmenter.log" 2>&1
  log "segmenter done: $RUNS/segmenter_fastscnn.pt"
}

lane_b() {
  "$SQGAN" train image "${common[@]}" --out "$RUNS/image" --config small \
    --train-config configs/train/small_cpu.yaml --max-minutes "$S2_MIN" >"$RUNS/image.log" 2>&1
  log "stage 2 done: $RUNS/image/model.pt; stage 3 waits for stage 1"
  while [ ! -e "$RUNS/.stage1_done" ]; do sleep 10; done
  "$SQGAN" train finetune "${common[@]}" --out "$RUNS/finetune" --init "$RUNS/image/model.pt" \
    --semantic-from "$RUNS/semantic/model.pt" --train-config configs/train/small_cpu.yaml \
    --max-minutes "$FT_MIN" >"$RUNS/finetune.log" 2>&1
  log "stage 3 done: $RUNS/finetune/model.pt (with index priors)"
}

rm -f "$RUNS/.stage1_done"
log "lane A: stage 1 then the segmenter; lane B: stage 2 then stage 3"
lane_a &
a=$!
lane_b &
b=$!
wait $a; wait $b
