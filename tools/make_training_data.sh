#!/usr/bin/env bash
# Simulator training/validation data for the SQ-GAN stages (Cityscapes layout).
# Training seeds 1..N_TRAIN and validation seeds 501..: never the evaluation seeds (9001 and up).
set -euo pipefail
OUT=${1:-data/sim}
N_TRAIN=${N_TRAIN:-12}
FRAMES=${FRAMES:-100}
SQGAN=${SQGAN:-.venv/bin/sqgan}
scenarios=(default dense_urban foggy_morning rainy_night)
for i in $(seq 1 "$N_TRAIN"); do
  sc=${scenarios[$(( (i - 1) % ${#scenarios[@]} ))]}
  "$SQGAN" sim export --scenario "$sc" --seed "$i" --frames "$FRAMES" --split train --out "$OUT" --quiet --compact >/dev/null
done
for i in 501 502; do
  sc=${scenarios[$(( i % ${#scenarios[@]} ))]}
  "$SQGAN" sim export --scenario "$sc" --seed "$i" --frames 30 --split val --out "$OUT" --quiet --compact >/dev/null
done
echo "training data in $OUT: $(find "$OUT/leftImg8bit/train" -name '*.png' | wc -l) train, $(find "$OUT/leftImg8bit/val" -name '*.png' | wc -l) val frames"
