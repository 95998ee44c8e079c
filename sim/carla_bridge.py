"""CARLA bridge: the same `FrameSource` protocol and `SimFrame`s as the embedded simulator,
from a CARLA server (0.9.13 or newer, 0.10 included).

Connects with the `carla` Python API (optional dependency, imported lazily), loads the
scenario's town, spawns the ego vehicle (`role_name` attribute) with an RGB and a
semantic-segmentation camera at the scenario's intrinsics, runs synchronous mode at 0.05 s and
drives with the Traffic Manager's autopilot or along the scenario route on map waypoints.

There is no version lock (the official ROS bridge exits unless carla == 0.9.13): any client from
0.9.13 is accepted; a client/server mismatch is reported as a warning, and the semantic tag set
is chosen from the *server* version, which is what renders the tags.
"""
from __future__ import annotations

import math
import queue
import time
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from sim.carla_tags import bgra_to_rgb, parse_version, tag_set_for_version, tags_to_train_ids
from sim.frame import TICK_SECONDS, Pose, SimFrame
from sim.scenario import ScenarioConfig
from sim.source import SourceBase
from sqgan_core.errors import InputError

MIN_VERSION = (0, 9, 13)
RELEASE_ACCEL = 2.5  # m/s^2: the ego speeding up again once the brake is released (as sim/traffic.py)
# Sensor role names = the topic names the CARLA ROS bridge derives from them (/carla/<role>/<id>/image).
SENSOR_IDS = {"rgb": "rgb_front", "semantic": "semantic_segmentation_front"}


class CarlaUnavailable(ImportError):
    """The carla Python package is missing or too old."""


class CarlaConnectionError(InputError, ConnectionError):
    """The CARLA server could not be reached within the configured timeout."""


def _wheels(bp: Any) -> int | None:
    """A vehicle blueprint's number_of_wheels (None where it has no such attribute)."""
    if not bp.has_attribute("number_of_wheels"):
        return None
    a = bp.get_attribute("number_of_wheels")
    return int(a.as_int()) if hasattr(a, "as_int") else int(str(a))


def import_carla() -> ModuleType:
    try:
        import carla  # noqa: PLC0415 - optional dependency, imported only when the bridge is used
    except ImportError as exc:
        raise CarlaUnavailable(
            f"the carla Python package is not installed ({exc}); install the client matching your server, "
            "e.g. `pip install carla==0.9.16` (any version from 0.9.13 works)") from None
    return carla


# What the scenario's weather sets; every other field (fog_distance, fog_falloff, scattering, wind, ...)
# keeps the preset's value: zeros there make fog and sky look wrong on a real server.
SCENARIO_WEATHER_FIELDS = ("cloudiness", "precipitation", "precipitation_deposits", "wetness", "fog_density",
                           "sun_altitude_angle", "sun_azimuth_angle")


def weather_parameters(carla: ModuleType, cfg: ScenarioConfig) -> Any:
    """Scenario weather -> carla.WeatherParameters: a copy of the named preset (carla.weather_preset,
    default ClearNoon) with the scenario's cloudiness, rain, fog and sun (altitude from the time of day)."""
    preset_name = cfg.carla.weather_preset
    preset = getattr(carla.WeatherParameters, preset_name, None)
    if preset is None or not hasattr(preset, "cloudiness"):
        known = sorted(n for n in dir(carla.WeatherParameters) if n[:1].isupper())
        raise ValueError(f"carla.weather_preset {preset_name!r} is not a carla.WeatherParameters preset "
                         f"(known: {', '.join(known)})")
    weather = carla.WeatherParameters()
    for name in dir(preset):  # copy every weather field of the preset, whatever this client version has
        value = getattr(preset, name)
        if not name.startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(weather, name, value)
    w = cfg.weather
    values = {"cloudiness": 100.0 * w.cloudiness, "precipitation": 100.0 * w.rain,
              "precipitation_deposits": 80.0 * w.rain, "wetness": 100.0 * w.rain, "fog_density": 100.0 * w.fog,
              "sun_altitude_angle": 62.0 * math.sin(math.pi * (w.time_of_day - 6.0) / 12.0),
              "sun_azimuth_angle": w.sun_azimuth if w.sun_azimuth is not None else (cfg.seed * 137.5) % 360.0}
    for name in SCENARIO_WEATHER_FIELDS:
        setattr(weather, name, values[name])
    return weather


class CarlaSource(SourceBase):
    """Frames from a CARLA server in synchronous mode (see module docstring)."""

    def __init__(self, config: ScenarioConfig, carla_module: ModuleType | None = None) -> None:
        self.config = config
        self.carla = carla_module or import_carla()
        carla = self.carla
        c = config.carla
        self.camera = config.camera.intrinsics()
        self.role_name = config.ego.role_name
        self.max_frames = config.frames
        self.actors: list[Any] = []
        self.sensors: list[Any] = []
        self.index = -1
        self._closed = False
        self.braking = False  # the closed loop's brake command (set_brake)
        self.route_speed = float(config.ego.speed)  # route drive: the speed the ego moves along the route at
        self.route_s = 0.0  # route drive: metres driven along the route
        self.hazards: list = []  # scripted hazards (sim/carla_hazards.py)
        self.labels_last = None
        self.last_speed = 0.0
        self._original_settings = None
        client_version = str(getattr(carla, "__version__", "") or "")
        self.client = carla.Client(c.host, c.port)
        self.client.set_timeout(c.timeout)
        t0 = time.monotonic()
        try:
            self.server_version = str(self.client.get_server_version())
            self.world = self.client.get_world()
        except RuntimeError as exc:
            raise CarlaConnectionError(
                f"could not reach a CARLA server at {c.host}:{c.port} within {c.timeout:g} s "
                f"(waited {time.monotonic() - t0:.1f} s): {exc}. Start the server (CarlaUE4.sh / CarlaUnreal.sh) "
                "or set carla.host / carla.port in the scenario") from None
        try:
            client_version = str(self.client.get_client_version())
        except Exception:  # noqa: BLE001 - very old clients lack it; only used for the warning
            pass
        self.client_version = client_version
        if parse_version(self.server_version) < MIN_VERSION:
            raise CarlaUnavailable(f"CARLA server {self.server_version} is older than 0.9.13, which this bridge needs")
        try:  # a client built from source reports a commit hash: no series to compare
            cv = parse_version(client_version) if client_version else None
        except ValueError:
            cv = None
        sv = parse_version(self.server_version)
        if cv is not None and cv[:2] != sv[:2] and not c.allow_version_mismatch:
            # 0.9 (Unreal 4) and 0.10 (Unreal 5) are separate release series with their own client
            # packages; CARLA requires the client of the server's version, and across series nothing
            # here has been shown to work.
            raise CarlaUnavailable(
                f"carla client {client_version} and server {self.server_version} are of different release series; "
                f"install the client of the server's version (pip install carla=={self.server_version}) or set "
                "carla.allow_version_mismatch: true in the scenario to try anyway")
        if cv is not None and cv[:3] != sv[:3]:
            warnings.warn(f"carla client {client_version} and server {self.server_version} differ; continuing "
                          "(no version lock), but install the matching client if the API misbehaves",
                          RuntimeWarning, stacklevel=2)
        self.tag_set = tag_set_for_version(self.server_version) if c.tag_set == "auto" else c.tag_set
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- set-up --------------------------------------------------------------------------------
    def _setup(self) -> None:
        carla, cfg, c = self.carla, self.config, self.config.carla
        if c.town and not self.world.get_map().name.endswith(c.town):
            self.client.set_timeout(c.load_timeout)  # loading a map often takes longer than any RPC
            try:
                self.world = self.client.load_world(c.town)
            except RuntimeError as exc:
                raise CarlaConnectionError(f"loading town {c.town} did not finish within carla.load_timeout "
                                           f"{c.load_timeout:g} s: {exc}") from None
            finally:
                self.client.set_timeout(c.timeout)
        self._original_settings = self.world.get_settings()
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = TICK_SECONDS
        self.world.apply_settings(settings)
        self.tm = self.client.get_trafficmanager(c.tm_port)
        self.tm.set_synchronous_mode(True)
        if hasattr(self.tm, "set_random_device_seed"):
            self.tm.set_random_device_seed(cfg.seed)
        self.world.set_weather(weather_parameters(carla, cfg))
        rng = np.random.default_rng(cfg.seed)
        lib = self.world.get_blueprint_library()
        vehicles = [bp for bp in lib.filter(c.vehicle_filter) if _wheels(bp) in (None, 4)]  # no bicycle as the ego
        if not vehicles:
            raise RuntimeError(f"no vehicle blueprint matches carla.vehicle_filter {c.vehicle_filter!r}")
        spawn_points = list(self.world.get_map().get_spawn_points())
        if not spawn_points:
            raise RuntimeError("the CARLA map has no spawn points")
        order = rng.permutation(len(spawn_points))
        ego_bp = vehicles[int(rng.integers(len(vehicles)))]
        if ego_bp.has_attribute("role_name"):
            ego_bp.set_attribute("role_name", self.role_name)
        self.ego = None
        for k in order:
            self.ego = self.world.try_spawn_actor(ego_bp, spawn_points[int(k)])
            if self.ego is not None:
                used = int(k)
                break
        if self.ego is None:
            raise RuntimeError("could not spawn the ego vehicle at any spawn point (all occupied?)")
        self.actors.append(self.ego)
        mount = carla.Transform(carla.Location(x=cfg.ego.mount_x, z=cfg.ego.mount_z),
                                carla.Rotation(pitch=cfg.ego.pitch))
        self.queues: dict[str, queue.Queue] = {}
        for name, bp_id in (("rgb", "sensor.camera.rgb"), ("semantic", "sensor.camera.semantic_segmentation")):
            bp = lib.find(bp_id)
            bp.set_attribute("image_size_x", str(self.camera.width))
            bp.set_attribute("image_size_y", str(self.camera.height))
            bp.set_attribute("fov", str(self.camera.fov))
            if bp.has_attribute("role_name"):  # the CARLA ROS bridge's sensor ids, which name its topics
                bp.set_attribute("role_name", SENSOR_IDS[name])
            sensor = self.world.spawn_actor(bp, mount, attach_to=self.ego)
            q: queue.Queue = queue.Queue()
            sensor.listen(q.put)
            self.sensors.append(sensor)
            self.queues[name] = q
        if c.drive == "autopilot":
            self.ego.set_autopilot(True, c.tm_port)
            if hasattr(self.tm, "set_desired_speed"):
                self.tm.set_desired_speed(self.ego, cfg.ego.speed * 3.6)
            if hasattr(self.tm, "ignore_lights_percentage"):
                self.tm.ignore_lights_percentage(self.ego, 0.0 if cfg.ego.obey_traffic_lights else 100.0)
        else:
            if hasattr(self.ego, "set_simulate_physics"):
                self.ego.set_simulate_physics(False)
            self.waypoint = self.world.get_map().get_waypoint(spawn_points[used].location)
            self.route_i = 0
        if cfg.hazards:
            self._stage_hazards()
        if c.spawn_npcs:
            n = int(round(cfg.traffic.vehicles * cfg.traffic.density))
            for k in order[: n + 1]:
                if int(k) == used:
                    continue
                bp = vehicles[int(rng.integers(len(vehicles)))]
                if bp.has_attribute("role_name"):
                    bp.set_attribute("role_name", "autopilot")
                npc = self.world.try_spawn_actor(bp, spawn_points[int(k)])
                if npc is not None:
                    npc.set_autopilot(True, c.tm_port)
                    self.actors.append(npc)
        self.world.tick()  # let spawned actors settle; the first returned frame is the next tick
        self._drain()

    def _drain(self) -> None:
        for q in self.queues.values():
            while not q.empty():
                q.get_nowait()

    def _stage_hazards(self) -> None:
        from sim.carla_hazards import CarlaHazardError, RoutePath, stage_hazards

        cfg = self.config
        if cfg.carla.drive != "route":
            raise CarlaHazardError("scripted hazards on CARLA need carla.drive: route (the conflict points lie on "
                                   "the scenario route, which the Traffic Manager's autopilot does not follow)")
        ahead = max(h.conflict_ahead for h in cfg.hazards) + 200.0
        self.route_path = RoutePath(self.waypoint, lambda opts, wp, c=[0]: self._pick(opts, c, wp), ahead)
        self.hazards = stage_hazards(list(cfg.hazards), self.route_path, self.world, self.carla, self._front_s(),
                                     float(cfg.ego.speed))
        self.actors.extend(h.actor for h in self.hazards if h.type != "red_light")

    def _front_s(self) -> float:
        """Arc length of the ego's front bumper along the route (route drive)."""
        ext = getattr(getattr(self.ego, "bounding_box", None), "extent", None)
        return self.route_s + (float(ext.x) if ext is not None else 2.3)

    def hazard_state(self) -> list[dict]:
        """Per scripted hazard, the state the closed loop judges (the keys of EmbeddedSimulator.hazard_state)."""
        front = self._front_s()
        return [h.state(front) for h in self.hazards]

    # -- driving along the scenario route -----------------------------------------------------
    def _advance_route(self) -> None:
        target = 0.0 if self.braking else float(self.config.ego.speed)
        if self.route_speed > target:
            self.route_speed = max(target, self.route_speed - float(self.config.ego.max_decel) * TICK_SECONDS)
        else:
            self.route_speed = min(target, self.route_speed + RELEASE_ACCEL * TICK_SECONDS)
        dist = self.route_speed * TICK_SECONDS
        if dist <= 0.0:
            return
        self.route_s += dist
        wp = self.waypoint
        options = list(wp.next(max(dist, 0.01)))
        if not options:
            return
        if len(options) > 1:
            options = [self._pick(options)]
        self.waypoint = options[0]
        t = self.waypoint.transform
        self.ego.set_transform(self.carla.Transform(self.carla.Location(x=t.location.x, y=t.location.y,
                                                                        z=t.location.z + 0.05), t.rotation))

    def _pick(self, options: list, counter: list[int] | None = None, origin: Any = None) -> Any:
        """The route's choice among the waypoints a junction offers (the scenario's `ego.route`), seen
        from `origin` (default the ego's waypoint). `counter`: the junction count to use and advance
        (default the ego's own)."""
        route = self.config.ego.route
        i = self.route_i if counter is None else counter[0]
        if isinstance(route, list):
            want = route[i % len(route)]
        elif route == "loop":
            want = ("straight", "straight", "right")[i % 3]
        else:
            want = ("straight", "left", "right")[int(np.random.default_rng([self.config.seed, self.index]).integers(3))]
        if isinstance(route, list) or route == "loop":
            if counter is None:
                self.route_i += 1
            else:
                counter[0] += 1
        yaw0 = (origin if origin is not None else self.waypoint).transform.rotation.yaw

        def turn(w) -> float:
            ahead = w.next(15.0)
            y = (ahead[0] if ahead else w).transform.rotation.yaw
            return (y - yaw0 + 180.0) % 360.0 - 180.0

        key = {"straight": lambda w: abs(turn(w)), "left": lambda w: turn(w), "right": lambda w: -turn(w)}[want]
        return sorted(options, key=key)[0]  # CARLA yaw grows clockwise: left turns are negative

    # -- the closed loop --------------------------------------------------------------------------
    def set_brake(self, active: bool) -> None:
        """The ego's brake command from the RSU's warnings, applied from the next tick on, as on the
        embedded simulator. Autopilot drive: the Traffic Manager lets go of the ego and a
        carla.VehicleControl holds full brake, no throttle and the steering it had; released, the
        autopilot drives on. Route drive (physics off): the route speed falls at `ego.max_decel` and
        recovers at 2.5 m/s^2."""
        active = bool(active)
        if active == self.braking:
            return
        self.braking = active
        if self.config.carla.drive != "autopilot":
            return
        carla, port = self.carla, self.config.carla.tm_port
        if active:
            steer = float(getattr(self.ego.get_control(), "steer", 0.0))  # the autopilot's last steering
            self.ego.set_autopilot(False, port)
            self.ego.apply_control(carla.VehicleControl(throttle=0.0, steer=steer, brake=1.0))
        else:
            self.ego.apply_control(carla.VehicleControl(throttle=0.0, steer=0.0, brake=0.0))
            self.ego.set_autopilot(True, port)

    def ego_state(self) -> dict:
        """The ego now, the keys the closed loop reads: `speed` (m/s, of the last frame), `braking`."""
        return {"speed": float(self.last_speed), "braking": self.braking, "stopped": self.last_speed < 0.05}

    # -- ticking --------------------------------------------------------------------------------
    def _wait(self, name: str, frame: int) -> Any:
        deadline = time.monotonic() + self.config.carla.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"CARLA {name} camera image for frame {frame} not received within "
                                   f"{self.config.carla.timeout:g} s")
            try:
                img = self.queues[name].get(timeout=left)
            except queue.Empty:
                continue
            if img.frame == frame:
                return img
            if img.frame > frame:
                raise RuntimeError(f"CARLA {name} camera skipped frame {frame} (got {img.frame})")
            # an older frame (left over from before this tick): drop it

    def step(self) -> SimFrame:
        if self._closed:
            raise RuntimeError("CARLA source is closed")
        if self.config.carla.drive == "route":
            self._advance_route()
        for h in self.hazards:
            h.update((self.index + 1) * TICK_SECONDS, self._front_s())
        frame_id = self.world.tick()
        rgb_img = self._wait("rgb", frame_id)
        sem_img = self._wait("semantic", frame_id)
        self.index += 1
        rgb = bgra_to_rgb(rgb_img.raw_data, rgb_img.width, rgb_img.height)
        tags = np.frombuffer(sem_img.raw_data, np.uint8).reshape(sem_img.height, sem_img.width, 4)[:, :, 2]
        labels = tags_to_train_ids(tags, self.tag_set)
        tr = self.ego.get_transform()
        if self.config.carla.drive == "route":  # physics is off on the route: the velocity reads 0
            speed = self.route_speed
        else:
            v = self.ego.get_velocity()
            speed = math.sqrt(v.x * v.x + v.y * v.y + v.z * v.z)
        self.last_speed = float(speed)
        if self.hazards:
            from sim.carla_hazards import CameraView

            e = self.config.ego
            view = CameraView(tr, e.mount_x, e.mount_z, e.pitch, self.camera)
            for h in self.hazards:
                h.check_view(view, labels)
        pose = Pose(tr.location.x, tr.location.y, tr.location.z, tr.rotation.roll, tr.rotation.pitch, tr.rotation.yaw)
        return SimFrame(rgb=rgb, labels=labels, stamp=float(rgb_img.timestamp), index=self.index, camera=self.camera,
                        ego_pose=pose, ego_speed=speed, source="carla", carla_tags=tags.copy(), tag_set=self.tag_set)

    def close(self) -> None:
        """Stop sensors, destroy spawned actors and restore the server's previous settings."""
        if self._closed:
            return
        self._closed = True
        for s in self.sensors:
            try:
                s.stop()
            except Exception:  # noqa: BLE001 - best-effort clean-up on a possibly dead server
                pass
        for a in self.sensors + self.actors[::-1]:
            try:
                a.destroy()
            except Exception:  # noqa: BLE001
                pass
        try:
            if getattr(self, "tm", None) is not None:
                self.tm.set_synchronous_mode(False)
            if self._original_settings is not None:
                self.world.apply_settings(self._original_settings)
        except Exception:  # noqa: BLE001
            pass
