"""`sqgan bench classic --json`: encode and decode time of the classic codecs and of SQ-GAN, one run.

The same simulator frames, each classic codec at SQ-GAN's rate on that frame (matched, never above),
so the times are of comparable work. A classic codec's time is its final encode (not the rate search)
and its decode; ffmpeg's (HEVC, AV1) include starting the ffmpeg process, as a user calling it per
frame would pay. SQ-GAN's are `Codec.encode` (tokens + entropy coding) and `Codec.decode`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from sqgan_core.arguments import keep_fraction, positive_int


def _p50(vals: list[float]) -> float | None:
    return round(float(np.median(vals)), 2) if vals else None


def run(args: argparse.Namespace) -> int:
    import torch

    from ros2_ws.bench_stream import sample_frames
    from sqgan_core.classic_codecs import CODEC_NAMES, available, encode_at_rate
    from sqgan_core.cli.model_options import codec_from_args
    from sqgan_core.metrics import psnr

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = codec_from_args(args)
    frames = sample_frames(args.frames, args.scenario)
    codec.decode(codec.encode(*frames[0], args.mx, args.ms).data)  # warm-up: the first call is slower
    sq: dict[str, list[float]] = {"encode_ms": [], "decode_ms": [], "bpp": [], "psnr": []}
    for rgb, labels in frames:
        t0 = time.perf_counter()
        enc = codec.encode(rgb, labels, args.mx, args.ms)
        t1 = time.perf_counter()
        dec = codec.decode(enc.data)
        t2 = time.perf_counter()
        sq["encode_ms"].append(1000 * (t1 - t0))
        sq["decode_ms"].append(1000 * (t2 - t1))
        sq["bpp"].append(enc.stats["bpp"])
        sq["psnr"].append(psnr(rgb, dec.image))
    codecs: dict[str, Any] = {"sqgan": {"encode_ms_p50": _p50(sq["encode_ms"]), "decode_ms_p50": _p50(sq["decode_ms"]),
                                        "bpp": round(float(np.mean(sq["bpp"])), 5),
                                        "psnr": round(float(np.mean(sq["psnr"])), 2)}}
    for name in CODEC_NAMES:
        ok, why = available(name)
        if not ok:
            codecs[name] = {"unavailable": why}
            continue
        rows: dict[str, list[float]] = {"encode_ms": [], "decode_ms": [], "bpp": [], "psnr": [], "search_ms": []}
        hint = None
        for (rgb, _labels), bpp in zip(frames, sq["bpp"]):
            t0 = time.perf_counter()
            c = encode_at_rate(name, rgb, bpp, hint=hint)
            rows["search_ms"].append(1000 * (time.perf_counter() - t0))
            hint = c
            for key, v in (("encode_ms", c.encode_ms), ("decode_ms", c.decode_ms), ("bpp", c.bpp),
                           ("psnr", psnr(rgb, c.recon))):
                rows[key].append(v)
        codecs[name] = {"encode_ms_p50": _p50(rows["encode_ms"]), "decode_ms_p50": _p50(rows["decode_ms"]),
                        "rate_search_ms_p50": _p50(rows["search_ms"]), "bpp": round(float(np.mean(rows["bpp"])), 5),
                        "psnr": round(float(np.mean(rows["psnr"])), 2)}
    result = {"benchmark": "classic", "frames": len(frames), "frame_size": list(frames[0][0].shape[:2]),
              "mx": args.mx, "ms": args.ms, "device": args.device,
              "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
                       "load_avg_1m": round(os.getloadavg()[0], 2)},
              "note": "classic codecs at SQ-GAN's bpp on each frame; ffmpeg times include process start-up",
              "codecs": codecs}
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sqgan_core.cli.model_options import add_model_options

    p = sub.add_parser("classic", help="encode/decode time of JPEG, JPEG 2000, WebP, AVIF, HEVC, AV1 and SQ-GAN",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--frames", type=positive_int, default=6, help="simulator frames (default 6)")
    p.add_argument("--scenario", default="default", help="simulator scenario of the frames")
    p.add_argument("--mx", type=keep_fraction, default=0.5)
    p.add_argument("--ms", type=keep_fraction, default=0.5)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="one-line JSON")
    add_model_options(p)
    p.set_defaults(func=run)
