#!/usr/bin/env bash
# Print the first simulator training seed no earlier run has used: one past the highest seed in the
# shipped checkpoint's metadata (`train_seeds`, written by every `sqgan train` run), in
# runs/seeds_used.txt (runs on this machine) and the 1-16 of the first shipped weights.
#   tools/next_seed.sh [PY]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PY:-.venv/bin/python}}
"$PY" - <<'PY'
import re
from pathlib import Path

from sqgan_core.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

used = [16]  # the first shipped weights were trained on seeds 1-16
try:
    used += [int(s) for s in load_checkpoint(DEFAULT_CHECKPOINT)[1].get("train_seeds") or []]
except Exception:  # noqa: BLE001 - no shipped model or an old one: fall back to the ledger
    pass
ledger = Path("runs/seeds_used.txt")
if ledger.is_file():
    used += [int(n) for line in ledger.read_text().splitlines() for n in line.split()[:2] if n.isdigit()]
print(max(used) + 1)
PY
