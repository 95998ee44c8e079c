"""`sqgan demo`: simulator -> vehicle -> lossy link -> RSU -> recorder, end to end, in one command.

Runs the `demo` graph of ros2_ws.graph (the same node descriptions as the launch files) under the
`sqgan launch` supervisor, on free local ports and a private ROS domain, with keys generated into
the output directory; the recorder writes summary.json and strip.png and ends the run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ros2_ws.graph import GraphError, build, context, parse_params
from ros2_ws.launcher import Supervisor, preflight
from sqgan_core.transport.keys import generate_set
from sqgan_core.arguments import int_in, positive_float, positive_int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_keys(keys_dir: Path, vehicles: int) -> None:
    """Generate a key set unless one with enough vehicle keys is already there."""
    if all((keys_dir / f"vehicle_{i}.key_secret").is_file() for i in range(vehicles)) and \
            (keys_dir / "rsu.key_secret").is_file() and (keys_dir / "link.key_secret").is_file():
        return
    keys_dir.mkdir(parents=True, exist_ok=True)
    generate_set(keys_dir, vehicles, overwrite=True)


def run_pipeline(out: Path, *, vehicles: int = 1, profile: str = "bursty_15pct", model: str | None = None,
                 sim_frames: int = 200, sim_rate: float = 10.0, record_frames: int = 30, timeout: float = 200.0,
                 params: dict[str, dict[str, Any]] | None = None, scenario: str | None = None,
                 quiet: bool = False, extra_env: dict[str, str] | None = None,
                 bag: Path | None = None, sync: str = "auto") -> dict[str, Any]:
    """Run the demo graph once; returns the recorder's summary (raises RuntimeError if none).

    With `bag`, the simulator is replaced by `sqgan bag play BAG --loop` (the `demo_replay` graph): a
    recorded drive through vehicle, link and RSU, which the recorder scores as it scores the simulator.
    `sync` is the simulator's sync mode (ros2_ws/sim_publisher.py): `auto` (lock-step paced at the
    camera rate: real time where the machine keeps up, waiting where it cannot), `lockstep` or `free`."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} is a file")
    keys = out / "keys"
    port_link, port_rsu = free_port(), free_port()
    sets: dict[str, Any] = {
        "keys_dir": str(keys), "out_dir": str(out), "stats_out": str(out / "link_stats.json"), "profile": profile,
        "link_listen": f"tcp://127.0.0.1:{port_link}", "rsu_endpoint": f"tcp://127.0.0.1:{port_rsu}",
        "rsu_connect": f"tcp://127.0.0.1:{port_rsu}", "sim_frames": sim_frames, "sim_rate": sim_rate,
        "sim_sync": sync,
    }
    if model is not None:
        sets["model"] = model
    if scenario is not None:
        sets["scenario"] = scenario
    p: dict[str, dict[str, Any]] = {"recorder": {"frames": record_frames, "timeout": timeout}}
    if sync != "free" and bag is None:
        # a frame the simulator waits for must reach the vehicle: reliable camera QoS, not sensor data
        p["vehicle"] = {"camera_qos": "reliable"}
    for node, vals in (params or {}).items():
        p.setdefault(node, {}).update(vals)
    if bag is not None:
        from ros2_ws.bag import bag_info

        bag_info(bag)  # a missing or unreadable bag fails here, before any node starts
    specs = build("demo_replay" if bag is not None else "demo", vehicles=vehicles, sets=sets, params=p)
    preflight(specs)  # profile, scenario and model load here first: a typo never starts half a graph
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary_path.unlink()
    ensure_keys(keys, vehicles)
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 199)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    log_path = out / "pipeline.log"
    with open(log_path, "w") as log_file:
        sup = Supervisor(specs, env=env, params_dir=out / "params", output=log_file,
                         log=(lambda m: None) if quiet else (lambda m: print(f"[demo] {m}", file=sys.stderr, flush=True)))
        t0 = time.monotonic()
        player = None
        if bag is not None:  # publishes until the recorder ends the graph; --delay lets the nodes start
            import subprocess

            player = subprocess.Popen([sys.executable, "-m", "sqgan_core", "bag", "play", str(bag), "--loop",
                                       "--delay", "5"], env=env, stdout=log_file, stderr=log_file)
        try:
            rc = sup.run(duration=timeout + 120)
        finally:
            if player is not None:
                player.send_signal(signal.SIGINT)  # the player stops and closes the bag
                try:
                    player.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    player.kill()
    if not summary_path.is_file():
        raise RuntimeError(f"the recorder wrote no summary (graph exit code {rc}); see {log_path}")
    summary = json.loads(summary_path.read_text())
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    summary["graph_exit_code"] = rc
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def run(args: argparse.Namespace) -> int:
    from ros2_ws.recorder_node import format_table
    from sqgan_core.errors import CommandError

    try:
        model = args.model
        if model is None:
            model = context()["model"]
        if str(model).startswith("untrained:"):
            print(f"[demo] *** model {model}: UNTRAINED random weights — rates, losses and timings are real, "
                  "images and semantic maps are noise ***", file=sys.stderr)
        summary = run_pipeline(Path(args.out), vehicles=args.vehicles, profile=args.profile, model=model,
                               sim_frames=args.sim_frames, sim_rate=args.rate, record_frames=args.frames,
                               timeout=args.timeout, params=parse_params(args.param), scenario=args.scenario,
                               bag=args.bag, sync=args.sync)
    except (GraphError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    print(format_table(summary))
    print(f"wrote {Path(args.out) / 'summary.json'}, {Path(args.out) / 'strip.png'} ({summary['wall_s']} s)")
    return 0 if summary.get("frames_recorded") else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="closed-loop demo: simulator -> vehicle -> lossy link -> RSU -> summary",
                              description="Runs the full ROS 2 pipeline and writes OUT/summary.json and OUT/strip.png.")
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    p.add_argument("--profile", default="bursty_15pct", help="link profile (default bursty_15pct)")
    p.add_argument("--model", help="checkpoint path or untrained:<config> (default: configs/nodes/network.yaml)")
    p.add_argument("--vehicles", type=int_in(1, 64), default=1)
    p.add_argument("--frames", type=positive_int, default=30, help="stop after this many decoded frames per vehicle")
    p.add_argument("--sim-frames", type=positive_int, default=300, help="frames the simulator publishes at most")
    p.add_argument("--rate", type=positive_float, default=10.0, help="camera rate in Hz (default 10)")
    p.add_argument("--timeout", type=positive_float, default=150.0, help="recording time limit in seconds")
    p.add_argument("--scenario", help="simulator scenario (default: configs/nodes/network.yaml)")
    p.add_argument("--bag", type=Path, help="replay this bag (looped) instead of running the simulator: its camera "
                                            "and semantic topics must be the ones the vehicle subscribes to")
    p.add_argument("--sync", choices=("auto", "lockstep", "free"), default="auto",
                   help="simulator sync mode: auto (default) waits for each frame's RSU outcome but keeps the camera "
                        "rate where the machine is fast enough; lockstep always waits; free runs on the wall clock "
                        "and drops what the pipeline cannot keep up with")
    p.add_argument("--param", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.set_defaults(func=run)
