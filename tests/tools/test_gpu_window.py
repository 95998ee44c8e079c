"""The GPU lease script, rehearsed on the CPU with a 3-minute window (a real lease: 8.5): a lease is too short and too
rare to debug on, so everything but the device must already have worked here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REHEARSAL_CONFIG = """
batch_size: 2
crop: [64, 128]
steps: 1000000
lr: 0.0002
warmup_steps: 2
disc_start: 100000000
val_every: 1000000
val_seconds: 15
val_frames: 4
prior_frames: 4
ckpt_every: 5
data_on_device: true
"""


@pytest.mark.slow
def test_gpu_window_rehearsal_leaves_loadable_files(tmp_path):
    cfg = tmp_path / "rehearsal.yaml"
    cfg.write_text(REHEARSAL_CONFIG)
    out = tmp_path / "out"
    env = {**os.environ, "DEVICE": "cpu", "WINDOW_MIN": "3", "N_SEEDS": "1", "FRAMES": "4", "STRIDE": "4",
           "N_VAL": "1", "VAL_FRAMES": "4", "JOBS": "2", "RENDER_SEC": "40", "COPY_SEC": "3", "BENCH_SEC": "30",
           "BENCH_ITERS": "1", "BENCH_ARGS": "--warmup 0 --height 64 --width 128", "THREADS": "1", "GRACE_SEC": "20",
           "SEG_BATCH": "2", "SEG_CROP": "64 128", "SEG_WORKERS": "0", "SEG_VAL_SEC": "15",
           "CONCEAL_BATCH": "2", "CONCEAL_FRAMES": "4",
           "TRAIN_CONFIG": str(cfg), "FIRST_SEED": "499", "DATA": str(tmp_path / "data"),
           "RUNS": str(tmp_path / "runs"), "PY": sys.executable}
    proc = subprocess.run(["bash", "tools/gpu_window.sh", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    log = (out / "window.log").read_text() if (out / "window.log").exists() else proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert {"sqgan_small.pt", "sqgan_val.json", "segmenter_fastscnn.pt", "segmenter_fastscnn.json",
            "bench_small.json", "window.log"} <= set(names), names
    assert "concealer_bidirectional.pt" in names
    from sqgan_core.checkpoint import DEFAULT_CHECKPOINT
    from sqgan_core.codec import Codec as _Codec
    from sqgan_core.streaming.concealment import TransformerConcealer

    conc = TransformerConcealer.load(out / "concealer_bidirectional.pt")
    assert conc.codec_model_id == _Codec.from_checkpoint(DEFAULT_CHECKPOINT).model_id  # for the shipped codec
    assert len(names) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    assert not any(n.endswith(".tmp") for n in names)

    from sqgan_core.codec import Codec
    from sqgan_core.segmentation.segmenter import Segmenter

    codec = Codec.from_checkpoint(out / "sqgan_small.pt")
    assert codec.metadata["stage"] == "joint" and codec.metadata["train_seeds"] == [499, 499]
    val = json.loads((out / "sqgan_val.json").read_text())
    assert {"val_miou_shat_m0.5", "val_psnr_m0.5"} <= set(val["best"])
    seg = Segmenter.load(out / "segmenter_fastscnn.pt")
    assert seg.metadata["init"] == "shipped"  # recorded as given, never as this machine's path
    assert json.loads((out / "segmenter_fastscnn.json").read_text())["best_val_mIoU"] is not None
    bench = json.loads((out / "bench_small.json").read_text())
    assert bench["config"] == "small" and bench["devices"]["cpu"]["end_to_end_ms"]["p50"] > 0
    # the window ended by itself, inside its deadline
    assert "done;" in log
