import json

import numpy as np
import pytest

from sqgan_core.cli import main
from sqgan_core.evaluation import evaluate, jpeg2000
from sqgan_core.imageio import write_labels, write_rgb


def _frames(n=2, h=176, w=320):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        lab = np.kron(rng.integers(0, 19, (h // 16, w // 16)), np.ones((16, 16), int)).astype(np.uint8)
        img = np.repeat(lab[..., None] * 12 + 6, 3, axis=2).astype(np.uint8)  # class = value // 12
        out.append((img, lab))
    return out


def test_jpeg2000_hits_the_rate_from_below():
    img = _frames(1)[0][0]
    for target in (0.05, 0.2):
        recon, bpp = jpeg2000(img, target)
        assert recon.shape == img.shape and bpp <= target * 1.001 and bpp > 0.5 * target


def test_evaluate_reports_every_figure(small_codec):
    seg_calls = []

    def oracle_like(rgb):  # a stand-in segmenter: predicts the label of the brightest channel band
        seg_calls.append(rgb.shape)
        return np.clip(rgb[..., 0] // 12, 0, 18).astype(np.uint8)

    r = evaluate(small_codec, _frames(), grid=[(0.5, 0.5)], segmenter=oracle_like, progress=False)
    row = r["grid"][0]
    for key in ("bpp", "bound_bpp", "miou_shat", "miou_seg_recon", "miou_seg_orig", "psnr", "ms_ssim"):
        assert row[key] is not None and np.isfinite(row[key]), key
    assert row["jpeg2000_matched"]["bpp"] <= row["bpp"] * 1.001
    assert row["jpeg2000_3x"]["bpp"] > row["jpeg2000_matched"]["bpp"]
    assert row["jpeg2000_3x"]["psnr"] > row["jpeg2000_matched"]["psnr"]
    assert row["miou_seg_orig"] == 1.0  # the stand-in recovers the synthetic labels from the original
    assert len(seg_calls) == 2 + 2 * 3  # originals once, then SQ-GAN + 2 JPEG 2000 per frame


def test_eval_command_marks_segmenter_metrics_unavailable(tmp_path, capsys):
    for i, (img, lab) in enumerate(_frames()):
        write_rgb(tmp_path / "leftImg8bit" / "val" / "c" / f"c_{i}_0_leftImg8bit.png", img)
        write_labels(tmp_path / "gtFine" / "val" / "c" / f"c_{i}_0_gtFine_labelTrainIds.png", lab)
    assert main(["eval", "--data", str(tmp_path), "--grid", "0.2,0.5", "--untrained", "--json",
                 "--segmenter", str(tmp_path / "none.pt")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["grid"][0]["miou_seg_recon"] is None and "not found" in r["unavailable"]["miou_seg_recon"]
    assert r["untrained"] is True and r["frames"] == 2
