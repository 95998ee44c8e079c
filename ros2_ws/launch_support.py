"""launch_ros glue for launch/*.launch.py: the graph of ros2_ws.graph as launch actions.

Imported only by `ros2 launch` on a real ROS 2 install (launch and launch_ros are not pip-installable,
see REFERENCE.md); `sqgan launch` runs the same NodeSpecs without them.
"""
from __future__ import annotations

from typing import Any

from ros2_ws.graph import NodeSpec, build, context, parse_params

def arguments() -> tuple[str, ...]:
    """Every value of configs/nodes/network.yaml is a launch argument (`name:=value`), as every one is a
    `sqgan launch --set`/`name:=value`: the two runners take the same arguments."""
    return tuple(context())


def spec_to_action(spec: NodeSpec) -> Any:
    from launch.actions import Shutdown
    from launch_ros.actions import Node

    kw: dict[str, Any] = dict(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                              respawn=spec.respawn, respawn_delay=spec.respawn_delay)
    if spec.kind == "ros":
        kw.update(parameters=[spec.parameters], remappings=spec.remappings)
    if spec.arguments:
        kw["arguments"] = spec.arguments  # the link emulator ignores the --ros-args launch_ros appends
    if spec.env:
        kw["additional_env"] = spec.env
    if spec.required:
        kw["on_exit"] = Shutdown(reason=f"{spec.name} exited (required)")
    return Node(**kw)


def launch_description(graph: str) -> Any:
    """LaunchDescription with one argument per network.yaml value and the graph's nodes."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    defaults = context()
    args = [DeclareLaunchArgument(name, default_value=str(defaults[name]), description=f"configs/nodes/network.yaml {name}")
            for name in arguments()]
    args.append(DeclareLaunchArgument("vehicles", default_value="1", description="number of vehicle encoders"))
    args.append(DeclareLaunchArgument("param", default_value="",
                                      description="node parameter overrides, `;`-separated NODE.PARAM=VALUE "
                                                  "(e.g. vehicle.m_x=0.3;rsu.device=cuda), as sqgan launch --param"))

    def make_nodes(ctx: Any) -> list[Any]:
        from ros2_ws.launcher import check_keys, preflight
        from sqgan_core.config import load_yaml

        sets = {n: load_yaml(LaunchConfiguration(n).perform(ctx)) for n in arguments()}
        sets = {k: ("" if v is None else v) for k, v in sets.items()}
        vehicles = int(LaunchConfiguration("vehicles").perform(ctx))
        params = parse_params([p for p in LaunchConfiguration("param").perform(ctx).split(";") if p.strip()])
        specs = build(graph, vehicles=vehicles, sets=sets, params=params)
        # The checks `sqgan launch` makes before starting anything: keys, link profile, scenario, model.
        # launch reports the exception as one line and starts no node.
        check_keys(sets["keys_dir"], vehicles, specs)
        preflight(specs)
        return [spec_to_action(s) for s in specs]

    return LaunchDescription(args + [OpaqueFunction(function=make_nodes)])
