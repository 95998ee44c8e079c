"""`sqgan bag transcode` and `sqgan bag simulate`: writing bags offline through rosbags (no rclpy).

transcode, encoding: the camera topic (paired with `--semantic` by stamp, or segmented on the way as a
vehicle with `semantic_source:=segmenter` would) becomes `<camera>/sqgan`, the `sensor_msgs/
CompressedImage` stream a vehicle logs (format `rgb8; sqgan compressed v1`, the frame bitstream
`sqgan decode` reads). The camera and semantic topics it replaces are left out: the stream carries
both. Every other topic is copied byte for byte.
transcode, `--decode`: each sqgan stream `<X>/sqgan` becomes `<X>/decoded/image` (rgb8),
`<X>/decoded/semantic` (mono8 trainIds) and `<X>/decoded/semantic_color` (rgb8, Cityscapes colours),
images any ROS viewer shows.
simulate: a bag of the embedded simulator with the topics `sim_publisher` publishes (CARLA ROS bridge
layout: bgra8 camera, CityScapesPalette semantic image, exact mono8 trainIds), stamped with simulation
time, for tests and examples without a running graph.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ros2_ws.bag import BAG_VERSION, STORAGE, BagError, _reader, _typestore
from ros2_ws.bag_frames import COMPRESSED, IMAGE
from ros2_ws.image_conversions import COMPRESSED_FORMAT, SQGAN_FORMAT_TAG
from sqgan_core.errors import CommandError
from sqgan_core.arguments import keep_fraction, positive_int

COMPRESSION = ("none", "message", "file")


def open_writer(output: Path, storage: str = "mcap", compression: str = "none") -> Any:
    """A new rosbag2 bag at `output` (which must not exist), optionally zstd-compressed like
    `ros2 bag record --compression-mode message|file --compression-format zstd`."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.writer import CompressionFormat, CompressionMode

    if output.exists():
        raise BagError(f"{output} exists; a bag is written into a new folder")
    if not output.parent.is_dir():
        raise BagError(f"{output.parent} is not a folder")
    writer = Writer(output, version=BAG_VERSION,
                    storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    if compression != "none":
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    writer.open()
    return writer


def _header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    t = store.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9))
    return store.types["std_msgs/msg/Header"](stamp=t, frame_id=frame_id)


def image_msg(store: Any, arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    arr = np.ascontiguousarray(arr, np.uint8)
    h, w = arr.shape[:2]
    return store.types[IMAGE](header=_header(store, stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                              is_bigendian=0, step=arr.nbytes // h, data=arr.reshape(-1))


def compressed_msg(store: Any, data: bytes, stamp_ns: int, frame_id: str) -> Any:
    return store.types[COMPRESSED](header=_header(store, stamp_ns, frame_id), format=COMPRESSED_FORMAT,
                                   data=np.frombuffer(data, np.uint8))


def simulate(output: Path, scenario: str = "default", seed: int = 1, frames: int = 16, stride: int = 5,
             role: str = "ego_vehicle", storage: str = "mcap", compression: str = "message") -> dict[str, Any]:
    """`frames` simulator frames, `stride` ticks apart, as sim_publisher would publish them. The shipped
    sample tests/data/bags/sim_default_9001 is `sqgan bag simulate --frames 6 --stride 8 --seed 9001`."""
    from ros2_ws.image_conversions import convert
    from ros2_ws.sim_publisher import semantic_palette
    from sim import make_source
    from sim.scenario import load_scenario

    store = _typestore()
    src = make_source(load_scenario(scenario).replace(seed=seed))
    rgb_id, sem_id = f"{role}/rgb_front", f"{role}/semantic_segmentation_front"
    topics = {"rgb": f"/carla/{role}/rgb_front/image", "sem": f"/carla/{role}/semantic_segmentation_front/image",
              "ids": f"/carla/{role}/semantic_segmentation_front/train_ids"}
    writer = open_writer(output, storage, compression)
    try:
        conns = {k: writer.add_connection(t, IMAGE, typestore=store) for k, t in topics.items()}
        for i in range(frames):
            if i:
                for _ in range(stride - 1):
                    getattr(src, "skip", src.step)()
            f = src.step()
            stamp = int(round(f.stamp * 1e9))  # simulation time, as the node stamps it
            for key, arr, enc, fid in (("rgb", convert(f.rgb, "bgra8"), "bgra8", rgb_id),
                                       ("sem", convert(semantic_palette(f), "bgra8"), "bgra8", sem_id),
                                       ("ids", f.labels, "mono8", sem_id)):
                writer.write(conns[key], stamp, store.serialize_cdr(image_msg(store, arr, enc, stamp, fid), IMAGE))
    finally:
        writer.close()
        getattr(src, "close", lambda: None)()
    return {"bag": str(output), "frames": frames, "topics": list(topics.values())}


def transcode(inp: Path, output: Path, camera: str | None, semantic: str | None, decode: bool, codec: Any,
              m_x: float = 0.5, m_s: float = 0.5, segmenter: Any = None, storage: str = "mcap",
              log: Callable[[str], None] = lambda m: print(f"[bag] {m}", file=sys.stderr, flush=True)) -> dict[str, Any]:
    from ros2_ws.camera_input import StampSync, UnsupportedImage, rgb_from_image, stamp_key, train_ids_from_semantic
    from sqgan_core.bitstream import FrameError
    from sqgan_core.labels import colorize

    store = _typestore()
    reader = _reader(inp)
    counts: dict[str, int] = {}

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        if decode:
            streams = [camera] if camera else [t for t, ty in types.items() if ty == COMPRESSED and t.endswith("/sqgan")]
            if not streams:
                raise BagError(f"{inp} has no sqgan stream (a CompressedImage topic ending in /sqgan); name one "
                               "with --camera")
            replaced = set(streams)
        else:
            if not camera:
                raise BagError("--camera TOPIC is needed to encode (the camera topic to replace)")
            replaced = {camera} | ({semantic} if semantic else set())
            if semantic is None and segmenter is None:
                raise BagError("no --semantic topic and no segmenter: SQ-GAN needs a semantic map to encode")
        for t in replaced:
            if t not in types:
                raise BagError(f"{inp} has no topic {t}")
            want = COMPRESSED if decode else IMAGE
            if types[t] != want:
                raise BagError(f"{t} is {types[t]}, not {want}")
        writer = open_writer(output, storage)
        try:
            out_conns: dict[str, Any] = {}
            for c in reader.connections:
                if c.topic not in replaced and c.topic not in out_conns:
                    out_conns[c.topic] = writer.add_connection(c.topic, c.msgtype, typestore=store)

            def conn_for(topic: str, msgtype: str) -> Any:
                if topic not in out_conns:
                    out_conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
                return out_conns[topic]

            sync: StampSync[Any, np.ndarray] = StampSync(0.001, max_pending=64)
            if not decode:
                from sqgan_core.streaming.stream import StreamEncoder

                enc = StreamEncoder(codec, 1, m_x=m_x, m_s=m_s)

            def write_encoded(key: int, t_ns: int, msg: Any, rgb: np.ndarray, labels: np.ndarray) -> None:
                out = enc.encode(rgb, labels, stamp=(key // 10**9, key % 10**9), want_frame=True)
                cm = compressed_msg(store, out.frame, key, str(msg.header.frame_id))
                writer.write(conn_for(f"{camera.rstrip('/')}/sqgan", COMPRESSED), t_ns, store.serialize_cdr(cm, COMPRESSED))
                count("frames_encoded")

            for conn, t_ns, raw in reader.messages():
                if conn.topic not in replaced:
                    writer.write(out_conns[conn.topic], t_ns, raw)
                    count("copied")
                    continue
                msg = store.deserialize_cdr(raw, conn.msgtype)
                key = stamp_key(msg.header.stamp)
                if decode:
                    if SQGAN_FORMAT_TAG not in str(msg.format):
                        count("skipped_not_sqgan")
                        continue
                    try:
                        dec = codec.decode(bytes(np.asarray(msg.data, np.uint8)))
                    except (FrameError, ValueError) as exc:
                        count("skipped_undecodable")
                        log(f"{conn.topic}: frame at {key} ns does not decode: {exc}")
                        continue
                    base, fid = conn.topic[: -len("/sqgan")] if conn.topic.endswith("/sqgan") else conn.topic, \
                        str(msg.header.frame_id)
                    for suffix, arr, encoding in (("image", dec.image, "rgb8"), ("semantic", dec.labels, "mono8"),
                                                  ("semantic_color", colorize(dec.labels), "rgb8")):
                        m = image_msg(store, arr, encoding, key, fid)
                        writer.write(conn_for(f"{base}/decoded/{suffix}", IMAGE), t_ns, store.serialize_cdr(m, IMAGE))
                    count("frames_decoded")
                    continue
                try:
                    if conn.topic == camera:
                        rgb = rgb_from_image(msg)
                        if semantic is None:
                            write_encoded(key, t_ns, msg, rgb, segmenter(rgb))
                        elif (pair := sync.add_a(key, (t_ns, msg, rgb))) is not None:
                            write_encoded(pair[0], pair[1][0], pair[1][1], pair[1][2], pair[2])
                    else:
                        labels = train_ids_from_semantic(msg)
                        if (pair := sync.add_b(key, labels)) is not None:
                            t_cam, cam_msg, rgb = pair[1]
                            if labels.shape != rgb.shape[:2]:
                                count("skipped_size_mismatch")
                                continue
                            write_encoded(pair[0], t_cam, cam_msg, rgb, labels)
                except UnsupportedImage as exc:
                    count("skipped_bad_image")
                    log(f"{conn.topic}: {exc}")
            if not decode and semantic is not None:
                unpaired = len(sync.a) + len(sync.b) + sync.dropped
                if unpaired:
                    counts["skipped_unpaired"] = unpaired
        finally:
            writer.close()
    finally:
        reader.close()
    return {"bag": str(output), "mode": "decode" if decode else "encode", **counts}


def _run(args: argparse.Namespace) -> int:
    from sqgan_core.cli.model_options import codec_from_args

    try:
        if args.bag_command == "simulate":
            print(json.dumps(simulate(args.output, args.scenario, args.seed, args.frames, args.stride,
                                      storage=args.storage, compression=args.compression_mode)))
            return 0
        segmenter = None
        if not args.decode and args.semantic is None:
            from sqgan_core.evaluation import load_segmenter

            segmenter, why = load_segmenter(None)
            if segmenter is None:
                raise CommandError(f"no --semantic topic and the segmenter is unavailable ({why})")
        codec = codec_from_args(args)
        print(json.dumps(transcode(args.bag, args.output, args.camera, args.semantic, args.decode, codec,
                                   args.mx, args.ms, segmenter, args.storage)))
        return 0
    except BagError as exc:
        raise CommandError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    """`sqgan bag transcode` and `sqgan bag simulate`, added to the `bag` parser's actions."""
    from sqgan_core.cli.model_options import add_model_options

    t = sub.add_parser("transcode", help="camera topics -> the sqgan CompressedImage stream, or back (--decode)",
                       description=__doc__.split("\n\n")[0] + " See ros2_ws/bag_transcode.py for the topic names.")
    t.add_argument("bag", type=Path)
    t.add_argument("-o", "--output", type=Path, required=True, help="the bag folder to create")
    t.add_argument("--camera", help="camera topic to encode (with --decode: the sqgan stream; default: every "
                                    "CompressedImage topic ending in /sqgan)")
    t.add_argument("--semantic", help="semantic topic paired by stamp (default: the segmenter's map)")
    t.add_argument("--decode", action="store_true", help="decode sqgan streams into rgb8/mono8 images")
    t.add_argument("--mx", type=keep_fraction, default=0.5, help="m_x when encoding (default 0.5)")
    t.add_argument("--ms", type=keep_fraction, default=0.5, help="m_s when encoding (default 0.5)")
    t.add_argument("-s", "--storage", choices=STORAGE, default="mcap", help="storage plugin (default mcap)")
    add_model_options(t)
    s = sub.add_parser("simulate", help="a bag of the embedded simulator's camera topics (no graph needed)")
    s.add_argument("-o", "--output", type=Path, required=True, help="the bag folder to create")
    s.add_argument("--scenario", default="default", help="scenario name or YAML (default: default)")
    s.add_argument("--seed", type=int, default=9001, help="simulator seed (default 9001, an evaluation seed)")
    s.add_argument("--frames", type=positive_int, default=16, help="frames (default 16)")
    s.add_argument("--stride", type=positive_int, default=5, help="simulator ticks between frames (default 5: 4 Hz)")
    s.add_argument("-s", "--storage", choices=STORAGE, default="mcap", help="storage plugin (default mcap)")
    s.add_argument("--compression-mode", choices=COMPRESSION, default="message",
                   help="zstd compression like ros2 bag record (default message)")
    for q in (t, s):
        q.set_defaults(func=_run)
