"""numpy <-> sensor_msgs/Image with cv_bridge's encoding semantics, without cv_bridge.

cv_bridge does not work with the pip-installed ROS 2 wheels here (REFERENCE.md section 3), so
the nodes use this small module. It follows sensor_msgs/image_encodings.h for the encodings the
project publishes: channel count and depth per encoding, `step` as the row length in bytes
(rows may be padded), and `is_bigendian` for multi-byte pixels. Image -> numpy is a zero-copy
view where the layout allows it.
"""
from __future__ import annotations

import sys
from array import array
from typing import Any

import numpy as np

# sensor_msgs/CompressedImage `format` of the SQ-GAN frame bitstream a vehicle logs on <camera>/sqgan
# (`sqgan decode` reads the bytes), named like image_transport's "rgb8; jpeg compressed bgr8".
COMPRESSED_FORMAT = "rgb8; sqgan compressed v1"
SQGAN_FORMAT_TAG = "sqgan compressed"

# encoding -> (channels, numpy dtype of one channel); sensor_msgs/image_encodings.h
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
}


def _spec(encoding: str) -> tuple[int, np.dtype]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}") from None


def image_to_numpy(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> H x W (1 channel) or H x W x C array in the message's own channel order.

    Honours `step` (row padding is skipped) and `is_bigendian`; raises ValueError when the
    buffer is smaller than height * step or step is shorter than a row.
    """
    channels, dtype = _spec(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * dtype.itemsize
    if step < row:
        raise ValueError(f"{msg.encoding} image step {step} is shorter than a row of {w} pixels ({row} bytes)")
    buf = np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    if buf.size < h * step:
        raise ValueError(f"image data holds {buf.size} bytes, expected height*step = {h}*{step} = {h * step}")
    rows = buf[: h * step].reshape(h, step)[:, :row]
    order = ">" if msg.is_bigendian else "<"
    dt = dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype
    if step % dtype.itemsize == 0:
        arr = rows.view(dt)
    else:  # unaligned rows: copy once
        arr = np.ascontiguousarray(rows).view(dt)
    if dt.byteorder not in ("=", "|") and dt.byteorder != ("<" if sys.byteorder == "little" else ">"):
        arr = arr.astype(dtype)  # to native order (copy)
    return arr.reshape(h, w) if channels == 1 else arr.reshape(h, w, channels)


def numpy_to_image(arr: np.ndarray, encoding: str, header: Any = None, step: int | None = None, msg: Any = None) -> Any:
    """H x W (x C) array -> sensor_msgs/Image in `encoding` (no channel reordering: see `convert`).

    `step` pads rows to that many bytes (>= one row). Raises ValueError on a shape or dtype that
    does not match the encoding.
    """
    if msg is None:
        from sensor_msgs.msg import Image

        msg = Image()
    channels, dtype = _spec(encoding)
    a = np.asarray(arr)
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if a.ndim != expected_ndim or (channels > 1 and a.shape[2] != channels):
        raise ValueError(f"{encoding} needs an array of shape H x W{'' if channels == 1 else f' x {channels}'}, "
                         f"got {a.shape}")
    if a.dtype != dtype:
        raise ValueError(f"{encoding} needs dtype {dtype}, got {a.dtype}")
    h, w = a.shape[:2]
    row = w * channels * dtype.itemsize
    step = row if step is None else int(step)
    if step < row:
        raise ValueError(f"step {step} is shorter than a row of {w} pixels ({row} bytes)")
    a = np.ascontiguousarray(a)
    if step == row:
        payload = a.tobytes()
    else:
        padded = np.zeros((h, step), np.uint8)
        padded[:, :row] = a.view(np.uint8).reshape(h, row)
        payload = padded.tobytes()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, step
    msg.is_bigendian = sys.byteorder == "big"
    data = array("B")
    data.frombytes(payload)
    msg.data = data
    return msg


def convert(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """An RGB (H x W x 3 uint8) image laid out for `encoding` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding in ("rgba8", "bgra8"):
        out = np.empty(rgb.shape[:2] + (4,), np.uint8)
        out[:, :, :3] = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        out[:, :, 3] = 255
        return out
    if encoding == "mono8":
        return np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    raise ValueError(f"cannot convert RGB to {encoding!r}; supported: rgb8, bgr8, rgba8, bgra8, mono8")


def to_rgb(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Inverse of `convert` for colour encodings: any of rgb8/bgr8/rgba8/bgra8 -> RGB."""
    if encoding == "rgb8":
        return np.asarray(arr)
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[:, :, ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[:, :, :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[:, :, 2::-1])
    raise ValueError(f"{encoding!r} is not a colour encoding")
