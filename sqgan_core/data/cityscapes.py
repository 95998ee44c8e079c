"""Cityscapes-layout image/label pairs.

    ROOT/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png   (255 = void)

This is what cityscapesScripts' createTrainIdLabelImgs writes for real Cityscapes and what
`sqgan sim export` writes for simulator data, so one loader serves both. (The reference SQ-GAN code
looked for *_gtFine_trainIds.png, which neither produces.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqgan_core.errors import InputError
from sqgan_core.imageio import read_labels, read_rgb

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


class DatasetError(InputError, ValueError):
    """A dataset directory that cannot be used; says what is missing where."""


@dataclass(frozen=True)
class Pair:
    name: str
    image: Path
    labels: Path

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        return read_rgb(self.image), read_labels(self.labels)


class CityscapesPairs:
    """Sorted list of (image, trainId label) pairs of one split (or all splits)."""

    def __init__(self, root: str | os.PathLike[str], split: str | None = None) -> None:
        self.root = Path(root)
        img_root = self.root / "leftImg8bit"
        if not img_root.is_dir():
            raise DatasetError(f"{self.root}: no leftImg8bit/ directory (expected the Cityscapes layout)")
        pattern = f"{split}/*/*{IMAGE_SUFFIX}" if split else f"*/*/*{IMAGE_SUFFIX}"
        pairs, missing = [], []
        for img in sorted(img_root.glob(pattern)):
            rel = img.relative_to(img_root)
            name = img.name[: -len(IMAGE_SUFFIX)]
            lab = self.root / "gtFine" / rel.parent / f"{name}{LABEL_SUFFIX}"
            (pairs if lab.is_file() else missing).append(Pair(name, img, lab))
        if missing:
            raise DatasetError(f"{self.root}: {len(missing)} images have no {LABEL_SUFFIX} label "
                               f"(first: {missing[0].labels}); run cityscapesScripts' createTrainIdLabelImgs")
        if not pairs:
            where = f"split {split!r}" if split else "any split"
            raise DatasetError(f"{self.root}: no *{IMAGE_SUFFIX} images in {where}")
        self.pairs: list[Pair] = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Pair:
        return self.pairs[i]

    def __iter__(self):
        return iter(self.pairs)
