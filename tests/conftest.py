"""Shared fixtures. ROS-using tests get a private domain so parallel runs never see each other."""
from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(100, 200)))


@pytest.fixture(scope="session")
def small_codec():
    """The deterministic untrained `small` codec (weights do not matter for format and plumbing tests)."""
    from sqgan_core.codec import Codec

    return Codec.untrained("small")
