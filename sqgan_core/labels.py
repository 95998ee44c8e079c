"""Cityscapes trainId vocabulary shared by the codec, the simulator and the nodes.

Labels travel as uint8 trainId maps (0..18, 255 = void). Inside the networks void is the extra
channel `VOID_INDEX` (19), so one-hot maps have `NUM_CHANNELS` = 20 channels; the reference code
crashed on 255 and mis-sized its weights by mixing the two conventions.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
NUM_CLASSES = len(CLASS_NAMES)  # 19
VOID = 255
VOID_INDEX = NUM_CLASSES  # channel index used for void inside the networks
NUM_CHANNELS = NUM_CLASSES + 1

# Cityscapes colour palette (RGB) in trainId order; void is black.
PALETTE: np.ndarray = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)
VOID_COLOR = (0, 0, 0)

# Classes whose loss of detail matters for driving safety (people, riders, vehicles, lights, signs).
SAFETY_CLASSES: tuple[str, ...] = (
    "traffic light", "traffic sign", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)


def class_id(name: str) -> int:
    """trainId of a class name; raises KeyError naming the unknown class."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown Cityscapes class {name!r}; known: {', '.join(CLASS_NAMES)}") from None


def validate_train_ids(labels: np.ndarray) -> np.ndarray:
    """Check a trainId map (HxW integers in 0..18 or 255) and return it as uint8."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be 2-D (H x W), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label map must hold integers, got dtype {labels.dtype}")
    bad = (labels >= NUM_CLASSES) & (labels != VOID) | (labels < 0)
    if bad.any():
        values = np.unique(labels[bad])[:8].tolist()
        raise ValueError(f"label map holds values outside trainIds 0..{NUM_CLASSES - 1} and {VOID}: {values}")
    return labels.astype(np.uint8, copy=False)


def to_channel_index(labels: np.ndarray) -> np.ndarray:
    """trainIds (255 = void) -> channel indices 0..19 (void = 19), as int64 for torch."""
    idx = labels.astype(np.int64)
    idx[labels == VOID] = VOID_INDEX
    return idx


def from_channel_index(idx: np.ndarray) -> np.ndarray:
    """Channel indices 0..19 -> uint8 trainIds with void as 255."""
    out = idx.astype(np.uint8)
    out[idx == VOID_INDEX] = VOID
    return out


def colorize(labels: np.ndarray) -> np.ndarray:
    """trainId map -> HxWx3 uint8 RGB in the Cityscapes palette (void black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    lut[VOID] = VOID_COLOR
    return lut[np.asarray(labels, dtype=np.uint8)]


def decolorize(rgb: np.ndarray) -> np.ndarray:
    """Cityscapes-palette RGB image -> trainIds; colours not in the palette become void."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"colour label image must be H x W x 3, got shape {rgb.shape}")
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    pal = (PALETTE[:, 0].astype(np.int32) << 16) | (PALETTE[:, 1].astype(np.int32) << 8) | PALETTE[:, 2]
    out = np.full(key.shape, VOID, dtype=np.uint8)
    for tid, k in enumerate(pal):
        out[key == k] = tid
    return out
