"""Shared fixtures. ROS-using tests get a private domain so parallel runs never see each other."""
from __future__ import annotations

import os
import random
import socket

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Every participant of the test session, in this process and in the nodes it starts, announces itself
# as the graph's nodes do (configs/dds/fastdds_fast_discovery.xml: every 0.25 s). Fast DDS reads its
# default profile once per process, at the first participant: set later (by one test), the in-process
# probes of the other tests would keep Fast DDS's 3 s announcement period, and a restarted node would
# take up to 3 s to see them.
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "dds", "fastdds_fast_discovery.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(100, 200)))


@pytest.fixture(scope="session")
def small_codec():
    """The deterministic untrained `small` codec (weights do not matter for format and plumbing tests)."""
    from sqgan_core.codec import Codec

    return Codec.untrained("small")


@pytest.fixture(scope="session")
def small_codec_shipped():
    """The shipped `small` codec (tests whose outcome depends on what it reconstructs)."""
    from sqgan_core.streaming.stream import load_codec

    codec, _ = load_codec("")
    return codec


@pytest.fixture(scope="session")
def installed_prefix(tmp_path_factory):
    """The package installed as colcon's ament_python build installs it: setuptools' install command
    into a fresh prefix (lib/sqgan executables, share/sqgan launch files and configs, the ament index
    marker). Tests use it with only AMENT_PREFIX_PATH/PYTHONPATH pointing there (`installed_env`)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("colcon")
    build, prefix = tmp / "build", tmp / "install"
    build.mkdir()
    cmd = [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(build), "build", "--build-base",
           str(build / "build"), "install", "--prefix", str(prefix), "--record", str(build / "install.log"),
           "--single-version-externally-managed"]
    p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return prefix


def installed_env(prefix) -> dict[str, str]:
    """The environment of a shell that sourced the prefix: its site-packages first, its ament index."""
    import sysconfig
    from pathlib import Path

    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix)}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("SQGAN_CONFIG_DIR", "AMENT_PREFIX_PATH", "PYTHONPATH", "FASTDDS_DEFAULT_PROFILES_FILE")}
    env.update({"PYTHONPATH": str(site), "AMENT_PREFIX_PATH": str(prefix)})
    return env


@pytest.fixture(scope="session")
def installed_env_of():
    return installed_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def endpoint():
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def keyset(tmp_path_factory):
    """rsu, link (relay), vehicle_0..3 and an allowed/ directory; plus an intruder outside it."""
    from sqgan_core.transport.keys import generate, generate_set

    d = tmp_path_factory.mktemp("keys")
    generate_set(d, 4)
    generate(d / "outside", "intruder", "vehicle", 0, allow=False)
    return d
