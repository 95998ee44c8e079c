"""Scenario configuration: YAML in configs/scenarios/, validated field by field.

A scenario fixes everything a run depends on (town seed, weather, traffic, ego route, camera,
duration, source), so the same YAML reproduces the same frames on the embedded simulator and
describes the same drive on a CARLA server. Validation names the offending field
(`weather.fog: 1.7 is out of range 0..1`) because a silently ignored typo would quietly change
the data a codec is trained on.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from sqgan_core.config import load_yaml

from sim.frame import TICK_SECONDS, CameraIntrinsics
from sqgan_core.errors import InputError

TURNS = ("straight", "left", "right")
HAZARD_TYPES = ("pedestrian_crossing", "cyclist_cut_in", "red_light")


class ScenarioError(InputError, ValueError):
    """A scenario file or override is invalid; the message names the field."""


def _rng(lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] | None = None,
         help: str = "") -> dict[str, Any]:
    return {"lo": lo, "hi": hi, "choices": choices, "help": help}


@dataclass
class TownConfig:
    seed: int | None = field(default=None, metadata=_rng(0, 2**31 - 1, help="town layout seed; null = scenario seed"))
    blocks_x: int = field(default=6, metadata=_rng(2, 16, help="blocks west-east"))
    blocks_y: int = field(default=6, metadata=_rng(2, 16, help="blocks south-north"))


@dataclass
class WeatherConfig:
    time_of_day: float = field(default=13.0, metadata=_rng(0.0, 24.0, help="hours; sets sun height and sky"))
    cloudiness: float = field(default=0.3, metadata=_rng(0.0, 1.0))
    fog: float = field(default=0.05, metadata=_rng(0.0, 1.0, help="0 clear .. 1 dense (~40 m visibility)"))
    rain: float = field(default=0.0, metadata=_rng(0.0, 1.0, help="rain streaks, wet road, darker sky"))
    sun_azimuth: float | None = field(default=None, metadata=_rng(0.0, 360.0, help="degrees; null = from seed"))


@dataclass
class TrafficConfig:
    density: float = field(default=1.0, metadata=_rng(0.0, 4.0, help="multiplies the counts below"))
    vehicles: int = field(default=110, metadata=_rng(0, 400))
    pedestrians: int = field(default=220, metadata=_rng(0, 800))
    cyclists: int = field(default=20, metadata=_rng(0, 200))
    motorcycles: int = field(default=12, metadata=_rng(0, 200))
    parked: int = field(default=300, metadata=_rng(0, 2000, help="parked cars, trucks and bikes"))
    trams: int = field(default=2, metadata=_rng(0, 8))


@dataclass
class EgoConfig:
    speed: float = field(default=9.0, metadata=_rng(0.0, 40.0, help="target speed, m/s"))
    route: Union[str, list] = field(default="random", metadata=_rng(help="random | loop | list of straight/left/right"))
    obey_traffic_lights: bool = False
    role_name: str = "ego_vehicle"
    mount_x: float = field(default=1.0, metadata=_rng(-5.0, 5.0, help="camera forward of ego centre, m"))
    mount_z: float = field(default=1.6, metadata=_rng(0.3, 5.0, help="camera height, m"))
    pitch: float = field(default=0.0, metadata=_rng(-45.0, 45.0, help="camera pitch, degrees (up +)"))
    # Emergency braking limit of the closed-loop controller (EmbeddedSimulator.set_brake): ~6 m/s^2 is what
    # a passenger car's ABS brake reaches on dry asphalt in practice (0.6 g; 8-9 m/s^2 is the tyre limit
    # of a good car with a full-force driver, 1-3 m/s^2 is comfortable service braking).
    max_decel: float = field(default=6.0, metadata=_rng(1.0, 10.0,
                                                        help="deceleration under set_brake(True), m/s^2"))
    # Closed-loop scenarios: the lights the ego meets along its route show green (their cross traffic
    # red), so nothing but a scripted hazard (or a red_light hazard's forced red) asks it to stop.
    green_wave: bool = False


@dataclass
class CameraConfig:
    width: int = field(default=512, metadata=_rng(16, 8192))
    height: int = field(default=256, metadata=_rng(16, 8192))
    fov: float = field(default=90.0, metadata=_rng(1.0, 170.0))
    noise: float = field(default=0.012, metadata=_rng(0.0, 0.2, help="sensor noise std (0..1 scale)"))
    blur: float = field(default=0.35, metadata=_rng(0.0, 1.0, help="optical softness"))
    vignette: float = field(default=0.25, metadata=_rng(0.0, 1.0))

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics(self.width, self.height, float(self.fov))


@dataclass
class CarlaConfig:
    host: str = "localhost"
    port: int = field(default=2000, metadata=_rng(1, 65535))
    timeout: float = field(default=10.0, metadata=_rng(0.1, 600.0, help="client timeout, s"))
    load_timeout: float = field(default=120.0, metadata=_rng(1.0, 3600.0,
                                                             help="timeout for load_world, s (a map load often takes >20 s)"))
    weather_preset: str = field(default="ClearNoon", metadata=_rng(
        help="carla.WeatherParameters preset the scenario's weather starts from (fog falloff, scattering, ...)"))
    allow_version_mismatch: bool = False  # connect even when client and server are of different series (0.9 / 0.10)
    town: str | None = None
    tm_port: int = field(default=8000, metadata=_rng(1, 65535))
    drive: str = field(default="autopilot", metadata=_rng(choices=("autopilot", "route")))
    tag_set: str = field(default="auto", metadata=_rng(choices=("auto", "legacy", "cityscapes")))
    vehicle_filter: str = "vehicle.*"
    spawn_npcs: bool = True


@dataclass
class HazardConfig:
    """One scripted hazard on the ego's path (closed-loop scenarios; see sim/hazards.py).

    The conflict point is `conflict_ahead` m ahead of the ego's start along its path (pedestrian
    crossing, cyclist cut-in) or the first stop line at least that far ahead (red light); the
    hazard starts when the ego's front is `trigger_distance` m from it.
    """

    type: str = field(default="pedestrian_crossing", metadata=_rng(choices=HAZARD_TYPES))
    trigger_distance: float = field(default=30.0, metadata=_rng(
        0.0, 500.0, help="m between the ego's front and the conflict point when the hazard starts"))
    conflict_ahead: float = field(default=60.0, metadata=_rng(
        5.0, 2000.0, help="m ahead of the ego's start (red_light: least distance of the stop line)"))
    speed: float | None = field(default=None, metadata=_rng(
        0.1, 15.0, help="m/s of the pedestrian (default 1.5) or cyclist (default 5)"))
    side: str = field(default="right", metadata=_rng(choices=("left", "right")))
    lateral_offset: float | None = field(default=None, metadata=_rng(
        2.0, 12.0, help="m from the ego's lane centre where the actor starts (default 4 pedestrian, 3.5 cyclist)"))


@dataclass
class PassCriteria:
    """What a closed-loop run must achieve (checked by the scenario runner, not by the simulator)."""

    stop_margin_m: float = field(default=1.0, metadata=_rng(
        0.0, 50.0, help="the ego must stop at least this far before the conflict point, m"))
    max_false_stops: int = field(default=0, metadata=_rng(0, 1000, help="stops with no hazard"))


@dataclass
class ScenarioConfig:
    name: str = "default"
    seed: int = field(default=1, metadata=_rng(0, 2**31 - 1))
    duration: float = field(default=60.0, metadata=_rng(0.05, 86400.0, help="seconds of simulated time"))
    source: str = field(default="embedded", metadata=_rng(choices=("embedded", "carla")))
    town: TownConfig = field(default_factory=TownConfig)
    weather: WeatherConfig = field(default_factory=WeatherConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    ego: EgoConfig = field(default_factory=EgoConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    carla: CarlaConfig = field(default_factory=CarlaConfig)
    hazards: list[HazardConfig] = field(default_factory=list)
    pass_criteria: PassCriteria | None = None

    @property
    def frames(self) -> int:
        """Number of 0.05 s ticks in `duration`."""
        return max(1, int(round(self.duration / TICK_SECONDS)))

    @property
    def has_hazards(self) -> bool:
        """Scripted hazards make a closed-loop scenario (not for open-loop data rendering)."""
        return bool(self.hazards)

    @property
    def town_seed(self) -> int:
        return self.seed if self.town.seed is None else self.town.seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> "ScenarioConfig":
        """Copy with dotted-path overrides (`{"weather.fog": 0.5}`), validated like the YAML."""
        d = self.to_dict()
        for key, value in overrides.items():
            node = d
            parts = key.split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ScenarioError(f"scenario field {key!r} is unknown")
                node = node[p]
            node[parts[-1]] = value
        return from_dict(d)


def _check_value(path: str, value: Any, typ: Any, meta: dict[str, Any]) -> Any:
    origin = get_origin(typ)
    if origin is Union or (origin is not None and type(None) in get_args(typ)):
        args = [a for a in get_args(typ) if a is not type(None)]
        if value is None:
            if type(None) in get_args(typ):
                return None
            raise ScenarioError(f"{path}: must not be null")
        if len(args) == 1:
            return _check_value(path, value, args[0], meta)
        if isinstance(value, str) and str in args:
            typ = str
        elif isinstance(value, list) and list in args:
            typ = list
        else:
            raise ScenarioError(f"{path}: expected one of {[a.__name__ for a in args]}, got {value!r}")
    if typ is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{path}: expected true/false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{path}: expected an integer, got {value!r}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ScenarioError(f"{path}: must be finite, got {value!r}")
    elif typ is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{path}: expected a string, got {value!r}")
    elif typ is list:
        if not isinstance(value, list):
            raise ScenarioError(f"{path}: expected a list, got {value!r}")
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if lo is not None and isinstance(value, (int, float)) and not (lo <= value <= hi):
        raise ScenarioError(f"{path}: {value!r} is out of range {lo}..{hi}")
    if choices and value not in choices:
        raise ScenarioError(f"{path}: {value!r} is not one of {', '.join(choices)}")
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{prefix or 'scenario'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ScenarioError(f"unknown scenario field {where}{unknown[0]!s} (known in {prefix or 'top level'}: "
                            f"{', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            continue
        path = f"{prefix}.{name}" if prefix else name
        typ = hints[name]
        inner = _optional_dataclass(typ)
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, data[name], path)
        elif inner is not None:
            kwargs[name] = None if data[name] is None else _build(inner, data[name], path)
        elif get_origin(typ) is list and get_args(typ) and dataclasses.is_dataclass(get_args(typ)[0]):
            items = data[name] if data[name] is not None else []
            if not isinstance(items, list):
                raise ScenarioError(f"{path}: expected a list, got {items!r}")
            kwargs[name] = [_build(get_args(typ)[0], item, f"{path}[{i}]") for i, item in enumerate(items)]
        else:
            kwargs[name] = _check_value(path, data[name], typ, dict(f.metadata))
    obj = cls(**kwargs)
    return obj


def _optional_dataclass(typ: Any) -> type | None:
    """The dataclass of an `X | None` field, else None."""
    if get_origin(typ) is Union or type(typ).__name__ == "UnionType":
        args = [a for a in get_args(typ) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]) and len(get_args(typ)) == 2:
            return args[0]
    return None


def _check_route(route: Any) -> None:
    if isinstance(route, str):
        if route not in ("random", "loop"):
            raise ScenarioError(f"ego.route: {route!r} is not random, loop or a list of {', '.join(TURNS)}")
        return
    if not route:
        raise ScenarioError("ego.route: an empty list gives no route")
    for i, turn in enumerate(route):
        if turn not in TURNS:
            raise ScenarioError(f"ego.route[{i}]: {turn!r} is not one of {', '.join(TURNS)}")


def from_dict(data: dict[str, Any]) -> ScenarioConfig:
    """Validate a parsed scenario mapping; unknown keys and bad values raise ScenarioError."""
    hazards = data.get("hazards") if isinstance(data, dict) else None
    if isinstance(hazards, list):
        for i, h in enumerate(hazards):
            if isinstance(h, dict) and "type" not in h:
                raise ScenarioError(f"hazards[{i}].type is required (one of {', '.join(HAZARD_TYPES)})")
    cfg = _build(ScenarioConfig, data, "")
    _check_route(cfg.ego.route)
    try:
        cfg.camera.intrinsics()
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"camera: {exc}") from None
    return cfg


def scenario_path(name_or_path: str | Path) -> Path:
    """Resolve `rainy_night` or `configs/scenarios/rainy_night.yaml` or any path to a file; names are
    looked up in every config folder (sqgan_core.config.config_dirs), so an installed package finds
    its scenarios from any working directory."""
    from sqgan_core.config import ConfigError, find_config, known_configs

    try:
        return find_config("scenarios", name_or_path)
    except ConfigError:
        known = ", ".join(known_configs("scenarios")) or "none found"
        raise ScenarioError(f"scenario {str(name_or_path)!r} not found (a YAML path or one of: {known})") from None


def scenario_names() -> list[str]:
    """Every scenario a name can select."""
    from sqgan_core.config import known_configs

    return known_configs("scenarios")


def load_scenario(name_or_path: str | Path = "default") -> ScenarioConfig:
    """Load and validate a scenario YAML by name (configs/scenarios/<name>.yaml) or path."""
    path = scenario_path(name_or_path)
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    try:
        cfg = from_dict(data if data is not None else {})
    except ScenarioError as exc:
        raise ScenarioError(f"{path.name}: {exc}") from None
    return cfg
