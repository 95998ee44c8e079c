"""`sqgan bench stream`: the streaming path for N vehicles in one process, without ROS."""
from __future__ import annotations

import numpy as np
import pytest

from ros2_ws.bench_stream import run_case
from sqgan_core.transport.channel import parse_profile


def _frames(n=2):
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8),
             np.kron(rng.integers(0, 19, (4, 8)), np.ones((16, 16), int)).astype(np.uint8)) for _ in range(n)]


def test_every_vehicle_frame_is_decoded_over_a_clean_link(small_codec):
    r = run_case(small_codec, _frames(), vehicles=3, rounds=2, profile=parse_profile({"name": "clean"}), m_x=0.5,
                 m_s=0.5)
    assert r["frames_encoded"] == 6 and r["frames_decoded"] == 6 and r["frames_lost"] == 0
    assert r["fps"] > 0 and r["fps_per_vehicle"] == pytest.approx(r["fps"] / 3, rel=0.01)
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_p95"] and r["bpp_sent"] > 0
    assert r["link"]["received"] == r["link"]["delivered"] > 0


def test_a_dead_link_decodes_nothing_and_says_so(small_codec):
    dead = parse_profile({"name": "dead", "loss": {"model": "bernoulli", "p": 1.0}})
    r = run_case(small_codec, _frames(), vehicles=2, rounds=1, profile=dead, m_x=0.5, m_s=0.5)
    assert r["frames_decoded"] == 0 and r["frames_lost"] == 2 and r["link"]["dropped_loss"] == r["link"]["received"]
