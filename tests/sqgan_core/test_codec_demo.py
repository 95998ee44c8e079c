import json

import numpy as np
import pytest

from sqgan_core.cli import main
from sqgan_core.data import CityscapesPairs, DatasetError
from sqgan_core.imageio import write_labels, write_rgb


def make_cityscapes(root, n=3, h=64, w=128, split="val", city="town01"):
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"{city}_{i:06d}_000019"
        write_rgb(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
                  rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        lab = np.kron(rng.integers(0, 19, (h // 16, w // 16)), np.ones((16, 16), int)).astype(np.uint8)
        write_labels(root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png", lab)


def test_demo_writes_summary_strip_and_plot(tmp_path, capsys):
    make_cityscapes(tmp_path / "data")
    rc = main(["codec-demo", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--frames", "2",
               "--rates", "0.2,0.2;0.5,0.5", "--untrained"])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["untrained"] is True and "UNTRAINED" in summary["note"]
    assert [(r["mx"], r["ms"]) for r in summary["rates"]] == [(0.2, 0.2), (0.5, 0.5)]
    for r in summary["rates"]:
        assert r["frames"] == 2 and r["max_excess_bits_over_bound"] <= 128
        assert r["bound_bpp"] <= r["paper_bpp"]  # N = floor(mK) <= mK
    assert summary["rates"][1]["bound_bpp"] == pytest.approx(summary["rates"][1]["paper_bpp"])  # 0.5 * 32 exact
    assert summary["rates"][0]["mean_bits"] < summary["rates"][1]["mean_bits"]
    assert (tmp_path / "out" / "strip.png").stat().st_size > 0 and (tmp_path / "out" / "rate.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "untrained" in out and "bound" in out


def test_loader_reports_missing_labels_and_empty_dirs(tmp_path):
    with pytest.raises(DatasetError, match="leftImg8bit"):
        CityscapesPairs(tmp_path)
    make_cityscapes(tmp_path, n=2)
    assert len(CityscapesPairs(tmp_path)) == 2 and len(CityscapesPairs(tmp_path, "val")) == 2
    with pytest.raises(DatasetError, match="no \\*_leftImg8bit.png images in split 'train'"):
        CityscapesPairs(tmp_path, "train")
    next((tmp_path / "gtFine").rglob("*.png")).unlink()
    with pytest.raises(DatasetError, match="1 images have no"):
        CityscapesPairs(tmp_path)


def test_demo_on_missing_data_is_a_clean_error(tmp_path, capsys):
    assert main(["codec-demo", "--data", str(tmp_path / "nothing"), "--untrained"]) == 2
    assert "leftImg8bit" in capsys.readouterr().err
