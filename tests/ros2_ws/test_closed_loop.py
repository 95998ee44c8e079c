"""The closed loop (ros2_ws/closed_loop.py, `sqgan scenario run`): a warning that never arrives lets
the ego hit the hazard; one that arrives stops it; the control scenario gives no false stop."""
import json

import pytest

from ros2_ws.closed_loop import LoopSettings, run_scenario
from sqgan_core.cli import main


@pytest.fixture(scope="module")
def dead_link(tmp_path_factory):
    p = tmp_path_factory.mktemp("links") / "dead.yaml"
    p.write_text("name: dead\ndescription: every packet lost\nseed: 3\nloss: {model: bernoulli, p: 1.0}\n")
    return str(p)


def test_without_warnings_the_ego_reaches_the_blocked_conflict_point(dead_link, small_codec_shipped):
    out = run_scenario("hazard_pedestrian_30", LoopSettings(profile=dead_link, camera=(128, 256),
                                                            second_opinion=False), codec=small_codec_shipped)
    assert not out.passed and out.t_warning is None and out.frames_decoded == 0
    assert out.frames_lost == out.frames_sent > 0 and not out.stopped
    assert "conflict point" in out.reason or "never warned" in out.reason


@pytest.mark.slow  # the full 256x512 camera for 12 simulated seconds: about 1.5 min on two quiet cores
def test_the_pedestrian_is_warned_and_the_ego_stops_before_it(small_codec_shipped):
    out = run_scenario("hazard_pedestrian_30", LoopSettings(second_opinion=False), codec=small_codec_shipped)
    assert out.passed, out.reason
    assert out.stopped and out.min_distance_m >= 1.0 and out.t_warning >= out.t_visible
    assert out.frames_lost == 0 and out.false_warnings == 0 and out.bpp_wire < 0.1


def test_the_control_scenario_brings_no_false_stop(small_codec_shipped):
    out = run_scenario("hazard_control", LoopSettings(camera=(128, 256), max_seconds=6.0, second_opinion=False),
                       codec=small_codec_shipped)
    assert out.hazard is None and out.passed and not out.false_stop and not out.stopped


def test_settings_are_checked():
    with pytest.raises(ValueError, match="bpp"):
        LoopSettings(codec="jpeg2000").check()
    with pytest.raises(ValueError, match="codec"):
        LoopSettings(codec="bpg").check()
    with pytest.raises(ValueError, match="camera_hz"):
        LoopSettings(camera_hz=50).check()


def test_scenario_run_prints_the_verdict_as_json(dead_link, capsys):
    code = main(["scenario", "run", "hazard_pedestrian_30", "--link", dead_link, "--camera", "128", "256",
                 "--max-seconds", "2", "--no-second-opinion", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and out["passed"] is False and out["scenario"] == "hazard_pedestrian_30"
