"""Write frames in the Cityscapes layout so one loader reads our data and real Cityscapes alike.

    <out>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (uint8 trainIds, 255 void)
    <out>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_color.png           (Cityscapes palette)

`labelTrainIds` is the name cityscapesScripts writes (the reference SQ-GAN code expected
`_gtFine_trainIds.png`, one of its known defects).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from sqgan_core.labels import CLASS_NAMES, NUM_CLASSES, colorize
from sim.frame import SimFrame


def frame_stem(city: str, seq: int, index: int) -> str:
    return f"{city}_{seq:06d}_{index:06d}"


def paths_for(out: Path, split: str, city: str, stem: str) -> tuple[Path, Path, Path]:
    img = out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
    gt = out / "gtFine" / split / city
    return img, gt / f"{stem}_gtFine_labelTrainIds.png", gt / f"{stem}_gtFine_color.png"


def _write(path: Path, image: np.ndarray) -> None:
    """Write, then rename: an export killed midway (a GPU lease's deadline) leaves no truncated PNG,
    and the temporary name does not match the `*_leftImg8bit.png` pattern loaders look for."""
    tmp = path.with_name(path.name + ".tmp.png")
    ok = cv2.imwrite(str(tmp), image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"could not write {path}")
    os.replace(tmp, path)


def export_frames(frames: Iterable[SimFrame], out: Path, split: str = "train", city: str = "simtown", seq: int = 0,
                  total: int | None = None, progress: bool = True) -> dict:
    """Write frames and return statistics: frames, seconds, fps, class_pixel_fraction."""
    from tqdm import tqdm

    out = Path(out)
    (out / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (out / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    counts = np.zeros(256, np.int64)
    n = 0
    t0 = time.perf_counter()
    pending = []
    with ThreadPoolExecutor(max_workers=2) as pool:  # PNG encoding releases the GIL
        for frame in tqdm(frames, total=total, desc="sim export", unit="frame", disable=not progress):
            img_p, id_p, col_p = paths_for(out, split, city, frame_stem(city, seq, frame.index))
            counts += np.bincount(frame.labels.ravel(), minlength=256)
            pending.append(pool.submit(_write, img_p, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)))
            pending.append(pool.submit(_write, id_p, frame.labels))
            pending.append(pool.submit(_write, col_p, cv2.cvtColor(colorize(frame.labels), cv2.COLOR_RGB2BGR)))
            n += 1
            if len(pending) > 48:
                for f in pending[:24]:
                    f.result()
                pending = pending[24:]
        for f in pending:
            f.result()
    seconds = time.perf_counter() - t0
    total_px = max(int(counts.sum()), 1)
    fractions = {CLASS_NAMES[k]: round(float(counts[k]) / total_px, 6) for k in range(NUM_CLASSES)}
    return {
        "frames": n,
        "seconds": round(seconds, 3),
        "fps": round(n / seconds, 2) if seconds > 0 else None,
        "class_pixel_fraction": fractions,
        "void_fraction": round(float(counts[255]) / total_px, 6),
        "classes_present": sum(1 for k in range(NUM_CLASSES) if counts[k] > 0),
        "missing_classes": [CLASS_NAMES[k] for k in range(NUM_CLASSES) if counts[k] == 0],
        "out": str(out),
        "split": split,
        "city": city,
    }


def read_pair(image_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an exported (or real Cityscapes) leftImg8bit image and its trainId map (RGB, labels)."""
    image_path = Path(image_path)
    parts = list(image_path.parts)
    try:
        k = len(parts) - 1 - parts[::-1].index("leftImg8bit")
    except ValueError:
        raise ValueError(f"{image_path} is not under a leftImg8bit/ folder") from None
    parts[k] = "gtFine"
    label_path = Path(*parts[:-1]) / image_path.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    lab = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if bgr is None or lab is None:
        raise FileNotFoundError(f"missing {image_path if bgr is None else label_path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), lab
