#!/usr/bin/env bash
# Improve the shipped weights on the CPU within MINUTES, in the background if you like.
#
#   tools/train_cpu.sh MINUTES [RUNS]   (env: FIRST_SEED, N_SEEDS, FRAMES, STRIDE, SQGAN, LANE_B,
#                                         CONCEALER_DATA, CONCEALER_FRAMES, JOINT_CONFIG)
#
# 1. Renders N_SEEDS simulator seeds no earlier run used (the next after the highest seed in the
#    shipped checkpoint's metadata and in runs/seeds_used.txt) plus the validation seeds, two at a time.
# 2. Two lanes, one thread each, for the rest of the budget, both warm-started from the shipped files:
#    lane A `sqgan train joint` (G_s and G_x together, JOINT_CONFIG, by default
#    configs/train/small_cpu_joint.yaml),
#    lane B (LANE_B) `segmenter`: `sqgan train segmenter` (Fast-SCNN, class-weighted CE), the default;
#    or `concealer`: `sqgan train concealer` (the RSU's bidirectional concealer for the shipped codec,
#    on CONCEALER_FRAMES frames of CONCEALER_DATA plus the new seeds, token maps cached in
#    runs/token_maps), written to RUNS/concealer/concealer_bidirectional.pt; or `none`.
#    Each decays its learning rate to the deadline and keeps its best by validation:
#    RUNS/joint/best.pt (with index priors) and RUNS/segmenter_fastscnn.pt, written atomically, so
#    killing the script at any moment leaves usable files.
# 3. Nothing is shipped here: compare with `sqgan eval --model RUNS/joint/best.pt --baseline shipped`
#    and copy into sqgan_core/weights/ only what beats the shipped weights (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:?usage: tools/train_cpu.sh MINUTES [RUNS]}
RUNS=${2:-runs/cpu_$(date +%Y%m%d_%H%M)}
SQGAN=${SQGAN:-.venv/bin/sqgan}
PY=${PY:-.venv/bin/python}
N_SEEDS=${N_SEEDS:-40}
export FRAMES=${FRAMES:-24} STRIDE=${STRIDE:-8}
log() { echo "[$(date +%T)] $*"; }
t0=$(date +%s)
mkdir -p "$RUNS" runs
touch runs/seeds_used.txt

FIRST_SEED=${FIRST_SEED:-$(bash tools/next_seed.sh "$PY")}
LAST=$((FIRST_SEED + N_SEEDS - 1))
DATA=data/seeds_${FIRST_SEED}_${LAST}
echo "$FIRST_SEED $LAST $(date -u +%FT%TZ)" >> runs/seeds_used.txt
log "rendering training seeds $FIRST_SEED-$LAST ($FRAMES frames, stride $STRIDE) and validation seeds into $DATA"
JOBS=2 bash tools/make_training_data.sh "$DATA" "$FIRST_SEED" "$N_SEEDS" > "$RUNS/data.log" 2>&1
tail -1 "$RUNS/data.log"

left=$(( MIN * 60 - ($(date +%s) - t0) - 120 ))  # keep 2 minutes for the final validations and exports
[ "$left" -gt 60 ] || { echo "budget of $MIN min is used up by rendering" >&2; exit 1; }
lane_min=$(awk "BEGIN {printf \"%.1f\", $left / 60}")
log "training for $lane_min min per lane in $RUNS"
"$SQGAN" train joint --data "$DATA" --out "$RUNS/joint" --init shipped --device cpu --threads 1 \
  --train-config "${JOINT_CONFIG:-configs/train/small_cpu_joint.yaml}" --max-minutes "$lane_min" > "$RUNS/joint.log" 2>&1 &
a=$!
LANE_B=${LANE_B:-segmenter}
case "$LANE_B" in
segmenter)
OMP_NUM_THREADS=1 "$SQGAN" train segmenter --data "$DATA" --work-dir "$RUNS/segmenter" --init shipped \
  --output "$RUNS/segmenter_fastscnn.pt" --iters 100000 --batch-size 8 --crop 128 256 --lr 0.02 \
  --val-interval 250 --max-minutes "$lane_min" > "$RUNS/segmenter.log" 2>&1 &
b=$! ;;
concealer)
# shellcheck disable=SC2086  # CONCEALER_DATA is a list of folders
OMP_NUM_THREADS=1 "$SQGAN" train concealer --data ${CONCEALER_DATA:-} "$DATA" --val-data "$DATA" \
  --frames "${CONCEALER_FRAMES:-1200}" --model shipped --init shipped --kind bidirectional --out "$RUNS/concealer" \
  --cache runs/token_maps --device cpu --threads 1 --max-minutes "$lane_min" > "$RUNS/concealer.log" 2>&1 &
b=$! ;;
none) b= ;;
*) echo "LANE_B=$LANE_B: segmenter, concealer or none" >&2; kill $a; exit 2 ;;
esac
sa=0; sb=0
wait $a || sa=$?
[ -z "$b" ] || wait $b || sb=$?
log "joint: exit $sa, $(tail -1 "$RUNS/joint.log" | cut -c1-300)"
[ -z "$b" ] || log "$LANE_B: exit $sb, $(tail -1 "$RUNS/$LANE_B.log" | cut -c1-300)"
[ $sa -eq 0 ] && [ $sb -eq 0 ]
