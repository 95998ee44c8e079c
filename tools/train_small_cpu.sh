#!/usr/bin/env bash
# Train the `small` model on the CPU from simulator frames, resumably: each stage continues from its
# last checkpoint if the run directory already has one. Usage: tools/train_small_cpu.sh [DATA] [RUNS]
# Two CPU cores get far less done than a GPU (tools/train_gpu.sh, which trained the shipped weights):
# expect s_hat mIoU ~0.25 after a day here against ~0.44 after 8 GPU minutes.
set -euo pipefail
DATA=${1:-data/sim}
RUNS=${2:-runs/small}
SQGAN=${SQGAN:-.venv/bin/sqgan}
S1=${S1_STEPS:-3000}; S2=${S2_STEPS:-3000}; S3=${S3_STEPS:-1000}
[ -d "$DATA/leftImg8bit" ] || bash tools/make_training_data.sh "$DATA"
# Stage 2 trains G_x on the true maps, so it does not wait for stage 1; stage 3 joins the two.
"$SQGAN" train semantic --data "$DATA" --out "$RUNS/semantic" --config small \
  --train-config configs/train/small_cpu_semantic.yaml --steps "$S1" --resume
"$SQGAN" train image --data "$DATA" --out "$RUNS/image" --config small \
  --train-config configs/train/small_cpu.yaml --steps "$S2" --resume
"$SQGAN" train finetune --data "$DATA" --out "$RUNS/finetune" --init "$RUNS/image/model.pt" \
  --semantic-from "$RUNS/semantic/model.pt" --train-config configs/train/small_cpu.yaml --steps "$S3" --resume
