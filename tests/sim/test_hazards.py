"""Closed-loop hazard scenarios on the embedded simulator (issue 16): YAML validation, the ego's brake,
scripted hazards that are real (a blind ego meets them) and passable (an ego braking on sight stops),
and their actors in the ground-truth labels."""
from __future__ import annotations

import numpy as np
import pytest

from sqgan_core.labels import class_id
from sim.embedded import EmbeddedSimulator
from sim.hazards import MIN_PIXELS, project
from sim.scenario import ScenarioError, from_dict, load_scenario, scenario_names
from sim.town import light_state

HAZARD_SCENARIOS = ("hazard_pedestrian_30", "hazard_pedestrian_50", "hazard_cyclist_cut_in", "hazard_red_light")
SMALL = {"camera.width": 256, "camera.height": 128}


def _hazard_cfg(name: str, **over):
    return load_scenario(name).replace(**{**SMALL, **over})


# ---- configuration ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hazard, field", [
    ({"type": "meteor"}, "hazards[0].type"),
    ({"type": "red_light", "colour": "red"}, "hazards[0].colour"),
    ({"type": "pedestrian_crossing", "trigger_distance": -5}, "hazards[0].trigger_distance"),
    ({"type": "pedestrian_crossing", "speed": 0}, "hazards[0].speed"),
    ({"type": "cyclist_cut_in", "side": "middle"}, "hazards[0].side"),
    ({"trigger_distance": 30}, "hazards[0].type"),
    ("pedestrian_crossing", "hazards[0]"),
])
def test_bad_hazards_are_refused_naming_the_field(hazard, field):
    with pytest.raises(ScenarioError) as exc:
        from_dict({"hazards": [hazard]})
    assert field in str(exc.value)


@pytest.mark.parametrize("data, field", [
    ({"hazards": {"type": "red_light"}}, "hazards"),
    ({"pass_criteria": {"stop_margin": 1.0}}, "pass_criteria.stop_margin"),
    ({"pass_criteria": {"stop_margin_m": -1.0}}, "pass_criteria.stop_margin_m"),
    ({"pass_criteria": {"max_false_stops": 0.5}}, "pass_criteria.max_false_stops"),
    ({"ego": {"max_decel": 0.5}}, "ego.max_decel"),
    ({"ego": {"max_decel": 12.0}}, "ego.max_decel"),
    ({"ego": {"green_wave": "yes"}}, "ego.green_wave"),
])
def test_bad_closed_loop_fields_name_the_field(data, field):
    with pytest.raises(ScenarioError) as exc:
        from_dict(data)
    assert field in str(exc.value)


def test_hazard_scenarios_ship_with_pass_criteria():
    names = set(scenario_names())
    assert set(HAZARD_SCENARIOS) | {"hazard_control"} <= names
    for name in HAZARD_SCENARIOS:
        cfg = load_scenario(name)
        assert len(cfg.hazards) == 1 and cfg.has_hazards
        assert cfg.pass_criteria is not None and cfg.pass_criteria.stop_margin_m >= 1.0
        assert cfg.ego.route == ["straight"] * 3 and not cfg.ego.obey_traffic_lights
    control = load_scenario("hazard_control")
    assert control.hazards == [] and not control.has_hazards and control.pass_criteria.max_false_stops == 0
    assert load_scenario("hazard_pedestrian_30").ego.speed == pytest.approx(30 / 3.6, abs=0.01)
    assert load_scenario("hazard_pedestrian_50").ego.speed == pytest.approx(50 / 3.6, abs=0.02)
    # open-loop scenarios are unchanged: no hazards, no criteria; overrides keep the hazards
    assert load_scenario("default").hazards == [] and load_scenario("default").pass_criteria is None
    assert _hazard_cfg("hazard_red_light").hazards[0].type == "red_light"


# ---- the ego's brake ----------------------------------------------------------------------------------

def test_brake_decelerates_at_most_max_decel_to_a_stop_and_holds(make_small):
    cfg = make_small(seed=3, ego={"speed": 10.0, "max_decel": 4.0}, traffic={"vehicles": 0, "cyclists": 0,
                                                                              "motorcycles": 0, "trams": 0})
    with EmbeddedSimulator(cfg) as sim:
        sim.step()
        for _ in range(10):
            sim.skip()
        assert sim.ego_state()["speed"] == pytest.approx(10.0)
        sim.set_brake(True)
        speeds = [sim.ego_state()["speed"]]
        for _ in range(60):
            sim.skip()
            speeds.append(sim.ego_state()["speed"])
        state = sim.ego_state()
        assert state["braking"] and state["stopped"] and state["speed"] == 0.0
        decel = -np.diff(speeds) / 0.05
        assert decel.max() <= 4.0 + 1e-6 and decel.min() >= -1e-9
        assert speeds.index(0.0) == pytest.approx(10.0 / 4.0 / 0.05, abs=1)  # 2.5 s at 4 m/s^2
        s_stop, xy = state["s"], (state["x"], state["y"])
        for _ in range(20):
            sim.skip()
        held = sim.ego_state()
        assert held["s"] == s_stop and (held["x"], held["y"]) == xy
        assert set(held) >= {"s", "speed", "x", "y", "yaw", "braking"}
        sim.set_brake(False)
        back = []
        for _ in range(100):
            sim.skip()
            back.append(sim.ego_state()["speed"])
        assert not sim.ego_state()["braking"]
        assert np.diff(back).max() <= 2.5 * 0.05 + 1e-9 and back[-1] == pytest.approx(10.0)


# ---- scripted hazards -----------------------------------------------------------------------------------

def test_control_scenario_has_no_hazards_and_nothing_slows_the_ego():
    cfg = _hazard_cfg("hazard_control")
    with EmbeddedSimulator(cfg) as sim:
        f = sim.step()
        assert f.hazards == [] and sim.hazard_state() == []
        speeds = []
        for _ in range(cfg.frames - 1):
            sim.skip()
            speeds.append(sim.ego_state()["speed"])
    assert min(speeds) == pytest.approx(cfg.ego.speed)


@pytest.mark.parametrize("name", HAZARD_SCENARIOS)
def test_a_blind_ego_reaches_the_conflict_point_while_it_is_blocked(name):
    """Never braking, the ego passes the conflict point with the hazard in its lane (or the light red):
    every hazard scenario is a real hazard."""
    cfg = _hazard_cfg(name)
    with EmbeddedSimulator(cfg) as sim:
        first = sim.hazard_state()[0]
        assert not first["triggered"] and not first["blocking"] and first["distance"] > cfg.hazards[0].trigger_distance
        prev = first
        for _ in range(cfg.frames):
            sim.skip()
            hz = sim.hazard_state()[0]
            if prev["distance"] >= 0 > hz["distance"]:
                break
            prev = hz
        else:
            pytest.fail("the ego never reached the conflict point")
    assert hz["type"] == cfg.hazards[0].type and hz["triggered"] and hz["blocking"] and prev["blocking"]
    if name != "hazard_red_light":
        assert abs(hz["lateral"]) < 1.75 + 0.3 and hz["actor_xy"] is not None


def test_the_cyclist_reaches_the_ego_lane_at_the_conflict_point():
    cfg = _hazard_cfg("hazard_cyclist_cut_in")
    with EmbeddedSimulator(cfg) as sim:
        hz = sim.traffic.hazards[0]
        assert hz.sc > hz.ego_front(sim.traffic) + 5 and sim.hazard_state()[0]["lateral"] == pytest.approx(3.5)
        while hz.lat > 0.0:
            sim.skip()
        assert hz.triggered and hz.sc == pytest.approx(hz.conflict_s, abs=0.5)
        assert hz.tau == pytest.approx(1.5, abs=0.06)
        f = sim.step()  # ~10 m ahead, in the ego's lane: drawn and labelled rider + bicycle
        state = f.hazards[0]
        assert state["blocking"] and state["visible"] and state["pixels"] >= MIN_PIXELS
        assert (f.labels == class_id("rider")).sum() > 0 and (f.labels == class_id("bicycle")).sum() > 0


def test_red_light_is_forced_red_from_the_trigger_and_drawn_red():
    cfg = load_scenario("hazard_red_light")  # lamps need the full 512x256 to cover a few pixels
    with EmbeddedSimulator(cfg) as sim:
        tr, hz = sim.traffic, sim.traffic.hazards[0]

        def lamp_pixels(frame):
            px, _ = project(sim.camera_pose(), sim.camera, hz.heads)
            red = green = 0
            for c, r in px.astype(int):
                win = frame.rgb[max(0, r - 4):r + 5, max(0, c - 4):c + 5].astype(int)
                red += int(((win[..., 0] > 150) & (win[..., 0] > 2 * win[..., 1])).sum())
                green += int(((win[..., 1] > 150) & (win[..., 1] > 1.5 * win[..., 0])).sum())
            return red, green

        while sim.hazard_state()[0]["distance"] > 45.0:
            sim.skip()
        before = sim.step()
        assert not before.hazards[0]["triggered"] and tr.light(hz.node, hz.axis) == "green"  # green wave
        red, green = lamp_pixels(before)
        assert green > 0 and red == 0
        while sim.hazard_state()[0]["distance"] > 20.0:
            sim.skip()
        after = sim.step()
        state = after.hazards[0]
        assert state["triggered"] and state["blocking"] and state["visible"]
        assert tr.light(hz.node, hz.axis) == "red"
        cross = "x" if hz.axis == "y" else "y"
        assert tr.light(hz.node, cross) == "green"
        red, green = lamp_pixels(after)
        assert red > 0 and green == 0
        # the override is this intersection's only: elsewhere lights keep their cycle
        other = next(n for n in np.ndindex(*tr.town.light_offset.shape) if n not in tr.light_overrides)
        assert tr.light(other, "x") == light_state(tr.time, float(tr.town.light_offset[other]), "x")


def test_braking_on_sight_stops_before_the_pedestrian_who_shows_up_as_person_pixels():
    """The scenario is passable: braking as soon as the crossing pedestrian is visible stops the ego
    before the crossing. The pedestrian is drawn and labelled `person`: against the same scenario
    without the hazard, the labels differ only by its person pixels."""
    cfg = _hazard_cfg("hazard_pedestrian_30")
    twin_cfg = cfg.replace(hazards=[])
    person = class_id("person")
    margin = cfg.pass_criteria.stop_margin_m
    checked = False
    with EmbeddedSimulator(cfg) as sim, EmbeddedSimulator(twin_cfg) as twin:
        for _ in range(cfg.frames):
            f = sim.step()
            hz = f.hazards[0]
            assert hz == sim.hazard_state()[0]
            assert not (hz["blocking"] and hz["distance"] < margin), "the ego reached the crossing"
            if hz["visible"] and not checked:
                g = twin.step()  # the twin has driven exactly as far: nothing braked yet
                diff = f.labels != g.labels
                assert (f.labels[diff] == person).sum() >= MIN_PIXELS
                assert (f.labels[diff] == person).mean() > 0.9  # the rest: what it hides behind it
                assert hz["pixels"] >= MIN_PIXELS and hz["triggered"]
                checked = True
                sim.set_brake(True)
            elif not checked:
                twin.step()
            if sim.ego_state()["stopped"]:
                break
        assert checked, "the pedestrian never became visible"
        state = sim.hazard_state()[0]
        assert sim.ego_state()["stopped"] and state["distance"] >= margin
        # it stays stopped while the pedestrian crosses, a few metres ahead
        for _ in range(40):
            sim.skip()
        assert sim.ego_state()["speed"] == 0.0 and sim.hazard_state()[0]["distance"] >= margin


def test_hazard_runs_are_deterministic():
    cfg = _hazard_cfg("hazard_cyclist_cut_in", duration=2.0)
    runs = []
    for _ in range(2):
        with EmbeddedSimulator(cfg) as sim:
            out = []
            for k in range(cfg.frames):
                if k % 10 == 0:
                    f = sim.step()
                    out.append((f.rgb.tobytes(), f.labels.tobytes()))
                else:
                    sim.skip()
                out.append(repr(sim.hazard_state()))
            runs.append(out)
    assert runs[0] == runs[1]
