"""`sqgan bag info | record | play`: rosbag2 files without `ros2 bag`, which cannot be installed here.

The files are read and written with the rosbags library (mcap by default, sqlite3 on request) and are
ordinary rosbag2 bags: metadata.yaml plus storage, CDR-serialised messages with their type
definitions, readable by `ros2 bag`. Recording subscribes with rclpy to each topic as raw bytes (no
deserialisation, any message type), stamped with the receive time as `ros2 bag record` does; playing
publishes the recorded bytes with their recorded spacing (scaled by --rate), optionally looping and
publishing /clock from the bag's time.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqgan_core.errors import CommandError
from sqgan_core.arguments import positive_float, positive_int
from sqgan_core.errors import InputError

STORAGE = ("mcap", "sqlite3")
BAG_VERSION = 9  # rosbag2 metadata version of Jazzy and Kilted


class BagError(InputError, ValueError):
    """A bag that cannot be read or written as asked; the message names the bag or topic."""


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def message_class(type_name: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class (its package must be installed)."""
    parts = type_name.split("/")
    if len(parts) != 3:
        raise BagError(f"message type {type_name!r} is not of the form package/msg/Name")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        raise BagError(f"message type {type_name} is not installed here (its ROS package is missing)") from None


def _reader(path: Path) -> Any:
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    if not path.exists():
        raise BagError(f"no bag at {path}")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError) as exc:
        raise BagError(f"{path} is not a readable rosbag2 bag: {exc}") from None
    return reader


def bag_info(path: Path) -> dict[str, Any]:
    """What `ros2 bag info` shows: storage, duration, start/end, and messages per topic and type."""
    reader = _reader(path)
    try:
        storage = "mcap" if any(path.glob("*.mcap")) else "sqlite3"
        return {
            "bag": str(path), "storage": storage, "messages": reader.message_count,
            "duration_s": round(reader.duration / 1e9, 3) if reader.message_count else 0.0,
            "start_ns": reader.start_time if reader.message_count else None,
            "end_ns": reader.end_time if reader.message_count else None,
            "topics": [{"topic": c.topic, "type": c.msgtype, "count": c.msgcount,
                        "serialization_format": getattr(c.ext, "serialization_format", "cdr")}
                       for c in sorted(reader.connections, key=lambda c: c.topic)],
        }
    finally:
        reader.close()


def _adapted_qos(node: Any, topic: str, depth: int = 100) -> Any:
    """The subscription QoS `ros2 bag record` adapts to the publishers it finds: reliable when every
    publisher offers reliable, else best effort (which matches either). Reliable matters for camera
    frames: a 0.5 MB image is fragmented on the wire, and best effort loses a frame with any fragment."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    pubs = node.get_publishers_info_by_topic(topic)
    reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


def record(output: Path, topics: list[str], storage: str = "mcap", duration: float | None = None,
           max_messages: int | None = None, discovery_timeout: float = 10.0, compression: str = "none",
           log=lambda m: print(f"[bag] {m}", file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Record `topics` into a new bag at `output` until `duration` s, `max_messages` or SIGINT."""
    import rclpy

    from ros2_ws.bag_transcode import open_writer

    if output.exists():
        raise BagError(f"{output} exists; a bag is written into a new folder")
    if not output.parent.is_dir():
        raise BagError(f"{output.parent} is not a folder")
    rclpy.init()
    node = rclpy.create_node("sqgan_bag_recorder")
    writer = None
    try:
        types: dict[str, str] = {}
        t_end = time.monotonic() + discovery_timeout
        while len(types) < len(topics) and time.monotonic() < t_end:
            found = dict(node.get_topic_names_and_types())
            types = {t: found[t][0] for t in topics if t in found}
            if len(types) < len(topics):
                time.sleep(0.1)
        missing = [t for t in topics if t not in types]
        if missing:
            raise BagError(f"topic(s) {', '.join(missing)} not published within {discovery_timeout:g} s")
        classes = {t: message_class(types[t]) for t in topics}
        store = _typestore()
        writer = open_writer(output, storage, compression)
        conns = {}
        for t in topics:
            try:
                conns[t] = writer.add_connection(t, types[t], typestore=store)
            except Exception as exc:  # noqa: BLE001 - rosbags raises several types for unknown definitions
                raise BagError(f"{t}: cannot store type {types[t]}: {exc}") from None
        counts = {t: 0 for t in topics}
        done = threading.Event()

        def on_message(topic: str, data: bytes) -> None:
            if done.is_set():
                return
            writer.write(conns[topic], time.time_ns(), data)
            counts[topic] += 1
            if max_messages is not None and sum(counts.values()) >= max_messages:
                done.set()

        for t in topics:
            node.create_subscription(classes[t], t, lambda data, t=t: on_message(t, data), _adapted_qos(node, t),
                                     raw=True)
        log(f"recording {', '.join(f'{t} ({types[t]})' for t in topics)} into {output} ({storage})")
        old = signal.signal(signal.SIGINT, lambda *_: done.set())
        t_stop = None if duration is None else time.monotonic() + duration
        try:
            while not done.is_set() and (t_stop is None or time.monotonic() < t_stop):
                rclpy.spin_once(node, timeout_sec=0.05)
        finally:
            signal.signal(signal.SIGINT, old)
        return {"bag": str(output), "storage": storage, "messages": dict(counts)}
    finally:
        if writer is not None:
            writer.close()
        node.destroy_node()
        rclpy.try_shutdown()


def play(path: Path, rate: float = 1.0, loop: bool = False, clock: bool = False, delay: float = 0.5,
         topics: list[str] | None = None, wait_for_subscribers: int = 0, discovery_timeout: float = 10.0,
         log=lambda m: print(f"[bag] {m}", file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Publish a bag's messages with their recorded spacing divided by `rate`.

    A fixed `delay` only guesses how long DDS discovery takes; on a loaded host a subscriber started
    just before the player can take seconds to match, and the first frames of a replay are then lost
    to it. `wait_for_subscribers` N starts playback only once every played topic has N matched
    subscriptions (BagError after `discovery_timeout` seconds). At the end the player waits until
    reliable subscribers have acknowledged what it sent (like ros2 bag play --wait-for-all-acked)."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    reader = _reader(path)
    conns = [c for c in reader.connections if topics is None or c.topic in topics]
    unknown = sorted(set(topics or ()) - {c.topic for c in reader.connections})
    if unknown:
        reader.close()
        raise BagError(f"{path} has no topic(s) {', '.join(unknown)}")
    classes = {c.topic: message_class(c.msgtype) for c in conns}
    rclpy.init()
    node = rclpy.create_node("sqgan_bag_player")
    qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {t: node.create_publisher(cls, t, qos) for t, cls in classes.items()}
    clock_pub = None
    if clock:
        from rosgraph_msgs.msg import Clock

        clock_pub = node.create_publisher(Clock, "/clock", 10)
    stop = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: stop.set())
    published = 0
    try:
        time.sleep(delay)  # let subscribers discover the publishers, like ros2 bag play --delay
        if wait_for_subscribers:
            _wait_for_subscribers(pubs, wait_for_subscribers, discovery_timeout, stop)
        log(f"playing {path} ({reader.message_count} messages, rate {rate:g}{', loop' if loop else ''})")
        while not stop.is_set():
            t0, b0 = time.monotonic(), None
            for conn, stamp, data in reader.messages(connections=conns):
                if stop.is_set():
                    break
                b0 = stamp if b0 is None else b0
                wait = t0 + (stamp - b0) / 1e9 / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                if clock_pub is not None:
                    from builtin_interfaces.msg import Time
                    from rosgraph_msgs.msg import Clock

                    clock_pub.publish(Clock(clock=Time(sec=stamp // 10**9, nanosec=stamp % 10**9)))
                pubs[conn.topic].publish(bytes(data))
                published += 1
            if not loop:
                break
        for pub in pubs.values():  # reliable subscribers get the tail before the publishers go away
            if not pub.wait_for_all_acked(Duration(seconds=5)):
                log(f"{pub.topic}: not every subscriber acknowledged the last messages within 5 s")
    finally:
        signal.signal(signal.SIGINT, old)
        reader.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return {"bag": str(path), "published": published}


def _wait_for_subscribers(pubs: dict[str, Any], count: int, timeout: float, stop: threading.Event) -> None:
    """Block until every publisher has `count` matched subscriptions (BagError naming the topics that
    have fewer after `timeout` seconds; returns early on Ctrl-C)."""
    t_end = time.monotonic() + timeout
    while not stop.is_set():
        short = {t: p.get_subscription_count() for t, p in pubs.items() if p.get_subscription_count() < count}
        if not short:
            return
        if time.monotonic() > t_end:
            raise BagError(f"after {timeout:g} s, fewer than {count} subscriber(s) on "
                           + ", ".join(f"{t} ({n})" for t, n in sorted(short.items())))
        stop.wait(0.05)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.bag_command == "info":
            info = bag_info(args.bag)
            if args.json:
                print(json.dumps(info))
            else:
                print(f"Bag: {info['bag']} ({info['storage']})\nMessages: {info['messages']}\n"
                      f"Duration: {info['duration_s']} s")
                for t in info["topics"]:
                    print(f"  {t['topic']}  {t['type']}  {t['count']} msgs  {t['serialization_format']}")
            return 0
        if args.bag_command == "record":
            print(json.dumps(record(args.output, args.topics, args.storage, args.duration, args.max_messages,
                                    args.discovery_timeout, compression=args.compression_mode)))
            return 0
        print(json.dumps(play(args.bag, args.rate, args.loop, args.clock, args.delay, args.topics,
                              args.wait_for_subscribers, args.discovery_timeout)))
        return 0
    except BagError as exc:
        raise CommandError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bag", help="rosbag2 files: info, record, play (like ros2 bag)",
                              description="rosbag2 bags through the rosbags library (ros2 bag is not installable "
                                          "here); the bags are ordinary rosbag2 files.")
    sub = p.add_subparsers(dest="bag_command", metavar="ACTION", required=True)
    i = sub.add_parser("info", help="topics, types, message counts and duration of a bag")
    i.add_argument("bag", type=Path)
    i.add_argument("--json", action="store_true")
    r = sub.add_parser("record", help="record live topics into a new bag (Ctrl-C stops)")
    r.add_argument("topics", nargs="+", metavar="TOPIC")
    r.add_argument("-o", "--output", type=Path, required=True, help="the bag folder to create")
    r.add_argument("-s", "--storage", choices=STORAGE, default="mcap", help="storage plugin (default mcap)")
    r.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    r.add_argument("--max-messages", type=positive_int, help="stop after this many messages in all")
    r.add_argument("--discovery-timeout", type=positive_float, default=10.0,
                   help="how long to wait for every topic to be published (default 10 s)")
    y = sub.add_parser("play", help="publish a bag's messages with their recorded timing")
    y.add_argument("bag", type=Path)
    y.add_argument("-r", "--rate", type=positive_float, default=1.0, help="playback speed factor (default 1)")
    y.add_argument("-l", "--loop", action="store_true", help="start again at the end until Ctrl-C")
    y.add_argument("--clock", action="store_true", help="publish /clock from the bag's time stamps")
    y.add_argument("--delay", type=float, default=0.5, help="seconds to wait for subscribers first (default 0.5)")
    y.add_argument("--topics", nargs="+", help="only these topics")
    y.add_argument("--wait-for-subscribers", type=positive_int, default=0, metavar="N",
                   help="start only once every played topic has N matched subscribers (default: do not wait)")
    y.add_argument("--discovery-timeout", type=positive_float, default=10.0,
                   help="seconds --wait-for-subscribers waits before it gives up (default 10)")
    r.add_argument("--compression-mode", choices=("none", "message", "file"), default="none",
                   help="zstd compression, as ros2 bag record --compression-mode (default none)")
    for q in (i, r, y):
        q.set_defaults(func=_run)
    from ros2_ws import bag_eval, bag_transcode

    bag_eval.register(sub)
    bag_transcode.register(sub)
