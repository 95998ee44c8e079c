"""`sqgan bench train`: seconds per training step of each stage on the same data and device.

Answers "one joint loop or separate stages?" in compute: a joint step does the work of a stage-1
step and a stage-3 step (which also runs the frozen G_s forward) from one batch. Timed in one
process, one stage after the other, so the ratios hold on a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sqgan_core.errors import CommandError
from sqgan_core.arguments import device_name, non_negative_int, positive_int

STAGES = ("semantic", "image", "finetune", "joint")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="seconds per training step of each stage (JSON)",
                       description="Time training steps of the stages on the same data and device; prints JSON.")
    p.add_argument("--data", type=Path, required=True, help="Cityscapes-layout root with train/ and val/")
    p.add_argument("--model", default="shipped", help="checkpoint to start from (default: the shipped model)")
    p.add_argument("--train-config", default="small_cpu_joint",
                   help="training YAML (path, or name in configs/train/) for batch size and crop "
                        "(default small_cpu_joint)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    p.add_argument("--steps", type=positive_int, default=10, help="timed steps per stage (default 10)")
    p.add_argument("--warmup", type=non_negative_int, default=2)
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--threads", type=non_negative_int, default=1, help="torch CPU threads (default 1, as in tools/train_cpu.sh)")
    p.add_argument("--json", action="store_true", help="one-line JSON (default: indented)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import copy
    import tempfile

    from sqgan_core.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint
    from sqgan_core.config import ConfigError
    from sqgan_core.data import CityscapesPairs, DatasetError
    from sqgan_core.training.config import load_train_config
    from sqgan_core.training.trainer import Trainer

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise CommandError(f"--stages: unknown {bad or 'empty'}; choose from {', '.join(STAGES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, _ = load_checkpoint(DEFAULT_CHECKPOINT if args.model == "shipped" else args.model)
        cfg = load_train_config(args.train_config)
        train = CityscapesPairs(args.data, "train").pairs
    except (CheckpointError, ConfigError, DatasetError) as exc:
        raise CommandError(str(exc)) from None
    cfg.disc_start = 10**9  # the configs in use train without the GAN
    result: dict[str, object] = {"benchmark": "train", "device": args.device, "threads": torch.get_num_threads(),
                                 "batch_size": cfg.batch_size, "crop": list(cfg.crop), "steps": args.steps,
                                 "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    per: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in stages:
            tr = Trainer(stage, copy.deepcopy(model), cfg, train, train[:1], Path(tmp) / stage, device=args.device,
                         progress=False)
            times = []
            for k in range(args.warmup + args.steps):
                t = time.perf_counter()
                tr.train_step()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                if k >= args.warmup:
                    times.append(time.perf_counter() - t)
            per[stage] = {"s_per_step_p50": round(float(np.median(times)), 4),
                          "s_per_step_mean": round(float(np.mean(times)), 4)}
    result["stages"] = per
    if {"semantic", "finetune", "joint"} <= set(per):
        sep = per["semantic"]["s_per_step_p50"] + per["finetune"]["s_per_step_p50"]
        result["joint_over_semantic_plus_finetune"] = round(per["joint"]["s_per_step_p50"] / sep, 3)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
