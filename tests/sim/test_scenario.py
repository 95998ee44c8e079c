"""Scenario YAML loading and validation: errors must name the offending field."""
from __future__ import annotations

import pytest

from sim.scenario import ScenarioConfig, ScenarioError, from_dict, load_scenario, scenario_names


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_scenarios_load(name):
    cfg = load_scenario(name)
    assert isinstance(cfg, ScenarioConfig)
    assert cfg.frames == round(cfg.duration / 0.05)


def test_required_scenarios_exist():
    names = set(scenario_names())
    assert {"default", "rainy_night", "dense_urban"} <= names


def test_defaults_match_carla_camera():
    cam = load_scenario("default").camera.intrinsics()
    assert (cam.width, cam.height, cam.fov) == (512, 256, 90.0)
    assert cam.fx == pytest.approx(256.0) and cam.cx == 256.0 and cam.cy == 128.0


@pytest.mark.parametrize("data, field", [
    ({"weather": {"foog": 0.2}}, "weather.foog"),
    ({"wether": {}}, "wether"),
    ({"weather": {"fog": 1.7}}, "weather.fog"),
    ({"weather": {"rain": "heavy"}}, "weather.rain"),
    ({"traffic": {"vehicles": -1}}, "traffic.vehicles"),
    ({"traffic": {"vehicles": 2.5}}, "traffic.vehicles"),
    ({"camera": {"width": 4}}, "camera.width"),
    ({"source": "unity"}, "source"),
    ({"ego": {"route": ["straight", "backwards"]}}, "ego.route[1]"),
    ({"ego": {"route": "zigzag"}}, "ego.route"),
    ({"ego": {"obey_traffic_lights": "yes"}}, "ego.obey_traffic_lights"),
    ({"carla": {"drive": "teleport"}}, "carla.drive"),
    ({"town": 3}, "town"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(ScenarioError) as exc:
        from_dict(data)
    assert field in str(exc.value)


def test_bad_yaml_is_reported(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("weather: {fog: [1, 2\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(p)


def test_unknown_scenario_lists_known_names():
    with pytest.raises(ScenarioError, match="default"):
        load_scenario("no_such_scenario")


def test_replace_validates_overrides():
    cfg = load_scenario("default").replace(**{"weather.rain": 0.5, "seed": 9})
    assert cfg.weather.rain == 0.5 and cfg.seed == 9 and cfg.town_seed == 9
    with pytest.raises(ScenarioError, match="weather.rain"):
        cfg.replace(**{"weather.rain": 3.0})
