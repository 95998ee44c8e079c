"""Scenario sources: the embedded driving simulator and the CARLA bridge (no ROS imports here).

`make_source(scenario)` returns a `FrameSource` for the scenario's `source` field, so callers
(exporter, benchmarks, ROS nodes, the codec's data pipeline) never branch on where frames come
from. Heavy modules (OpenGL, carla) are imported only when a source is made.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.frame import TICK_SECONDS, CameraIntrinsics, Pose, SimFrame
from sim.scenario import ScenarioConfig, ScenarioError, from_dict, load_scenario
from sim.source import FrameSource

__all__ = ["TICK_SECONDS", "CameraIntrinsics", "Pose", "SimFrame", "FrameSource", "ScenarioConfig",
           "ScenarioError", "load_scenario", "from_dict", "make_source"]


def make_source(scenario: ScenarioConfig | str | Path | dict[str, Any] = "default", **overrides: Any) -> FrameSource:
    """Build the frame source a scenario asks for (`source: embedded | carla`).

    `scenario` is a config, a scenario name / YAML path, or a mapping; `overrides` are dotted
    fields (`make_source("default", **{"weather.rain": 0.8})`).
    """
    if isinstance(scenario, ScenarioConfig):
        cfg = scenario
    elif isinstance(scenario, dict):
        cfg = from_dict(scenario)
    else:
        cfg = load_scenario(scenario)
    if overrides:
        cfg = cfg.replace(**overrides)
    if cfg.source == "carla":
        from sim.carla_bridge import CarlaSource

        return CarlaSource(cfg)
    from sim.embedded import EmbeddedSimulator

    return EmbeddedSimulator(cfg)
