"""STAND-IN for the `carla` Python API -- this is NOT CARLA.

No CARLA server can run on our machines (it needs a GPU and a multi-GB download), so the bridge
is tested against this module, which implements only the subset of the carla 0.9.x API that
sim/carla_bridge.py calls, with CARLA's documented behaviour: synchronous ticks returning frame
ids, sensors delivering BGRA `Image`s through `listen()` callbacks, semantic images carrying the
tag in the red channel, `Image.convert(ColorConverter.CityScapesPalette)` replacing tags by
palette colours, `Client.get_world()` raising RuntimeError after the client timeout when no
server answers, images delivered on another thread after tick() returns, late, now and then after
an older frame's. From 0.9.14 the tag numbers and names come from the real client's
`carla.CityObjectLabel` and the CityScapesPalette colours from the palette compiled into the real
client library (`real_client_palette`) when the client is installed (`server_tags`), so a wrong tag
or colour in sim.carla_tags fails the tests; without the client, both fall back to sim.carla_tags
and `_state["palette_source"]` says so. What this stand-in verifies is the bridge's plumbing and
version handling, not CARLA's renderer.

Use `make(version="0.9.16", reachable=True)` to get a fresh module object.
"""
from __future__ import annotations

import copy
import fnmatch
import functools
import math
import mmap
import random
import threading
import time
import types
from pathlib import Path

import numpy as np

from sim.carla_tags import TAG_SETS, tag_set_for_version

IS_STANDIN = True


# Where CARLA's CityScapesPalette starts in the client library: Unlabeled's black, then Roads' purple
# (128, 64, 128), Cityscapes' road colour, written here by hand rather than taken from sim.carla_tags.
PALETTE_ANCHOR = bytes((0, 0, 0, 128, 64, 128))


class PaletteUnavailable(RuntimeError):
    """The real client library's palette cannot be read (no client installed, or no single palette in it)."""


def _real_client():
    """The real carla client module, or None (not installed, or this stand-in in its place)."""
    try:
        import carla as real
    except ImportError:
        return None
    if getattr(real, "IS_STANDIN", False) or not hasattr(real, "CityObjectLabel"):
        return None
    return real


@functools.lru_cache(maxsize=None)
def real_client_palette() -> tuple[tuple[int, int, int], ...]:
    """CARLA's CityScapesPalette, indexed by tag, as compiled into the installed client library
    (`libcarla*.so`: one byte triple per tag, contiguous), read without a server.

    The run is found by PALETTE_ANCHOR and is as long as the real `carla.CityObjectLabel` has tags
    (its `Any` = 255 aside); exactly one such run of distinct colours must exist, so a different
    library layout raises PaletteUnavailable instead of returning bytes that merely look alike."""
    real = _real_client()
    if real is None:
        raise PaletteUnavailable("the real carla client is not installed (pip install carla==0.9.16), so "
                                 "CARLA's CityScapesPalette cannot be read from its library")
    n = len([v for v in real.CityObjectLabel.values.values() if int(v) != 255])
    libs = sorted(Path(real.__file__).parent.glob("libcarla*.so"))
    if len(libs) != 1:
        raise PaletteUnavailable(f"expected one libcarla*.so beside {real.__file__}, found {len(libs)}")
    with open(libs[0], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as lib:
        runs, at = [], lib.find(PALETTE_ANCHOR)
        while at >= 0:
            raw = lib[at:at + 3 * n]
            colours = tuple(tuple(raw[i:i + 3]) for i in range(0, len(raw), 3))
            if len(raw) == 3 * n and len(set(colours)) == n:  # a palette gives every tag its own colour
                runs.append((at, colours))
            at = lib.find(PALETTE_ANCHOR, at + 1)
    if len(runs) != 1:
        raise PaletteUnavailable(f"expected one {n}-colour CityScapesPalette run in {libs[0].name}, found "
                                 f"{len(runs)} (at {[a for a, _c in runs]})")
    return runs[0][1]


def server_tags(version: str) -> tuple[list[tuple[int, str, tuple[int, int, int], None]], str]:
    """(tag, name, palette colour, None) of every tag a server of `version` renders, and where the
    colours came from. From 0.9.14, when the real client is installed, the numbers and names are its
    `carla.CityObjectLabel` and the colours its library's palette, not sim.carla_tags (the table under
    test). Without the client, and before 0.9.14 (renumbered since, and the installed 0.9.16 library
    holds only the newer palette), they come from sim.carla_tags."""
    set_name = tag_set_for_version(version)
    ours = [(t, n, col, None) for t, n, col, _c in TAG_SETS[set_name]]
    if set_name != "cityscapes":
        return ours, "sim.carla_tags (the legacy tag set: the installed client holds only the newer palette)"
    real = _real_client()
    if real is None:
        return ours, "sim.carla_tags (the real carla client is not installed)"
    try:
        palette = real_client_palette()
    except PaletteUnavailable as exc:
        return ours, f"sim.carla_tags ({exc})"
    tags = [(int(v), n, palette[int(v)], None)
            for n, v in sorted(real.CityObjectLabel.names.items(), key=lambda kv: int(kv[1])) if int(v) != 255]
    return tags, "the real carla client library (CityObjectLabel, CityScapesPalette)"


def make(version: str = "0.9.16", reachable: bool = True, client_version: str | None = None,
         stale_first: bool = False, drop_sensor: str | None = None) -> types.ModuleType:
    """A fresh stand-in `carla` module emulating a server of `version`."""
    m = types.ModuleType("carla")
    m.IS_STANDIN = True
    m.__version__ = client_version or version
    state = {"version": version, "reachable": reachable, "stale_first": stale_first, "drop_sensor": drop_sensor,
             "worlds": [], "rng": random.Random(0)}
    m._state = state

    class Location:
        def __init__(self, x=0.0, y=0.0, z=0.0):
            self.x, self.y, self.z = float(x), float(y), float(z)

    class Rotation:
        def __init__(self, pitch=0.0, yaw=0.0, roll=0.0):
            self.pitch, self.yaw, self.roll = float(pitch), float(yaw), float(roll)

    class Transform:
        def __init__(self, location=None, rotation=None):
            self.location = location or Location()
            self.rotation = rotation or Rotation()

    class Vector3D(Location):
        pass

    class VehicleControl:  # the real carla class's parameter names and defaults
        def __init__(self, throttle=0.0, steer=0.0, brake=0.0, hand_brake=False, reverse=False,
                     manual_gear_shift=False, gear=0):
            self.throttle, self.steer, self.brake = float(throttle), float(steer), float(brake)
            self.hand_brake, self.reverse, self.manual_gear_shift, self.gear = hand_brake, reverse, manual_gear_shift, gear

    class WeatherParameters:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    # The preset the bridge starts from, with the values of the real 0.9.16 client's
    # carla.WeatherParameters.ClearNoon (test_weather_starts_from_the_real_preset reads the real one).
    WeatherParameters.ClearNoon = WeatherParameters(
        cloudiness=5.0, precipitation=0.0, precipitation_deposits=0.0, wind_intensity=10.0, sun_azimuth_angle=-1.0,
        sun_altitude_angle=45.0, fog_density=2.0, fog_distance=0.75, fog_falloff=0.1, wetness=0.0,
        scattering_intensity=1.0, mie_scattering_scale=0.03, rayleigh_scattering_scale=0.0331, dust_storm=0.0)

    class ColorConverter:
        Raw = 0
        CityScapesPalette = 1

    tags, state["palette_source"] = server_tags(version)
    state["tags"] = tags

    class Image:
        def __init__(self, frame, timestamp, width, height, fov, raw):
            self.frame, self.timestamp, self.width, self.height, self.fov = frame, timestamp, width, height, fov
            self.raw_data = raw

        def convert(self, color_converter):  # the real carla method's parameter names
            converter = color_converter
            if converter == ColorConverter.CityScapesPalette:
                a = np.frombuffer(self.raw_data, np.uint8).reshape(self.height, self.width, 4).copy()
                lut = np.zeros((256, 3), np.uint8)
                for tag, _n, col, _c in tags:
                    lut[tag] = col
                rgb = lut[a[:, :, 2]]
                a[:, :, 0], a[:, :, 1], a[:, :, 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
                self.raw_data = a.tobytes()

    class ActorAttribute:
        def __init__(self, id_, value):
            self.id, self.value = id_, str(value)

        def as_int(self):
            return int(self.value)

    class WalkerControl:  # the real carla class's parameter names and defaults
        def __init__(self, direction=None, speed=0.0, jump=False):
            self.direction = direction or Vector3D(1.0, 0.0, 0.0)
            self.speed, self.jump = float(speed), bool(jump)

    class TrafficLightState:  # carla.TrafficLightState's members
        Red, Yellow, Green, Off, Unknown = "Red", "Yellow", "Green", "Off", "Unknown"

    class LandmarkType:
        TrafficLight = "1000001"

    class Landmark:
        def __init__(self, id_, distance, junction_x):
            self.id, self.distance, self.type, self.junction_x = id_, float(distance), LandmarkType.TrafficLight, junction_x

    class ActorBlueprint:
        def __init__(self, id_, attrs):
            self.id = id_
            self.attrs = dict(attrs)

        def has_attribute(self, k):
            return k in self.attrs

        def get_attribute(self, id):  # the real carla method's parameter names; an ActorAttribute
            return ActorAttribute(id, self.attrs[id])

        def set_attribute(self, k, v):
            if k not in self.attrs:
                raise IndexError(f"blueprint {self.id} has no attribute {k}")
            self.attrs[k] = str(v)

    class BlueprintLibrary(list):
        def filter(self, wildcard_pattern):  # the real carla method's parameter names
            pattern = wildcard_pattern
            return BlueprintLibrary(b for b in self if fnmatch.fnmatch(b.id, pattern))

        def find(self, id):  # the real carla method's parameter names
            id_ = id
            for b in self:
                if b.id == id_:
                    return copy.deepcopy(b)
            raise IndexError(id_)

    class Actor:
        _next = [100]

        def __init__(self, world, bp, transform, parent=None):
            self.world, self.type_id, self.parent = world, bp.id, parent
            self.attributes = dict(bp.attrs)
            self.id = Actor._next[0]
            Actor._next[0] += 1
            self._t = transform
            self.autopilot = False
            self.alive = True
            self.physics = True

        def get_transform(self):
            return self._t if self.parent is None else self.parent.get_transform()

        def set_transform(self, transform):  # the real carla method's parameter names
            t = transform
            self._t = t

        def get_velocity(self):
            v = 10.0 if self.autopilot else 0.0
            yaw = math.radians(self._t.rotation.yaw)
            return Vector3D(v * math.cos(yaw), v * math.sin(yaw), 0.0)

        def set_autopilot(self, enabled=True, tm_port=8000):  # the real carla method's parameter names
            flag = enabled
            port = tm_port
            self.autopilot = bool(flag)

        def apply_control(self, control):  # the real carla method's parameter names
            walker = self.type_id.startswith("walker.")
            if not isinstance(control, WalkerControl if walker else VehicleControl):
                raise TypeError(f"apply_control on {self.type_id} expects a carla.{'Walker' if walker else 'Vehicle'}Control")
            self.control = control
            self.controls = getattr(self, "controls", []) + [control]

        def get_control(self):
            return getattr(self, "control", None) or VehicleControl(steer=0.1 if self.autopilot else 0.0)

        def set_simulate_physics(self, enabled):  # the real carla method's parameter names
            flag = enabled
            self.physics = bool(flag)

        def destroy(self):
            self.alive = False
            if self in self.world.actors:
                self.world.actors.remove(self)
            return True

    class Sensor(Actor):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.callback = None

        def listen(self, callback):  # the real carla method's parameter names
            cb = callback
            self.callback = cb

        def stop(self):
            self.callback = None

        def is_listening(self):
            return self.callback is not None

        def _emit(self, frame, timestamp):
            w, h = int(self.attributes["image_size_x"]), int(self.attributes["image_size_y"])
            a = np.zeros((h, w, 4), np.uint8)
            a[..., 3] = 255
            if self.type_id == "sensor.camera.semantic_segmentation":
                tag_ids = np.array([t[0] for t in tags], np.uint8)
                a[:, :, 2] = tag_ids[(np.arange(w) * len(tag_ids)) // w][None, :]
                self._draw_walkers(a, w, h)
            else:
                a[..., 0] = (np.arange(w)[None, :] + frame) % 256   # B
                a[..., 1] = (np.arange(h)[:, None] * 3) % 256        # G
                a[..., 2] = 200                                      # R
            return Image(frame, timestamp, w, h, float(self.attributes["fov"]), a.tobytes())

        def _draw_walkers(self, a, w, h):
            """Walkers as boxes of the pedestrian tag (0.6 m x 1.85 m upright, a pinhole camera at the
            sensor's mount on its parent, pitch and roll ignored): enough for what sees people to see them."""
            ped = [t[0] for t in tags if t[1] in ("Pedestrian", "Pedestrians")]
            if not ped or self.parent is None:
                return
            pt = self.parent.get_transform()
            yaw = math.radians(pt.rotation.yaw)
            fwd, right = np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)])
            cam = np.array([pt.location.x, pt.location.y]) + fwd * self._t.location.x
            cam_z = pt.location.z + self._t.location.z
            f = w / (2 * math.tan(math.radians(float(self.attributes["fov"])) / 2))
            for wk in [x for x in self.world.actors if x.type_id.startswith("walker.") and x.alive]:
                rel = np.array([wk._t.location.x, wk._t.location.y]) - cam
                depth, lat = float(rel @ fwd), float(rel @ right)
                if depth < 0.5:
                    continue
                c0, c1 = w / 2 + f * (lat - 0.3) / depth, w / 2 + f * (lat + 0.3) / depth
                r0, r1 = h / 2 - f * (1.85 - cam_z) / depth, h / 2 + f * cam_z / depth  # feet on the ground (z 0)
                c0, c1 = int(max(0, math.floor(c0))), int(min(w, math.ceil(c1)))
                r0, r1 = int(max(0, math.floor(r0))), int(min(h, math.ceil(r1)))
                if c1 > c0 and r1 > r0:
                    a[r0:r1, c0:c1, 2] = ped[0]

    class TrafficLight(Actor):
        def __init__(self, world, x):
            super().__init__(world, ActorBlueprint("traffic.traffic_light", {}), Transform(Location(x, 6.0, 0.0), Rotation()))
            self.state, self.frozen = TrafficLightState.Green, False

        def get_state(self):
            return self.state

        def set_state(self, state):  # the real carla method's parameter names
            self.state = state

        def freeze(self, freeze):  # the real carla method's parameter names
            self.frozen = bool(freeze)

    class Waypoint:
        lane_width = 3.5

        def __init__(self, x, y, yaw):
            self.transform = Transform(Location(x, y, 0.0), Rotation(yaw=yaw))

        def get_landmarks_of_type(self, distance, type, stop_at_junction=False):  # the real method's parameters
            """The stand-in town's signalised junctions: one every 50 m along x (routes heading +x)."""
            x = self.transform.location.x
            out = []
            j = (int(x // 50) + 1) * 50
            while j - x <= distance:
                out.append(Landmark(f"tl{j}", j - x, j))
                j += 50
            return out if abs(self.transform.rotation.yaw) < 1.0 and type == LandmarkType.TrafficLight else []

        def next(self, distance):  # the real carla method's parameter names
            d = distance
            yaw = math.radians(self.transform.rotation.yaw)
            x = self.transform.location.x + d * math.cos(yaw)
            y = self.transform.location.y + d * math.sin(yaw)
            ahead = Waypoint(x, y, self.transform.rotation.yaw)
            if int(self.transform.location.x // 50) != int(x // 50):  # a junction every 50 m: three exits
                return [Waypoint(x, y, self.transform.rotation.yaw - 90.0), ahead,
                        Waypoint(x, y, self.transform.rotation.yaw + 90.0)]
            return [ahead]

    class Map:
        def __init__(self, name):
            self.name = name

        def get_spawn_points(self):
            return [Transform(Location(10.0 * k, 0.0, 0.5), Rotation(yaw=0.0)) for k in range(60)]

        def get_waypoint(self, location):
            return Waypoint(location.x, location.y, 0.0)

    class WorldSettings:
        def __init__(self):
            self.synchronous_mode = False
            self.fixed_delta_seconds = None
            self.no_rendering_mode = False

    class World:
        def __init__(self, name="Carla/Maps/Town10HD_Opt"):
            self.map = Map(name)
            self.settings = WorldSettings()
            self.actors = []
            self.frame = 1000
            self.elapsed = 0.0
            self.weather = None
            self.applied = []
            lib = [ActorBlueprint(f"vehicle.maker.model{k}", {"role_name": "autopilot", "color": "0,0,0"}) for k in range(4)]
            lib += [ActorBlueprint("vehicle.bh.crossbike", {"role_name": "autopilot", "number_of_wheels": "2"}),
                    ActorBlueprint("walker.pedestrian.0001", {"is_invincible": "false"})]
            self.lights = {}
            lib += [ActorBlueprint("sensor.camera.rgb", {"image_size_x": "800", "image_size_y": "600", "fov": "90",
                                                    "role_name": "front"}),
                    ActorBlueprint("sensor.camera.semantic_segmentation", {"image_size_x": "800", "image_size_y": "600",
                                                                      "fov": "90", "role_name": "front"})]
            self.lib = BlueprintLibrary(lib)
            state["worlds"].append(self)

        def get_settings(self):
            return copy.copy(self.settings)

        def apply_settings(self, settings):  # the real carla method's parameter names
            s = settings
            self.settings = copy.copy(s)
            self.applied.append(copy.copy(s))
            return self.frame

        def get_map(self):
            return self.map

        def get_traffic_light(self, landmark):  # the real carla method's parameter names
            if landmark.junction_x not in self.lights:
                self.lights[landmark.junction_x] = TrafficLight(self, landmark.junction_x)
            return self.lights[landmark.junction_x]

        def get_blueprint_library(self):
            return BlueprintLibrary(copy.deepcopy(b) for b in self.lib)

        def set_weather(self, w):
            self.weather = w

        def try_spawn_actor(self, blueprint, transform, attach_to=None):  # the real carla method's parameter names
            bp = blueprint
            for a in self.actors:
                if a.parent is None and attach_to is None and not isinstance(a, Sensor):
                    if abs(a._t.location.x - transform.location.x) < 1 and abs(a._t.location.y - transform.location.y) < 1:
                        return None
            cls = Sensor if bp.id.startswith("sensor.") else Actor
            a = cls(self, bp, transform, attach_to)
            self.actors.append(a)
            return a

        def spawn_actor(self, blueprint, transform, attach_to=None):  # the real carla method's parameter names
            bp = blueprint
            a = self.try_spawn_actor(bp, transform, attach_to)
            if a is None:
                raise RuntimeError("Spawn failed because of collision at spawn position")
            return a

        def tick(self, seconds=10.0):
            if not self.settings.synchronous_mode:
                raise RuntimeError("stand-in: tick() outside synchronous mode")
            self.frame += 1
            self.elapsed += self.settings.fixed_delta_seconds or 0.05
            for a in list(self.actors):
                ctl = getattr(a, "control", None)
                if isinstance(ctl, WalkerControl) and ctl.speed > 0:  # walkers follow their WalkerControl
                    dt = self.settings.fixed_delta_seconds or 0.05
                    a._t = Transform(Location(a._t.location.x + ctl.direction.x * ctl.speed * dt,
                                              a._t.location.y + ctl.direction.y * ctl.speed * dt, a._t.location.z),
                                     a._t.rotation)
                if a.autopilot:
                    yaw = math.radians(a._t.rotation.yaw)
                    a._t = Transform(Location(a._t.location.x + 0.5 * math.cos(yaw), a._t.location.y + 0.5 * math.sin(yaw),
                                              a._t.location.z), a._t.rotation)
            for s in [a for a in self.actors if isinstance(a, Sensor) and a.callback]:
                kind = "semantic" if "semantic" in s.type_id else "rgb"
                if state["drop_sensor"] == kind:
                    continue
                # Like a real server: images arrive on the client's own thread, after tick() returned,
                # a little late, and now and then an older frame's image comes first.
                older = state["stale_first"] or state["rng"].random() < 0.15
                images = ([s._emit(self.frame - 1, self.elapsed - 0.05)] if older and self.frame > 1 else []) + \
                    [s._emit(self.frame, self.elapsed)]
                t = threading.Timer(state["rng"].uniform(0.001, 0.03), lambda cb=s.callback, ims=images:
                                    [cb(im) for im in ims])
                t.daemon = True
                t.start()
            return self.frame

    class TrafficManager:
        def __init__(self, port):
            self.port = port
            self.sync = False
            self.seed = None

        def set_synchronous_mode(self, mode_switch):  # the real carla method's parameter names
            flag = mode_switch
            self.sync = bool(flag)

        def set_random_device_seed(self, value):  # the real carla method's parameter names
            seed = value
            self.seed = seed

        def set_desired_speed(self, actor, speed):  # the real carla method's parameter names
            kmh = speed
            actor.desired_kmh = kmh

        def ignore_lights_percentage(self, actor, perc):  # the real carla method's parameter names
            pct = perc
            actor.ignore_lights = pct

    class Client:
        def __init__(self, host, port, worker_threads=0):
            self.host, self.port = host, port
            self.timeout = 5.0
            self.world = None

        def set_timeout(self, seconds):  # the real carla method's parameter names
            s = seconds
            self.timeout = float(s)

        def _check(self):
            if not state["reachable"]:
                time.sleep(self.timeout)
                raise RuntimeError(f"time-out of {int(self.timeout * 1000)}ms while waiting for the simulator, "
                                   f"make sure the simulator is ready and connected to {self.host}:{self.port}")

        def get_client_version(self):
            return m.__version__

        def get_server_version(self):
            self._check()
            return state["version"]

        def get_world(self):
            self._check()
            if self.world is None:
                self.world = World()
            return self.world

        def load_world(self, map_name):  # the real carla method's parameter names
            name = map_name
            self._check()
            state["load_world_timeout"] = self.timeout
            self.world = World(f"Carla/Maps/{name}")
            return self.world

        def get_trafficmanager(self, port=8000):
            self.tm = TrafficManager(port)
            return self.tm

    for name, obj in list(locals().items()):
        if isinstance(obj, type):
            setattr(m, name, obj)
    return m
