import json
from pathlib import Path

import numpy as np
import pytest

from sqgan_core.checkpoint import DEFAULT_CHECKPOINT
from sqgan_core.errors import CommandError
from sqgan_core.cli import eval_command, main
from sqgan_core import heldout
from sqgan_core.evaluation import (SAFETY_CLASSES, acceptance, compare, evaluate, jpeg2000, json_safe,
                                   model_path_label, safety_iou)
from sqgan_core.imageio import write_labels, write_rgb
from sqgan_core.labels import CLASS_NAMES
from sqgan_core.metrics import confusion

REPO = Path(__file__).resolve().parents[2]


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
    for key in ("iou_shat", "iou_seg_recon", "iou_seg_orig"):
        assert list(row[key]) == list(SAFETY_CLASSES), key
    assert row["iou_seg_orig"]["person"] == 1.0 and list(row["jpeg2000_3x"]["iou_seg"]) == list(SAFETY_CLASSES)
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
                 "--segmenter", "none", "--plot", str(tmp_path / "rd.png")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["grid"][0]["miou_seg_recon"] is None and "disabled" in r["unavailable"]["miou_seg_recon"]
    assert r["grid"][0]["iou_seg_orig"] is None and "disabled" in r["unavailable"]["iou_seg_orig"]
    assert r["source"] == str(tmp_path) and "held_out" not in r  # --data: the directory, as before
    assert r["untrained"] is True and r["frames"] == 2
    from PIL import Image

    assert Image.open(tmp_path / "rd.png").size[0] > 1000  # the three rate/quality panels, drawn without a segmenter


def _row(mx=0.5, ms=0.5, psnr=24.0, ssim=0.9, shat=0.6, orig=0.6, j1_psnr=23.0, j1_ssim=0.85, j3=0.5,
         iou_orig=0.3):
    ious = None if iou_orig is None else {name: iou_orig for name in SAFETY_CLASSES}
    return {"mx": mx, "ms": ms, "bits_over_bound": 0.7, "psnr": psnr, "ms_ssim": ssim, "miou_shat": shat,
            "miou_seg_recon": None if orig is None else 0.5, "miou_seg_orig": orig, "iou_seg_orig": ious,
            "jpeg2000_matched": {"psnr": j1_psnr, "ms_ssim": j1_ssim, "miou_seg": None if j3 is None else 0.4},
            "jpeg2000_3x": {"miou_seg": j3}}


ACCEPTANCE_CHECKS = ("psnr_vs_jpeg2000", "ms_ssim_vs_jpeg2000", "miou_shat", "miou_shat_vs_jpeg2000_3x",
                     "miou_seg_orig", "iou_seg_orig_person", "iou_seg_orig_car", "iou_seg_orig_traffic_light",
                     "iou_seg_orig_traffic_sign")


def test_acceptance_checks_each_target_of_issue_11_at_the_middle_rate():
    a = acceptance([_row(0.2, 0.2, psnr=10.0, shat=0.1), _row()])
    assert a["at"] == [0.5, 0.5] and all(a[k]["pass"] is True for k in ACCEPTANCE_CHECKS)
    assert a["psnr_vs_jpeg2000"] == {"value": 24.0, "target": 23.0, "pass": True}
    assert a["miou_shat"] == {"value": 0.6, "target": 0.5, "pass": True}
    assert a["miou_shat_vs_jpeg2000_3x"] == {"value": 0.6, "target": 0.5, "pass": True}
    assert a["iou_seg_orig_traffic_light"] == {"value": 0.3, "target": 0.2, "pass": True}
    assert "iou_seg_orig_rider" not in a  # reported per row, but not a target
    # each figure below its target fails its own check and only that one
    for row, failing in ((_row(psnr=22.0), "psnr_vs_jpeg2000"), (_row(ssim=0.8), "ms_ssim_vs_jpeg2000"),
                         (_row(shat=0.45, j3=0.4), "miou_shat"), (_row(shat=0.55, j3=0.55), "miou_shat_vs_jpeg2000_3x"),
                         (_row(orig=0.49), "miou_seg_orig")):
        a = acceptance([row])
        assert [k for k in ACCEPTANCE_CHECKS if a[k]["pass"] is False] == [failing]
    row = _row()
    row["iou_seg_orig"] = {**row["iou_seg_orig"], "car": 0.2}  # at the target is not above it
    assert acceptance([row])["iou_seg_orig_car"]["pass"] is False


def test_acceptance_says_unknown_rather_than_pass_without_a_segmenter():
    a = acceptance([_row(orig=None, j3=None, iou_orig=None)])
    for key in ("miou_shat_vs_jpeg2000_3x", "miou_seg_orig", "iou_seg_orig_person", "iou_seg_orig_traffic_sign"):
        assert a[key]["pass"] is None, key
    assert a["iou_seg_orig_person"]["value"] is None
    assert a["miou_shat"]["pass"] is True and a["psnr_vs_jpeg2000"]["pass"] is True
    row = _row()
    row["iou_seg_orig"] = {**row["iou_seg_orig"], "person": None}  # no person in any frame: unknown, not failed
    assert acceptance([row])["iou_seg_orig_person"] == {"value": None, "target": 0.2, "pass": None}
    a = acceptance([_row(0.2, 0.2)])  # (0.5, 0.5) not measured: every check unknown
    assert all(a[k]["value"] is None and a[k]["pass"] is None for k in ACCEPTANCE_CHECKS)


def test_evaluate_reports_acceptance(small_codec):
    r = evaluate(small_codec, _frames(1), grid=[(0.5, 0.5)], progress=False, with_jpeg2000=False)
    a = r["acceptance"]
    assert a["miou_shat"]["value"] == pytest.approx(r["grid"][0]["miou_shat"])
    assert a["psnr_vs_jpeg2000"] == {"value": pytest.approx(r["grid"][0]["psnr"]), "target": None, "pass": None}


def _road_and_cars(n=1, h=176, w=320):
    """Frames with road and cars only: no person, rider, traffic light or sign anywhere."""
    lab = np.zeros((h, w), np.uint8)
    lab[:, w // 2:] = CLASS_NAMES.index("car")
    img = np.repeat(lab[..., None] * 12 + 6, 3, axis=2).astype(np.uint8)
    return [(img, lab)] * n


def test_safety_class_iou_is_null_for_classes_no_frame_contains(small_codec):
    def oracle(rgb):
        return np.clip(rgb[..., 0] // 12, 0, 18).astype(np.uint8)

    r = evaluate(small_codec, _road_and_cars(), grid=[(0.5, 0.5)], segmenter=oracle, progress=False)
    json.dumps(r, allow_nan=False)  # valid JSON: no NaN anywhere
    row = r["grid"][0]
    assert row["iou_seg_orig"] == {"person": None, "rider": None, "car": 1.0, "traffic light": None,
                                   "traffic sign": None}
    for ious in (row["iou_shat"], row["iou_seg_recon"], row["jpeg2000_matched"]["iou_seg"]):
        assert ious["person"] is None and ious["traffic sign"] is None and 0.0 <= ious["car"] <= 1.0


def test_safety_iou_and_json_safe_never_write_nan():
    lab = np.full((4, 4), CLASS_NAMES.index("person"), np.uint8)
    pred = lab.copy()
    pred[:2] = CLASS_NAMES.index("car")  # half the persons seen as cars: car predicted but absent from the truth
    ious = safety_iou(confusion(pred, lab))
    assert ious == {"person": 0.5, "rider": None, "car": None, "traffic light": None, "traffic sign": None}
    assert json_safe({"psnr": float("inf"), "rows": [np.float64("nan"), 1.5], "n": 3}) == \
        {"psnr": None, "rows": [None, 1.5], "n": 3}


def test_model_path_is_relative_to_the_repository_inside_it_and_as_given_outside(tmp_path, monkeypatch):
    assert model_path_label(DEFAULT_CHECKPOINT) == "sqgan_core/weights/sqgan_small.pt"
    monkeypatch.chdir(REPO / "docs")
    assert model_path_label("../sqgan_core/weights/sqgan_small.pt") == "sqgan_core/weights/sqgan_small.pt"
    outside = tmp_path / "model.pt"
    assert model_path_label(outside) == str(outside)
    assert model_path_label("runs_elsewhere.pt") == "docs/runs_elsewhere.pt"  # relative to cwd, inside the repo


def test_compare_calls_better_only_when_both_miou_shat_and_psnr_improve():
    def rows(shat, psnr, at=(0.5, 0.5)):
        return [{"mx": 0.2, "ms": 0.2, "miou_shat": 0.9, "psnr": 40.0, "ms_ssim": 0.99, "bpp": 0.01},
                {"mx": at[0], "ms": at[1], "miou_shat": shat, "psnr": psnr, "ms_ssim": 0.8, "bpp": 0.04}]

    c = compare(rows(0.45, 21.0), rows(0.40, 20.0))
    assert c["better"] is True and c["at"] == [0.5, 0.5]
    assert c["miou_shat"] == {"candidate": 0.45, "baseline": 0.40, "delta": pytest.approx(0.05)}
    assert c["psnr"]["delta"] == pytest.approx(1.0) and c["ms_ssim"]["delta"] == 0.0 and c["bpp"]["delta"] == 0.0
    assert compare(rows(0.45, 19.0), rows(0.40, 20.0))["better"] is False  # worse PSNR
    assert compare(rows(0.35, 21.0), rows(0.40, 20.0))["better"] is False  # worse mIoU(s_hat)
    assert compare(rows(0.40, 20.0), rows(0.40, 20.0))["better"] is False  # a tie is not better
    with pytest.raises(ValueError, match="not in both grids"):
        compare(rows(0.45, 21.0, at=(1.0, 1.0)), rows(0.40, 20.0))


def _write_dataset(root, frames):
    for i, (img, lab) in enumerate(frames):
        write_rgb(root / "leftImg8bit" / "val" / "c" / f"c_{i}_0_leftImg8bit.png", img)
        write_labels(root / "gtFine" / "val" / "c" / f"c_{i}_0_gtFine_labelTrainIds.png", lab)


def test_eval_baseline_is_measured_on_the_same_frames_and_compared_at_the_middle_rate(tmp_path, capsys):
    _write_dataset(tmp_path, _frames(1))
    # the candidate is the shipped file named by its absolute path, the baseline the same file as `shipped`:
    # identical figures, so nothing is better, and both are named relative to the repository
    assert main(["eval", "--data", str(tmp_path), "--grid", "0.2,0.2", "--model", str(DEFAULT_CHECKPOINT),
                 "--baseline", "shipped", "--no-jpeg2000", "--segmenter", "none", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == r["baseline"]["model"] == "sqgan_core/weights/sqgan_small.pt"
    assert [(g["mx"], g["ms"]) for g in r["grid"]] == [(0.2, 0.2), (0.5, 0.5)]  # the comparison point is added
    assert [(g["mx"], g["ms"]) for g in r["baseline"]["grid"]] == [(0.2, 0.2), (0.5, 0.5)]
    assert "jpeg2000_matched" not in r["baseline"]["grid"][0]
    c = r["comparison"]
    assert c["at"] == [0.5, 0.5] and c["better"] is False
    for key in ("miou_shat", "psnr", "ms_ssim", "bpp"):
        assert c[key]["candidate"] == pytest.approx(c[key]["baseline"]) and c[key]["delta"] == pytest.approx(0.0)
    assert c["psnr"]["candidate"] == pytest.approx(r["grid"][1]["psnr"])


def test_eval_names_a_missing_baseline(tmp_path, capsys):
    _write_dataset(tmp_path, _frames(1))
    assert main(["eval", "--data", str(tmp_path), "--untrained", "--baseline", str(tmp_path / "nope.pt")]) == 2
    assert "--baseline" in capsys.readouterr().err


# ---- held-out frames: every scenario, each from its own evaluation seed -----------------------------------

SCENARIOS = sorted(p.stem for p in (REPO / "configs" / "scenarios").glob("*.yaml") if not p.stem.startswith("hazard_"))


def test_scenario_plan_splits_the_frames_over_every_scenario_with_its_own_seed():
    assert SCENARIOS == ["default", "dense_urban", "foggy_morning", "rainy_night"]
    plan = heldout.scenario_plan("all", 9001, 10)
    assert [(s.scenario, s.seed, s.frames) for s in plan] == [
        ("default", 9001, 3), ("dense_urban", 9002, 3), ("foggy_morning", 9003, 2), ("rainy_night", 9004, 2)]
    assert all(s.path.is_file() for s in plan)
    assert [(s.scenario, s.seed) for s in heldout.scenario_plan("all", 9001, 2)] == [
        ("default", 9001), ("dense_urban", 9002)]  # fewer frames than scenarios: no empty simulator runs
    [one] = heldout.scenario_plan("rainy_night", 9001, 10)
    assert (one.scenario, one.seed, one.frames) == ("rainy_night", 9001, 10)
    with pytest.raises(CommandError, match="unknown scenario 'sunny'.*rainy_night"):
        heldout.scenario_plan("sunny", 9001, 10)


class _FakeSource:
    """Stands in for the simulator: each frame's labels say which seed and which tick it comes from."""

    def __init__(self, log, scenario, seed):
        self.log, self.tick, self.seed = log, 0, seed
        log.append({"scenario": Path(scenario).stem, "seed": seed, "rendered": 0})

    def step(self):
        self.tick += 1
        self.log[-1]["rendered"] += 1
        lab = np.array([[self.seed - 9000, self.tick]], np.uint8)
        return type("Frame", (), {"rgb": np.zeros((1, 2, 3), np.uint8), "labels": lab})

    def skip(self):
        self.tick += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.fixture
def fake_simulator(monkeypatch):
    log = []

    class EntryPoint:
        name = "embedded"

        @staticmethod
        def load():
            return lambda scenario, seed: _FakeSource(log, scenario, seed)

    monkeypatch.setattr(heldout, "entry_points", lambda group: [EntryPoint()])
    return log


def test_held_out_frames_come_from_every_scenario_each_from_its_own_seed(fake_simulator):
    frames, source = heldout.held_out_frames(None, None, 9001, "all", 6, 3)
    assert [(r["scenario"], r["seed"], r["rendered"]) for r in fake_simulator] == [
        ("default", 9001, 2), ("dense_urban", 9002, 2), ("foggy_morning", 9003, 1), ("rainy_night", 9004, 1)]
    # (seed - 9000, tick) of each frame: stride 3 keeps ticks 1, 4, ... and renders nothing in between
    assert [tuple(lab[0]) for _, lab in frames] == [(1, 1), (1, 4), (2, 1), (2, 4), (3, 1), (4, 1)]
    for name, seed in zip(SCENARIOS, range(9001, 9005)):
        assert f"{name} (seed {seed}," in source
    assert "stride 3" in source


def test_eval_json_says_which_scenarios_and_seeds_it_measured(monkeypatch, capsys):
    monkeypatch.setattr(eval_command, "held_out_frames", lambda *a: (_frames(1), "fake"))
    assert main(["eval", "--frames", "5", "--seed", "9010", "--untrained", "--grid", "0.5,0.5", "--no-jpeg2000",
                 "--segmenter", "none", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["held_out"] == {"stride": 5, "scenarios": [
        {"scenario": "default", "seed": 9010, "frames": 2}, {"scenario": "dense_urban", "seed": 9011, "frames": 1},
        {"scenario": "foggy_morning", "seed": 9012, "frames": 1},
        {"scenario": "rainy_night", "seed": 9013, "frames": 1}]}


def test_bad_frame_counts_are_command_errors():
    with pytest.raises(CommandError, match="--frames"):
        heldout.held_out_frames(None, None, 9001, "all", 0, 5)
    with pytest.raises(CommandError, match="--stride"):
        heldout.held_out_frames(None, None, 9001, "all", 4, 0)


def test_held_out_frames_render_through_the_simulator_plugin():
    pytest.importorskip("sim")
    frames, source = heldout.held_out_frames(None, None, 9001, "all", 1, 5)  # one frame: one simulator start
    [(rgb, lab)] = frames
    assert rgb.shape == (256, 512, 3) and rgb.dtype == np.uint8 and lab.shape == (256, 512)
    assert source.startswith("simulator scenario default (seed 9001, 1 frames)")
