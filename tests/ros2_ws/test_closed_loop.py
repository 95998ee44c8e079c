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
    with pytest.raises(ValueError, match="source 'unreal'"):
        LoopSettings(source="unreal").check()
    with pytest.raises(ValueError, match="HOST:PORT"):
        LoopSettings(source="carla", carla="localhost").check()


def test_scenario_run_prints_the_verdict_as_json(dead_link, capsys):
    code = main(["scenario", "run", "hazard_pedestrian_30", "--link", dead_link, "--camera", "128", "256",
                 "--max-seconds", "2", "--no-second-opinion", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and out["passed"] is False and out["scenario"] == "hazard_pedestrian_30"


def test_the_loop_runs_on_a_carla_source_and_brakes_its_ego_with_vehicle_control(monkeypatch, small_codec_shipped):
    """The same closed loop against the CARLA bridge, here on the STAND-IN carla module
    (tests/sim/carla_standin.py; NOT CARLA, whose test pattern holds no road scene): frames from the
    server through codec, link and RSU, and the RSU's warnings back as carla.VehicleControl on the ego.
    The stand-in draws no pedestrian the codec keeps, so the detector is told to find one from the
    fifth decoded frame on; everything else is the real path."""
    from sim.scenario import from_dict
    from sqgan_core.safety import hazards

    carla, made = _standin_carla(monkeypatch)
    seen = []
    real_detect = hazards.HazardDetector.detect

    def detect(self, s_hat, x_hat=None, seg=None):
        seen.append(made[0].ego.autopilot)
        found = real_detect(self, s_hat, x_hat, seg)
        if len(seen) >= 5:
            found.append(hazards.Finding("vulnerable_road_user", 0.9, (10, 60, 20, 100), {"pixels_shat": 99.0}))
        return found

    monkeypatch.setattr(hazards.HazardDetector, "detect", detect)
    cfg = from_dict({"name": "carla_loop", "seed": 3, "duration": 1.5, "source": "carla",
                     "camera": {"width": 256, "height": 128}, "traffic": {"vehicles": 2}, "carla": {"timeout": 1.0}})
    out = run_scenario(cfg, LoopSettings(second_opinion=False), codec=small_codec_shipped)
    assert made and out.frames_sent == 15 and out.frames_decoded == out.frames_sent
    ego = made[0].ego
    assert out.warnings_sent >= 10 and seen[:5] == [True] * 5  # the autopilot drove until the first warning
    assert ego.controls[0].brake == 1.0 and ego.controls[0].throttle == 0.0 and not ego.autopilot
    assert made[0].ego_state()["braking"]


def test_a_small_suite_matrix_writes_its_table_plot_and_counts(dead_link, tmp_path, capsys):
    """`sqgan scenario suite` over scenarios x links x codecs, the classic codec at SQ-GAN's wire rate:
    one row per run, a dead link never warns, and the summary counts passes per codec."""
    from sqgan_core.classic_codecs import available

    if not available("jpeg2000")[0]:
        pytest.skip("no JPEG 2000 codec here")
    code = main(["scenario", "suite", "--scenarios", "hazard_pedestrian_30", "hazard_control", "--links", "clean",
                 dead_link, "--codecs", "sqgan", "jpeg2000", "--camera", "64", "128", "--max-seconds", "1.5",
                 "--no-second-opinion", "--out", str(tmp_path), "--json"])
    assert code == 0
    summary = json.loads((tmp_path / "suite.json").read_text())
    rows = summary["rows"]
    assert len(rows) == 8 and {(r["scenario"], r["codec"]) for r in rows} == {
        (s, c) for s in ("hazard_pedestrian_30", "hazard_control") for c in ("sqgan", "jpeg2000")}
    for r in rows:
        if r["profile"] == "dead":
            assert r["frames_decoded"] == 0 and r["warnings_sent"] == 0
    clean = {(r["scenario"], r["codec"]): r for r in rows if r["profile"] == "clean"}
    sq, j2k = clean[("hazard_pedestrian_30", "sqgan")], clean[("hazard_pedestrian_30", "jpeg2000")]
    assert j2k["bpp_wire"] == pytest.approx(sq["bpp_wire"], rel=0.25)  # at matched rates
    assert summary["passes"] == {c: sum(r["passed"] for r in rows if r["codec"] == c) for c in ("sqgan", "jpeg2000")}
    assert (tmp_path / "suite.md").read_text().count("\n") >= 9 and (tmp_path / "suite.png").stat().st_size > 1000


def _standin_carla(monkeypatch):
    """The STAND-IN carla module (tests/sim/carla_standin.py; NOT CARLA) in place of the real client,
    and the CarlaSource instances the loop makes."""
    import importlib.util
    from pathlib import Path

    import sim.carla_bridge as bridge

    spec = importlib.util.spec_from_file_location("carla_standin", Path(__file__).parents[1] / "sim" / "carla_standin.py")
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    carla = standin.make("0.9.16")
    monkeypatch.setattr(bridge, "import_carla", lambda: carla)
    made: list = []
    real = bridge.CarlaSource

    class Recorded(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setattr(bridge, "CarlaSource", Recorded)
    return carla, made


@pytest.mark.parametrize("link,detector", [
    ("dead", "real"),
    pytest.param("clean", "ground truth", marks=pytest.mark.slow),  # 13 s at 128x256 through the codec: ~1-2 min
])
def test_a_hazard_scenario_on_carla_is_judged_like_on_the_embedded_simulator(monkeypatch, dead_link, link, detector,
                                                                             small_codec_shipped):
    """hazard_pedestrian_30 on a CARLA source (the stand-in: a walker crossing under WalkerControl, the
    ego driven along its route). Without warnings the ego reaches the walker; with a detector that
    finds the walker whenever the camera shows it (ground truth, since the stand-in's images are no
    scene the codec was trained on), the warnings stop the ego in time and the scenario passes."""
    from sqgan_core.safety import hazards

    carla, made = _standin_carla(monkeypatch)
    if detector == "ground truth":
        def detect(self, s_hat, x_hat=None, seg=None):
            st = made[0].hazard_state()[0]
            return [hazards.Finding("vulnerable_road_user", 0.9, (0, 0, 1, 1), {})] if st["visible"] else []

        monkeypatch.setattr(hazards.HazardDetector, "detect", detect)
    out = run_scenario("hazard_pedestrian_30", LoopSettings(source="carla", camera=(128, 256), second_opinion=False,
                                                            profile=dead_link if link == "dead" else "clean"),
                       codec=small_codec_shipped)
    assert made and made[0].hazards[0].type == "pedestrian_crossing" and out.hazard == "pedestrian_crossing"
    if link == "dead":
        assert not out.passed and "conflict point" in out.reason and out.min_distance_m < 1.0
    else:
        assert out.passed, out.reason
        assert out.stopped and out.min_distance_m >= 1.0 and out.warning_latency_ms <= 300
        assert made[0].ego_state()["braking"] or made[0].route_speed < 0.1
