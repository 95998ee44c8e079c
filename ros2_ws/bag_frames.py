"""Camera frames out of a rosbag2 bag, offline and without rclpy (rosbags deserialises the CDR).

The same conversions as the vehicle node (`camera_input`), so a bag is read exactly as the live topics
would be: a camera topic in rgb8/bgr8/rgba8/bgra8/mono8 (CARLA's ROS bridge publishes bgra8), an
optional semantic topic as mono8 trainIds or a Cityscapes/CARLA palette colour image, paired with the
camera by header stamp. A camera topic of `sensor_msgs/CompressedImage` in our `sqgan` format (what a
vehicle logs on `<camera>/sqgan`) is handed over as the frame bitstream, so a recorded stream decodes
without a live vehicle. Frames that cannot be read are counted by reason, never dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ros2_ws.bag import BagError, _reader, _typestore
from ros2_ws.image_conversions import SQGAN_FORMAT_TAG
from ros2_ws.camera_input import StampSync, UnsupportedImage, rgb_from_image, stamp_key, train_ids_from_semantic

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


@dataclass
class BagFrame:
    """One camera frame: its header stamp, its bag (receive) time, and either pixels or sqgan bytes."""

    stamp_ns: int
    time_ns: int
    rgb: np.ndarray | None = None
    labels: np.ndarray | None = None  # trainIds from the semantic topic, None without one
    sqgan: bytes | None = None  # the frame bitstream of a recorded sqgan CompressedImage
    frame_id: str = ""


@dataclass
class BagFrameReader:
    """Iterates the frames of `camera` (paired with `semantic` when given) in bag order.

    `skipped` counts, by reason, every camera or semantic message that did not become a frame."""

    bag: Path
    camera: str
    semantic: str | None = None
    max_frames: int | None = None
    stride: int = 1
    slop_s: float = 0.001
    skipped: Counter[str] = field(default_factory=Counter)
    kind: str = ""  # "image" or "sqgan" once opened
    last_error: str = ""  # the detail of the last skipped message

    def _check(self, topics: dict[str, str]) -> None:
        def missing(t: str) -> BagError:
            images = sorted(k for k, v in topics.items() if v in (IMAGE, COMPRESSED))
            return BagError(f"{self.bag} has no topic {t} (image topics here: {', '.join(images) or 'none'})")

        if self.camera not in topics:
            raise missing(self.camera)
        if topics[self.camera] not in (IMAGE, COMPRESSED):
            raise BagError(f"{self.camera} is {topics[self.camera]}, not {IMAGE} or {COMPRESSED}")
        self.kind = "image" if topics[self.camera] == IMAGE else "sqgan"
        if self.semantic is not None:
            if self.semantic not in topics:
                raise missing(self.semantic)
            if topics[self.semantic] != IMAGE:
                raise BagError(f"semantic topic {self.semantic} is {topics[self.semantic]}, not {IMAGE}")
        if self.stride < 1:
            raise BagError(f"stride must be at least 1, got {self.stride}")

    def __iter__(self) -> Iterator[BagFrame]:
        reader = _reader(self.bag)
        store = _typestore()
        try:
            self._check({c.topic: c.msgtype for c in reader.connections})
            wanted = {self.camera} | ({self.semantic} if self.semantic else set())
            conns = [c for c in reader.connections if c.topic in wanted]
            sync: StampSync[BagFrame, np.ndarray] = StampSync(self.slop_s, max_pending=64)
            n_cam = emitted = 0
            for conn, t_ns, raw in reader.messages(connections=conns):
                if self.max_frames is not None and emitted >= self.max_frames:
                    break
                try:
                    msg = store.deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:  # noqa: BLE001 - rosbags raises several types on bad CDR
                    self.skipped[f"undecodable_{'camera' if conn.topic == self.camera else 'semantic'}"] += 1
                    self.last_error = f"{conn.topic}: {exc}"
                    continue
                key = stamp_key(msg.header.stamp)
                if conn.topic == self.camera:
                    n_cam += 1
                    if (n_cam - 1) % self.stride:
                        continue
                    frame = self._camera_frame(msg, key, t_ns)
                    if frame is None:
                        continue
                    if self.semantic is None:
                        emitted += 1
                        yield frame
                        continue
                    pair = sync.add_a(key, frame)
                else:
                    try:
                        labels = train_ids_from_semantic(msg)
                    except UnsupportedImage as exc:
                        self.skipped["bad_semantic"] += 1
                        self.last_error = f"{conn.topic}: {exc}"
                        continue
                    pair = sync.add_b(key, labels)
                if pair is not None:
                    _, frame, labels = pair
                    if frame.rgb is not None and labels.shape != frame.rgb.shape[:2]:
                        self.skipped["size_mismatch"] += 1
                        self.last_error = f"semantic {labels.shape} and camera {frame.rgb.shape[:2]} sizes differ"
                        continue
                    frame.labels = labels
                    emitted += 1
                    yield frame
            # camera frames whose semantic partner never came (or was skipped), and the reverse
            self.skipped["unpaired"] += len(sync.a) + len(sync.b) + sync.dropped
        finally:
            reader.close()
        if not self.skipped["unpaired"]:
            del self.skipped["unpaired"]

    def _camera_frame(self, msg: Any, key: int, t_ns: int) -> BagFrame | None:
        frame_id = str(msg.header.frame_id)
        if self.kind == "sqgan":
            if SQGAN_FORMAT_TAG not in str(msg.format):
                self.skipped["not_sqgan_format"] += 1
                self.last_error = f"{self.camera}: CompressedImage format {msg.format!r} is not a sqgan stream"
                return None
            return BagFrame(key, t_ns, sqgan=bytes(np.asarray(msg.data, np.uint8)), frame_id=frame_id)
        try:
            rgb = rgb_from_image(msg)
        except UnsupportedImage as exc:
            self.skipped["bad_camera"] += 1
            self.last_error = f"{self.camera}: {exc}"
            return None
        return BagFrame(key, t_ns, rgb=rgb, frame_id=frame_id)
