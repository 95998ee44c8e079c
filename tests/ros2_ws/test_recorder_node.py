"""The recorder's segmenter figures: computed from real segmenter output, or reported unavailable with
the reason; never a placeholder number."""
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")

from ros2_ws.recorder_node import segmenter_miou  # noqa: E402
from sqgan_core.segmentation import segmenter as segmenter_module  # noqa: E402


class _ColourSegmenter:
    """Reads the class straight from the red channel: exact on originals drawn that way."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return (rgb[..., 0] // 10).astype(np.uint8)


def _pairs(n=3):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        gt = rng.integers(0, 19, (16, 32)).astype(np.uint8)
        orig = np.repeat((gt * 10)[..., None], 3, axis=2).astype(np.uint8)
        recon = orig.copy()
        recon[:8] = 0  # the top half decoded as class 0
        out.append((orig, recon, gt))
    return out


def test_miou_on_reconstruction_and_original(monkeypatch):
    monkeypatch.setattr(segmenter_module.Segmenter, "load", classmethod(lambda cls, path=None, device="cpu":
                                                                       _ColourSegmenter()))
    r = segmenter_miou(_pairs(), "")
    assert r["orig"] == pytest.approx(1.0) and 0.2 < r["recon"] < 0.9 and r["frames"] == 3


def test_unavailable_figures_carry_the_reason(tmp_path):
    assert "disabled" in segmenter_miou(_pairs(), "none")["error"]
    assert "no decoded frame" in segmenter_miou([], "")["error"]
    missing = tmp_path / "nope.pt"
    r = segmenter_miou(_pairs(), str(missing))
    assert "recon" not in r and str(missing) in r["error"]


def _recorder_with(diag: dict[str, dict[str, str]], link_stats, out_dir):
    """A PipelineRecorder with only the state write_summary reads: no ROS node, no subscriptions."""
    import logging

    from ros2_ws.recorder_node import PipelineRecorder, _Track

    rec = PipelineRecorder.__new__(PipelineRecorder)
    rec.get_logger = lambda: logging.getLogger("test_recorder")
    rec.p = {"out_dir": str(out_dir), "link_stats": str(link_stats), "segmenter": "none", "profile": "bursty_15pct",
             "model": "untrained:small"}
    rec.vids = [0, 1]
    rec.tracks = {v: _Track() for v in rec.vids}
    rec.latencies, rec.psnrs, rec.seg_pairs, rec.strip = [], [], [], []
    rec.cm = np.zeros((19, 20), np.int64)
    rec.diag = diag
    return rec


def test_summary_loss_figures_follow_their_single_definitions(tmp_path):
    """Known counters in, docs/pipeline.md's definitions out ("Counting loss and rate"): packets_lost is
    sent - arrived (= the link's drops less its duplicates once the stream has stopped), never the RSU's
    packets_missing or the link's channel-model drops alone; frames_lost_on_link is lost + unseen."""
    import json
    from pathlib import Path

    diag = {
        "sqgan vehicle: vehicle_0": {"packets_sent": "100", "frames_encoded": "20", "bytes_sent": "5000",
                                     "pixels_sent": "400000"},
        "sqgan vehicle: vehicle_1": {"packets_sent": "50", "frames_encoded": "10", "bytes_sent": "2500",
                                     "pixels_sent": "200000"},
        "sqgan rsu": {"rejected_spoofed_vehicle": "4", "refused_unlisted_key": "2"},  # RSU-wide: not a vehicle's
        "sqgan rsu: vehicle_0": {"packets_arrived": "85", "packets_missing": "9", "frames_decoded": "18",
                                 "frames_lost": "1", "frames_unseen": "1"},
        "sqgan rsu: vehicle_1": {"packets_arrived": "43", "packets_missing": "5", "frames_decoded": "9",
                                 "frames_lost": "0", "frames_unseen": "1"},
    }
    # the link dropped 23 (17 of them by the channel model) and duplicated one: 22 never arrived
    link = {"received": 150, "forwarded": 128, "dropped_total": 23, "dropped_loss": 17, "dropped_queue": 6,
            "duplicated": 1}
    (tmp_path / "link_stats.json").write_text(json.dumps(link))
    s = _recorder_with(diag, tmp_path / "link_stats.json", tmp_path / "out").write_summary("frames")

    assert (s["packets_sent"], s["packets_arrived"]) == (150, 128)
    assert s["packets_lost"] == 150 - 128 == 22
    assert (s["link_packets_dropped"], s["link_packets_duplicated"]) == (23, 1)
    assert s["packets_lost"] == s["link_packets_dropped"] - s["link_packets_duplicated"]  # the stream has stopped
    assert s["packets_missing"] == 9 + 5  # a figure of its own, not packets_lost
    assert s["frames_lost_on_link"] == (1 + 1) + (0 + 1)
    assert (s["frames_sent"], s["frames_decoded"]) == (30, 27)
    assert s["mean_bpp"] == pytest.approx(8 * 7500 / 600000)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["packets_lost"] == 22

    # every figure docs/pipeline.md defines as the summary's is in it, under that name
    doc = (Path(__file__).resolve().parents[2] / "docs" / "pipeline.md").read_text()
    table = doc.split("## Counting loss and rate", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = [r.split("|")[1:4] for r in table.splitlines()[2:]]
    figures = [name.strip().split("`")[1] for name, where, _ in rows if "summary" in where]
    assert {"packets_lost", "frames_lost_on_link", "mean_bpp"} <= set(figures)
    assert all(f in s for f in figures), [f for f in figures if f not in s]
    # (dropped_total is named link_packets_dropped in the summary, as the table says)
    assert "`link_packets_dropped` in the summary" in doc
