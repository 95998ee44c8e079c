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


@pytest.mark.parametrize("node, params, message", [
    ("vehicle_node", ["m_x:=7.0", "secret_key:={k}/vehicle_0.key_secret", "server_key:={k}/rsu.key"],
     "parameter m_x must be a number in [0, 1]"),
    ("vehicle_node", ["secret_key:={k}/missing.key_secret", "server_key:={k}/rsu.key"], "missing.key_secret"),
    ("rsu_node", ["secret_key:={k}/rsu.key_secret", "allow_dir:={junk}"], "junk.key"),
])
def test_start_up_failures_are_one_line_not_a_traceback(node, params, message, keyset, ros_env, tmp_path):
    import subprocess
    import sys

    junk = tmp_path / "allowed"
    junk.mkdir()
    (junk / "junk.key").write_text("this is not a certificate\n")
    args = [a.format(k=keyset, junk=junk) for a in params]
    proc = subprocess.run([sys.executable, "-m", f"ros2_ws.{node}", "--ros-args", "-p", "model:=untrained:small",
                           *[x for a in args for x in ("-p", a)]], env=ros_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_rate_table_must_be_for_the_running_model(tmp_path, small_codec):
    import pytest

    from ros2_ws.vehicle_node import load_rate_table
    from sqgan_core.streaming.rate_control import RateTable, Setting, TableRow

    rows = [TableRow(Setting(0.2, 0.2, 1024, 1024), 2000.0, 0.3, 20.0)]
    RateTable(rows, small_codec.model_id, 4, 8192).save(tmp_path / "ok.json")
    assert load_rate_table(str(tmp_path / "ok.json"), small_codec).rows == rows
    RateTable(rows, small_codec.model_id ^ 1, 4, 8192).save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="measured for model"):
        load_rate_table(str(tmp_path / "other.json"), small_codec)
    with pytest.raises(ValueError, match="missing.json"):
        load_rate_table(str(tmp_path / "missing.json"), small_codec)
