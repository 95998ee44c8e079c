"""The ego's reaction to the RSU's hazard warnings: a simple automatic emergency brake (AEB).

On a warning the ego brakes at its deceleration limit (`ego.max_decel`, applied by the source:
EmbeddedSimulator.set_brake, carla.VehicleControl on CARLA) and does not abort the stop half-way: it
keeps braking until it stands, then holds while warnings keep coming (one within the last `hold_s`
seconds of simulated time), then releases and the ego speeds up again. A brake that released as soon
as the warnings paused for a frame or two (a detector that loses a cyclist for a moment) let the ego
roll into the hazard it had started to stop for; the price is that a false warning costs a full stop,
which the control scenario counts.
"""
from __future__ import annotations

import math

STOPPED_SPEED = 0.1  # m/s: standing


class EmergencyBrake:
    def __init__(self, hold_s: float = 0.5) -> None:
        if hold_s < 0:
            raise ValueError(f"hold_s must be >= 0, got {hold_s}")
        self.hold_s = float(hold_s)
        self.last_warning = -math.inf
        self.active = False
        self.engagements = 0  # times the brake came on

    def warning(self, t: float) -> None:
        """A warning reached the vehicle at simulated time `t`."""
        self.last_warning = max(self.last_warning, float(t))

    def command(self, t: float, speed: float) -> bool:
        """The brake command for the tick that ends at simulated time `t`, the ego at `speed` m/s."""
        recent = t - self.last_warning <= self.hold_s + 1e-9
        if recent and not self.active:
            self.active = True
            self.engagements += 1
        elif self.active and not recent and speed < STOPPED_SPEED:
            self.active = False
        return self.active


__all__ = ["EmergencyBrake", "STOPPED_SPEED"]
