"""The paper's data augmentation, on batches of (image, trainId map) tensors.

Copy-paste: traffic lights and signs are rare and small, yet they are what the codec must keep. Each
image receives 0..25 of the light/sign instances found anywhere in its mini-batch, pasted where they
overlap no relevant object (people, riders, vehicles, lights, signs), image and labels together.
Geometric (rotation, crop) and photometric (colour jitter) augmentation follow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sqgan_core.labels import SAFETY_CLASSES, VOID, class_id

PASTE_CLASSES = (class_id("traffic light"), class_id("traffic sign"))
RELEVANT = tuple(class_id(n) for n in SAFETY_CLASSES)


@dataclass(frozen=True)
class AugmentConfig:
    max_paste: int = 25
    rotate_deg: float = 5.0
    crop_scale: tuple[float, float] = (0.7, 1.0)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hflip: bool = True


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (y0, y1, x0, x1) of 8-connected components of a boolean mask."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [(int(s[1]), int(s[1] + s[3]), int(s[0]), int(s[0] + s[2])) for s in stats[1:n] if s[4] >= 4]


def copy_paste(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator, max_paste: int = 25,
               tries: int = 20) -> tuple[torch.Tensor, torch.Tensor, int]:
    """images (B, 3, H, W), labels (B, H, W) uint8/long trainIds. Returns augmented copies and the
    number of objects pasted. Only the object's own pixels move (its mask), not its bounding box."""
    images, labels = images.clone(), labels.clone()
    lab_np = labels.cpu().numpy()
    objects = []  # (source batch index, y0, y1, x0, x1)
    for b in range(lab_np.shape[0]):
        for y0, y1, x0, x1 in _components(np.isin(lab_np[b], PASTE_CLASSES)):
            objects.append((b, y0, y1, x0, x1))
    if not objects:
        return images, labels, 0
    h, w = lab_np.shape[1:]
    pasted = 0
    for b in range(lab_np.shape[0]):
        occupied = np.isin(lab_np[b], RELEVANT)
        for _ in range(int(rng.integers(0, max_paste + 1))):
            src, y0, y1, x0, x1 = objects[int(rng.integers(len(objects)))]
            oh, ow = y1 - y0, x1 - x0
            if oh >= h or ow >= w:
                continue
            obj_mask = np.isin(lab_np[src, y0:y1, x0:x1], PASTE_CLASSES)
            for _ in range(tries):
                ty, tx = int(rng.integers(0, h - oh)), int(rng.integers(0, w - ow))
                if not (occupied[ty:ty + oh, tx:tx + ow] & obj_mask).any():
                    m = torch.from_numpy(obj_mask).to(images.device)
                    region = images[b, :, ty:ty + oh, tx:tx + ow]
                    images[b, :, ty:ty + oh, tx:tx + ow] = torch.where(m, images[src, :, y0:y1, x0:x1], region)
                    lregion = labels[b, ty:ty + oh, tx:tx + ow]
                    labels[b, ty:ty + oh, tx:tx + ow] = torch.where(m, labels[src, y0:y1, x0:x1], lregion)
                    occupied[ty:ty + oh, tx:tx + ow] |= obj_mask
                    lab_np[b, ty:ty + oh, tx:tx + ow] = np.where(obj_mask, lab_np[src, y0:y1, x0:x1],
                                                                 lab_np[b, ty:ty + oh, tx:tx + ow])
                    pasted += 1
                    break
    return images, labels, pasted


def geometric(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
              cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation + scale crop + horizontal flip, one affine warp per image. Labels use nearest
    sampling and areas rotated in from outside the frame become void."""
    b, _, h, w = images.shape
    thetas = []
    for _ in range(b):
        ang = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        s = rng.uniform(*cfg.crop_scale)
        tx, ty = rng.uniform(-(1 - s), 1 - s), rng.uniform(-(1 - s), 1 - s)
        flip = -1.0 if cfg.hflip and rng.random() < 0.5 else 1.0
        c, si = math.cos(ang) * s, math.sin(ang) * s
        thetas.append([[c * flip, -si * h / w, tx], [si * w / h * flip, c, ty]])
    theta = torch.tensor(thetas, dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out_img = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    lab = labels.to(images.dtype).unsqueeze(1)
    inside = F.grid_sample(torch.ones_like(lab), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out_lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out_lab = torch.where(inside > 0.5, out_lab, torch.full_like(out_lab, VOID))
    return out_img, out_lab.squeeze(1).round().to(labels.dtype)


def colour_jitter(images: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Brightness, contrast and saturation jitter on images in [-1, 1]."""
    b = images.shape[0]
    x = (images + 1) / 2
    br = torch.tensor(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness, b), dtype=x.dtype, device=x.device)
    ct = torch.tensor(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast, b), dtype=x.dtype, device=x.device)
    sa = torch.tensor(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation, b), dtype=x.dtype, device=x.device)
    x = x * br[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * ct[:, None, None, None] + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * sa[:, None, None, None] + grey
    return x.clamp(0, 1) * 2 - 1


def augment_batch(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
                  cfg: AugmentConfig = AugmentConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, _ = copy_paste(images, labels, rng, cfg.max_paste)
    images, labels = geometric(images, labels, rng, cfg)
    return colour_jitter(images, rng, cfg), labels


KEEP_GRID = (0.2, 0.5, 1.0)  # the rates `sqgan eval` reports and the nodes run by default


def sample_keep_fraction(rng: np.random.Generator, grid: tuple[float, ...] = KEEP_GRID, grid_prob: float = 0.5,
                         low: float = 0.05, high: float = 1.0) -> float:
    """Per-step keep fraction m: with probability `grid_prob` one of the grid points users run at,
    otherwise uniform on [low, high], so every rate in between is still seen. The paper's log-normal
    (mean ~0.35) put only ~13% of the steps at m >= 0.5, the rate everything is judged at."""
    if grid and rng.random() < grid_prob:
        return float(grid[int(rng.integers(len(grid)))])
    return float(rng.uniform(low, high))
