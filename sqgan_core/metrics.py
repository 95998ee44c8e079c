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


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the target (Cityscapes convention: absent ones skipped)."""
    c = cm.shape[0]
    tp = np.diag(cm[:, :c]).astype(np.float64)
    gt = cm.sum(1)
    denom = gt + cm[:, :c].sum(0) - tp
    present = gt > 0
    return float(np.mean(tp[present] / denom[present])) if present.any() else float("nan")


def miou(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    return miou_from_confusion(confusion(pred, target, num_classes))
