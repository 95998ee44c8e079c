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


def test_ms_ssim_identity_noise_and_size_check():
    from sqgan_core.metrics import ms_ssim
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    small = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    big = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ms_ssim(a, small) > ms_ssim(a, big) > 0
    with pytest.raises(ValueError, match="161"):
        ms_ssim(a[:100], a[:100])


def test_iou_per_class_leaves_absent_classes_out_not_zero():
    from sqgan_core.metrics import iou_per_class

    target = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 2]], np.uint8)
    iou = iou_per_class(confusion(pred, target))
    assert iou[0] == pytest.approx(0.5) and iou[1] == pytest.approx(1 / 3)
    assert np.isnan(iou[2]) and np.isnan(iou[18])  # 2 is predicted but absent from the target
    assert np.nanmean(iou) == pytest.approx(miou_from_confusion(confusion(pred, target)))
