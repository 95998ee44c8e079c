"""Shared fixtures for the simulator tests: a small, fast scenario."""
from __future__ import annotations

import pytest

from sim.scenario import ScenarioConfig, from_dict


def small_config(seed: int = 1, **extra) -> ScenarioConfig:
    """A 3x3-block town at 128x64: same code paths as the default, a fraction of the set-up time."""
    base = {"seed": seed, "duration": 1.0, "town": {"blocks_x": 3, "blocks_y": 3},
            "traffic": {"vehicles": 30, "pedestrians": 30, "parked": 40},
            "camera": {"width": 128, "height": 64}}
    for k, v in extra.items():
        base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
    return from_dict(base)


@pytest.fixture
def small() -> ScenarioConfig:
    return small_config()


@pytest.fixture
def make_small():
    """Factory fixture: `make_small(seed=2, weather={...})` (tests cannot import conftest in importlib mode)."""
    return small_config


@pytest.fixture(scope="session")
def carla_standin():
    """The stand-in `carla` module factory (tests/sim/carla_standin.py; NOT CARLA)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("carla_standin", Path(__file__).with_name("carla_standin.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
