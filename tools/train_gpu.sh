#!/usr/bin/env bash
# Train the shipped `small` SQ-GAN and the segmenter on one GPU inside a fixed time budget.
#
#   tools/train_gpu.sh [DATA] [RUNS]   (env: PAR_MIN, FT_MIN, N_TRAIN, TRAIN_FRAMES, SEG_ITERS, DEVICE, SQGAN)
#
# Stage 1 (G_s) and stage 2 (G_x on the true map) do not depend on each other, so they run side by side
# with the segmenter for PAR_MIN minutes; stage 3 then joins them (--init stage 2, --semantic-from
# stage 1) for FT_MIN minutes and fits the index priors. Every stage stops on its own clock
# (--max-minutes) with a checkpoint, and a second call continues each one (--resume): a leased GPU
# gives minutes, not epochs. Training data is rendered here from training seeds 1..N_TRAIN and
# validation seeds 501/502, never the evaluation seeds (9001 and up).
set -euo pipefail
DATA=${1:-data/sim}
RUNS=${2:-runs/gpu}
SQGAN=${SQGAN:-sqgan}
PAR_MIN=${PAR_MIN:-14}
FT_MIN=${FT_MIN:-6}
N_TRAIN=${N_TRAIN:-32}
SEG_ITERS=${SEG_ITERS:-6000}
TRAIN_FRAMES=${TRAIN_FRAMES:-100}
DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$RUNS"
log() { echo "[$(date +%T)] $*"; }

if [ ! -d "$DATA/leftImg8bit/train" ]; then
  log "rendering $N_TRAIN training scenes and 2 validation scenes into $DATA ($JOBS at a time)"
  scenarios=(default dense_urban foggy_morning rainy_night)
  { for i in $(seq 1 "$N_TRAIN"); do echo "${scenarios[$(( (i - 1) % 4 ))]} $i $TRAIN_FRAMES train"; done
    for i in 501 502; do echo "${scenarios[$(( i % 4 ))]} $i 30 val"; done; } |
    xargs -P "$JOBS" -L 1 bash -c "$SQGAN"' sim export --scenario $0 --seed $1 --frames $2 --split $3 --out '"$DATA"' --quiet --compact >/dev/null'
  log "data: $(find "$DATA/leftImg8bit/train" -name '*.png' | wc -l) train, $(find "$DATA/leftImg8bit/val" -name '*.png' | wc -l) val frames"
fi

common=(--data "$DATA" --device "$DEVICE" --resume)
$SQGAN train semantic "${common[@]}" --out "$RUNS/semantic" --train-config configs/train/small_gpu_semantic.yaml \
  --max-minutes "$PAR_MIN" >"$RUNS/semantic.log" 2>&1 &
s1=$!
$SQGAN train image "${common[@]}" --out "$RUNS/image" --train-config configs/train/small_gpu.yaml \
  --max-minutes "$PAR_MIN" >"$RUNS/image.log" 2>&1 &
s2=$!
seg_resume=(); [ -d "$RUNS/segmenter" ] && seg_resume=(--resume)
$SQGAN train segmenter --data "$DATA" --work-dir "$RUNS/segmenter" --output "$RUNS/segmenter_fastscnn.pt" \
  --iters "$SEG_ITERS" --batch-size 16 --val-interval 1000 --workers 4 "${seg_resume[@]}" >"$RUNS/segmenter.log" 2>&1 &
seg=$!
log "stage 1 (pid $s1), stage 2 (pid $s2) and the segmenter (pid $seg) running for up to $PAR_MIN min"
wait $s1; wait $s2
log "stages 1 and 2 done; stage 3 for up to $FT_MIN min"
ft_init=(--init "$RUNS/image/model.pt" --semantic-from "$RUNS/semantic/model.pt")
$SQGAN train finetune "${common[@]}" --out "$RUNS/finetune" --train-config configs/train/small_gpu.yaml \
  "${ft_init[@]}" --max-minutes "$FT_MIN" >"$RUNS/finetune.log" 2>&1
log "stage 3 done: $RUNS/finetune/model.pt"
wait $seg && log "segmenter done: $RUNS/segmenter_fastscnn.pt"
