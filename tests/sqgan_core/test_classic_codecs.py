import shutil

import numpy as np
import pytest

from sqgan_core import classic_codecs as cc
from sqgan_core.classic_codecs import CODEC_NAMES, ClassicCodecError, available, decode, encode_at_rate
from sqgan_core.errors import InputError
from sqgan_core.metrics import psnr

FFMPEG_CODECS = ("hevc", "av1")
no_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
CODECS = [pytest.param(n, marks=no_ffmpeg) if n in FFMPEG_CODECS else n for n in CODEC_NAMES]


def synthetic(h: int = 64, w: int = 128) -> np.ndarray:
    """Deterministic smooth frame: gradients, a soft texture, a disc, a box and a darker band."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / w, 255 * y / h, 128 + 60 * np.sin(x / 17) * np.cos(y / 23)], -1)
    img[(x - w * 0.3) ** 2 + (y - h * 0.5) ** 2 < (h * 0.2) ** 2] = (230, 40, 40)
    img[int(h * 0.2):int(h * 0.6), int(w * 0.6):int(w * 0.8)] = (20, 60, 200)
    img[int(h * 0.7):] *= 0.5
    return np.clip(img, 0, 255).astype(np.uint8)


def _skip_if_unavailable(name: str) -> None:
    ok, why = available(name)
    if not ok:
        pytest.skip(f"{name}: {why}")


@pytest.mark.parametrize("name", CODECS)
def test_matched_rate_quality_and_deterministic_decode(name):
    _skip_if_unavailable(name)
    img = synthetic()
    c = encode_at_rate(name, img, 1.0)
    assert c.codec == name and not c.over_target and c.scale == 1.0
    assert c.bpp <= 1.0 and c.bpp == 8 * len(c.data) / (64 * 128)
    assert c.bpp > 0.5, "the search should use most of the budget"
    assert c.recon.shape == img.shape and c.recon.dtype == np.uint8
    assert psnr(img, c.recon) > 20.0
    assert c.encode_ms > 0 and c.decode_ms > 0 and 1 <= c.encodes <= 12
    assert np.array_equal(decode(name, c.data, img.shape[:2], c.scale), c.recon)


def test_jpeg_downscales_to_reach_a_low_rate():
    img = synthetic()
    c = encode_at_rate("jpeg", img, 0.3)  # 307 bytes: below JPEG's lowest quality at full size
    assert c.scale < 1.0 and not c.over_target and c.bpp <= 0.3
    assert c.recon.shape == img.shape
    assert psnr(img, c.recon) > 12.0
    assert np.array_equal(decode("jpeg", c.data, img.shape[:2], c.scale), c.recon)


def test_unreachable_rate_is_reported_not_hidden():
    img = synthetic()
    c = encode_at_rate("jpeg", img, 0.01)  # 10 bytes: no JPEG is that small
    assert c.over_target and c.bpp > 0.01 and c.scale == cc.SCALES[-1]
    assert c.recon.shape == img.shape


@no_ffmpeg
@pytest.mark.parametrize("name", FFMPEG_CODECS)
def test_ffmpeg_codecs_odd_sizes_and_downscaling(name):
    _skip_if_unavailable(name)
    img = synthetic(33, 47)
    c = encode_at_rate(name, img, 2.0)
    assert c.recon.shape == img.shape and c.bpp <= 2.0 and psnr(img, c.recon) > 20.0
    assert np.array_equal(decode(name, c.data, img.shape[:2], c.scale), c.recon)
    d = encode_at_rate(name, synthetic(), 0.05)  # 51 bytes: only reachable downscaled, if at all
    assert d.scale < 1.0 and d.recon.shape == (64, 128, 3)
    assert d.over_target == (d.bpp > 0.05)


@pytest.mark.parametrize("image, match", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), "H x W x 3"),
    (np.zeros((8, 8, 4), np.uint8), "H x W x 3"),
    (np.zeros((0, 8, 3), np.uint8), "H x W x 3"),
    ([[[0, 0, 0]]], "uint8"),
])
def test_bad_images_are_rejected(image, match):
    with pytest.raises(ClassicCodecError, match=match):
        encode_at_rate("jpeg", image, 0.5)


@pytest.mark.parametrize("target", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_targets_are_rejected(target):
    with pytest.raises(ClassicCodecError, match="target_bpp"):
        encode_at_rate("jpeg", synthetic(8, 8), target)


def test_unknown_codec_and_corrupt_data():
    with pytest.raises(ClassicCodecError, match="unknown codec 'bpg'"):
        encode_at_rate("bpg", synthetic(8, 8), 0.5)
    with pytest.raises(ClassicCodecError, match="unknown codec"):
        available("png")
    with pytest.raises(ClassicCodecError, match="unknown codec"):
        decode("gif", b"", (8, 8), 1.0)
    with pytest.raises(ClassicCodecError, match="webp: cannot decode") as e:
        decode("webp", b"not a webp file", (8, 8), 1.0)
    assert isinstance(e.value, InputError) and isinstance(e.value, ValueError)


def test_unavailable_codecs_say_why(monkeypatch):
    monkeypatch.setenv("PATH", "")
    for name in FFMPEG_CODECS:
        ok, why = available(name)
        assert not ok and "ffmpeg" in why
    with pytest.raises(ClassicCodecError, match="hevc: not available: ffmpeg not found"):
        encode_at_rate("hevc", synthetic(), 0.5)
    monkeypatch.setattr(cc.features, "check", lambda feature: False)
    ok, why = available("avif")
    assert not ok and "Pillow" in why and "AVIF" in why
    assert available("jpeg")[0] is False


@pytest.mark.parametrize("name", ["jpeg", "webp", "jpeg2000", pytest.param("hevc", marks=no_ffmpeg)])
@pytest.mark.parametrize("target", [0.3, 1.5])
def test_hint_from_the_previous_frame_saves_encodes_and_keeps_the_rule(name, target):
    """On a video the previous frame's setting starts the search: fewer encodes, and for the integer
    knobs exactly the setting a cold search finds (the highest that fits), never above the target."""
    _skip_if_unavailable(name)
    prev, img = synthetic(), np.roll(synthetic(), 3, axis=1)
    hint = encode_at_rate(name, prev, target)
    cold, warm = encode_at_rate(name, img, target), encode_at_rate(name, img, target, hint=hint)
    assert warm.bpp <= target and warm.scale == cold.scale
    assert warm.encodes <= cold.encodes
    if name != "jpeg2000":
        assert (warm.param, warm.data) == (cold.param, cold.data)
