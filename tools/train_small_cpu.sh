#!/usr/bin/env bash
# Train the shipped `small` model on simulator data, on the CPU, resumably: each stage continues from
# its last checkpoint if the run directory already has one. Usage: tools/train_small_cpu.sh [DATA] [RUNS]
set -euo pipefail
DATA=${1:-data/sim}
RUNS=${2:-runs/small}
SQGAN=${SQGAN:-.venv/bin/sqgan}
CFG=configs/train/small_cpu.yaml
S1=${S1_STEPS:-3000}; S2=${S2_STEPS:-3000}; S3=${S3_STEPS:-1000}
[ -d "$DATA/leftImg8bit" ] || bash tools/make_training_data.sh "$DATA"
"$SQGAN" train semantic --data "$DATA" --out "$RUNS/semantic" --config small --train-config $CFG --steps "$S1" --resume
"$SQGAN" train image --data "$DATA" --out "$RUNS/image" --init "$RUNS/semantic/model.pt" --train-config $CFG --steps "$S2" --resume
"$SQGAN" train finetune --data "$DATA" --out "$RUNS/finetune" --init "$RUNS/image/model.pt" --train-config $CFG --steps "$S3" --resume
