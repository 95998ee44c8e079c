#!/usr/bin/env bash
# Train the shipped `small` SQ-GAN and the segmenter on a 2-core CPU inside a fixed time budget.
#
#   tools/train_small_cpu.sh [DATA] [RUNS]   (env: PAR_MIN, FT_MIN, SEG_ITERS, N_TRAIN, SQGAN)
#
# Phase 1 (PAR_MIN minutes): stage 1 (G_s) and stage 2 (G_x on the true map) side by side, one
# thread each; they do not depend on each other. Phase 2 (FT_MIN minutes): stage 3 joins them
# (--init stage 2, --semantic-from stage 1) and fits the index priors, beside the segmenter.
# Every stage stops on its own clock (--max-minutes) with a checkpoint, and a second call
# continues each one (--resume). Two CPU cores get far less done than a GPU (tools/train_gpu.sh):
# expect s_hat mIoU ~0.25-0.3 here against ~0.44 after 14 GPU minutes.
# Data: training seeds 1..N_TRAIN and validation seeds 501/502, never the evaluation seeds (9001+).
set -euo pipefail
DATA=${1:-data/sim}
RUNS=${2:-runs/small}
SQGAN=${SQGAN:-.venv/bin/sqgan}
PAR_MIN=${PAR_MIN:-75}
FT_MIN=${FT_MIN:-30}
SEG_ITERS=${SEG_ITERS:-4000}
export N_TRAIN=${N_TRAIN:-16}
mkdir -p "$RUNS"
log() { echo "[$(date +%T)] $*"; }
[ -d "$DATA/leftImg8bit/train" ] || bash tools/make_training_data.sh "$DATA"

common=(--data "$DATA" --device cpu --threads 1 --resume)
log "phase 1: stages 1 and 2 for up to $PAR_MIN min"
"$SQGAN" train semantic "${common[@]}" --out "$RUNS/semantic" --config small \
  --train-config configs/train/small_cpu_semantic.yaml --max-minutes "$PAR_MIN" >"$RUNS/semantic.log" 2>&1 &
s1=$!
"$SQGAN" train image "${common[@]}" --out "$RUNS/image" --config small \
  --train-config configs/train/small_cpu.yaml --max-minutes "$PAR_MIN" >"$RUNS/image.log" 2>&1 &
s2=$!
wait $s1; wait $s2
log "phase 2: stage 3 for up to $FT_MIN min beside the segmenter ($SEG_ITERS iterations)"
seg_resume=(); [ -d "$RUNS/segmenter" ] && seg_resume=(--resume)
OMP_NUM_THREADS=1 "$SQGAN" train segmenter --data "$DATA" --work-dir "$RUNS/segmenter" \
  --output "$RUNS/segmenter_fastscnn.pt" --iters "$SEG_ITERS" --batch-size 8 --crop 128 256 \
  --val-interval 1000 "${seg_resume[@]}" >"$RUNS/segmenter.log" 2>&1 &
seg=$!
"$SQGAN" train finetune "${common[@]}" --out "$RUNS/finetune" --init "$RUNS/image/model.pt" \
  --semantic-from "$RUNS/semantic/model.pt" --train-config configs/train/small_cpu.yaml \
  --max-minutes "$FT_MIN" >"$RUNS/finetune.log" 2>&1
log "stage 3 done: $RUNS/finetune/model.pt"
wait $seg && log "segmenter done: $RUNS/segmenter_fastscnn.pt"
