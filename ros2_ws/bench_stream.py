"""`sqgan bench stream`: the streaming core for N vehicles in one process, without ROS.

Every vehicle encodes simulator frames into packets (StreamEncoder), the packets cross the link
model of a profile (LinkShaper: loss, delay, jitter, bandwidth, as the link emulator applies it), one
FrameAssembler reassembles them as the RSU does and one StreamDecoder decodes. Vehicles take turns
in rounds, as fast as the machine allows, so the figures are the compute capacity of this machine for
the streaming path: sustained decoded frames per second in all and per vehicle, and per-frame latency
(encode start -> decode end, link delay included) p50/p95. This is how the RSU's scale is measured on
a machine that has a GPU but no ROS (`--device cuda`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from sqgan_core.errors import CommandError
from sqgan_core.arguments import device_name, keep_fraction, positive_int


def _vehicle_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated vehicle counts, e.g. 1,2,4, got {text!r}") from None
    if not counts or counts[0] < 1 or counts[-1] > 64:
        raise argparse.ArgumentTypeError(f"vehicle counts must be 1..64, got {text!r}")
    return counts


def sample_frames(n: int, scenario: str = "default", seed: int = 9001) -> list[tuple[np.ndarray, np.ndarray]]:
    """n held-out simulator frames (evaluation seeds), 5 ticks apart."""
    from sim import make_source
    from sim.scenario import load_scenario

    src = make_source(load_scenario(scenario).replace(seed=seed))
    frames = []
    try:
        for _ in range(n):
            f = src.step()
            frames.append((f.rgb, f.labels))
            for _ in range(4):
                getattr(src, "skip", src.step)()
    finally:
        getattr(src, "close", lambda: None)()
    return frames


def run_case(codec: Any, frames: list, vehicles: int, rounds: int, profile: Any, m_x: float, m_s: float,
             seed: int = 0) -> dict[str, Any]:
    from sqgan_core.transport.shaper import LinkShaper
    from sqgan_core.streaming.stream import StreamDecoder, StreamEncoder
    from sqgan_core.streaming.assembler import FrameAssembler

    encoders = [StreamEncoder(codec, v, m_x=m_x, m_s=m_s, first_seq=1000 * v) for v in range(vehicles)]
    assembler = FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id, max_tokens=codec.max_tokens,
                               max_packet_bytes=256, max_vehicles=max(64, vehicles))
    decoder = StreamDecoder(codec)
    shaper: LinkShaper[bytes] = LinkShaper(profile, seed=seed)
    started: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    decoded = encoded = 0
    bits = pixels = 0

    def deliver(now: float) -> None:
        nonlocal decoded
        ready = []
        for pkt in shaper.due(now):
            ready += assembler.push(pkt, now)
        ready += assembler.poll(now)
        for frame in ready:
            decoder.decode(frame)
            t0 = started.pop((frame.vehicle_id, frame.seq), None)
            if t0 is not None:
                latencies.append(1000 * (time.perf_counter() - t0))
            decoded += 1

    def drain(limit_s: float = 0.5) -> None:
        """Run the link's delay and the assembler's frame timeout out before the next encode: one
        process has no parallel vehicles, so a frame's latency is its own encode, link and decode."""
        t_end = time.perf_counter() + limit_s
        while True:
            deliver(time.perf_counter())
            if (not shaper.queued() and not assembler.in_flight()) or time.perf_counter() >= t_end:
                return
            time.sleep(0.002)

    t_start = time.perf_counter()
    for r in range(rounds):
        for v, enc in enumerate(encoders):
            rgb, labels = frames[(r * vehicles + v) % len(frames)]
            t0 = time.perf_counter()
            out = enc.encode(rgb, labels, stamp=(r, 0))
            started[(v, out.seq)] = t0
            encoded += 1
            bits, pixels = bits + 8 * out.bytes_total, pixels + rgb.shape[0] * rgb.shape[1]
            now = time.perf_counter()
            for pkt in out.packets:
                shaper.offer(pkt, len(pkt), now)
            drain()
    drain(2.0)
    wall = time.perf_counter() - t_start
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"vehicles": vehicles, "frames_encoded": encoded, "frames_decoded": decoded,
            "frames_lost": encoded - decoded, "wall_s": round(wall, 2),
            "fps": round(decoded / wall, 3), "fps_per_vehicle": round(decoded / wall / vehicles, 3),
            "latency_ms_p50": round(float(np.nanpercentile(lat, 50)), 1),
            "latency_ms_p95": round(float(np.nanpercentile(lat, 95)), 1),
            "bpp_sent": round(bits / pixels, 5) if pixels else None,
            "link": {k: int(v) for k, v in sorted(shaper.stats.items())}}


def _run(args: argparse.Namespace) -> int:
    import torch

    from sqgan_core.transport.channel import ProfileError, load_profile
    from sqgan_core.streaming.stream import ModelSpecError, load_codec, warm_up

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        profile = load_profile(args.profile)
        codec, untrained = load_codec(args.model, device=args.device)
    except (ProfileError, ModelSpecError) as exc:
        raise CommandError(str(exc)) from None
    frames = sample_frames(args.sample_frames, args.scenario)
    warm_up(codec)
    cases = [run_case(codec, frames, n, args.frames, profile, args.mx, args.ms) for n in args.vehicles]
    result = {"benchmark": "stream", "device": args.device, "model": args.model or "shipped", "untrained": untrained,
              "profile": profile.name, "mx": args.mx, "ms": args.ms, "frames_per_vehicle": args.frames,
              "frame_size": list(frames[0][0].shape[:2]),
              "host": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "machine": platform.machine(), "torch": torch.__version__,
                       "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                       "load_avg_1m": round(os.getloadavg()[0], 2)},
              "note": "one process: every vehicle's encoder, the link model, reassembly and decoding share it",
              "cases": cases}
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="the streaming core for N vehicles in one process, no ROS (JSON)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--vehicles", type=_vehicle_counts, default=[1, 2, 4, 8, 16],
                   help="comma-separated vehicle counts (default 1,2,4,8,16)")
    p.add_argument("--frames", type=positive_int, default=4, help="frames per vehicle per case (default 4)")
    p.add_argument("--profile", default="clean", help="link profile (default clean)")
    p.add_argument("--model", default="", help="checkpoint or untrained:<config> (default: the shipped model)")
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--mx", type=keep_fraction, default=0.5)
    p.add_argument("--ms", type=keep_fraction, default=0.5)
    p.add_argument("--scenario", default="default", help="simulator scenario of the sample frames")
    p.add_argument("--sample-frames", type=positive_int, default=6, help="distinct frames the vehicles cycle through")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="one-line JSON")
    p.set_defaults(func=_run)
