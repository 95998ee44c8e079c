"""The RSU's hazard detector on synthetic reconstructions: what it must and must not report."""
import numpy as np
import pytest

from sqgan_core.config import ConfigError
from sqgan_core.labels import CLASS_NAMES
from sqgan_core.safety import HazardConfig, HazardDetector, HazardWarning

ROAD, PERSON, CAR, LIGHT, BUILDING = (CLASS_NAMES.index(n) for n in ("road", "person", "car", "traffic light", "building"))
H, W = 256, 512


def scene():
    s = np.full((H, W), ROAD, np.uint8)
    s[:120] = BUILDING
    return s


def test_a_person_in_the_corridor_is_warned_and_one_beside_it_is_not():
    s = scene()
    s[150:175, 250:260] = PERSON  # 250 px, straight ahead
    [w] = HazardDetector().update(s, stamp=1.5, vehicle_id=3)
    assert w.type == "vulnerable_road_user" and w.confidence == 1.0 and w.stamp == 1.5 and w.vehicle_id == 3
    assert w.region == (250, 150, 260, 175)
    side = scene()
    side[150:175, 10:20] = PERSON  # on the far left sidewalk, outside the corridor
    assert HazardDetector().update(side) == []


def test_thresholds_scale_with_the_image_and_small_blobs_are_noise():
    small = np.full((128, 256), ROAD, np.uint8)
    small[75:80, 125:130] = PERSON  # 25 px at a quarter of the area: like 100 px at 256x512
    assert [w.type for w in HazardDetector().update(small)] == ["vulnerable_road_user"]
    s = scene()
    s[150:153, 250:255] = PERSON  # 15 px < 24: a speck, not a person
    assert HazardDetector().update(s) == []


def test_persistence_needs_hits_in_the_last_frames():
    cfg = HazardConfig(hits=2, frames=3)
    det = HazardDetector(cfg)
    s = scene()
    s[150:175, 250:260] = PERSON
    assert det.update(s) == []          # seen once
    assert det.update(scene()) == []    # gone
    assert [w.type for w in det.update(s)] == ["vulnerable_road_user"]  # twice in the last three


def test_the_segmenter_is_a_second_opinion():
    seg = scene()
    seg[150:175, 250:260] = PERSON
    [w] = HazardDetector().update(scene(), seg=seg)  # s_hat lost the person, the segmenter on x_hat has it
    assert w.confidence == pytest.approx(0.5)
    assert HazardDetector(HazardConfig(second_opinion_weight=0.0)).update(scene(), seg=seg) == []
    s = scene()
    s[150:160, 250:258] = PERSON  # 80 px: weak on s_hat alone
    alone = HazardDetector().update(s)[0].confidence
    both = HazardDetector().update(s, seg=seg)[0].confidence
    assert both > alone


def test_a_red_light_ahead_is_warned_and_a_green_one_is_not():
    s = scene()
    s[40:52, 250:256] = LIGHT
    x = np.full((H, W, 3), 90, np.uint8)
    x[40:52, 250:256] = (30, 30, 30)  # housing
    x[42:46, 251:255] = (230, 40, 30)  # lit red lamp
    [w] = HazardDetector().update(s, x)
    assert w.type == "red_light" and w.evidence["red_share"] > 0.15
    x[42:46, 251:255] = (40, 220, 60)
    assert HazardDetector().update(s, x) == []
    assert HazardDetector().update(s) == []  # no image: the state of a light is unknown, no guess


def test_a_vehicle_entering_the_near_corridor_is_a_cut_in_and_one_holding_its_distance_is_not():
    det = HazardDetector()
    prev = scene()
    prev[190:240, 60:120] = CAR  # beside the corridor's near part
    assert det.update(prev) == []
    now = scene()
    now[190:240, 140:260] = CAR  # moved into it
    assert [w.type for w in det.update(now)] == ["cut_in"]
    steady = HazardDetector()
    ahead = scene()
    ahead[185:215, 220:290] = CAR
    assert steady.update(ahead) == [] and steady.update(ahead) == []


def test_the_shipped_config_loads_and_bad_configs_name_the_problem(tmp_path):
    cfg = HazardConfig.load()
    assert cfg.corridor.top_y < cfg.corridor.bottom_y and cfg.hits <= cfg.frames
    for text, needle in (("corridor: {top_y: 0.9, bottom_y: 0.5}", "top_y"),
                         ("vulnerable: {classes: [pedestrian]}", "pedestrian"),
                         ("persistence: {hits: 3, frames: 2}", "hits"),
                         ("colour: red", "unknown keys"),
                         ("red_light: {red_share: 2}", "red_light.red_share")):
        p = tmp_path / "h.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            HazardConfig.load(p)


def test_warnings_round_trip_and_malformed_ones_are_refused():
    w = HazardWarning("red_light", 0.8, (1, 2, 3, 4), 12.25, 7, {"pixels": 9.0})
    assert HazardWarning.from_dict(w.to_dict()) == w
    for bad in ({}, {"type": "meteor", "confidence": 1, "region": [0, 0, 1, 1], "stamp": 0},
                {"type": "cut_in", "confidence": 3, "region": [0, 0, 1, 1], "stamp": 0},
                {"type": "cut_in", "confidence": 1, "region": [0, 0], "stamp": 0}, ["cut_in"]):
        with pytest.raises(ValueError, match="hazard warning"):
            HazardWarning.from_dict(bad)


def test_verdicts_parse_from_json_text_and_refuse_garbage_and_other_vehicles():
    import json

    from sqgan_core.safety import parse_verdict, verdict

    w = HazardWarning("cut_in", 0.7, (1, 2, 3, 4), 3.5, 2)
    text = json.dumps(verdict(2, 3.5, [w]))
    assert parse_verdict(text, vehicle_id=2) == (2, 3.5, [w]) == parse_verdict(json.loads(text))
    with pytest.raises(ValueError, match="not JSON"):
        parse_verdict("{not json")
    with pytest.raises(ValueError, match="for vehicle 2, not vehicle 0"):
        parse_verdict(text, vehicle_id=0)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="sizes differ"):
        HazardDetector().detect(scene(), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="label map"):
        HazardDetector().detect(np.zeros((2, 2, 3), np.uint8))
