"""What the vehicle accepts from its cameras: encodings -> RGB / trainIds, and image-semantic pairing.

No rclpy here (messages are duck-typed), so the policy is tested without ROS:
* camera: rgb8, bgr8, rgba8, bgra8 (CARLA's), mono8 (grey, expanded to RGB); anything else, an empty
  image or a buffer that does not match its header is an `UnsupportedImage` with the reason.
* semantic: mono8 = trainIds (0..18, 255 void), or a colour image in the Cityscapes palette as the
  CARLA semantic camera's CityScapesPalette conversion publishes it (bgra8). CARLA-only colours
  become void, except RoadLine, which Cityscapes counts as road.
* StampSync pairs an image with the semantic map of the same header stamp (within `slop`), holding
  at most `max_pending` unmatched messages per side.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, TypeVar

import numpy as np

from ros2_ws.image_conversions import image_to_numpy, to_rgb
from sqgan_core.labels import decolorize, validate_train_ids

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
CAMERA_ENCODINGS = COLOR_ENCODINGS + ("mono8",)
CARLA_ROADLINE = (157, 234, 50)
ROAD = 0


class UnsupportedImage(ValueError):
    """An image the vehicle skips; the message is the logged reason."""


def _array(msg: Any, allowed: tuple[str, ...], what: str) -> np.ndarray:
    if msg.encoding not in allowed:
        raise UnsupportedImage(f"{what} encoding {msg.encoding!r} is not supported (use one of {', '.join(allowed)})")
    if int(msg.height) == 0 or int(msg.width) == 0:
        raise UnsupportedImage(f"{what} image is empty ({msg.width}x{msg.height})")
    try:
        return image_to_numpy(msg)
    except ValueError as exc:
        raise UnsupportedImage(f"{what} image is malformed: {exc}") from None


def rgb_from_image(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> H x W x 3 uint8 RGB."""
    arr = _array(msg, CAMERA_ENCODINGS, "camera")
    if msg.encoding == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(to_rgb(arr, msg.encoding))


def train_ids_from_semantic(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (mono8 trainIds or Cityscapes-palette colour) -> H x W uint8 trainIds."""
    arr = _array(msg, CAMERA_ENCODINGS, "semantic")
    if msg.encoding == "mono8":
        try:
            return validate_train_ids(arr).copy()
        except ValueError as exc:
            raise UnsupportedImage(f"semantic mono8 image is not a trainId map: {exc}") from None
    rgb = to_rgb(arr, msg.encoding)
    ids = decolorize(rgb)
    roadline = np.all(rgb == np.array(CARLA_ROADLINE, np.uint8), axis=2)
    ids[roadline] = ROAD
    return ids


def stamp_key(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


A = TypeVar("A")
B = TypeVar("B")


class StampSync(Generic[A, B]):
    """Exact-or-nearest stamp pairing of two streams with bounded memory (message_filters-like)."""

    def __init__(self, slop: float = 0.001, max_pending: int = 8) -> None:
        self.slop_ns = int(slop * 1e9)
        self.max_pending = max_pending
        self.a: OrderedDict[int, A] = OrderedDict()
        self.b: OrderedDict[int, B] = OrderedDict()
        self.dropped = 0  # messages that never found a partner

    def add_a(self, key: int, item: A) -> tuple[int, A, B] | None:
        return self._add(key, item, self.a, self.b, first=True)

    def add_b(self, key: int, item: B) -> tuple[int, A, B] | None:
        return self._add(key, item, self.b, self.a, first=False)

    def _add(self, key: int, item: Any, mine: OrderedDict, other: OrderedDict, first: bool) -> Any:
        best = None
        for k in other:
            if abs(k - key) <= self.slop_ns and (best is None or abs(k - key) < abs(best - key)):
                best = k
        if best is None:
            mine[key] = item
            while len(mine) > self.max_pending:
                mine.popitem(last=False)
                self.dropped += 1
            return None
        partner = other.pop(best)
        # everything older than the matched pair can no longer match: drop it
        for d in (self.a, self.b):
            for k in [k for k in d if k < min(key, best) - self.slop_ns]:
                del d[k]
                self.dropped += 1
        return (key, item, partner) if first else (best, partner, item)
