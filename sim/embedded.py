"""The embedded driving simulator: town + traffic + renderer behind the FrameSource protocol.

Deterministic for a given scenario: the town, the traffic and every noise pattern derive from the
scenario's seeds, the clock advances exactly 0.05 s per `step()`, and the renderer is
single-pass (RGB and labels from the same fragments), so the same seed gives byte-identical
frames on the same machine.

Closed loop (issue 16): `set_brake()` is the ego's longitudinal command, `ego_state()` and
`hazard_state()` what a scenario runner checks; scripted hazards come from the scenario's `hazards:`
(sim/hazards.py) and their state also rides on every SimFrame (`frame.hazards`).
"""
from __future__ import annotations

import math

import numpy as np

from sim.frame import TICK_SECONDS, Pose, SimFrame
from sim.renderer import CameraPose, Environment, Renderer
from sim.scenario import ScenarioConfig
from sim.source import SourceBase
from sim.town import build_town
from sim.traffic import Traffic


class EmbeddedSimulator(SourceBase):
    """Procedural town rendered headless with OpenGL; yields `SimFrame`s at 20 Hz."""

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.camera = config.camera.intrinsics()
        self.role_name = config.ego.role_name
        self.max_frames = config.frames
        tr = config.traffic
        dens = tr.density
        self.town = build_town(config.town_seed, config.town.blocks_x, config.town.blocks_y,
                               parked=int(round(tr.parked * dens)))
        counts = {"vehicles": int(round(tr.vehicles * dens)), "pedestrians": int(round(tr.pedestrians * dens)),
                  "cyclists": int(round(tr.cyclists * dens)), "motorcycles": int(round(tr.motorcycles * dens)),
                  "trams": tr.trams}
        self.traffic = Traffic(self.town, config.seed, counts, config.ego.speed, config.ego.route,
                               config.ego.obey_traffic_lights, hazards=config.hazards,
                               ego_max_decel=config.ego.max_decel, green_wave=config.ego.green_wave)
        self.env = Environment.from_config(config.weather, config.camera, config.seed)
        self.renderer = Renderer(self.camera, self.town.chunks)
        self.index = -1
        self._bob = np.random.default_rng([config.seed, 53]).uniform(0, 6.28, 3)

    @property
    def time(self) -> float:
        return max(self.index, 0) * TICK_SECONDS

    def camera_pose(self) -> CameraPose:
        """Camera rigidly mounted on the ego, with a little suspension motion."""
        e = self.traffic.ego
        m = self.config.ego
        t = self.time
        bob = 0.004 * math.sin(2 * math.pi * 1.3 * t + self._bob[0]) * min(1.0, e.speed / 5.0)
        return CameraPose(e.x + math.cos(e.yaw) * m.mount_x, e.y + math.sin(e.yaw) * m.mount_x,
                          m.mount_z + 0.01 * math.sin(2 * math.pi * 0.9 * t + self._bob[1]), e.yaw,
                          math.radians(m.pitch) + bob, 0.002 * math.sin(2 * math.pi * 0.7 * t + self._bob[2]))

    def _tick(self) -> None:
        if self.renderer is None:
            raise RuntimeError("simulator is closed")
        self.index += 1
        if self.index > 0:
            self.traffic.step(TICK_SECONDS)

    def step(self) -> SimFrame:
        self._tick()
        pose = self.camera_pose()
        dyn = self.traffic.vertices(pose.x, pose.y, pose.yaw)
        forced = self.traffic.forced_lights() or None
        rgb, labels = self.renderer.render(pose, dyn, self.env, self.time, self.index, forced_lights=forced)
        for hz in self.traffic.hazards:  # visibility is judged on what this frame shows
            hz.view = {**hz.check_view(self.traffic, pose, self.camera, labels), "frame": self.index}
        e = self.traffic.ego
        return SimFrame(rgb=rgb, labels=labels, stamp=round(self.time, 6), index=self.index, camera=self.camera,
                        ego_pose=Pose(e.x, e.y, 0.0, 0.0, 0.0, math.degrees(e.yaw)), ego_speed=e.speed,
                        source="embedded", hazards=self.hazard_state())

    # -- closed loop ------------------------------------------------------------------------------
    def set_brake(self, active: bool) -> None:
        """The ego's brake command, applied from the next tick on. While active the ego's desired speed
        is 0 and it decelerates at `ego.max_decel` (m/s^2, default 6: emergency braking on dry
        asphalt) until it stands; released, it accelerates back to `ego.speed` at 2.5 m/s^2. Without a
        command the ego drives as in an open-loop scenario."""
        self.traffic.brake = bool(active)

    def ego_state(self) -> dict:
        """The ego now: `s` (arc length of its centre along its path, m), `front_s` (of its front bumper),
        `speed` (m/s), `x`, `y` (m, world), `yaw` (radians, counter-clockwise from +x), `braking` (the brake
        command), `stopped` (speed < 0.05 m/s), `time` (s), `target_speed` and `max_decel`."""
        e = self.traffic.ego
        return {"s": float(e.s), "front_s": float(e.s + e.model.length / 2), "speed": float(e.speed),
                "x": float(e.x), "y": float(e.y), "yaw": float(e.yaw), "braking": bool(self.traffic.brake),
                "stopped": bool(e.speed < 0.05), "time": round(self.time, 6), "target_speed": float(e.target_speed),
                "max_decel": float(self.traffic.ego_max_decel)}

    def hazard_state(self) -> list[dict]:
        """One dict per scripted hazard (scenario `hazards:` order); [] without hazards. Keys: `type`,
        `triggered`, `t_trigger` (s or None), `conflict_s` (ego-path arc length of the conflict point),
        `distance` (conflict_s minus the ego's front arc length, m; negative once passed), `blocking`
        (person or cyclist overlapping the ego's lane, the cyclist still ahead of the ego's front; the
        light red), `actor_xy` (world x, y of the person, cyclist or signal head), `lateral` (signed
        offset of the person/cyclist from the ego's path, m, + right; None for a light), and from the
        last rendered frame (`view_frame`): `in_view` (in the field of view, ahead, within 80 m and, for a
        person/cyclist, >= 40 ground-truth pixels of its class in its image box; a light: either head
        projects into the image), `pixels` (that count), `visible` (in_view and triggered; a light: in_view
        and red)."""
        return [hz.state(self.traffic) for hz in self.traffic.hazards]

    def skip(self) -> None:
        """Advance the clock and the traffic one tick without rendering (~10x cheaper than step())."""
        self._tick()

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
