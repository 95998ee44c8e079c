"""The package as colcon installs it: setuptools' install command into a fresh prefix (what
colcon's ament_python build runs), then used from a directory outside the checkout with only
AMENT_PREFIX_PATH pointing at the prefix. Every node of every graph must be in lib/sqgan (where
`ros2 run` / `ros2 launch` look) and every config, scenario, link profile, node description, DDS
profile and the shipped weights must resolve from the installed files, never from the source tree."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = r"""
import json, sys
from pathlib import Path
prefix = Path(sys.argv[1]).resolve()
import sqgan_core, sim, ros2_ws
from sqgan_core.checkpoint import default_checkpoint
from sqgan_core.config import config_dirs, find_config
from sqgan_core.segmentation.segmenter import WEIGHTS
from sim.scenario import load_scenario, scenario_names
from ros2_ws.graph import GRAPHS, build, context, dds_environment
from sqgan_core.transport.channel import known_profiles, load_profile
from sqgan_core.streaming.concealment import shipped_concealer
from sqgan_core.streaming.rate_control import SHIPPED_RATE_TABLE
files = {
    "packages": [m.__file__ for m in (sqgan_core, sim, ros2_ws)],
    "config_dirs": [str(d) for d in config_dirs()],
    "scenarios": [str(load_scenario(n) and n) for n in scenario_names()],
    "links": [str(load_profile(n) and n) for n in known_profiles()],
    "executables": sorted({s.executable for g in GRAPHS for s in build(g)}),
    "dds": dds_environment(context()).get("FASTDDS_DEFAULT_PROFILES_FILE"),
    "configs": [str(find_config("model", "small")), str(find_config("train", "small_cpu_joint")),
                str(find_config("safety", "hazards"))],
    "weights": [str(default_checkpoint()), str(WEIGHTS), str(SHIPPED_RATE_TABLE),
                str(shipped_concealer("bidirectional")), str(shipped_concealer("autoregressive"))],
}
print(json.dumps(files))
"""


@pytest.fixture
def prefix(installed_prefix):
    return installed_prefix


@pytest.fixture
def _env(installed_env_of):
    return installed_env_of


def test_an_installed_prefix_resolves_everything_from_its_own_files(prefix, tmp_path, _env):
    p = subprocess.run([sys.executable, "-c", CHECK, str(prefix)], cwd=tmp_path, env=_env(prefix),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    inside = lambda path: str(path).startswith(str(prefix))  # noqa: E731
    assert all(inside(f) for f in got["packages"]), got["packages"]  # the installed copy, not the checkout
    assert got["config_dirs"] == [str(prefix / "share" / "sqgan" / "configs")]  # found through the ament index
    assert {"default", "rainy_night", "dense_urban"} <= set(got["scenarios"])
    assert "bursty_15pct" in got["links"]
    for exe in got["executables"] + ["sqgan"]:  # ros2 run sqgan <exe>; the CLI too
        assert (prefix / "lib" / "sqgan" / exe).is_file(), f"{exe} missing from lib/sqgan"
    assert inside(got["dds"]) and all(inside(c) for c in got["configs"])
    assert all(inside(w) and Path(w).is_file() for w in got["weights"])
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "sqgan").is_file()
    assert (prefix / "share" / "sqgan" / "launch" / "pipeline.launch.py").is_file()


def test_the_installed_cli_runs_from_lib_sqgan(prefix, tmp_path, _env):
    p = subprocess.run([str(prefix / "lib" / "sqgan" / "sqgan"), "sim", "scenarios"], cwd=tmp_path,
                       env=_env(prefix), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "rainy_night" in json.loads(p.stdout)
