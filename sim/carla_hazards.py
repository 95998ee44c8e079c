"""The closed-loop scenarios' scripted hazards on a CARLA server (the embedded simulator's are in
sim/hazards.py; the YAML `hazards:` entries and the state keys are the same).

The ego drives its scenario route (`carla.drive: route`), so its path is known: `RoutePath` samples it
from the spawn waypoint, 1 m apart, and arc length along it is the common coordinate, as on the
embedded simulator. Each hazard's conflict point sits on that path:

- pedestrian_crossing: a walker (`walker.pedestrian.*`) stands `lateral_offset` m beside the lane
  centre at the conflict point; once triggered, a carla.WalkerControl walks it across the ego's lane at
  `speed` until it stands as far on the other side.
- cyclist_cut_in: a bicycle (`vehicle.bh.crossbike`, or any two-wheeled vehicle blueprint) moved
  kinematically (physics off, one transform per tick) on the embedded simulator's script: it rides
  ahead in the adjacent lane, steers into the ego's lane over 1.5 s, reaching its centre at the
  conflict point, and rides on slower.
- red_light: the first traffic light on the route at least `conflict_ahead` m ahead
  (waypoint landmarks of type TrafficLight); once triggered it is set red and frozen.

Visibility as on the embedded simulator: a walker or cyclist is visible once its box in the image
holds at least 40 pixels of its class in the semantic camera's labels (within 80 m, in view, triggered);
a light once either of its heads projects into the image and it is red.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from sim.hazards import MIN_PIXELS, PED_OFFSET, PED_SPEED, VISIBLE_RANGE, CutInScript
from sim.frame import TICK_SECONDS
from sqgan_core.labels import class_id

STEP_M = 1.0


class CarlaHazardError(RuntimeError):
    """A hazard that cannot be staged on this map or server (one line naming the hazard and why)."""


class RoutePath:
    """The ego's route ahead as CARLA waypoints STEP_M apart; s = arc length from the ego's start."""

    def __init__(self, start_wp: Any, pick: Callable[[list, Any], Any], length: float) -> None:
        self.wps = [start_wp]
        while len(self.wps) * STEP_M < length:
            options = list(self.wps[-1].next(STEP_M))
            if not options:
                break
            self.wps.append(pick(options, self.wps[-1]) if len(options) > 1 else options[0])

    @property
    def length(self) -> float:
        return (len(self.wps) - 1) * STEP_M

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """(point, unit forward, unit right, waypoint) at arc length s (CARLA's left-handed frame: right
        of yaw 0 is +y)."""
        i = int(min(max(round(s / STEP_M), 0), len(self.wps) - 1))
        wp = self.wps[i]
        loc, yaw = wp.transform.location, math.radians(wp.transform.rotation.yaw)
        f = np.array([math.cos(yaw), math.sin(yaw)])
        return np.array([loc.x, loc.y]), f, np.array([-f[1], f[0]]), wp


class CameraView:
    """Pinhole projection of world points for the ego's camera (mount and pitch of the scenario)."""

    def __init__(self, ego_transform: Any, mount_x: float, mount_z: float, pitch_deg: float, camera: Any) -> None:
        loc, rot = ego_transform.location, ego_transform.rotation
        yaw, ego_pitch = math.radians(rot.yaw), math.radians(rot.pitch)
        fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        self.pos = np.array([loc.x, loc.y, loc.z]) + mount_x * fwd + np.array([0.0, 0.0, mount_z])
        p = ego_pitch + math.radians(pitch_deg)
        self.f = np.array([math.cos(yaw) * math.cos(p), math.sin(yaw) * math.cos(p), math.sin(p)])
        self.r = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
        self.u = np.cross(self.r, self.f)  # up (CARLA is left-handed: right x forward is up)
        self.cam = camera

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = np.asarray(pts, float) - self.pos
        depth = rel @ self.f
        d = np.where(depth > 1e-6, depth, 1e-6)
        col = self.cam.cx + self.cam.fx * (rel @ self.r) / d
        row = self.cam.cy - self.cam.fy * (rel @ self.u) / d
        return np.stack([col, row], 1), depth


class _Hazard:
    type = ""
    classes: tuple[int, ...] = ()
    height, half_width = 1.85, 0.4

    def __init__(self, cfg: Any, path: RoutePath) -> None:
        self.cfg, self.path = cfg, path
        self.side = 1.0 if cfg.side == "right" else -1.0
        self.triggered = False
        self.t_trigger: float | None = None
        self.conflict_s = float(cfg.conflict_ahead)
        self.actor: Any = None
        self.view = {"in_view": False, "pixels": 0, "visible": False}

    def update(self, t: float, ego_front_s: float) -> None:
        if not self.triggered and self.conflict_s - ego_front_s <= self.cfg.trigger_distance:
            self.triggered, self.t_trigger = True, t
            self.start()
        self.move()

    def start(self) -> None:
        pass

    def move(self) -> None:
        pass

    def lateral(self) -> float | None:
        return None

    def blocking(self, ego_front_s: float) -> bool:
        return False

    def xy(self) -> tuple[float, float] | None:
        if self.actor is None:
            return None
        loc = self.actor.get_transform().location
        return float(loc.x), float(loc.y)

    def ground_z(self) -> float:
        """The road surface under the actor (the route's waypoint height there)."""
        return float(self.path.at(self.conflict_s)[3].transform.location.z)

    def check_view(self, view: CameraView, labels: np.ndarray) -> None:
        xy = self.xy()
        assert xy is not None
        ground = self.ground_z()
        corners = np.array([(xy[0] + dx, xy[1] + dy, ground + z) for dx in (-self.half_width, self.half_width)
                            for dy in (-self.half_width, self.half_width) for z in (0.0, self.height)])
        px, depth = view.project(corners)
        dist = math.hypot(xy[0] - view.pos[0], xy[1] - view.pos[1])
        cam = view.cam
        pixels = 0
        if (depth > 0.5).all() and dist < VISIBLE_RANGE:
            c0, c1 = int(max(0, math.floor(px[:, 0].min()))), int(min(cam.width, math.ceil(px[:, 0].max()) + 1))
            r0, r1 = int(max(0, math.floor(px[:, 1].min()))), int(min(cam.height, math.ceil(px[:, 1].max()) + 1))
            if c1 > c0 and r1 > r0:
                pixels = int(np.isin(labels[r0:r1, c0:c1], self.classes).sum())
        in_view = dist < VISIBLE_RANGE and pixels >= MIN_PIXELS
        self.view = {"in_view": in_view, "pixels": pixels, "visible": in_view and self.triggered}

    def state(self, ego_front_s: float) -> dict[str, Any]:
        lat = self.lateral()
        return {"type": self.type, "triggered": self.triggered,
                "t_trigger": None if self.t_trigger is None else round(self.t_trigger, 6),
                "conflict_s": round(self.conflict_s, 4), "distance": round(self.conflict_s - ego_front_s, 4),
                "blocking": bool(self.blocking(ego_front_s)), "actor_xy": self.xy(),
                "lateral": None if lat is None else round(float(lat), 4), **self.view}


class _Walker(_Hazard):
    type = "pedestrian_crossing"

    def __init__(self, cfg: Any, path: RoutePath, world: Any, carla: Any, lib: Any) -> None:
        super().__init__(cfg, path)
        self.carla = carla
        self.classes = (class_id("person"),)
        self.speed = cfg.speed if cfg.speed is not None else PED_SPEED
        self.lat0 = cfg.lateral_offset if cfg.lateral_offset is not None else PED_OFFSET
        self.p, _, self.r, wp = path.at(self.conflict_s)
        self.lane_half = float(getattr(wp, "lane_width", 3.5)) / 2
        bps = list(lib.filter("walker.pedestrian.*"))
        if not bps:
            raise CarlaHazardError("pedestrian_crossing: the server has no walker.pedestrian.* blueprint")
        xy = self.p + self.r * self.side * self.lat0
        z = wp.transform.location.z + 1.0
        self.actor = world.try_spawn_actor(bps[0], carla.Transform(carla.Location(x=float(xy[0]), y=float(xy[1]), z=z),
                                                                   carla.Rotation(yaw=0.0)))
        if self.actor is None:
            raise CarlaHazardError(f"pedestrian_crossing: no room for the walker {self.lat0:g} m beside the "
                                   f"route {self.conflict_s:g} m ahead")
        self.walking = False

    def lateral(self) -> float:
        xy = self.xy()
        return float((np.array(xy) - self.p) @ self.r)

    def start(self) -> None:
        d = -self.side * self.r
        self.actor.apply_control(self.carla.WalkerControl(direction=self.carla.Vector3D(x=float(d[0]), y=float(d[1]), z=0.0),
                                                          speed=float(self.speed)))
        self.walking = True

    def move(self) -> None:
        if self.walking and self.side * self.lateral() <= -self.lat0:
            self.actor.apply_control(self.carla.WalkerControl(speed=0.0))
            self.walking = False

    def blocking(self, ego_front_s: float) -> bool:
        return abs(self.lateral()) < self.lane_half + self.half_width


class _Cyclist(CutInScript, _Hazard):
    type = "cyclist_cut_in"
    height, half_width = 1.95, 0.45

    def __init__(self, cfg: Any, path: RoutePath, world: Any, carla: Any, lib: Any, ego_front_s: float,
                 ego_speed: float) -> None:
        super().__init__(cfg, path)
        self.carla = carla
        self.classes = (class_id("rider"), class_id("bicycle"))
        self.start_cut_in(cfg, ego_front_s, ego_speed)
        _, _, _, wp = path.at(self.conflict_s)
        self.lane_half = float(getattr(wp, "lane_width", 3.5)) / 2
        bps = list(lib.filter("vehicle.bh.crossbike")) or [
            b for b in lib.filter("vehicle.*") if b.has_attribute("number_of_wheels")
            and str(b.get_attribute("number_of_wheels")) == "2"]
        if not bps:
            raise CarlaHazardError("cyclist_cut_in: the server has no bicycle blueprint (vehicle.bh.crossbike)")
        self.actor = world.try_spawn_actor(bps[0], self._transform())
        if self.actor is None:
            raise CarlaHazardError(f"cyclist_cut_in: no room for the bicycle {self.sc:.0f} m along the route")
        self.actor.set_simulate_physics(False)

    def _transform(self) -> Any:
        p, f, r, wp = self.path.at(self.sc)
        xy = p + r * self.side * self.lat
        vel = f * max(self.v, 1e-3) + r * self.side * self.dlat
        c = self.carla
        return c.Transform(c.Location(x=float(xy[0]), y=float(xy[1]), z=wp.transform.location.z + 0.1),
                           c.Rotation(yaw=math.degrees(math.atan2(vel[1], vel[0]))))

    def move(self) -> None:
        self.ride(TICK_SECONDS)
        self.actor.set_transform(self._transform())

    def lateral(self) -> float:
        return self.side * self.lat

    def blocking(self, ego_front_s: float) -> bool:
        return abs(self.lat) < self.lane_half + self.half_width and self.sc + 0.9 > ego_front_s


class _RedLight(_Hazard):
    type = "red_light"

    def __init__(self, cfg: Any, path: RoutePath, world: Any, carla: Any) -> None:
        super().__init__(cfg, path)
        self.carla = carla
        found = None
        s = max(0.0, cfg.conflict_ahead - 1.0)
        while found is None and s < path.length:
            _, _, _, wp = path.at(s)
            for lm in wp.get_landmarks_of_type(50.0, carla.LandmarkType.TrafficLight):
                if s + lm.distance >= cfg.conflict_ahead:
                    found = (s + float(lm.distance), world.get_traffic_light(lm))
                    break
            s += 40.0
        if found is None or found[1] is None:
            raise CarlaHazardError(f"red_light: no traffic light on the route at least {cfg.conflict_ahead:g} m ahead "
                                   f"(route sampled for {path.length:.0f} m)")
        self.conflict_s, self.actor = found

    def start(self) -> None:
        self.actor.set_state(self.carla.TrafficLightState.Red)
        self.actor.freeze(True)

    def blocking(self, ego_front_s: float) -> bool:
        return self.actor.get_state() == self.carla.TrafficLightState.Red

    def check_view(self, view: CameraView, labels: np.ndarray) -> None:
        loc = self.actor.get_transform().location
        heads = np.array([[loc.x, loc.y, loc.z + h] for h in (2.8, 5.0)])
        px, depth = view.project(heads)
        dist = np.hypot(heads[:, 0] - view.pos[0], heads[:, 1] - view.pos[1])
        cam = view.cam
        seen = ((depth > 0.5) & (dist < VISIBLE_RANGE) & (px[:, 0] >= 0) & (px[:, 0] < cam.width)
                & (px[:, 1] >= 0) & (px[:, 1] < cam.height))
        in_view = bool(seen.any())
        self.view = {"in_view": in_view, "pixels": 0, "visible": in_view and self.blocking(0.0)}


def stage_hazards(configs: list, path: RoutePath, world: Any, carla: Any, ego_front_s: float,
                  ego_speed: float) -> list[_Hazard]:
    """Spawn or find each hazard of the scenario on the route (CarlaHazardError when one cannot be)."""
    lib = world.get_blueprint_library()
    out: list[_Hazard] = []
    for cfg in configs:
        if cfg.type == "pedestrian_crossing":
            out.append(_Walker(cfg, path, world, carla, lib))
        elif cfg.type == "cyclist_cut_in":
            out.append(_Cyclist(cfg, path, world, carla, lib, ego_front_s, ego_speed))
        elif cfg.type == "red_light":
            out.append(_RedLight(cfg, path, world, carla))
        else:  # pragma: no cover - the scenario loader refuses unknown types
            raise CarlaHazardError(f"hazard type {cfg.type!r} is not scripted on CARLA")
    return out


__all__ = ["CameraView", "CarlaHazardError", "RoutePath", "stage_hazards"]
