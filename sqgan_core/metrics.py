"""Quality metrics of the evaluation: PSNR on images, mIoU on trainId maps (void ignored)."""
from __future__ import annotations

import numpy as np

from sqgan_core.labels import NUM_CLASSES, VOID


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two uint8 images of the same shape (inf when identical)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak ** 2 / mse)


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes + 1) counts; rows are target classes, the last column counts pixels
    predicted as void. Void target pixels are ignored. Sum these over frames for a dataset mIoU."""
    if pred.shape != target.shape:
        raise ValueError(f"confusion: shapes differ {pred.shape} vs {target.shape}")
    valid = target != VOID
    t = target[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    p = np.where((p == VOID) | (p >= num_classes), num_classes, p)
    cm = np.bincount(t * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return cm.reshape(num_classes, num_classes + 1)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion(); NaN for classes absent from the target, so a class
    that never occurs is not reported as 0."""
    c = cm.shape[0]
    tp = np.diag(cm[:, :c]).astype(np.float64)
    gt = cm.sum(1)
    denom = gt + cm[:, :c].sum(0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gt > 0, tp / np.maximum(denom, 1), np.nan)


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the target (Cityscapes convention: absent ones skipped)."""
    iou = iou_per_class(cm)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def miou(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    return miou_from_confusion(confusion(pred, target, num_classes))


_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003): 11x11 Gaussian window (sigma 1.5), 5 scales
    with the standard weights, channels averaged. Both images H x W x 3 uint8, short side >= 161.

    The separable window runs as two 11-tap dot products over sliding views in float64 (numpy/BLAS):
    the same numbers as a grouped torch conv2d to 1e-15, about ten times faster on a CPU, which
    matters because every evaluation calls this for each codec, rate and frame."""
    from numpy.lib.stride_tricks import sliding_window_view

    if a.shape != b.shape:
        raise ValueError(f"ms_ssim: shapes differ {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < 161:
        raise ValueError(f"ms_ssim needs a short side of at least 161 pixels for 5 scales, got {a.shape[:2]}")
    x = np.asarray(a, np.float64).transpose(2, 0, 1)
    y = np.asarray(b, np.float64).transpose(2, 0, 1)
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(t: np.ndarray) -> np.ndarray:  # "valid" 11x11 Gaussian, rows then columns
        return sliding_window_view(sliding_window_view(t, 11, axis=-1) @ g, 11, axis=-2) @ g

    def pool(t: np.ndarray) -> np.ndarray:  # 2x2 average, odd edges dropped (as avg_pool2d)
        h, w = t.shape[1] // 2 * 2, t.shape[2] // 2 * 2
        t = t[:, :h, :w]
        return 0.25 * (t[:, 0::2, 0::2] + t[:, 1::2, 0::2] + t[:, 0::2, 1::2] + t[:, 1::2, 1::2])

    values = []
    for level in range(5):
        mx, my, exx, eyy, exy = (blur(v) for v in (x, y, x * x, y * y, x * y))
        sxx, syy, sxy = exx - mx ** 2, eyy - my ** 2, exy - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < 4:
            values.append(np.maximum(cs.mean(axis=(1, 2)), 0.0))
            x, y = pool(x), pool(y)
        else:
            ssim = ((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)) * cs
            values.append(np.maximum(ssim.mean(axis=(1, 2)), 0.0))
    per_channel = np.prod(np.stack(values) ** np.asarray(_MS_SSIM_WEIGHTS)[:, None], axis=0)
    return float(per_channel.mean())
