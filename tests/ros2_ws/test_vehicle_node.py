"""The vehicle node's segmenter hook (the node's message flow is covered end to end in test_rsu_node)."""
import numpy as np
import pytest

from ros2_ws.vehicle_node import load_segmenter


def test_missing_segmenter_weights_give_a_reason_not_a_crash(tmp_path):
    seg, why = load_segmenter(str(tmp_path / "none.pt"))
    assert seg is None and "not found" in why


def test_a_segmenter_checkpoint_loads_as_a_callable(tmp_path):
    pytest.importorskip("mmseg")
    import torch

    from sqgan_core.segmentation.segmenter import build_config, save_segmenter
    cfg = build_config()  # prepares mmseg for mmcv-lite before mmseg.apis is imported
    from mmseg.apis import init_model
    torch.manual_seed(0)
    save_segmenter(tmp_path / "s.pt", init_model(cfg, None, device="cpu"), cfg, {})
    seg, why = load_segmenter(str(tmp_path / "s.pt"))
    assert why == "" and seg(np.zeros((64, 128, 3), np.uint8)).shape == (64, 128)
