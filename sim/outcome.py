"""The verdict of a closed-loop hazard scenario, from the simulator's exact state (no ROS, no codec).

Fed once per simulator tick with the hazards' state (EmbeddedSimulator.hazard_state), the ego's state
and whether a warning reached the vehicle in that tick; judges what the scenario's pass criteria ask:
stop before the conflict point, warn in time, no false stop. The in-process closed loop
(ros2_ws/closed_loop.py) and the ROS simulator node (ros2_ws/sim_publisher.py) share it, so both
report the same figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FALSE_STOP_AFTER_S = 2.0  # slowing before this (the ego still accelerating from its start) is not a stop


@dataclass
class ScenarioVerdict:
    passed: bool
    reason: str
    hazard: str | None
    t_visible: float | None  # simulated s: the hazard first visible to the camera in the ego's path
    t_warning: float | None  # the first warning reaching the vehicle at or after visibility
    warning_latency_ms: float | None
    min_distance_m: float | None  # ego front to the conflict point while the hazard blocked it
    stopped: bool
    false_warnings: int  # warnings that reached the vehicle while nothing to warn about was in view
    false_stop: bool  # the ego slowed below half its cruise speed with no hazard in view

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ScenarioJudge:
    cruise_speed: float  # m/s: the scenario's ego.speed
    stop_margin_m: float = 1.0  # the ego must stay this far from a blocked conflict point
    path_half_width: float = 2.5  # m either side of the ego's path: a person or cyclist there is in its path
    t_visible: float | None = None
    t_warning: float | None = None
    min_distance: float | None = None
    false_warnings: int = 0
    false_stop: bool = False
    stopped: bool = False
    hazard: str | None = None
    reached_blocked_conflict: bool = False

    def in_path(self, hz: dict[str, Any]) -> bool:
        """Visible and in the ego's path: a red light facing it, or a person or cyclist within
        `path_half_width` of its path (not yet on the kerb, where nobody should brake)."""
        if not hz.get("visible"):
            return False
        lateral = hz.get("lateral")
        return hz.get("type") == "red_light" or lateral is None or abs(float(lateral)) <= self.path_half_width

    def warning(self, t: float, hazards: list[dict[str, Any]]) -> None:
        """A warning reached the vehicle at simulated time `t`."""
        if self.t_visible is not None and self.t_warning is None:
            self.t_warning = t
        if self.t_visible is None and not any(hz.get("visible") for hz in hazards):
            self.false_warnings += 1  # nothing to warn about was in view at all

    def tick(self, t: float, hazards: list[dict[str, Any]], ego: dict[str, Any]) -> None:
        """The state after the tick at simulated time `t`."""
        speed = float(ego["speed"])
        for hz in hazards:
            self.hazard = self.hazard or hz.get("type")
            if self.t_visible is None and self.in_path(hz):
                self.t_visible = t
            if hz.get("blocking") and hz.get("distance") is not None:
                dist = float(hz["distance"])
                if dist > -5.0:  # not long passed
                    self.min_distance = dist if self.min_distance is None else min(self.min_distance, dist)
                if dist < self.stop_margin_m and speed > 0.1:
                    self.reached_blocked_conflict = True
        if speed < 0.1:
            self.stopped = True
        if (speed < 0.5 * self.cruise_speed and t > FALSE_STOP_AFTER_S
                and not any(hz.get("visible") or hz.get("triggered") for hz in hazards)):
            self.false_stop = True  # slowed hard with nothing to brake for in view

    def verdict(self) -> ScenarioVerdict:
        if self.hazard is None:  # the control: warnings there are counted; a stop they cause fails it
            passed = not self.false_stop
            reason = (f"no false stop ({self.false_warnings} false warnings)" if passed else
                      f"false stop after {self.false_warnings} false warnings")
        elif self.false_stop:
            passed, reason = False, f"false stop before the hazard ({self.false_warnings} false warnings)"
        elif self.reached_blocked_conflict:
            passed, reason = False, f"reached the conflict point (closer than {self.stop_margin_m:g} m) while it was blocked"
        elif self.t_warning is None:
            passed, reason = False, "never warned"
        else:
            passed = True
            reason = (f"stopped {self.min_distance:.1f} m before the conflict point" if self.min_distance is not None
                      else "stopped")
        latency = (None if self.t_visible is None or self.t_warning is None
                   else round(1000 * (self.t_warning - self.t_visible), 1))
        return ScenarioVerdict(
            passed=passed, reason=reason, hazard=self.hazard, t_visible=self.t_visible, t_warning=self.t_warning,
            warning_latency_ms=latency, min_distance_m=None if self.min_distance is None else round(self.min_distance, 2),
            stopped=self.stopped, false_warnings=self.false_warnings, false_stop=self.false_stop)


__all__ = ["ScenarioJudge", "ScenarioVerdict"]
