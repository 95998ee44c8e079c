"""`sqgan segment`: run the vehicle-side segmenter on an image; `sqgan train segmenter` trains it."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sqgan_core.errors import CommandError
from sqgan_core.arguments import device_name, int_in, non_negative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="semantic segmentation of an image (Fast-SCNN, 19 trainIds)",
                       description="Write the trainId map (palette PNG) the vehicle's segmenter predicts.")
    p.add_argument("image", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="trainId PNG to write")
    p.add_argument("--model", type=Path, help="segmenter checkpoint (default: the shipped one)")
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--json", action="store_true", help="print timing and class histogram as JSON")
    p.add_argument("--max-pixels", type=positive_int, default=2048 * 1024,
                   help="largest image segmented (default 2048x1024 pixels): bounds time and memory")
    p.set_defaults(func=_segment)


def register_training(stages: argparse._SubParsersAction) -> None:
    s = stages.add_parser("segmenter", help="train the Fast-SCNN segmenter with mmsegmentation")
    s.add_argument("--data", type=Path, required=True, help="Cityscapes-layout root with train/ and val/ splits")
    s.add_argument("--work-dir", type=Path, default=Path("runs/segmenter"), help="mmengine work dir")
    s.add_argument("-o", "--output", type=Path, required=True, help="weights-only checkpoint to write")
    s.add_argument("--iters", type=positive_int, default=8000)
    s.add_argument("--batch-size", type=positive_int, default=8)
    s.add_argument("--crop", type=int_in(32, 4096), nargs=2, default=(256, 512), metavar=("H", "W"),
                   help="training crop (default 256 512; 128 256 is 4x cheaper on a CPU)")
    s.add_argument("--val-interval", type=positive_int, default=1000)
    s.add_argument("--workers", type=non_negative_int, default=0, help="data-loading worker processes (default 0: in-process)")
    s.add_argument("--resume", action="store_true", help="resume from the work dir's last checkpoint")
    s.add_argument("--init", help="segmenter checkpoint to start from, or 'shipped' for the shipped weights")
    s.add_argument("--max-minutes", type=positive_float, help="stop after this much training time; the learning rate "
                                                     "decays to this deadline")
    s.add_argument("--val-seconds", type=positive_float, help="also validate and export the best model at least this often")
    s.add_argument("--lr", type=positive_float, default=0.05, help="base SGD learning rate (default 0.05; 0.01 to fine-tune)")
    s.set_defaults(func=_train)


def _segment(args: argparse.Namespace) -> int:
    from sqgan_core.imageio import check_output_path, read_rgb, write_labels
    from sqgan_core.labels import CLASS_NAMES
    from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError

    try:
        check_output_path(args.output, "labels")
        image = read_rgb(args.image)
        if image.shape[0] * image.shape[1] > args.max_pixels:  # before the model loads
            raise ValueError(f"{args.image}: {image.shape[1]}x{image.shape[0]} is above --max-pixels "
                             f"{args.max_pixels:,}; scale it down or raise the limit")
        seg = Segmenter.load(args.model, device=args.device)
        seg.max_pixels = args.max_pixels
    except (FileNotFoundError, ValueError, SegmenterError) as exc:
        raise CommandError(str(exc)) from None
    t = time.perf_counter()
    labels = seg(image)
    ms = 1e3 * (time.perf_counter() - t)
    write_labels(args.output, labels)
    if args.json:
        import numpy as np

        counts = np.bincount(labels[labels < 19], minlength=19) / labels.size
        print(json.dumps({"height": int(labels.shape[0]), "width": int(labels.shape[1]), "ms": round(ms, 2),
                          "class_fraction": {n: round(float(c), 5) for n, c in zip(CLASS_NAMES, counts) if c}}))
    return 0


def _train(args: argparse.Namespace) -> int:
    from sqgan_core.segmentation.segmenter import train_segmenter

    if not (args.data / "leftImg8bit" / "train").is_dir() or not (args.data / "leftImg8bit" / "val").is_dir():
        raise CommandError(f"{args.data}: needs leftImg8bit/train and leftImg8bit/val (Cityscapes layout)")
    from sqgan_core.segmentation.segmenter import WEIGHTS, SegmenterError

    init = WEIGHTS if args.init == "shipped" else (Path(args.init) if args.init else None)
    if init is not None and not init.is_file():
        raise CommandError(f"--init: segmenter checkpoint not found: {init}")
    try:
        meta = train_segmenter(args.data, args.work_dir, args.output, args.iters, args.batch_size, args.val_interval,
                               args.resume, tuple(args.crop), workers=args.workers, init=init,
                               max_minutes=args.max_minutes, lr=args.lr, val_seconds=args.val_seconds,
                               init_label=args.init)  # as given ('shipped' or the path typed), not this machine's path
    except SegmenterError as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps({"model": str(args.output), **meta}))
    return 0
