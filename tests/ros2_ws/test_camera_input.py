import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from ros2_ws.camera_input import (  # noqa: E402
    StampSync,
    UnsupportedImage,
    rgb_from_image,
    stamp_key,
    train_ids_from_semantic,
)
from ros2_ws.image_conversions import convert, numpy_to_image  # noqa: E402
from sqgan_core.labels import PALETTE, colorize  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(enc):
    msg = numpy_to_image(convert(RGB, enc), enc, step=None)
    assert np.array_equal(rgb_from_image(msg), RGB)


def test_padded_rows_and_mono():
    msg = numpy_to_image(convert(RGB, "bgra8"), "bgra8", step=53 * 4 + 12)
    assert np.array_equal(rgb_from_image(msg), RGB)
    grey = RGB[:, :, 0]
    out = rgb_from_image(numpy_to_image(grey, "mono8"))
    assert out.shape == (37, 53, 3) and np.array_equal(out[:, :, 2], grey)


@pytest.mark.parametrize("make,needle", [
    (lambda: numpy_to_image(np.zeros((4, 4), np.uint16), "mono16"), "not supported"),
    (lambda: numpy_to_image(np.zeros((4, 4), np.float32), "32FC1"), "not supported"),
])
def test_unsupported_encodings_are_refused_with_reason(make, needle):
    with pytest.raises(UnsupportedImage, match=needle):
        rgb_from_image(make())


def test_malformed_and_empty_images():
    msg = numpy_to_image(RGB, "rgb8")
    msg.data = msg.data[:100]
    with pytest.raises(UnsupportedImage, match="malformed"):
        rgb_from_image(msg)
    msg = numpy_to_image(RGB, "rgb8")
    msg.height = 0
    with pytest.raises(UnsupportedImage, match="empty"):
        rgb_from_image(msg)


def test_semantic_palette_mono_and_carla_roadline():
    ids = RNG.integers(0, 19, (20, 30)).astype(np.uint8)
    ids[0, :5] = 255
    col = colorize(ids)
    col[1, 0] = (157, 234, 50)  # CARLA RoadLine -> road
    got = train_ids_from_semantic(numpy_to_image(convert(col, "bgra8"), "bgra8"))
    want = ids.copy()
    want[1, 0] = 0
    assert np.array_equal(got, want)
    assert np.array_equal(train_ids_from_semantic(numpy_to_image(ids, "mono8")), ids)
    bad = ids.copy()
    bad[0, 0] = 77
    with pytest.raises(UnsupportedImage, match="trainId"):
        train_ids_from_semantic(numpy_to_image(bad, "mono8"))
    assert len(PALETTE) == 19


def test_stamp_sync_pairs_exact_and_bounds_memory():
    s = StampSync(slop=0.001, max_pending=4)
    assert s.add_a(1000, "a1") is None
    assert s.add_b(1000 + 500_000, "b1") == (1000, "a1", "b1")  # within 1 ms
    for k in range(10):
        s.add_a(10_000_000_000 + k * 100_000_000, f"a{k}")
    assert len(s.a) == 4 and s.dropped == 6
    assert s.add_b(10_900_000_000, "b9") == (10_900_000_000, "a9", "b9")


def test_stamp_key():
    class T:
        sec, nanosec = 3, 5
    assert stamp_key(T) == 3_000_000_005
