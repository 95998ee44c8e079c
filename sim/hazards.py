"""Scripted hazards of the closed-loop scenarios (`hazards:` in a scenario YAML), embedded simulator only.

Each hazard has a conflict point on the ego's path, given by its arc length `conflict_s` along the
ego's lane path (sim.traffic.LanePath), and starts ("triggers") when the ego's front is
`trigger_distance` metres from it:

- pedestrian_crossing: a person stands `lateral_offset` m (default 4) beside the ego's lane centre at
  the conflict point, `conflict_ahead` m ahead of the ego's start. Once triggered it walks straight
  across the ego's lane, perpendicular to the path, at `speed` (default 1.5 m/s) until it stands as
  far on the other side, where it stops.
- cyclist_cut_in: a cyclist rides ahead of the ego in the same direction, `lateral_offset` m (default
  3.5, the adjacent lane) to the side, timed so that it waits at the latest `CUT_IN_SECONDS * speed`
  m before the conflict point. Once triggered it steers into the ego's lane over CUT_IN_SECONDS,
  reaching the lane centre at the conflict point, then slows to SLOW_FRACTION of its speed and rides
  on in the ego's lane: an ego that does not brake runs into it.
- red_light: the conflict point is the stop line of the first signalised intersection on the ego's
  path at least `conflict_ahead` m ahead of its start; from the trigger on, that intersection's light
  is red for the ego's direction of travel (green for the cross traffic) until the end of the run.

The actors are created with the traffic, so they are in the renderer's vertex pool and are labelled
like every other person (person) and cyclist (rider + bicycle). None of them is an obstacle for the
simulated traffic (the ego does not slow down for them: stopping is the closed loop's job).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sim import models
from sim.town import LANE_W

if TYPE_CHECKING:  # pragma: no cover
    from sim.renderer import CameraPose
    from sim.frame import CameraIntrinsics
    from sim.scenario import HazardConfig
    from sim.traffic import Actor, Traffic

PED_SPEED, BIKE_SPEED = 1.5, 5.0         # default speeds, m/s
PED_OFFSET, BIKE_OFFSET = 4.0, 3.5       # default start offsets from the ego's lane centre, m
CUT_IN_SECONDS = 1.5                     # lateral move of the cyclist into the ego's lane
SLOW_FRACTION = 0.4                      # the cyclist rides on at this fraction of its speed ...
SLOW_DECEL = 2.0                         # ... slowing at this rate (m/s^2) after the cut-in
VISIBLE_RANGE = 80.0                     # m: beyond this a hazard does not count as visible
MIN_PIXELS = 40                          # ground-truth pixels of its class a person/cyclist needs to be visible
PERSON_HEIGHT, CYCLIST_HEIGHT = 1.85, 1.95


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def project(pose: "CameraPose", camera: "CameraIntrinsics", pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> (pixel (N, 2) as (column, row from the top), depth (N,)), the
    renderer's pinhole model (sim.renderer.projection)."""
    f, r, u = pose.axes()
    rel = np.asarray(pts, float) - np.array([pose.x, pose.y, pose.z])
    depth = rel @ f
    d = np.where(depth > 1e-6, depth, 1e-6)
    col = camera.cx + camera.fx * (rel @ r) / d
    row = camera.cy - camera.fy * (rel @ u) / d
    return np.stack([col, row], 1), depth


class Hazard:
    """Base class: conflict point, trigger, state dict and visibility bookkeeping."""

    type = ""

    def __init__(self, cfg: "HazardConfig", traffic: "Traffic") -> None:
        self.cfg = cfg
        self.triggered = False
        self.t_trigger: float | None = None
        self.conflict_s = 0.0
        self.actor: Actor | None = None
        self.side = 1.0 if cfg.side == "right" else -1.0
        # filled from the last rendered frame by EmbeddedSimulator
        self.view = {"in_view": False, "pixels": 0, "visible": False, "frame": None}

    # -- geometry of the ego's path at the conflict point ---------------------------------------------
    @staticmethod
    def ego_front(traffic: "Traffic") -> float:
        e = traffic.ego
        return e.s + e.model.length / 2

    def distance(self, traffic: "Traffic") -> float:
        return self.conflict_s - self.ego_front(traffic)

    def frame_at(self, traffic: "Traffic", s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, unit tangent, unit right) of the ego's path at arc length s."""
        x, y, yaw = traffic.ego.path.at(s)
        t = np.array([math.cos(yaw), math.sin(yaw)])
        return np.array([x, y]), t, np.array([t[1], -t[0]])

    # -- life cycle -------------------------------------------------------------------------------------
    def update(self, traffic: "Traffic", dt: float) -> None:
        if not self.triggered and self.distance(traffic) <= self.cfg.trigger_distance:
            self.triggered = True
            self.t_trigger = traffic.time
        self.move(traffic, dt)

    def move(self, traffic: "Traffic", dt: float) -> None:
        pass

    def lights(self, traffic: "Traffic", overrides: dict) -> None:
        """Add this hazard's forced light states to `overrides` (node -> (axis, state))."""

    def blocking(self, traffic: "Traffic") -> bool:
        return False

    def lateral(self) -> float | None:
        """Signed offset of the actor from the ego's path at its position (m, + right of travel)."""
        return None

    def actor_xy(self) -> tuple[float, float] | None:
        return None if self.actor is None else (float(self.actor.x), float(self.actor.y))

    def check_view(self, traffic: "Traffic", pose: "CameraPose", camera: "CameraIntrinsics",
                   labels: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def state(self, traffic: "Traffic") -> dict[str, Any]:
        lat = self.lateral()
        return {"type": self.type, "triggered": self.triggered,
                "t_trigger": None if self.t_trigger is None else round(self.t_trigger, 6),
                "conflict_s": round(float(self.conflict_s), 4), "distance": round(float(self.distance(traffic)), 4),
                "blocking": bool(self.blocking(traffic)), "actor_xy": self.actor_xy(),
                "lateral": None if lat is None else round(float(lat), 4),
                "visible": bool(self.view["visible"]), "in_view": bool(self.view["in_view"]),
                "pixels": int(self.view["pixels"]), "view_frame": self.view["frame"]}


class _ActorHazard(Hazard):
    """Pedestrian or cyclist: visibility from the ground-truth pixels of its class in its image box."""

    classes: tuple[int, ...] = ()
    height = PERSON_HEIGHT

    def check_view(self, traffic, pose, camera, labels):
        a = self.actor
        assert a is not None
        dist = math.hypot(a.x - pose.x, a.y - pose.y)
        c, s = math.cos(a.yaw), math.sin(a.yaw)
        hl, hw = a.model.length / 2 + 0.1, a.model.width / 2 + 0.1
        corners = []
        for dx in (-hl, hl):
            for dy in (-hw, hw):
                for z in (0.0, self.height):
                    corners.append((a.x + c * dx - s * dy, a.y + s * dx + c * dy, z))
        px, depth = project(pose, camera, np.array(corners))
        centre, cdepth = project(pose, camera, np.array([[a.x, a.y, self.height / 2]]))
        in_fov = bool(cdepth[0] > 0.5 and 0 <= centre[0, 0] < camera.width and 0 <= centre[0, 1] < camera.height)
        pixels = 0
        if in_fov and (depth > 0.5).all() and dist < VISIBLE_RANGE:
            c0 = int(max(0, math.floor(px[:, 0].min())))
            c1 = int(min(camera.width, math.ceil(px[:, 0].max()) + 1))
            r0 = int(max(0, math.floor(px[:, 1].min())))
            r1 = int(min(camera.height, math.ceil(px[:, 1].max()) + 1))
            if c1 > c0 and r1 > r0:
                box = labels[r0:r1, c0:c1]
                pixels = int(np.isin(box, self.classes).sum())
        in_view = in_fov and dist < VISIBLE_RANGE and pixels >= MIN_PIXELS
        return {"in_view": in_view, "pixels": pixels, "visible": in_view and self.triggered}


class PedestrianCrossing(_ActorHazard):
    type = "pedestrian_crossing"

    def __init__(self, cfg, traffic, rng):
        super().__init__(cfg, traffic)
        from sim.traffic import Actor
        from sqgan_core.labels import class_id

        self.classes = (class_id("person"),)
        self.speed = cfg.speed if cfg.speed is not None else PED_SPEED
        self.lat0 = cfg.lateral_offset if cfg.lateral_offset is not None else PED_OFFSET
        self.lat = self.lat0  # toward `side`, from the ego's lane centre
        e = traffic.ego
        self.conflict_s = e.s + cfg.conflict_ahead
        e.path.ensure(e.s, ahead=cfg.conflict_ahead + 40.0)
        self.p, self.t, self.r = self.frame_at(traffic, self.conflict_s)
        walk = -self.side * self.r
        self.actor = Actor("person", models.pedestrian(rng), target_speed=0.0, speed=0.0,
                           phase=float(rng.uniform(0, 6.28)), scripted=True,
                           yaw=math.atan2(walk[1], walk[0]))
        self._place()

    def _place(self) -> None:
        xy = self.p + self.r * self.side * self.lat
        self.actor.x, self.actor.y = float(xy[0]), float(xy[1])

    def move(self, traffic, dt):
        a = self.actor
        if self.triggered and self.lat > -self.lat0:
            step = min(self.speed * dt, self.lat + self.lat0)
            self.lat -= step
            a.speed = self.speed if self.lat > -self.lat0 else 0.0
            a.phase += step * 3.2
        else:
            a.speed = 0.0
        self._place()

    def lateral(self):
        return self.side * self.lat

    def blocking(self, traffic):
        return abs(self.lat) < LANE_W / 2 + self.actor.model.width / 2


class CutInScript:
    """The cyclist's script along the ego's path, shared by the embedded simulator (CyclistCutIn) and
    the CARLA bridge (sim.carla_hazards): arc length `sc`, offset `lat` from the ego's lane centre
    (toward `side`), its rate `dlat`, speed `v`, and `tau`, the time since the trigger."""

    conflict_s: float
    triggered: bool

    def start_cut_in(self, cfg: "HazardConfig", ego_front: float, ego_speed: float) -> None:
        """Where the cyclist starts, for the ego's front at `ego_front` driving at `ego_speed`."""
        self.speed = cfg.speed if cfg.speed is not None else BIKE_SPEED
        self.lat0 = cfg.lateral_offset if cfg.lateral_offset is not None else BIKE_OFFSET
        self.lat = self.lat0
        # the cut-in starts CUT_IN_SECONDS before the conflict point; ride there by the nominal trigger
        # time (the ego at its set speed), or wait there if the ego comes later
        self.s_wait = self.conflict_s - self.speed * CUT_IN_SECONDS
        t_trig = max(0.0, self.conflict_s - ego_front - cfg.trigger_distance) / max(ego_speed, 0.1)
        self.sc = max(ego_front + 6.0, min(self.s_wait, self.s_wait - self.speed * t_trig))
        self.v = self.speed
        self.tau = 0.0
        self.dlat = 0.0

    def ride(self, dt: float) -> None:
        """One step of `dt` s: ride to the waiting point, then (triggered) steer in and slow down."""
        self.dlat = 0.0
        if not self.triggered:
            self.v = self.speed if self.sc < self.s_wait else 0.0
            self.sc = min(self.sc + self.speed * dt, max(self.sc, self.s_wait))
        else:
            self.tau += dt
            if self.tau <= CUT_IN_SECONDS + 1e-9:
                new = self.lat0 * (1.0 - _smoothstep(self.tau / CUT_IN_SECONDS))
                self.dlat = (new - self.lat) / dt
                self.lat = new
                self.v = self.speed
            else:
                self.lat = 0.0
                self.v = max(self.speed * SLOW_FRACTION, self.v - SLOW_DECEL * dt)
            self.sc += self.v * dt


class CyclistCutIn(CutInScript, _ActorHazard):
    type = "cyclist_cut_in"
    height = CYCLIST_HEIGHT

    def __init__(self, cfg, traffic, rng):
        super().__init__(cfg, traffic)
        from sim.traffic import Actor
        from sqgan_core.labels import class_id

        self.classes = (class_id("rider"), class_id("bicycle"))
        e = traffic.ego
        self.conflict_s = e.s + cfg.conflict_ahead
        self.start_cut_in(cfg, self.ego_front(traffic), e.target_speed)
        e.path.ensure(e.s, ahead=cfg.conflict_ahead + 40.0)
        self.actor = Actor("bike", models.bicycle(rng), target_speed=self.speed, speed=self.speed, scripted=True)
        self._place(traffic)

    def _place(self, traffic: "Traffic") -> None:
        a = self.actor
        p, t, r = self.frame_at(traffic, self.sc)
        xy = p + r * self.side * self.lat
        vel = t * max(self.v, 1e-3) + r * self.side * self.dlat
        a.x, a.y = float(xy[0]), float(xy[1])
        a.yaw = math.atan2(vel[1], vel[0])
        a.s = self.sc  # pedalling follows the distance ridden
        a.speed = self.v

    def move(self, traffic, dt):
        e = traffic.ego
        self.ride(dt)
        # keep the ego's path long enough for the cyclist (trimming stays relative to the ego)
        if e.path.s[-1] < self.sc + 10.0:
            e.path.ensure(e.s, ahead=self.sc - e.s + 40.0)
        self._place(traffic)

    def lateral(self):
        return self.side * self.lat

    def blocking(self, traffic):
        a = self.actor
        in_lane = abs(self.lat) < LANE_W / 2 + a.model.width / 2
        return in_lane and self.sc + a.model.length / 2 > self.ego_front(traffic)


class RedLight(Hazard):
    type = "red_light"

    def __init__(self, cfg, traffic, rng):
        super().__init__(cfg, traffic)
        e = traffic.ego
        front = self.ego_front(traffic)
        ahead = cfg.conflict_ahead
        while True:
            ev = next((ev for ev in e.path.events if ev[0] - front >= cfg.conflict_ahead), None)
            if ev is not None:
                break
            ahead += 100.0
            e.path.ensure(e.s, ahead=ahead)
        self.conflict_s, self.node, self.axis = float(ev[0]), ev[1], ev[2]
        self.offset = float(traffic.town.light_offset[self.node])
        self.heads = self._heads(traffic)

    def _heads(self, traffic) -> np.ndarray:
        """World positions of the two signal heads facing the ego (see sim.town._traffic_light)."""
        town = traffic.town
        _, t, _ = self.frame_at(traffic, self.conflict_s)
        dx, dy = int(round(t[0])), int(round(t[1]))
        i, j = self.node
        x, y = float(town.xs[i]), float(town.ys[j])
        road, cross = (town.hroads[j], town.vroads[i]) if self.axis == "x" else (town.vroads[i], town.hroads[j])
        rx, ry = dy, -dx
        cx = x - dx * (cross.half_width + 1.2) + rx * (road.half_width + 1.0)
        cy = y - dy * (cross.half_width + 1.2) + ry * (road.half_width + 1.0)
        arm = road.lane_offset(road.lanes - 1) + road.half_width - 1.0
        arm_len = max(2.0, min(arm, 8.0) - 0.5)
        face = math.atan2(-dy, -dx)
        return np.array([[cx + math.cos(face) * 0.25, cy + math.sin(face) * 0.25, 2.3 + 0.52],
                         [cx - rx * arm_len, cy - ry * arm_len, 4.45 + 0.52]])

    def lights(self, traffic, overrides):
        if self.triggered:
            overrides[self.node] = (self.axis, "red")

    def blocking(self, traffic):
        return traffic.light(self.node, self.axis) == "red"

    def actor_xy(self):
        return float(self.heads[1, 0]), float(self.heads[1, 1])

    def check_view(self, traffic, pose, camera, labels):
        px, depth = project(pose, camera, self.heads)
        dist = np.hypot(self.heads[:, 0] - pose.x, self.heads[:, 1] - pose.y)
        seen = ((depth > 0.5) & (dist < VISIBLE_RANGE) & (px[:, 0] >= 0) & (px[:, 0] < camera.width)
                & (px[:, 1] >= 0) & (px[:, 1] < camera.height))
        in_view = bool(seen.any())
        red = traffic.light(self.node, self.axis) == "red"
        return {"in_view": in_view, "pixels": 0, "visible": in_view and red}


KINDS = {"pedestrian_crossing": PedestrianCrossing, "cyclist_cut_in": CyclistCutIn, "red_light": RedLight}


def make_hazard(cfg: "HazardConfig", traffic: "Traffic", seed: int, k: int) -> Hazard:
    """The runtime hazard for one `hazards:` entry; its actor (if any) is for the caller to add."""
    rng = np.random.default_rng([seed, 67, k])
    return KINDS[cfg.type](cfg, traffic, rng)
