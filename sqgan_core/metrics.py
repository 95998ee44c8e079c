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
    with the standard weights, channels averaged. Both images H x W x 3 uint8, short side >= 161."""
    import torch
    import torch.nn.functional as F

    if a.shape != b.shape:
        raise ValueError(f"ms_ssim: shapes differ {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < 161:
        raise ValueError(f"ms_ssim needs a short side of at least 161 pixels for 5 scales, got {a.shape[:2]}")
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
    c = x.shape[1]
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    # The Gaussian window is separable: two 1-D passes over the five moments stacked as channels
    # give the 11x11 result at a tenth of the cost (an evaluation calls this three times a frame).
    row, col = g.view(1, 1, 1, 11).expand(5 * c, 1, 1, 11), g.view(1, 1, 11, 1).expand(5 * c, 1, 11, 1)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def moments(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = torch.cat([x, y, x * x, y * y, x * y], 1)
        t = F.conv2d(F.conv2d(t, row, groups=5 * c), col, groups=5 * c)
        return t.split(c, 1)

    values = []
    for level in range(5):
        mx, my, exx, eyy, exy = moments(x, y)
        sxx, syy, sxy = exx - mx ** 2, eyy - my ** 2, exy - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < 4:
            values.append(torch.relu(cs.mean(dim=(2, 3))))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:
            ssim = ((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)) * cs
            values.append(torch.relu(ssim.mean(dim=(2, 3))))
    w = torch.tensor(_MS_SSIM_WEIGHTS, dtype=torch.float64)
    per_channel = torch.prod(torch.stack(values, 0) ** w[:, None, None], dim=0)
    return float(per_channel.mean())
