"""`sqgan bag simulate | eval | transcode`: a recorded drive through every codec and the same link, and
the sqgan CompressedImage stream a vehicle logs, written and read back offline (no rclpy needed)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sqgan_core.cli import main

CAM = "/carla/ego_vehicle/rgb_front/image"
SEM = "/carla/ego_vehicle/semantic_segmentation_front/image"
IDS = "/carla/ego_vehicle/semantic_segmentation_front/train_ids"


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory) -> Path:
    """Three simulator frames in the CARLA ROS bridge layout (bgra8 camera, palette semantic, trainIds)."""
    bag = tmp_path_factory.mktemp("bags") / "sim3"
    assert main(["bag", "simulate", "-o", str(bag), "--frames", "3", "--stride", "4", "--seed", "9003"]) == 0
    return bag


def test_simulated_bag_is_an_ordinary_rosbag2_with_the_bridge_topics(sim_bag, capsys):
    capsys.readouterr()
    assert main(["bag", "info", str(sim_bag), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["storage"] == "mcap" and info["messages"] == 9
    assert {t["topic"]: t["count"] for t in info["topics"]} == {CAM: 3, SEM: 3, IDS: 3}
    assert "compression_mode: message" in (sim_bag / "metadata.yaml").read_text().lower()  # zstd per message


def test_palette_semantic_reads_as_the_exact_train_ids(sim_bag):
    """A CARLA-bridge bag's CityScapesPalette image gives the same trainIds as the exact mono8 topic, and
    the bgra8 camera comes out as RGB."""
    from ros2_ws.bag_frames import BagFrameReader

    by_palette = list(BagFrameReader(sim_bag, CAM, SEM))
    by_ids = list(BagFrameReader(sim_bag, CAM, IDS))
    assert len(by_palette) == len(by_ids) == 3
    for a, b in zip(by_palette, by_ids):
        assert a.stamp_ns == b.stamp_ns and a.rgb.shape == (256, 512, 3)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.rgb, b.rgb)
    assert len({f.stamp_ns for f in by_palette}) == 3


def test_bag_frames_name_what_is_missing(sim_bag):
    from ros2_ws.bag import BagError
    from ros2_ws.bag_frames import BagFrameReader

    with pytest.raises(BagError, match=f"no topic /nope.*{CAM}"):
        list(BagFrameReader(sim_bag, "/nope"))
    with pytest.raises(BagError, match="no bag at"):
        list(BagFrameReader(sim_bag.parent / "missing", CAM))


def _lossy_profile(tmp_path: Path) -> Path:
    path = tmp_path / "heavy.yaml"
    path.write_text("name: heavy_40pct\ndescription: Bernoulli 40% loss\nseed: 3\n"
                    "loss: {model: bernoulli, p: 0.4}\ndelay_ms: 10\n")
    return path


def test_eval_writes_csv_json_report_and_compares_codecs_under_loss(sim_bag, tmp_path, capsys):
    out = tmp_path / "report"
    capsys.readouterr()
    rc = main(["bag", "eval", str(sim_bag), "--camera", CAM, "--semantic", SEM, "--codec", "jpeg,webp",
               "--grid", "0.5,0.5;1,1", "--extra-rates", "2", "--link", str(_lossy_profile(tmp_path)),
               "--link-runs", "3", "--segmenter", "none", "--examples", "1", "--no-progress", "--json", "-o", str(out)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert {"report.md", "summary.json", "frames.csv", "loss.png", "rd_psnr.png", "rd_ms_ssim.png",
            "strip_0000.png"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "summary.json").read_text()) == result
    series = {(s["codec"], s["rate"], s["link"]): s for s in result["series"]}
    sq_clean, sq_lossy = series[("sqgan", "m=0.5,0.5", "clean")], series[("sqgan", "m=0.5,0.5", "heavy_40pct")]
    assert sq_clean["frames"] == 3 and sq_lossy["frames"] == 9  # three realisations of the lossy link
    assert sq_clean["frames_delivered"] == 3 and sq_clean["miou_shat"] is not None
    assert sq_lossy["link_stats"]["dropped_loss"] > 0 and sq_lossy["tokens_lost"] > 0
    for name in ("jpeg", "webp"):
        clean, lossy = series[(name, "matched m=0.5,0.5", "clean")], series[(name, "matched m=0.5,0.5", "heavy_40pct")]
        # matched rate, every byte on the wire counted: never above SQ-GAN's
        assert clean["bpp"] <= sq_clean["bpp"] * 1.0001
        # a classic frame needs every packet: at 40 % loss most are lost, SQ-GAN's only lose tokens
        assert lossy["frames_delivered"] < sq_lossy["frames_delivered"]
        assert (name, "2x m=1,1", "clean") in series and (name, "2x m=1,1", "heavy_40pct") not in series
    # the segmenter was switched off: its figures are null and say why, never guessed
    assert sq_clean["miou_seg"] is None and "--segmenter none" in result["unavailable"]["miou_seg"]
    assert "pretrained" in result["unavailable"]["lpips"] and "Inception" in result["unavailable"]["fid"]
    assert set(result["bd_rate"]["psnr"]) == {"jpeg", "webp"}
    with (out / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # sqgan: 2 rates x 3 frames clean + 9 lossy; each classic: 3 rates x 3 clean + 9 lossy
    assert len(rows) == (6 + 9) + 2 * (9 + 9)
    report = (out / "report.md").read_text()
    assert "heavy_40pct" in report and "| SQ-GAN |" in report and "BD-rate" in report


def test_eval_refuses_bad_requests_with_one_line(sim_bag, tmp_path, capsys):
    assert main(["bag", "eval", str(sim_bag), "--camera", "/nope", "-o", str(tmp_path / "r")]) == 2
    assert "no topic /nope" in capsys.readouterr().err
    assert main(["bag", "eval", str(sim_bag), "--camera", CAM, "--link", "nope", "-o", str(tmp_path / "r")]) == 2
    assert "--link" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bag", "eval", str(sim_bag), "--camera", CAM, "--codec", "bpg", "-o", str(tmp_path / "r")])
    assert "unknown codec" in capsys.readouterr().err


def test_transcode_to_the_vehicle_stream_and_back(sim_bag, tmp_path, capsys):
    """Camera + semantic -> the sqgan CompressedImage stream (other topics copied), which decodes without
    a vehicle: by `bag eval` on the stream, and by `transcode --decode` into viewable images."""
    from ros2_ws.bag_frames import BagFrameReader
    from sqgan_core.codec import Codec
    from sqgan_core.checkpoint import DEFAULT_CHECKPOINT

    enc = tmp_path / "enc"
    capsys.readouterr()
    assert main(["bag", "transcode", str(sim_bag), "-o", str(enc), "--camera", CAM, "--semantic", SEM]) == 0
    assert json.loads(capsys.readouterr().out)["frames_encoded"] == 3
    assert main(["bag", "info", str(enc), "--json"]) == 0
    topics = {t["topic"]: t for t in json.loads(capsys.readouterr().out)["topics"]}
    assert set(topics) == {CAM + "/sqgan", IDS}  # camera and its semantic are replaced by the stream
    assert topics[CAM + "/sqgan"]["type"] == "sensor_msgs/msg/CompressedImage"
    stream = list(BagFrameReader(enc, CAM + "/sqgan"))
    codec = Codec.from_checkpoint(DEFAULT_CHECKPOINT)
    frames = list(BagFrameReader(sim_bag, CAM, SEM))
    ref = codec.decode(codec.encode(frames[0].rgb, frames[0].labels, 0.5, 0.5).data)
    assert np.array_equal(codec.decode(stream[0].sqgan).image, ref.image)

    assert main(["bag", "eval", str(enc), "--camera", CAM + "/sqgan", "-o", str(tmp_path / "stream"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "sqgan_stream" and summary["stream"]["frames_decoded"] == 3
    assert 0 < summary["stream"]["bpp"] < 0.2 and (tmp_path / "stream" / "report.md").is_file()

    dec = tmp_path / "dec"
    assert main(["bag", "transcode", str(enc), "-o", str(dec), "--decode"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_decoded"] == 3
    images = list(BagFrameReader(dec, CAM + "/decoded/image", CAM + "/decoded/semantic"))
    assert len(images) == 3 and np.array_equal(images[0].rgb, ref.image)
    assert np.array_equal(images[0].labels, ref.labels)


def test_bd_rates_use_each_curves_pareto_front():
    """Noisy segmenter mIoU over a few frames can fall as the rate rises; BD-rate needs a monotone curve,
    and a user never picks a setting that a cheaper one beats, so such points are dropped, not fudged."""
    from ros2_ws.bag_eval import bd_rates, pareto_front

    assert pareto_front([(0.2, 0.5), (0.1, 0.4), (0.3, 0.45), (0.4, 0.6)]) == [(0.1, 0.4), (0.2, 0.5), (0.4, 0.6)]
    summaries = [{"codec": c, "link": "clean", "bpp": r, "psnr": q, "ms_ssim": None, "miou_seg": None,
                  "miou_seg_vs_orig": None, "miou_shat": None}
                 for c, pts in (("sqgan", [(0.05, 20.0), (0.1, 22.0), (0.2, 21.5), (0.3, 24.0)]),
                                ("jpeg", [(0.1, 20.0), (0.2, 22.0), (0.6, 24.0)])) for r, q in pts]
    table = bd_rates(summaries, "clean")
    assert table["psnr"]["jpeg"]["bd_rate_pct"] < -40  # SQ-GAN reaches each PSNR at about half JPEG's rate
    assert table["miou_seg"]["jpeg"]["bd_rate_pct"] is None and table["miou_seg"]["jpeg"]["reason"]
