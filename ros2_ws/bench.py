"""`sqgan bench pipeline --json`: sustained FPS and latency of the whole ROS 2 pipeline.

Camera at 10 Hz (embedded simulator) -> vehicle encoder(s) -> link emulator (clean profile, so the
figures are the pipeline's own) -> RSU -> recorder. Latency is camera image arrival -> RSU image
arrival at the recorder (p50/p95); FPS is RSU outputs per second over the recording. Cases: one
vehicle, and N vehicles (default 4) feeding one RSU; on CPU always, and on CUDA when available.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqgan_core.errors import CommandError
from sqgan_core.arguments import int_in, positive_float, positive_int

KEYS = ("fps", "fps_per_vehicle", "latency_ms_p50", "latency_ms_p95", "encode_ms_p50", "rsu_ms_p50", "frames_sent",
        "frames_decoded", "frames_recorded", "frames_dropped_at_vehicle", "frames_dropped_stale_at_rsu", "mean_bpp",
        "packets_lost", "wall_s", "stop_reason")


def run_case(out: Path, vehicles: int, device: str, frames: int, rate: float, model: str | None,
             profile: str) -> dict[str, Any]:
    from ros2_ws.demo import run_pipeline

    dev = {"vehicle": {"device": device}, "rsu": {"device": device}}
    s = run_pipeline(out, vehicles=vehicles, profile=profile, model=model, sim_frames=-1, sim_rate=rate,
                     record_frames=frames, timeout=120.0, params=dev, quiet=True)
    case = {"vehicles": vehicles, "device": device, "camera_hz": rate, "profile": profile}
    case.update({k: s.get(k) for k in KEYS})
    return case


def run(args: argparse.Namespace) -> int:
    import torch

    from ros2_ws.graph import context
    from ros2_ws.node_common import model_label

    model = args.model or context()["model"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    out_root = Path(args.out or tempfile.mkdtemp(prefix="sqgan-bench-"))
    cases = []
    for device in devices:
        for n in sorted({1, args.vehicles}):
            if not args.json:
                print(f"[bench] {n} vehicle(s) on {device} ...", file=sys.stderr, flush=True)
            try:
                cases.append(run_case(out_root / f"{device}_{n}v", n, device, args.frames, args.rate, model,
                                      args.profile))
            except RuntimeError as exc:  # the graph ran but recorded nothing: say so in one line
                raise CommandError(f"{n} vehicle(s) on {device}: {exc}") from None
    result = {
        "benchmark": "pipeline",
        "model": model_label(model),
        "untrained": str(model).startswith("untrained:"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                 "torch": torch.__version__, "torch_threads_per_node": 1,
                 "load_avg_1m": round(os.getloadavg()[0], 2),
                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "latency": "camera image arrival -> RSU image arrival at the recorder",
        "cases": cases,
    }
    if "cuda" not in devices:
        result["gpu_note"] = "no CUDA device on this machine: CPU figures only"
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pipeline", help="end-to-end ROS 2 pipeline FPS and latency (1 and N vehicles)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--vehicles", type=int_in(1, 64), default=4, help="vehicles in the multi-vehicle case (default 4)")
    p.add_argument("--frames", type=positive_int, default=20, help="RSU outputs per vehicle to record per case")
    p.add_argument("--rate", type=positive_float, default=10.0, help="camera rate in Hz (default 10)")
    p.add_argument("--profile", default="clean", help="link profile (default clean)")
    p.add_argument("--model", help="checkpoint or untrained:<config> (default: configs/nodes/network.yaml)")
    p.add_argument("--out", help="keep each case's summary and logs here")
    p.add_argument("--cpu-only", action="store_true")
    p.set_defaults(func=run)
