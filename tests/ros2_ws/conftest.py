"""Fixtures shared by the pipeline tests: key sets, free ports, ROS subprocess environment."""
from __future__ import annotations

import os
import socket

import pytest


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
    from ros2_ws.link.keys import generate, generate_set

    d = tmp_path_factory.mktemp("keys")
    generate_set(d, 4)
    generate(d / "outside", "intruder", "vehicle", 0, allow=False)
    return d


@pytest.fixture
def ros_env():
    """Environment for node subprocesses: the test session's private domain, localhost discovery,
    UDP-only Fast DDS transport (no /dev/shm segments to leak when a test kills a node)."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    return env
