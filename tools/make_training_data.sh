#!/usr/bin/env bash
# Simulator frames in the Cityscapes layout for training, from seeds no earlier run has used.
#
#   tools/make_training_data.sh OUT [FIRST_SEED] [N_SEEDS]   (env: FRAMES, STRIDE, JOBS, VAL_OUT, SQGAN)
#
# Training: N_SEEDS seeds from FIRST_SEED (scenarios in turn), FRAMES frames each, STRIDE ticks apart
# (the embedded simulator skips rendering in between, so a seed covers FRAMES*STRIDE/20 s of driving
# for the price of FRAMES renders). Validation (VAL_OUT, default OUT), unless it exists: N_VAL seeds
# from 501 (default 8: two per scenario), VAL_FRAMES frames (default 16) 20 ticks apart. Seeds 1-500 are training, 501-999 validation, 9001 and up
# evaluation (`sqgan eval`): never mixed. JOBS exports run in parallel.
set -euo pipefail
OUT=${1:?usage: tools/make_training_data.sh OUT [FIRST_SEED] [N_SEEDS]}
FIRST=${2:-1}
N=${3:-16}
FRAMES=${FRAMES:-24}
STRIDE=${STRIDE:-8}
JOBS=${JOBS:-2}
VAL_OUT=${VAL_OUT:-$OUT}
N_VAL=${N_VAL:-8}
VAL_FRAMES=${VAL_FRAMES:-16}
SQGAN=${SQGAN:-.venv/bin/sqgan}
scenarios=(default dense_urban foggy_morning rainy_night)
[ "$((FIRST + N - 1))" -le 500 ] || { echo "training seeds must stay <= 500 (501-999 validate, 9001+ evaluate)" >&2; exit 2; }
jobs_list() {
  for i in $(seq "$FIRST" $((FIRST + N - 1))); do
    echo "${scenarios[$(( (i - 1) % 4 ))]} $i $FRAMES $STRIDE train $OUT"
  done
  if [ ! -d "$VAL_OUT/leftImg8bit/val" ]; then
    for i in $(seq 501 $((500 + N_VAL))); do echo "${scenarios[$(( (i - 501) % 4 ))]} $i $VAL_FRAMES 20 val $VAL_OUT"; done
  fi
}
jobs_list | sort -k5,5r | xargs -P "$JOBS" -L 1 bash -c \
  "$SQGAN"' sim export --scenario $0 --seed $1 --frames $2 --stride $3 --split $4 --out $5 --quiet --compact >/dev/null'
echo "training data in $OUT: $(find "$OUT/leftImg8bit/train" -name '*.png' | wc -l) train frames (seeds $FIRST-$((FIRST + N - 1))); $(find "$VAL_OUT/leftImg8bit/val" -name '*.png' | wc -l) val frames in $VAL_OUT"
