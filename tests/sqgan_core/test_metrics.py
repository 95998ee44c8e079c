import numpy as np
import pytest

from sqgan_core.metrics import confusion, miou, miou_from_confusion, psnr


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[...] = 255
    assert psnr(a, b) == pytest.approx(0.0)
    c = a.copy()
    c[...] = 1
    assert psnr(a, c) == pytest.approx(20 * np.log10(255))


def test_miou_perfect_wrong_and_void():
    t = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    assert miou(t, t) == 1.0
    p = t.copy()
    p[0, 2:] = 0  # class 1 entirely predicted as 0
    # IoU0 = 2/4, IoU1 = 0, IoU2 = 1 -> 0.5
    assert miou(p, t) == pytest.approx(0.5)
    v = t.copy()
    v[1, :2] = 255  # predicting void is a miss, void targets are ignored
    assert miou(v, t) == pytest.approx((1 + 1 + 0) / 3)


def test_confusions_accumulate_over_frames():
    rng = np.random.default_rng(0)
    ts = [rng.integers(0, 19, (8, 8)).astype(np.uint8) for _ in range(3)]
    ps = [rng.integers(0, 19, (8, 8)).astype(np.uint8) for _ in range(3)]
    cm = sum(confusion(p, t) for p, t in zip(ps, ts))
    assert miou_from_confusion(cm) == pytest.approx(miou(np.concatenate(ps), np.concatenate(ts)))
