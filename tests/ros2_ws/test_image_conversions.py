"""numpy <-> sensor_msgs/Image against the sensor_msgs encoding table (channels, bit depth)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs")
from sensor_msgs.msg import Image  # noqa: E402

from ros2_ws.image_conversions import ENCODINGS, convert, image_to_numpy, numpy_to_image, to_rgb  # noqa: E402

# sensor_msgs/image_encodings.h: numChannels() and bitDepth(), written out independently
TABLE = {"rgb8": (3, 8), "bgr8": (3, 8), "rgba8": (4, 8), "bgra8": (4, 8), "mono8": (1, 8), "mono16": (1, 16),
         "32FC1": (1, 32)}


def test_table_matches_sensor_msgs():
    assert set(ENCODINGS) == set(TABLE)
    for enc, (ch, bits) in TABLE.items():
        assert ENCODINGS[enc][0] == ch and ENCODINGS[enc][1].itemsize * 8 == bits


def _array(enc, h, w, rng):
    ch, dt = ENCODINGS[enc]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    return rng.integers(0, np.iinfo(dt).max, shape, dtype=dt)


@settings(max_examples=60, deadline=None)
@given(enc=st.sampled_from(sorted(TABLE)), h=st.integers(1, 9), w=st.integers(1, 9), pad=st.integers(0, 7),
       seed=st.integers(0, 1000))
def test_round_trip_with_row_padding(enc, h, w, pad, seed):
    a = _array(enc, h, w, np.random.default_rng(seed))
    ch, bits = TABLE[enc]
    row = w * ch * bits // 8
    msg = numpy_to_image(a, enc, step=row + pad)
    assert (msg.height, msg.width, msg.encoding, msg.step) == (h, w, enc, row + pad)
    assert len(msg.data) == h * (row + pad)
    assert msg.is_bigendian == (sys.byteorder == "big")
    b = image_to_numpy(msg)
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_big_endian_mono16_is_decoded():
    msg = Image(height=1, width=2, encoding="mono16", is_bigendian=1, step=4)
    msg.data = bytes([0x01, 0x02, 0x03, 0x04])
    assert image_to_numpy(msg).tolist() == [[0x0102, 0x0304]]


def test_bgra8_byte_order_is_b_g_r_a():
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    msg = numpy_to_image(convert(rgb, "bgra8"), "bgra8")
    assert bytes(msg.data) == bytes([30, 20, 10, 255])
    assert to_rgb(image_to_numpy(msg), "bgra8").tolist() == [[[10, 20, 30]]]


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_convert_and_back(enc):
    rgb = np.random.default_rng(1).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(convert(rgb, enc), enc), rgb)


def test_image_to_numpy_is_a_view_without_padding():
    a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    msg = numpy_to_image(a, "rgb8")
    b = image_to_numpy(msg)
    assert not b.flags.owndata


@pytest.mark.parametrize("arr, enc, match", [
    (np.zeros((2, 2, 3), np.uint8), "yuv422", "unsupported image encoding 'yuv422'"),
    (np.zeros((2, 2, 4), np.uint8), "rgb8", "H x W x 3"),
    (np.zeros((2, 2), np.uint16), "mono8", "dtype uint8"),
    (np.zeros((2, 2, 3), np.float32), "rgb8", "dtype uint8"),
])
def test_bad_arrays_are_rejected(arr, enc, match):
    with pytest.raises(ValueError, match=match):
        numpy_to_image(arr, enc)


def test_inconsistent_messages_are_rejected():
    msg = Image(height=2, width=3, encoding="rgb8", step=8)
    msg.data = bytes(16)
    with pytest.raises(ValueError, match="shorter than a row"):
        image_to_numpy(msg)
    msg = Image(height=2, width=3, encoding="rgb8", step=9)
    msg.data = bytes(10)
    with pytest.raises(ValueError, match="expected height\\*step"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="shorter than a row"):
        numpy_to_image(np.zeros((2, 3, 3), np.uint8), "rgb8", step=5)
