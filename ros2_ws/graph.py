"""The node graph, described once: read by `launch/*.launch.py` (launch_ros) and `sqgan launch`.

configs/nodes/<node>.yaml holds each node's executable, name and parameters; network.yaml the shared
values ({keys_dir}, endpoints, {profile}, {model}, ...) the node files refer to. `build(graph)`
returns plain NodeSpecs; turning them into launch_ros actions or supervised subprocesses is the
callers' job, so both runners start exactly the same graph.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sqgan_core.config import ConfigError, config_file, load_yaml
from sqgan_core.errors import InputError

GRAPHS: dict[str, tuple[str, ...]] = {
    "vehicle": ("vehicle",),
    "rsu": ("rsu", "hazards"),
    "link": ("link",),
    "pipeline": ("sim", "link", "rsu", "hazards", "vehicle"),
    # the pipeline fed by `sqgan bag play` instead of the simulator (rosbag replay)
    "replay": ("link", "rsu", "hazards", "vehicle"),
    "demo": ("sim", "link", "rsu", "hazards", "vehicle", "recorder"),
    "demo_replay": ("link", "rsu", "hazards", "vehicle", "recorder"),
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class GraphError(InputError, ValueError):
    """A node description that does not build; the message names the file and the field."""


@dataclass
class NodeSpec:
    name: str
    executable: str
    kind: str = "ros"  # ros: a ROS node (parameters, remappings); process: a plain program (arguments)
    package: str = "sqgan"
    parameters: dict[str, Any] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    respawn: bool = False
    respawn_delay: float = 1.0
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.__dict__)


def nodes_dir(root: Path | None = None) -> Path:
    """configs/nodes of `root`, else of the first config folder that has nodes/network.yaml (the one
    resolver, sqgan_core.config): the node files of one graph always come from the same folder."""
    if root is not None:
        return root / "nodes"
    try:
        return config_file("nodes/network.yaml").parent
    except ConfigError as exc:
        raise GraphError(str(exc)) from None


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GraphError(f"node description {path} not found")
    try:
        data = load_yaml(path.read_text(encoding="utf8"))
    except yaml.YAMLError as exc:
        raise GraphError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise GraphError(f"{path}: must be a mapping")
    return data


def _render(value: Any, ctx: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:  # a lone placeholder keeps the context value's type (ROS parameters are typed)
            key = whole.group(1)
            if key not in ctx:
                raise GraphError(f"{where}: unknown placeholder {{{key}}}; known: {', '.join(sorted(ctx))}")
            return ctx[key]

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in ctx:
                raise GraphError(f"{where}: unknown placeholder {{{m.group(1)}}}; known: {', '.join(sorted(ctx))}")
            return str(ctx[m.group(1)])

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_render(v, ctx, where) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, ctx, f"{where}.{k}") for k, v in value.items()}
    return value


def _coerce(name: str, new: Any, old: Any) -> Any:
    """An override takes the type of the described default (rclpy refuses 1 for a float parameter)."""
    if isinstance(old, bool) or old is None:
        return new
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        return float(new)
    if isinstance(old, str) and not isinstance(new, str):
        return str(new)
    if type(new) is not type(old) and not (isinstance(old, list) and isinstance(new, list)):
        raise GraphError(f"parameter {name}: {new!r} is not a {type(old).__name__} like its default {old!r}")
    return new


def context(root: Path | None = None, sets: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = _load_yaml(nodes_dir(root) / "network.yaml")
    for k, v in (sets or {}).items():
        if k not in ctx and k not in ("vehicle_id", "server", "vehicle_endpoint", "vehicle_ids"):
            raise GraphError(f"--set {k}: unknown value; known: {', '.join(sorted(ctx))}")
        ctx[k] = _coerce(k, v, ctx[k]) if k in ctx else v
    for k in ("keys_dir", "out_dir"):  # nodes may run elsewhere than the caller's directory
        if isinstance(ctx.get(k), str) and ctx[k] and not os.path.isabs(ctx[k]):
            ctx[k] = os.path.abspath(ctx[k])
    return ctx


def node_spec(kind: str, ctx: dict[str, Any], root: Path | None = None,
              params: dict[str, Any] | None = None) -> NodeSpec:
    path = nodes_dir(root) / f"{kind}.yaml"
    data = _load_yaml(path)
    unknown = set(data) - {"executable", "name", "kind", "parameters", "arguments", "remappings", "env", "respawn",
                           "respawn_delay", "required"}
    if unknown:
        raise GraphError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    for need in ("executable", "name"):
        if not isinstance(data.get(need), str):
            raise GraphError(f"{path}: {need} must be a string")
    where = str(path)
    parameters = _render(dict(data.get("parameters") or {}), ctx, f"{where}:parameters")
    for k, v in (params or {}).items():
        if k not in parameters:
            raise GraphError(f"{path}: no parameter {k!r} to override; known: {', '.join(sorted(parameters))}")
        parameters[k] = _coerce(f"{kind}.{k}", v, parameters[k])
    arguments: list[str] = []
    for flag, value in (data.get("arguments") or {}).items():
        rendered = _render(value, ctx, f"{where}:arguments.{flag}")
        if rendered not in ("", None):
            arguments += [str(flag), str(rendered)]
    remaps = [(str(a), str(b)) for a, b in (_render(data.get("remappings") or {}, ctx, where) or {}).items()]
    return NodeSpec(name=_render(data["name"], ctx, where), executable=data["executable"],
                    kind=data.get("kind", "ros"), parameters=parameters, arguments=arguments, remappings=remaps,
                    env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
                    respawn=bool(data.get("respawn", False)), respawn_delay=float(data.get("respawn_delay", 1.0)),
                    required=bool(data.get("required", False)))


def build(graph: str, *, vehicles: int = 1, sets: dict[str, Any] | None = None,
          params: dict[str, dict[str, Any]] | None = None, root: Path | None = None) -> list[NodeSpec]:
    """The NodeSpecs of `graph` (vehicle | rsu | link | pipeline | replay | demo | demo_replay).

    `sets` override network.yaml values; `params` override node parameters ({"vehicle": {"m_x": 0.3}}).
    In a graph with the link, vehicles connect to the link with its key; otherwise straight to the RSU.
    """
    if graph not in GRAPHS:
        raise GraphError(f"unknown graph {graph!r}; known: {', '.join(GRAPHS)}")
    if not 1 <= vehicles <= 64:
        raise GraphError(f"vehicles must be 1..64, got {vehicles}")
    params = params or {}
    for node in params:
        if node not in ("sim", "link", "rsu", "hazards", "vehicle", "recorder"):
            raise GraphError(f"--param {node}.*: no node {node!r} (sim, link, rsu, hazards, vehicle, recorder)")
    ctx = context(root, sets)
    ids = list(range(int(ctx.get("first_vehicle_id", 0)), int(ctx.get("first_vehicle_id", 0)) + vehicles))
    ctx.setdefault("vehicle_ids", ids)
    with_link = "link" in GRAPHS[graph]
    dds_env = dds_environment(ctx, root)
    specs = []
    for kind in GRAPHS[graph]:
        if kind == "vehicle":
            for vid in ids:
                vctx = dict(ctx, vehicle_id=vid, server="link" if with_link else "rsu",
                            vehicle_endpoint=ctx["link_listen"] if with_link else ctx["rsu_connect"])
                specs.append(node_spec(kind, vctx, root, params.get(kind)))
        else:
            specs.append(node_spec(kind, ctx, root, params.get(kind)))
    for spec in specs:
        if spec.kind == "ros":
            spec.env = {**dds_env, **spec.env}
        check_parameters(spec)
    return specs


# Ranges of the node parameters a user sets most (`--param vehicle.m_x=...`), checked when the graph is
# built, so `--dry-run` and the start refuse them by name before any node runs.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "m_x": (0.0, 1.0), "m_s": (0.0, 1.0), "info_copies": (1, 8), "packet_bytes": (64, 65536),
    "vehicle_id": (0, 65535), "rate": (0.001, 1000.0), "torch_threads": (0, 1024),
}


def check_parameters(spec: NodeSpec) -> None:
    for name, (lo, hi) in PARAMETER_RANGES.items():
        if name not in spec.parameters:
            continue
        v = spec.parameters[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise GraphError(f"{spec.name}: parameter {name} must be a number in [{lo:g}, {hi:g}], got {v!r}")


DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def dds_environment(ctx: dict[str, Any], root: Path | None = None) -> dict[str, str]:
    """The DDS settings every ROS node of the graph gets: network.yaml's `dds_profile` as Fast DDS's
    default profile file, unless the caller's environment already names one."""
    profile = str(ctx.get("dds_profile") or "")
    if not profile or os.environ.get(DDS_PROFILE_ENV):
        return {}
    path = Path(profile) if os.path.isabs(profile) else (root or nodes_dir().parent) / profile
    if not path.is_file():
        raise GraphError(f"network.yaml dds_profile: {path} not found")
    return {DDS_PROFILE_ENV: str(path.resolve())}


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """["a=1", "b:=x"] -> {"a": 1, "b": "x"} (values parsed as YAML scalars). `name:=value` is the
    ros2 launch spelling of the same assignment."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise GraphError(f"{what} {item!r} must look like name=value or name:=value")
        sep = ":=" if item.split("=", 1)[0].endswith(":") else "="
        k, v = item.split(sep, 1)
        try:
            out[k.strip()] = load_yaml(v) if v.strip() else ""
        except yaml.YAMLError:
            out[k.strip()] = v
    return out


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """["vehicle.m_x=0.3"] -> {"vehicle": {"m_x": 0.3}}."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in parse_assignments(items, "--param").items():
        if "." not in k:
            raise GraphError(f"--param {k}: write node.parameter=value (e.g. vehicle.m_x=0.3)")
        node, name = k.split(".", 1)
        out.setdefault(node, {})[name] = v
    return out


def ros_params_file(spec: NodeSpec, directory: Path) -> Path:
    """A --params-file for one node (`/**` so it applies whatever namespace the node runs in)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.name}.params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": spec.parameters}}, sort_keys=True))
    return path


def command(spec: NodeSpec, params_dir: Path, bin_dir: Path | None = None) -> list[str]:
    """The command line `sqgan launch` runs for a spec (what launch_ros's Node would run)."""
    exe = _which(spec.executable, bin_dir)
    if spec.kind == "process":
        return [exe, *spec.arguments]
    cmd = [exe, *spec.arguments, "--ros-args", "-r", f"__node:={spec.name}",
           "--params-file", str(ros_params_file(spec, params_dir))]
    for a, b in spec.remappings:
        cmd += ["-r", f"{a}:={b}"]
    return cmd


def _which(exe: str, bin_dir: Path | None) -> str:
    import shutil
    import sys

    for d in ([bin_dir] if bin_dir else []) + [Path(sys.executable).parent]:
        cand = d / exe
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(exe)
    if found is None:
        raise GraphError(f"executable {exe!r} not found (is the package installed: pip install -e .?)")
    return found
