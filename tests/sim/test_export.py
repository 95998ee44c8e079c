"""Cityscapes-layout export: names, folders, and labels that read back exactly."""
from __future__ import annotations

import cv2
import numpy as np

from sqgan_core.labels import CLASS_NAMES, decolorize
from sim.embedded import EmbeddedSimulator
from sim.export import export_frames, read_pair


def test_export_layout_and_read_back(tmp_path, make_small):
    cfg = make_small(seed=8)
    with EmbeddedSimulator(cfg) as sim:
        frames = [sim.step() for _ in range(3)]
    stats = export_frames(iter(frames), tmp_path, split="val", city="simtown", seq=8, progress=False)
    imgs = sorted((tmp_path / "leftImg8bit" / "val" / "simtown").glob("*_leftImg8bit.png"))
    assert [p.name for p in imgs] == [f"simtown_000008_{i:06d}_leftImg8bit.png" for i in range(3)]
    for f, p in zip(frames, imgs):
        rgb, lab = read_pair(p)
        assert np.array_equal(rgb, f.rgb) and np.array_equal(lab, f.labels)
        color = cv2.cvtColor(cv2.imread(str(p).replace("leftImg8bit", "gtFine").replace(
            "gtFine.png", "gtFine_color.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(decolorize(color), f.labels)
    assert stats["frames"] == 3
    assert set(stats["class_pixel_fraction"]) == set(CLASS_NAMES)
    assert abs(sum(stats["class_pixel_fraction"].values()) + stats["void_fraction"] - 1.0) < 1e-4
    counts = sum(np.bincount(f.labels.ravel(), minlength=256) for f in frames)
    assert stats["class_pixel_fraction"]["road"] == round(counts[0] / counts.sum(), 6)
