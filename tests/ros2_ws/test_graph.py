import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from ros2_ws.graph import GRAPHS, GraphError, build, command, context, parse_params

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_graph_wires_vehicles_to_the_link_and_link_to_rsu():
    specs = build("pipeline", vehicles=3, sets={"keys_dir": "/k", "rsu_endpoint": "tcp://127.0.0.1:1",
                                                 "rsu_connect": "tcp://127.0.0.1:1"})
    names = [s.name for s in specs]
    assert names == ["sim_publisher", "link_emulator", "rsu_decoder", "rsu_hazards", "vehicle_encoder_0",
                     "vehicle_encoder_1", "vehicle_encoder_2"]
    link = specs[1]
    assert link.kind == "process" and link.arguments[link.arguments.index("--forward") + 1] == "tcp://127.0.0.1:1"
    v2 = specs[-1].parameters
    assert v2["vehicle_id"] == 2 and v2["server_key"] == "/k/link.key"
    assert v2["link_endpoint"] == link.arguments[link.arguments.index("--listen") + 1]
    assert v2["secret_key"] == "/k/vehicle_2.key_secret"
    assert specs[2].parameters["allow_dir"] == "/k/allowed"
    # the closed loop: the hazard node judges every vehicle, the RSU sends its warnings back through the
    # link's model, and the simulator's ego brakes on vehicle 0's
    assert specs[3].parameters["vehicle_ids"] == [0, 1, 2]
    assert specs[2].parameters["hazard_forwarding"] is True
    assert specs[2].parameters["downlink_profile"] == link.arguments[link.arguments.index("--profile") + 1]
    assert specs[0].parameters["warning_topic"] == "/vehicle_0/hazard_warnings"


def test_vehicle_graph_alone_talks_to_the_rsu():
    (v,) = build("vehicle", sets={"keys_dir": "/k"})
    assert v.parameters["server_key"] == "/k/rsu.key"
    assert v.parameters["link_endpoint"] == context()["rsu_connect"]


def test_every_codec_node_runs_the_shipped_model_by_default():
    from sqgan_core.streaming.stream import load_codec

    specs = [s for s in build("pipeline") if "model" in s.parameters]
    assert {s.name.split("_")[0] for s in specs} == {"vehicle", "rsu"}
    assert {s.parameters["model"] for s in specs} == {""}  # the same weights on both ends of the link
    codec, untrained = load_codec("")
    assert not untrained and codec.metadata["stage"] in ("finetune", "joint")  # trained, not a fresh init


def test_parameter_types_survive_substitution_and_overrides():
    specs = build("demo", sets={"sim_rate": 5}, params={"vehicle": {"m_x": 1, "packet_bytes": 512}})
    sim = specs[0].parameters
    assert sim["rate"] == 5.0 and isinstance(sim["rate"], float) and sim["frames"] == -1
    v = [s for s in specs if s.executable == "vehicle_encoder"][0].parameters
    assert v["m_x"] == 1.0 and isinstance(v["m_x"], float) and v["packet_bytes"] == 512
    rec = specs[-1]
    assert rec.required and rec.parameters["vehicle_ids"] == [0]


def test_a_graph_ends_when_its_link_rsu_or_a_vehicle_exits():
    """Only the simulator may finish on its own (its scenario ran out); any other node exiting leaves a
    graph that can only idle, so the runner and `ros2 launch` shut the whole graph down."""
    required = {s.executable: s.required for s in build("pipeline", vehicles=2)}
    assert required == {"sim_publisher": False, "link_emulator": True, "rsu_decoder": True, "rsu_hazards": True,
                        "vehicle_encoder": True}
    assert all(s.required for s in build("vehicle") + build("rsu"))


@pytest.mark.parametrize("kw,needle", [
    ({"graph": "nope"}, "unknown graph"),
    ({"graph": "pipeline", "params": {"vehicle": {"m_y": 1.0}}}, "no parameter 'm_y'"),
    ({"graph": "pipeline", "params": {"vehicle": {"m_x": "high"}}}, "m_x"),
    ({"graph": "pipeline", "params": {"plane": {"a": 1}}}, "no node 'plane'"),
    ({"graph": "pipeline", "sets": {"colour": "red"}}, "unknown value"),
    ({"graph": "pipeline", "vehicles": 0}, "vehicles"),
])
def test_errors_name_the_problem(kw, needle):
    graph = kw.pop("graph")
    with pytest.raises(GraphError, match=needle):
        build(graph, **kw)


def test_parse_params():
    assert parse_params(["vehicle.m_x=0.3", "rsu.device=cuda"]) == {"vehicle": {"m_x": 0.3}, "rsu": {"device": "cuda"}}
    with pytest.raises(GraphError, match="node.parameter"):
        parse_params(["m_x=0.3"])


def test_command_writes_a_ros_params_file(tmp_path):
    rsu, hazards = build("rsu", sets={"keys_dir": "/k"})
    assert hazards.executable == "rsu_hazards"
    cmd = command(rsu, tmp_path)
    assert cmd[0].endswith("rsu_decoder") and "--ros-args" in cmd and "__node:=rsu_decoder" in cmd
    params = yaml.safe_load(Path(cmd[cmd.index("--params-file") + 1]).read_text())
    assert params["/**"]["ros__parameters"]["secret_key"] == "/k/rsu.key_secret"
    (link,) = build("link")
    assert "--ros-args" not in command(link, tmp_path)


def _stub_launch_modules(monkeypatch):
    """Minimal stand-ins for launch / launch_ros (not installable here) recording what the launch
    files ask for; the real path is exercised by test_real_ros2_launch where launch_ros exists."""
    created = []

    class Action:
        def __init__(self, *a, **kw):
            self.args, self.kw = a, kw
            created.append(self)

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, ctx):
            return ctx[self.name]

    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda entities: entities
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = lambda name, default_value, description: (name, default_value)
    actions.OpaqueFunction = lambda function: function
    actions.Shutdown = Action
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    lr = types.ModuleType("launch_ros")
    lra = types.ModuleType("launch_ros.actions")
    lra.Node = Action
    for name, mod in (("launch", launch), ("launch.actions", actions), ("launch.substitutions", subs),
                      ("launch_ros", lr), ("launch_ros.actions", lra)):
        monkeypatch.setitem(sys.modules, name, mod)
    return created


@pytest.fixture(scope="module")
def two_vehicle_keys(tmp_path_factory):
    from sqgan_core.transport.keys import generate_set

    keys = tmp_path_factory.mktemp("keys")
    generate_set(keys, 2, overwrite=True)
    return str(keys)


@pytest.mark.parametrize("graph", ["vehicle", "rsu", "pipeline"])
def test_launch_files_build_the_shared_graph(graph, monkeypatch, two_vehicle_keys):
    created = _stub_launch_modules(monkeypatch)
    spec = importlib.util.spec_from_file_location(f"l_{graph}", ROOT / "launch" / f"{graph}.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    entities = mod.generate_launch_description()
    args = dict(e for e in entities if isinstance(e, tuple))
    assert set(args) >= set(context()) | {"vehicles", "param"}  # every value sqgan launch takes, same names
    make_nodes = entities[-1]
    ctx = dict(args, keys_dir=two_vehicle_keys, vehicles="2", param="vehicle.m_x=0.25")
    nodes = make_nodes(ctx)
    want = build(graph, vehicles=2, sets={"keys_dir": two_vehicle_keys}, params={"vehicle": {"m_x": 0.25}})
    assert [n.kw["name"] for n in nodes] == [s.name for s in want]
    for n, s in zip(nodes, want):
        assert n.kw["executable"] == s.executable and n.kw["package"] == "sqgan"
        if s.kind == "ros":
            assert n.kw["parameters"] == [s.parameters]
        else:
            assert n.kw["arguments"] == s.arguments
    assert set(GRAPHS) >= {"vehicle", "rsu", "pipeline"}


def test_launch_files_check_keys_and_configs_before_any_node(monkeypatch, tmp_path, two_vehicle_keys):
    from sqgan_core.errors import CommandError

    _stub_launch_modules(monkeypatch)
    spec = importlib.util.spec_from_file_location("l_pipeline", ROOT / "launch" / "pipeline.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    entities = mod.generate_launch_description()
    ctx = dict((e for e in entities if isinstance(e, tuple)), vehicles="1", param="")
    with pytest.raises(CommandError, match="sqgan keys"):  # no keys: one line saying how to make them
        entities[-1](dict(ctx, keys_dir=str(tmp_path / "nokeys")))
    with pytest.raises(CommandError, match="nosuch"):
        entities[-1](dict(ctx, keys_dir=two_vehicle_keys, profile="nosuch"))


def test_real_ros2_launch_description():
    pytest.importorskip("launch_ros")  # only on a real ROS 2 install
    spec = importlib.util.spec_from_file_location("l_pipeline", ROOT / "launch" / "pipeline.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from launch import LaunchDescription

    assert isinstance(mod.generate_launch_description(), LaunchDescription)


def test_every_ros_node_gets_the_fast_discovery_profile(monkeypatch, tmp_path):
    from ros2_ws.graph import DDS_PROFILE_ENV, dds_environment

    monkeypatch.delenv(DDS_PROFILE_ENV, raising=False)
    specs = build("pipeline")
    for s in specs:
        if s.kind == "ros":
            assert Path(s.env[DDS_PROFILE_ENV]).is_file(), s.name
        else:
            assert DDS_PROFILE_ENV not in s.env, s.name
    monkeypatch.setenv(DDS_PROFILE_ENV, "/etc/my_dds.xml")  # the user's own profile wins
    assert all(DDS_PROFILE_ENV not in s.env for s in build("pipeline"))
    monkeypatch.delenv(DDS_PROFILE_ENV)
    with pytest.raises(GraphError, match="dds_profile"):
        dds_environment({"dds_profile": "dds/missing.xml"}, tmp_path)
    assert dds_environment({"dds_profile": ""}) == {}


@pytest.mark.parametrize("graph", ["vehicle", "rsu", "pipeline", "replay"])
def test_every_node_action_is_accepted_by_the_real_launch_ros(graph, two_vehicle_keys):
    """The real launch_ros.actions.Node (vendored wheels, installed by .ci/run) takes every keyword
    spec_to_action passes (an unknown one is a TypeError there), and its parameter normalisation keeps
    each value's type (launch_ros refuses types ROS parameters cannot carry)."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (SQGAN_ROS2_LAUNCH_WHEELS unset)")
    from launch import LaunchContext
    from launch_ros.utilities import evaluate_parameters, normalize_parameters

    from ros2_ws.launch_support import spec_to_action

    specs = build(graph, vehicles=2, sets={"keys_dir": two_vehicle_keys})
    assert specs
    for spec in specs:
        action = spec_to_action(spec)
        assert action.node_executable == spec.executable and action.node_package == "sqgan"
        if spec.kind == "ros":
            [evaluated] = evaluate_parameters(LaunchContext(), normalize_parameters([spec.parameters]))
            for key, value in spec.parameters.items():
                got = evaluated[key]
                want = tuple(value) if isinstance(value, list) else value
                assert got == want and type(got) is type(want), (spec.name, key, got, value)
