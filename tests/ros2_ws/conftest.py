"""Fixtures of the ROS layer tests: the node subprocess environment (keys and ports: tests/conftest.py)."""
from __future__ import annotations

import os

import pytest


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
