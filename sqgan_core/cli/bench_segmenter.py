"""`sqgan bench segmenter`: the vehicle-side segmenter's latency and its mIoU on held-out frames.

A vehicle without a semantic camera runs the segmenter on every frame before encoding, so its
latency adds to the codec's. Latency is one `Segmenter.__call__` (mmseg's inference_model at native
resolution, argmax included) per frame; mIoU is over the same held-out frames as `sqgan eval`:
simulator frames from evaluation seeds (never used in training), by default split over every
scenario (scenario k from 9001 + k), or a Cityscapes-layout `--data` directory.
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
from sqgan_core.arguments import non_negative_int, positive_int
from sqgan_core.cli.eval_command import add_scenario_option
from sqgan_core.heldout import held_out_frames


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segmenter", help="segmenter latency (CPU, CUDA) and mIoU on held-out frames",
                       description="Time the segmenter per frame and measure its mIoU on held-out frames; prints JSON.")
    p.add_argument("--model", type=Path, help="segmenter checkpoint (default: the shipped one)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="Cityscapes-layout root (default: rendered simulator frames)")
    src.add_argument("--seed", type=int, default=9001,
                     help="first simulator evaluation seed (default 9001): with --scenario all, scenario k in "
                          "name order is rendered from seed + k")
    p.add_argument("--split", default=None, help="split of --data (default: all)")
    add_scenario_option(p)
    p.add_argument("--frames", type=positive_int, default=40,
                   help="frames for latency and mIoU in all (default 40), split evenly over the scenarios")
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-cuda", action="store_true")
    p.add_argument("--json", action="store_true", help="one-line JSON (default: indented)")
    p.set_defaults(func=_run)


def measure(segmenter, frames: list[tuple[np.ndarray, np.ndarray]], warmup: int) -> dict[str, object]:
    from sqgan_core.labels import CLASS_NAMES
    from sqgan_core.metrics import confusion, iou_per_class, miou_from_confusion

    for rgb, _ in frames[:warmup]:
        segmenter(rgb)
    cm, times = np.zeros((19, 20), np.int64), []
    for rgb, lab in frames:
        t = time.perf_counter()
        pred = segmenter(rgb)
        times.append(time.perf_counter() - t)
        cm += confusion(pred, lab)
    ms = np.asarray(times) * 1000
    return {"latency_ms": {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
                           "mean": round(float(ms.mean()), 2)},
            "miou": miou_from_confusion(cm),
            "iou_per_class": {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, iou_per_class(cm)) if not np.isnan(v)}}


def _run(args: argparse.Namespace) -> int:
    from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError

    if args.threads:
        torch.set_num_threads(args.threads)
    frames, source = held_out_frames(args.data, args.split, args.seed, args.scenario, args.frames, 5)
    if not frames:
        raise CommandError("no frames to measure")
    result: dict[str, object] = {"benchmark": "segmenter", "frames": len(frames), "source": source,
                                 "height": int(frames[0][0].shape[0]), "width": int(frames[0][0].shape[1]),
                                 "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "cpu": platform.processor() or platform.machine()}
    devices: dict[str, object] = {}
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else []):
        try:
            seg = Segmenter.load(args.model, device=device)
        except SegmenterError as exc:
            raise CommandError(str(exc)) from None
        result.setdefault("model", str(args.model or "shipped"))
        result.setdefault("metadata", {k: seg.metadata.get(k) for k in ("iters", "batch_size", "crop", "val_mIoU")
                                       if k in seg.metadata})
        devices[device] = measure(seg, frames, args.warmup)
    devices.setdefault("cuda", {"available": False})
    result["devices"] = devices
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
