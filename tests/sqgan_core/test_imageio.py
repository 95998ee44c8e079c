import numpy as np
import pytest
from PIL import Image

from sqgan_core.imageio import read_labels, read_rgb, write_labels, write_rgb
from sqgan_core.labels import colorize


def test_label_png_roundtrip_and_colour_labels(tmp_path):
    lab = np.array([[0, 5, 255], [18, 11, 7]], dtype=np.uint8)
    write_labels(tmp_path / "l.png", lab)
    assert np.array_equal(read_labels(tmp_path / "l.png"), lab)
    Image.fromarray(lab, "L").save(tmp_path / "grey.png")
    assert np.array_equal(read_labels(tmp_path / "grey.png"), lab)
    Image.fromarray(colorize(lab)).save(tmp_path / "color.png")
    assert np.array_equal(read_labels(tmp_path / "color.png"), lab)


def test_rgb_roundtrip_and_conversion(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    write_rgb(tmp_path / "a.png", rgb)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb[..., 0], "L").save(tmp_path / "g.png")
    assert read_rgb(tmp_path / "g.png").shape == (4, 5, 3)


def test_bad_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        read_rgb(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError):
        read_labels(tmp_path / "none.png")
    Image.fromarray(np.full((2, 2), 77, np.uint8), "L").save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="outside trainIds"):
        read_labels(tmp_path / "bad.png")
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    with pytest.raises(ValueError, match="palette"):
        read_labels(tmp_path / "noise.png")


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    import cv2

    from sqgan_core.imageio import read_rgb

    grey16 = (np.arange(32 * 64).reshape(32, 64) * 30).astype(np.uint16)  # 0 .. 61410
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    rgb = read_rgb(tmp_path / "g16.png")
    assert rgb.shape == (32, 64, 3) and rgb.dtype == np.uint8
    expected = np.round(grey16 * (255 / 65535)).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert rgb.mean() < 200  # it read as all white (255) before
