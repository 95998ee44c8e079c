"""The CARLA bridge, driven end to end against a STAND-IN carla module (tests/sim/carla_standin.py).

No CARLA server can run here; the stand-in implements the subset of the carla API the bridge
uses. A real-server test runs when CARLA_HOST is set and reachable.
"""
from __future__ import annotations

import os
import socket
import sys
import re
import time

import numpy as np
import pytest

from sqgan_core.labels import VOID, class_id
from sim import SimFrame, make_source
from sim.carla_bridge import CarlaConnectionError, CarlaSource
from sim.carla_tags import TAG_SETS, tag_set_for_version, tags_to_train_ids
from sim.scenario import from_dict


# CARLA tag name -> Cityscapes class, by hand (not from sim.carla_tags): both tag sets' names.
CLASS_OF_TAG_NAME = {
    "Roads": "road", "Road": "road", "RoadLines": "road", "RoadLine": "road", "Sidewalks": "sidewalk",
    "Sidewalk": "sidewalk", "SideWalk": "sidewalk", "Buildings": "building", "Building": "building", "Walls": "wall", "Wall": "wall",
    "Fences": "fence", "Fence": "fence", "Poles": "pole", "Pole": "pole", "TrafficLight": "traffic light",
    "TrafficSigns": "traffic sign", "TrafficSign": "traffic sign", "Vegetation": "vegetation", "Terrain": "terrain",
    "Sky": "sky", "Pedestrians": "person", "Pedestrian": "person", "Rider": "rider", "Car": "car", "Vehicles": "car",
    "Truck": "truck", "Bus": "bus", "Train": "train", "Motorcycle": "motorcycle", "Bicycle": "bicycle",
}


def _tid(v):
    return v if v == VOID else class_id(v)


def _cfg(**carla):
    return from_dict({"seed": 3, "duration": 0.5, "source": "carla", "camera": {"width": 96, "height": 48},
                      "traffic": {"vehicles": 5}, "carla": {"timeout": 1.0, **carla}})


@pytest.mark.parametrize("version", ["0.9.13", "0.9.14", "0.9.15", "0.9.16", "0.10.0"])
def test_bridge_yields_simframes_with_mapped_labels(carla_standin, version):
    carla = carla_standin.make(version)
    with CarlaSource(_cfg(), carla_module=carla) as src:
        frames = [src.step() for _ in range(3)]
    f = frames[-1]
    assert isinstance(f, SimFrame) and f.source == "carla"
    assert f.rgb.shape == (48, 96, 3) and f.labels.shape == (48, 96)
    assert [x.index for x in frames] == [0, 1, 2]
    assert np.allclose(np.diff([x.stamp for x in frames]), 0.05)
    # the stand-in draws every tag the server renders as columns (numbers and names from the real
    # client from 0.9.14): the labels must be the Cityscapes class of each tag's *name*, written out here
    tags = carla._state["tags"]
    by_name = np.array([_tid(CLASS_OF_TAG_NAME.get(name, VOID)) for _t, name, _c, _x in tags], np.uint8)
    expected = by_name[(np.arange(96) * len(tags)) // 96]
    assert (f.labels == expected[None, :]).all()
    present = set(np.unique(f.labels).tolist())
    if version == "0.9.13":   # one Vehicles tag: no truck/bus/rider classes
        assert class_id("truck") not in present and class_id("car") in present
    else:
        assert {class_id("rider"), class_id("truck"), class_id("bus"), class_id("bicycle")} <= present
    assert VOID in present
    # RGB: BGRA from the server is delivered as RGB
    assert (f.rgb[..., 0] == 200).all()


def test_synchronous_mode_sensors_role_and_cleanup(carla_standin):
    carla = carla_standin.make("0.9.16")
    src = CarlaSource(_cfg(), carla_module=carla)
    world = carla._state["worlds"][-1]
    assert world.settings.synchronous_mode and world.settings.fixed_delta_seconds == 0.05
    assert src.tm.sync
    ego = src.ego
    assert ego.attributes["role_name"] == "ego_vehicle" and ego.autopilot
    cams = [a for a in world.actors if a.type_id.startswith("sensor.")]
    assert {c.type_id for c in cams} == {"sensor.camera.rgb", "sensor.camera.semantic_segmentation"}
    # the CARLA-side sensor ids are the CARLA ROS bridge's, which name its topics (written out, not SENSOR_IDS)
    assert {c.type_id: c.attributes["role_name"] for c in cams} == {
        "sensor.camera.rgb": "rgb_front", "sensor.camera.semantic_segmentation": "semantic_segmentation_front"}
    for c in cams:
        assert (c.attributes["image_size_x"], c.attributes["image_size_y"], float(c.attributes["fov"])) == ("96", "48", 90.0)
        assert c.parent is ego
    assert len([a for a in world.actors if a.type_id.startswith("vehicle.")]) == 1 + 5
    # scenario weather reaches the server: default is a dry early afternoon with light fog
    assert world.weather.precipitation == 0.0 and world.weather.sun_altitude_angle > 30.0
    assert world.weather.fog_density == pytest.approx(5.0)
    src.step()
    src.close()
    src.close()  # idempotent
    assert world.actors == [] and not world.settings.synchronous_mode and not src.tm.sync


def test_route_drive_follows_waypoints_and_turns(carla_standin):
    carla = carla_standin.make("0.9.16")
    cfg = _cfg(drive="route").replace(**{"ego.route": ["left"], "ego.speed": 20.0})
    with CarlaSource(cfg, carla_module=carla) as src:
        yaws = [src.step().ego_pose.yaw for _ in range(80)]
        assert not src.ego.physics and not src.ego.autopilot
    assert yaws[0] == 0.0 and min(yaws) <= -90.0  # CARLA yaw is clockwise: a left turn is negative


def test_route_mode_reports_the_route_speed(carla_standin):
    """Physics is off on the route, so the actor's velocity reads 0 on a real server: the speed is the route's."""
    carla = carla_standin.make("0.9.16")
    with CarlaSource(_cfg(drive="route").replace(**{"ego.speed": 12.5}), carla_module=carla) as src:
        assert src.step().ego_speed == pytest.approx(12.5)
        assert src.ego.get_velocity().x == 0.0  # what the server would have reported


def test_a_warning_brakes_the_autopilot_ego_with_vehicle_control_and_release_gives_it_back(carla_standin):
    """The closed loop's brake on CARLA: the Traffic Manager lets go, carla.VehicleControl holds full
    brake and no throttle (keeping the steering), and the autopilot resumes on release."""
    carla = carla_standin.make("0.9.16")
    with CarlaSource(_cfg(), carla_module=carla) as src:
        src.step()
        src.set_brake(True)
        ctl = src.ego.control
        assert not src.ego.autopilot and isinstance(ctl, carla.VehicleControl)
        assert (ctl.brake, ctl.throttle, ctl.steer) == (1.0, 0.0, pytest.approx(0.1))
        src.set_brake(True)  # held: no new command
        assert len(src.ego.controls) == 1 and src.ego_state()["braking"]
        src.set_brake(False)
        assert src.ego.autopilot and src.ego.control.brake == 0.0 and not src.ego_state()["braking"]


def test_a_warning_slows_the_route_ego_at_its_deceleration_limit(carla_standin):
    carla = carla_standin.make("0.9.16")
    cfg = _cfg(drive="route").replace(**{"ego.speed": 12.0, "ego.max_decel": 6.0})
    with CarlaSource(cfg, carla_module=carla) as src:
        src.step()
        src.set_brake(True)
        speeds = [src.step().ego_speed for _ in range(45)]
        assert speeds[0] == pytest.approx(12.0 - 6.0 * 0.05) and speeds[39] == 0.0  # 2 s from 12 m/s
        assert src.ego_state()["stopped"]
        x = src.ego.get_transform().location.x
        src.step()
        assert src.ego.get_transform().location.x == x  # standing
        src.set_brake(False)
        assert src.step().ego_speed == pytest.approx(2.5 * 0.05)  # speeding up again at 2.5 m/s^2


def test_load_world_gets_its_own_longer_timeout(carla_standin):
    carla = carla_standin.make("0.9.16")
    with CarlaSource(_cfg(town="Town05", load_timeout=90.0, timeout=1.0), carla_module=carla) as src:
        assert carla._state["load_world_timeout"] == 90.0
        assert src.client.timeout == 1.0  # every other call keeps the short timeout


def test_weather_starts_from_the_real_preset():
    carla = pytest.importorskip("carla", reason="the real carla client is not installed")
    from sim.carla_bridge import weather_parameters

    cfg = _cfg()
    w, preset = weather_parameters(carla, cfg), carla.WeatherParameters.ClearNoon
    for name in ("fog_distance", "fog_falloff", "scattering_intensity", "mie_scattering_scale",
                 "rayleigh_scattering_scale", "wind_intensity"):
        assert getattr(w, name) == pytest.approx(getattr(preset, name)), name
    assert w.fog_falloff > 0 and w.scattering_intensity > 0  # not left at 0
    assert w.fog_density == pytest.approx(100 * cfg.weather.fog) and w.precipitation == 0.0
    night = weather_parameters(carla, cfg.replace(**{"weather.time_of_day": 23.0, "carla.weather_preset": "WetNight"}))
    assert night.sun_altitude_angle < 0 and night.fog_distance == pytest.approx(carla.WeatherParameters.WetNight.fog_distance)
    with pytest.raises(ValueError, match="NoSuchPreset"):
        weather_parameters(carla, cfg.replace(**{"carla.weather_preset": "NoSuchPreset"}))


def test_client_and_server_of_different_series_are_refused(carla_standin):
    from sim.carla_bridge import CarlaUnavailable

    carla = carla_standin.make("0.10.0", client_version="0.9.16")
    with pytest.raises(CarlaUnavailable, match="different release series.*carla==0.10.0"):
        CarlaSource(_cfg(), carla_module=carla)
    with pytest.warns(RuntimeWarning, match="differ"):  # the user said to try anyway
        CarlaSource(_cfg(allow_version_mismatch=True), carla_module=carla_standin.make("0.10.0", client_version="0.9.16")).close()
    with pytest.warns(RuntimeWarning, match="differ"):  # same series: a warning, as before
        CarlaSource(_cfg(), carla_module=carla_standin.make("0.9.15", client_version="0.9.16")).close()


def test_stale_images_are_skipped(carla_standin):
    carla = carla_standin.make("0.9.16", stale_first=True)
    with CarlaSource(_cfg(), carla_module=carla) as src:
        f = src.step()
        assert f.index == 0


def test_missing_camera_frame_times_out_clearly(carla_standin):
    carla = carla_standin.make("0.9.16", drop_sensor="semantic")
    src = CarlaSource(_cfg(timeout=0.3), carla_module=carla)
    t = time.monotonic()
    with pytest.raises(TimeoutError, match="semantic camera image for frame"):
        src.step()
    assert time.monotonic() - t < 1.5
    src.close()


def test_unreachable_server_standin_errors_within_timeout(carla_standin):
    carla = carla_standin.make("0.9.16", reachable=False)
    t = time.monotonic()
    with pytest.raises(CarlaConnectionError, match="could not reach a CARLA server at localhost:2000 within 0.5 s"):
        CarlaSource(_cfg(timeout=0.5), carla_module=carla)
    assert time.monotonic() - t < 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_real_client_errors_within_timeout():
    """With the real carla client (if installed) and nothing listening on the port."""
    carla = pytest.importorskip("carla")
    if getattr(carla, "IS_STANDIN", False):
        pytest.skip("real carla client not installed")
    cfg = _cfg(timeout=1.0, host="127.0.0.1", port=_free_port())
    t = time.monotonic()
    with pytest.raises(CarlaConnectionError, match="within 1 s"):
        CarlaSource(cfg)
    assert time.monotonic() - t < 5.0


def test_make_source_picks_the_bridge_by_scenario_field(carla_standin, monkeypatch):
    monkeypatch.setitem(sys.modules, "carla", carla_standin.make("0.9.15"))
    with make_source(_cfg()) as src:
        assert isinstance(src, CarlaSource)
        frames = list(src)
    assert len(frames) == 10 and frames[0].source == "carla"


def test_version_mismatch_warns_but_runs(carla_standin):
    carla = carla_standin.make("0.9.14", client_version="0.9.16")
    with pytest.warns(RuntimeWarning, match="no version lock"):
        src = CarlaSource(_cfg(), carla_module=carla)
    with src:
        assert src.step().labels.shape == (48, 96)


def test_missing_carla_package_is_explained(monkeypatch):
    from sim.carla_bridge import CarlaUnavailable, import_carla

    monkeypatch.setitem(sys.modules, "carla", None)
    with pytest.raises(CarlaUnavailable, match="pip install carla"):
        import_carla()


def _carla_reachable() -> bool:
    host = os.environ.get("CARLA_HOST")
    if not host:
        return False
    try:
        with socket.create_connection((host, int(os.environ.get("CARLA_PORT", "2000"))), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _carla_reachable(), reason="set CARLA_HOST (and CARLA_PORT) to a running CARLA server")
def test_real_carla_server():
    cfg = _cfg(host=os.environ["CARLA_HOST"], port=int(os.environ.get("CARLA_PORT", "2000")), timeout=20.0)
    cfg = cfg.replace(**{"camera.width": 512, "camera.height": 256})
    with make_source(cfg) as src:
        frames = [src.step() for _ in range(20)]
    assert all(f.rgb.shape == (256, 512, 3) for f in frames)
    assert len(set(np.unique(frames[-1].labels).tolist())) >= 4


def _real_parameters(method) -> tuple[list[str], int]:
    """Parameter names (after self) of a Boost.Python method of the real client, from its docstring
    `name( (Type)arg1, (str)map_name [, (bool)reset_settings=True ...]) -> ...`, and how many are required."""
    import re

    first = (method.__doc__ or "").strip().splitlines()[0]
    args = first[first.index("(") + 1:first.rindex(")")]
    names = [n for _t, n in re.findall(r"\((\w+)\)(\w+)", args)][1:]
    required = len(re.findall(r"\((\w+)\)(\w+)", args.split("[")[0])) - 1
    return names, required


def test_every_standin_method_exists_on_the_real_client_with_its_parameter_names(carla_standin):
    """The stand-in may only offer what the real carla 0.9.16 client offers, under the same names, so a
    bridge call that works on the stand-in cannot fail on a real server for a missing method or keyword."""
    import inspect

    carla = pytest.importorskip("carla", reason="the real carla client is not installed")
    standin, problems = carla_standin.make(), []
    for cls_name in sorted(n for n in dir(standin) if isinstance(getattr(standin, n), type)):
        real = getattr(carla, cls_name, None)
        if real is None:
            problems.append(f"carla.{cls_name} does not exist")
            continue
        # an Actor the server spawns is a Vehicle or a Sensor: their methods count for the stand-in's Actor
        candidates = [real] + ([carla.Vehicle, carla.Sensor, carla.Walker] if cls_name == "Actor" else [])
        for meth, fn in vars(getattr(standin, cls_name)).items():
            if meth.startswith("_") or not inspect.isfunction(fn):
                continue
            found = [getattr(c, meth) for c in candidates if hasattr(c, meth)]
            if not found:
                problems.append(f"carla.{cls_name}.{meth} does not exist")
                continue
            mine = list(inspect.signature(fn).parameters)[1:]
            names, required = _real_parameters(found[0])
            if len(mine) < required or len(mine) > len(names):
                problems.append(f"carla.{cls_name}.{meth}{tuple(names)} takes {required}..{len(names)} arguments, "
                                f"the stand-in {tuple(mine)}")
            for a, b in zip(mine, names):
                if a != b and not re.fullmatch(r"arg\d+", b):  # argN: positional-only in the real API
                    problems.append(f"carla.{cls_name}.{meth}: parameter {a!r} is {b!r} in the real client")
    assert not problems, "\n".join(problems)


def _hazard_cfg(hazard: dict, speed: float = 10.0, **carla):
    return from_dict({"seed": 3, "duration": 12.0, "source": "carla", "camera": {"width": 96, "height": 48},
                      "traffic": {"vehicles": 2}, "ego": {"speed": speed, "route": ["straight"]},
                      "carla": {"timeout": 1.0, "drive": "route", **carla}, "hazards": [hazard]})


def test_a_pedestrian_crossing_is_staged_on_the_route_and_walks_when_triggered(carla_standin):
    """The embedded simulator's pedestrian_crossing on a CARLA server: a walker beside the route at the
    conflict point, carla.WalkerControl across the ego's lane once the ego is trigger_distance away;
    the state keys are the embedded simulator's, so the same judge (sim/outcome.py) reads both."""
    from sim import make_source
    from sim.scenario import load_scenario

    carla = carla_standin.make("0.9.16")
    hz = {"type": "pedestrian_crossing", "conflict_ahead": 60.0, "trigger_distance": 30.0, "speed": 1.5,
          "side": "right", "lateral_offset": 5.5}
    with CarlaSource(_hazard_cfg(hz), carla_module=carla) as src:
        (w,) = [a for a in carla._state["worlds"][-1].actors if a.type_id.startswith("walker.")]
        x0 = src.ego.get_transform().location.x
        assert w.get_transform().location.x == pytest.approx(x0 + 60.0, abs=1.0)
        assert w.get_transform().location.y == pytest.approx(5.5)  # CARLA's right of +x is +y
        (st,) = src.hazard_state()
        emb = make_source(load_scenario("hazard_pedestrian_30"))
        try:
            assert set(st) | {"view_frame"} == set(emb.hazard_state()[0])
        finally:
            emb.close()
        assert not st["triggered"] and not st["blocking"] and st["lateral"] == pytest.approx(5.5)
        states = []
        for _ in range(130):
            src.step()
            states.append(src.hazard_state()[0])
        trig = next(i for i, s in enumerate(states) if s["triggered"])
        assert states[trig]["distance"] <= 30.0 < states[trig - 1]["distance"]
        assert isinstance(w.control, carla.WalkerControl) and w.control.direction.y == pytest.approx(-1.0)
        lats = [s["lateral"] for s in states[trig:]]
        assert lats[-1] < lats[0] and any(s["blocking"] for s in states[trig:])  # walking into the ego's lane
        assert states[-1]["distance"] < states[0]["distance"] - 40  # the ego drove on (nobody braked)
    assert not w.alive  # staged actors are cleaned up with the rest


def test_a_red_light_hazard_turns_the_routes_next_light_red_and_freezes_it(carla_standin):
    carla = carla_standin.make("0.9.16")
    with CarlaSource(_hazard_cfg({"type": "red_light", "conflict_ahead": 70.0, "trigger_distance": 40.0}),
                     carla_module=carla) as src:
        (st,) = src.hazard_state()
        x0 = src.ego.get_transform().location.x
        assert st["conflict_s"] >= 70.0 and (x0 + st["conflict_s"]) % 50 == pytest.approx(0.0, abs=1.0)
        light = src.hazards[0].actor
        assert light.get_state() == carla.TrafficLightState.Green and not st["blocking"]
        for _ in range(90):  # 37.7 m to the trigger at 10 m/s
            src.step()
        (st,) = src.hazard_state()
        assert st["triggered"] and st["blocking"] and light.frozen
        assert light.get_state() == carla.TrafficLightState.Red


def test_a_cyclist_cut_in_rides_ahead_then_steers_into_the_ego_lane(carla_standin):
    carla = carla_standin.make("0.9.16")
    hz = {"type": "cyclist_cut_in", "conflict_ahead": 80.0, "trigger_distance": 25.0, "speed": 5.0, "side": "left"}
    with CarlaSource(_hazard_cfg(hz), carla_module=carla) as src:
        bike = src.hazards[0].actor
        assert bike.type_id == "vehicle.bh.crossbike" and not bike.physics and src.ego.type_id != bike.type_id
        lats = []
        for _ in range(160):
            src.step()
            lats.append(src.hazard_state()[0]["lateral"])
        assert lats[0] == pytest.approx(-3.5) and lats[-1] == pytest.approx(0.0)  # from the left lane into the ego's
        assert bike.get_transform().location.y == pytest.approx(0.0, abs=1e-6)


def test_hazards_on_carla_need_the_route_drive(carla_standin):
    from sim.carla_hazards import CarlaHazardError

    with pytest.raises(CarlaHazardError, match="carla.drive: route"):
        CarlaSource(_hazard_cfg({"type": "red_light"}, drive="autopilot"), carla_module=carla_standin.make("0.9.16"))
