"""The segmenter's real mmsegmentation path: config, weights-only export/load, inference shape and
values. Training for real takes minutes to hours; one slow test runs two mmengine iterations."""
import json

import numpy as np
import pytest
import torch

from sqgan_core.cli import main
from sqgan_core.imageio import read_labels, write_labels, write_rgb
from sqgan_core.labels import CLASS_NAMES

pytest.importorskip("mmseg", reason="mmsegmentation is not installed")

from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError, build_config, save_segmenter  # noqa: E402


@pytest.fixture(scope="module")
def random_segmenter(tmp_path_factory):
    """Fast-SCNN with random weights, exported and reloaded exactly like a trained one."""
    from mmseg.apis import init_model
    cfg = build_config()
    torch.manual_seed(0)
    model = init_model(cfg, None, device="cpu")
    path = tmp_path_factory.mktemp("seg") / "seg.pt"
    save_segmenter(path, model, cfg, {"note": "random weights for tests"})
    return path


def test_config_is_fast_scnn_for_19_classes_at_native_resolution():
    cfg = build_config(iters=10, crop=(256, 512))
    assert cfg.model.backbone.type == "FastSCNN" and cfg.model.decode_head.num_classes == 19
    assert cfg.model.backbone.norm_cfg["type"] == "BN"
    assert not any(step["type"] == "Resize" for step in cfg.test_pipeline)
    assert cfg.train_dataloader.dataset.data_prefix["seg_map_path"] == "gtFine/train"


def test_export_load_and_predict(random_segmenter):
    seg = Segmenter.load(random_segmenter)
    assert seg.metadata["note"].startswith("random")
    rgb = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    labels = seg(rgb)
    assert labels.shape == (128, 256) and labels.dtype == np.uint8 and labels.max() < 19
    with pytest.raises(ValueError, match="uint8 RGB"):
        seg(rgb.astype(np.float32))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(SegmenterError, match="not found"):
        Segmenter.load(tmp_path / "none.pt")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(SegmenterError, match="not an sqgan segmenter"):
        Segmenter.load(tmp_path / "x.pt")


def test_segment_command(random_segmenter, tmp_path, capsys):
    write_rgb(tmp_path / "i.png", np.zeros((64, 128, 3), np.uint8))
    assert main(["segment", str(tmp_path / "i.png"), "-o", str(tmp_path / "l.png"), "--model", str(random_segmenter),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["height"] == 64 and read_labels(tmp_path / "l.png").shape == (64, 128)


@pytest.mark.slow
def test_two_training_iterations_export_a_loadable_model(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(2):
            write_rgb(tmp_path / "d" / "leftImg8bit" / split / "c" / f"c_{i}_0_leftImg8bit.png",
                      rng.integers(0, 256, (256, 512, 3), dtype=np.uint8))
            write_labels(tmp_path / "d" / "gtFine" / split / "c" / f"c_{i}_0_gtFine_labelTrainIds.png",
                         rng.integers(0, 19, (256, 512)).astype(np.uint8))
    assert main(["train", "segmenter", "--data", str(tmp_path / "d"), "--work-dir", str(tmp_path / "w"),
                 "-o", str(tmp_path / "s.pt"), "--iters", "2", "--batch-size", "2", "--val-interval", "2"]) == 0
    assert Segmenter.load(tmp_path / "s.pt").metadata["iters"] == 2


def test_bench_segmenter_reports_latency_and_miou(random_segmenter, tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(3):
        write_rgb(tmp_path / "leftImg8bit" / "val" / "c" / f"c_{i}_0_leftImg8bit.png",
                  rng.integers(0, 256, (96, 160, 3), dtype=np.uint8))
        write_labels(tmp_path / "gtFine" / "val" / "c" / f"c_{i}_0_gtFine_labelTrainIds.png",
                     rng.integers(0, 19, (96, 160)).astype(np.uint8))
    assert main(["bench", "segmenter", "--model", str(random_segmenter), "--data", str(tmp_path), "--frames", "3",
                 "--warmup", "1", "--no-cuda", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    cpu = r["devices"]["cpu"]
    assert r["frames"] == 3 and (r["height"], r["width"]) == (96, 160)
    assert 0 < cpu["latency_ms"]["p50"] <= cpu["latency_ms"]["p95"]
    assert 0 <= cpu["miou"] <= 1 and set(cpu["iou_per_class"]) <= set(CLASS_NAMES)
    assert r["devices"]["cuda"] == {"available": False}


def test_bench_segmenter_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["bench", "segmenter", "--model", str(tmp_path / "nope.pt"), "--frames", "1", "--json"]) == 2
    assert "not found" in capsys.readouterr().err
