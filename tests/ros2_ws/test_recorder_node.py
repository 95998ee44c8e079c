"""The recorder's segmenter figures: computed from real segmenter output, or reported unavailable with
the reason; never a placeholder number."""
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from ros2_ws.recorder_node import segmenter_miou  # noqa: E402
from sqgan_core.segmentation import segmenter as segmenter_module  # noqa: E402


class _ColourSegmenter:
    """Reads the class straight from the red channel: exact on originals drawn that way."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return (rgb[..., 0] // 10).astype(np.uint8)


def _pairs(n=3):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        gt = rng.integers(0, 19, (16, 32)).astype(np.uint8)
        orig = np.repeat((gt * 10)[..., None], 3, axis=2).astype(np.uint8)
        recon = orig.copy()
        recon[:8] = 0  # the top half decoded as class 0
        out.append((orig, recon, gt))
    return out


def test_miou_on_reconstruction_and_original(monkeypatch):
    monkeypatch.setattr(segmenter_module.Segmenter, "load", classmethod(lambda cls, path=None, device="cpu":
                                                                       _ColourSegmenter()))
    r = segmenter_miou(_pairs(), "")
    assert r["orig"] == pytest.approx(1.0) and 0.2 < r["recon"] < 0.9 and r["frames"] == 3


def test_unavailable_figures_carry_the_reason(tmp_path):
    assert "disabled" in segmenter_miou(_pairs(), "none")["error"]
    assert "no decoded frame" in segmenter_miou([], "")["error"]
    missing = tmp_path / "nope.pt"
    r = segmenter_miou(_pairs(), str(missing))
    assert "recon" not in r and str(missing) in r["error"]
