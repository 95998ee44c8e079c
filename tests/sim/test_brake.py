"""The ego's emergency brake: a warning stops it, a pause in the warnings does not abort the stop."""
from __future__ import annotations

import pytest

from sim.brake import EmergencyBrake


def test_a_warning_brakes_to_a_standstill_even_if_the_warnings_pause():
    b = EmergencyBrake(hold_s=0.5)
    assert not b.command(0.0, 10.0)
    b.warning(0.1)
    assert b.command(0.15, 10.0)
    assert b.command(2.0, 4.0)  # no warning for 1.9 s, still moving: keep braking (the detector lost it)
    assert b.command(2.5, 0.05) is False  # standing, nothing recent: drive on
    assert b.engagements == 1


def test_a_stopped_ego_waits_while_warnings_keep_coming():
    b = EmergencyBrake(hold_s=0.5)
    b.warning(1.0)
    assert b.command(1.05, 8.0)
    for t in (2.0, 2.4, 2.8):  # standing, warned every 0.4 s
        b.warning(t)
        assert b.command(t + 0.05, 0.0)
    assert b.command(3.2, 0.0)  # 0.4 s after the last warning
    assert not b.command(3.35, 0.0)  # 0.55 s: released
    b.warning(4.0)
    assert b.command(4.05, 3.0) and b.engagements == 2


def test_hold_must_not_be_negative():
    with pytest.raises(ValueError, match="hold_s"):
        EmergencyBrake(-1)
