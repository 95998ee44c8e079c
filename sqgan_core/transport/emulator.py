"""The link emulator: a CurveZMQ proxy between vehicles and the RSU that applies a link profile.

    vehicles --PUSH--> [PULL  listen]  LinkShaper  [PUSH forward] --> RSU (PULL)

It authenticates vehicles against the allow-list, applies the seeded channel model per packet and
forwards survivors as `[RELAY_TAG, vehicle key, packet]` with its own (relay) key. Every buffer is
bounded: the shaper's queue and in-flight heap, and the outgoing socket (non-blocking sends, drops
counted when the RSU is slow or away). Runnable as `sqgan link ...` or the `link_emulator` script.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import zmq

from sqgan_core.transport.channel import LinkProfile, ProfileError, load_profile
from sqgan_core.transport.keys import KeyFileError
from sqgan_core.transport.shaper import LinkShaper
from sqgan_core.transport.zmq_link import RELAY_TAG, Receiver, Sender
from sqgan_core.arguments import positive_float

log = logging.getLogger("sqgan.link")

DEFAULT_LISTEN = "tcp://127.0.0.1:7550"
DEFAULT_FORWARD = "tcp://127.0.0.1:7560"


class LinkEmulator:
    def __init__(self, profile: LinkProfile, *, listen: str, forward: str, secret_key: str | os.PathLike[str],
                 allow_dir: str | os.PathLike[str], server_key: str | os.PathLike[str], seed: int | None = None,
                 stats_path: str | os.PathLike[str] | None = None) -> None:
        self.profile = profile
        self.shaper: LinkShaper[tuple[bytes, bytes]] = LinkShaper(profile, seed)
        self.front = Receiver(listen, secret_key, allow_dir, accept_relayed=False)
        self.back = Sender(forward, secret_key, server_key, hwm=1024)
        self.stats_path = Path(stats_path) if stats_path else None
        self.started = time.monotonic()
        self.stop_event = threading.Event()

    @property
    def listen_endpoint(self) -> str:
        return self.front.endpoint

    def step(self, max_wait: float = 0.05) -> None:
        now = time.monotonic()
        deadline = self.shaper.next_deadline()
        wait = max_wait if deadline is None else min(max_wait, max(0.0, deadline - now))
        for msg in self.front.recv(timeout_ms=int(wait * 1000)):
            self.shaper.offer((msg.peer.public_key, msg.data), len(msg.data), time.monotonic())
        for key, data in self.shaper.due(time.monotonic()):
            self.back.send_multipart([RELAY_TAG, key, data])

    def snapshot(self) -> dict[str, Any]:
        s = self.shaper.snapshot()
        s["dropped_downstream"] = self.back.stats["dropped_unavailable"]
        s["dropped_total"] += s["dropped_downstream"]
        s["rejected_front"] = {k: v for k, v in self.front.stats.items() if k.startswith("rejected")}
        s["refused_front"] = {k: v for k, v in self.front.stats.items() if k.startswith(("refused", "allow_list"))}
        s["forwarded"] = self.back.stats["sent"]
        s["profile"] = self.profile.name
        s["expected_loss"] = self.profile.expected_loss()
        s["uptime_s"] = round(time.monotonic() - self.started, 3)
        return s

    def write_stats(self) -> None:
        if self.stats_path is None:
            return
        self.stats_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=1, sort_keys=True))
        os.replace(tmp, self.stats_path)

    def run(self, duration: float | None = None, stats_every: float = 1.0) -> dict[str, Any]:
        t_end = None if duration is None else time.monotonic() + duration
        t_stats = time.monotonic() + stats_every
        while not self.stop_event.is_set() and (t_end is None or time.monotonic() < t_end):
            self.step()
            if time.monotonic() >= t_stats:
                self.write_stats()
                t_stats = time.monotonic() + stats_every
        self.write_stats()
        return self.snapshot()

    def close(self) -> None:
        self.front.close()
        self.back.close()


_ENDPOINT = re.compile(r"^(tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\*|\d{1,5})|ipc://\S+|inproc://\S+)$")


def zmq_endpoint(text: str) -> str:
    """argparse type for --listen/--forward: a ZeroMQ endpoint (tcp://host:port, ipc://path,
    inproc://name), checked while parsing; ZeroMQ itself only says "Invalid argument" at bind time."""
    m = _ENDPOINT.match(text)
    if not m or (m.group(3) not in (None, "*") and not 0 < int(m.group(3)) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ZeroMQ endpoint (e.g. tcp://127.0.0.1:5555)")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="clean", help="link profile: a name in configs/links/ or a YAML path")
    p.add_argument("--listen", type=zmq_endpoint, default=DEFAULT_LISTEN, help=f"endpoint vehicles connect to ({DEFAULT_LISTEN})")
    p.add_argument("--forward", type=zmq_endpoint, default=DEFAULT_FORWARD, help=f"the RSU's endpoint ({DEFAULT_FORWARD})")
    p.add_argument("--keys", type=Path, help="key directory from `sqgan keys` (link.key_secret, rsu.key, allowed/)")
    p.add_argument("--secret-key", type=Path, help="this link's .key_secret (default: KEYS/link.key_secret)")
    p.add_argument("--server-key", type=Path, help="the RSU's public .key (default: KEYS/rsu.key)")
    p.add_argument("--allow", type=Path, help="allow-list directory of vehicle keys (default: KEYS/allowed)")
    p.add_argument("--seed", type=int, help="override the profile's seed")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: run until signalled)")
    p.add_argument("--stats-out", type=Path, help="write the drop counters here (JSON, refreshed every second)")


def _paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    def pick(explicit: Path | None, name: str) -> Path:
        if explicit is not None:
            return explicit
        if args.keys is None:
            raise ValueError(f"pass --keys DIR or --{name}")
        return args.keys / {"secret-key": "link.key_secret", "server-key": "rsu.key", "allow": "allowed"}[name]

    return pick(args.secret_key, "secret-key"), pick(args.server_key, "server-key"), pick(args.allow, "allow")


def run_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="[link] %(message)s")
    try:
        profile = load_profile(args.profile)
        secret, server, allow = _paths(args)
        emu = LinkEmulator(profile, listen=args.listen, forward=args.forward, secret_key=secret, allow_dir=allow,
                           server_key=server, seed=args.seed, stats_path=args.stats_out)
    except (ProfileError, KeyFileError, ValueError, OSError) as exc:
        from sqgan_core.errors import CommandError

        raise CommandError(str(exc)) from None
    except zmq.ZMQError as exc:  # e.g. the port is taken
        from sqgan_core.errors import CommandError

        raise CommandError(f"cannot open {args.listen} -> {args.forward}: {exc}") from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: emu.stop_event.set())
    log.info("profile %s (expected loss %.1f%%): %s -> %s", profile.name, 100 * profile.expected_loss(),
             emu.listen_endpoint, args.forward)
    try:
        final = emu.run(args.duration)
    finally:
        emu.close()
    print(json.dumps({"link": final}, sort_keys=True), flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("link", help="run the lossy link emulator between vehicles and the RSU",
                              description="CurveZMQ proxy applying a seeded channel model (configs/links/).")
    add_arguments(p)
    p.set_defaults(func=run_from_args)


def strip_ros_args(argv: Sequence[str]) -> list[str]:
    """launch_ros appends `--ros-args ...`; the link is not a ROS node and ignores them."""
    argv = list(argv)
    return argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv


def main(argv: Sequence[str] | None = None) -> int:
    from sqgan_core.errors import CommandError

    p = argparse.ArgumentParser(prog="link_emulator", description="SQ-GAN lossy link emulator")
    add_arguments(p)
    args = p.parse_args(strip_ros_args(sys.argv[1:] if argv is None else argv))
    try:
        return run_from_args(args)
    except CommandError as exc:
        print(f"link_emulator: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
