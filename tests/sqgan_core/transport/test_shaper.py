import numpy as np
import pytest

from sqgan_core.transport.channel import parse_profile
from sqgan_core.transport.shaper import LinkShaper


def run(profile, n=2000, size=200, period=0.001, tail=5.0):
    sh = LinkShaper(profile)
    got, times = [], {}
    t = 0.0
    for i in range(n):
        sh.offer(i, size, t)
        for item in sh.due(t):
            got.append(item)
            times.setdefault(item, t)
        t += period
    while sh.queued() and t < n * period + tail:
        t = max(t + 1e-6, sh.next_deadline() or t + 0.001)
        for item in sh.due(t):
            got.append(item)
            times.setdefault(item, t)
    return sh, got, times


def prof(**kw):
    return parse_profile({"name": "t", **kw})


def test_clean_delivers_everything_in_order_at_once():
    sh, got, _ = run(prof())
    assert got == list(range(2000)) and sh.dropped() == 0


def test_bernoulli_loss_is_counted_and_seeded():
    p = prof(loss={"model": "bernoulli", "p": 0.1}, seed=4)
    sh, got, _ = run(p)
    assert sh.stats["dropped_loss"] + len(got) == 2000
    assert 150 < sh.stats["dropped_loss"] < 250
    assert run(p)[1] == got


def test_delay_and_jitter():
    sh, got, times = run(prof(delay_ms=20, jitter_ms=5))
    lat = np.array([times[i] - i * 0.001 for i in got])
    assert 0.017 < np.median(lat) < 0.023 and lat.min() >= 0
    assert got != sorted(got)  # jitter reorders some packets


def test_duplicates_and_reordering_counted():
    sh, got, _ = run(prof(duplicate=0.1, reorder={"probability": 0.1, "extra_delay_ms": 5}))
    assert len(got) == 2000 + sh.stats["duplicated"] and sh.stats["duplicated"] > 100
    assert sh.stats["reordered"] > 100 and got != sorted(got)


def test_bandwidth_cap_rate_and_bounded_queue():
    # 80 kbit/s = 10 kB/s; offered 200 B per ms = 200 kB/s: most must be tail-dropped.
    sh, got, times = run(prof(bandwidth={"rate_kbps": 80, "burst_bytes": 1000, "queue_packets": 10}), n=1000)
    assert sh.stats["dropped_queue"] > 800
    assert len(got) + sh.stats["dropped_queue"] == 1000
    span = max(times.values()) - min(times.values())
    assert len(got) * 200 / span == pytest.approx(10_000, rel=0.15)
    assert sh.queued() == 0


def test_in_flight_is_bounded():
    sh = LinkShaper(prof(delay_ms=10_000, max_in_flight=50))
    for i in range(500):
        sh.offer(i, 100, 0.0)
    assert sh.queued() == 50 and sh.stats["dropped_in_flight"] == 450
