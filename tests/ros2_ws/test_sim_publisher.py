"""ROS topic test: the publisher runs in another process, a real rclpy subscriber here checks
topics, encodings, frame ids, camera_info and /clock (CARLA ROS bridge conventions); /tf and
/tf_static are checked in-process with a stand-in tf2_msgs (it has no PyPI wheel)."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from sqgan_core.labels import PALETTE  # noqa: E402

pytestmark = pytest.mark.ros

SCENARIO = """
name: rostest
seed: 5
duration: 0.5
town: {blocks_x: 3, blocks_y: 3}
traffic: {vehicles: 20, pedestrians: 20, parked: 30}
camera: {width: 128, height: 64, fov: 90.0}
"""


@pytest.fixture
def ros_env(monkeypatch):
    domain = str(100 + os.getpid() % 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return dict(os.environ)


def test_topics_from_embedded_simulator(tmp_path, ros_env):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image

    from ros2_ws.image_conversions import image_to_numpy, to_rgb

    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    rclpy.init()
    node = rclpy.create_node("sim_publisher_test")
    got: dict[str, list] = {"rgb": [], "sem": [], "info": [], "clock": []}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/carla/hero/rgb_front/image", got["rgb"].append, qos)
    node.create_subscription(Image, "/carla/hero/semantic_segmentation_front/image", got["sem"].append, qos)
    node.create_subscription(CameraInfo, "/carla/hero/rgb_front/camera_info", got["info"].append, qos)
    got["ids"] = []
    node.create_subscription(Image, "/carla/hero/semantic_segmentation_front/train_ids", got["ids"].append, qos)
    node.create_subscription(Clock, "/clock", got["clock"].append, 50)
    proc = subprocess.Popen([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p",
                             f"scenario:={scen}", "-p", "role_name:=hero", "-p", "wait_for_subscribers:=1",
                             "-p", "rate:=40"], env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(len(v) for v in got.values()) < 10:
            rclpy.spin_once(node, timeout_sec=0.1)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert len(got["rgb"]) == 10 and len(got["sem"]) == 10, out.decode(errors="replace")
    rgb_msg, sem_msg = got["rgb"][-1], got["sem"][-1]
    assert rgb_msg.encoding == "bgra8" and sem_msg.encoding == "bgra8"
    assert (rgb_msg.width, rgb_msg.height) == (128, 64)
    assert rgb_msg.header.frame_id == "hero/rgb_front"
    assert sem_msg.header.frame_id == "hero/semantic_segmentation_front"
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got["rgb"]]
    assert np.allclose(np.diff(stamps), 0.05)
    clock = [c.clock.sec + c.clock.nanosec * 1e-9 for c in got["clock"]]
    assert len(clock) >= 10 and np.allclose(np.diff(clock[:10]), 0.05)
    # the semantic image carries Cityscapes palette colours only (no blends at label edges)
    sem = to_rgb(image_to_numpy(sem_msg), "bgra8")
    colours = {tuple(c) for c in sem.reshape(-1, 3).tolist()}
    assert colours <= {tuple(c) for c in PALETTE.tolist()} | {(0, 0, 0)}
    assert len(colours) >= 4
    ids_msg = [m for m in got["ids"] if m.header.stamp == sem_msg.header.stamp][0]  # the exact trainIds beside it
    from sqgan_core.labels import decolorize

    assert ids_msg.encoding == "mono8" and (image_to_numpy(ids_msg) == decolorize(sem)).all()
    assert (image_to_numpy(rgb_msg)[..., 3] == 255).all()
    info = got["info"][-1]
    assert info.k[0] == pytest.approx(64.0) and info.k[2] == pytest.approx(64.0) and info.k[5] == pytest.approx(32.0)
    assert info.header.frame_id == "hero/rgb_front" and (info.width, info.height) == (128, 64)
    if importlib.util.find_spec("tf2_msgs") is None:  # the pip ROS 2 wheels: no /tf, said once and clearly
        log = out.decode(errors="replace")
        assert log.count("/tf and /tf_static not published: tf2_msgs is not installed") == 1, log


def _standin_tf2_msgs() -> tuple[types.ModuleType, types.ModuleType]:
    """A STAND-IN for the `tf2_msgs` package -- NOT tf2_msgs, which has no PyPI wheel. Its TFMessage
    holds real geometry_msgs/TransformStamped messages in `transforms`, the one field the real one has."""
    pkg, msg = types.ModuleType("tf2_msgs"), types.ModuleType("tf2_msgs.msg")

    class TFMessage:
        def __init__(self, transforms=()) -> None:
            self.transforms = list(transforms)

    msg.TFMessage, pkg.msg = TFMessage, msg
    return pkg, msg


class _RecordingPublisher:
    """Takes the stand-in TFMessages, which rclpy cannot send (no type support), and keeps them."""

    def __init__(self, topic, qos) -> None:
        self.topic, self.qos, self.msgs = topic, qos, []

    def publish(self, msg) -> None:
        self.msgs.append(msg)

    def wait_for_all_acked(self, timeout) -> bool:
        return True


def test_tf_tree_for_the_camera_frames(tmp_path, ros_env, monkeypatch):
    """With tf2_msgs importable (here a stand-in), the node sends the camera mounts once on /tf_static
    (transient local) and map -> <role> on /tf every frame, so the images' frame_ids resolve."""
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy

    from ros2_ws.sim_publisher import SimPublisher

    pkg, msg = _standin_tf2_msgs()
    monkeypatch.setitem(sys.modules, "tf2_msgs", pkg)
    monkeypatch.setitem(sys.modules, "tf2_msgs.msg", msg)
    recorded: dict[str, _RecordingPublisher] = {}
    real_create = SimPublisher.create_publisher

    def create_publisher(self, msg_type, topic, qos, **kw):
        if msg_type is msg.TFMessage:
            recorded[topic] = _RecordingPublisher(topic, qos)
            return recorded[topic]
        return real_create(self, msg_type, topic, qos, **kw)

    monkeypatch.setattr(SimPublisher, "create_publisher", create_publisher)
    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    rclpy.init(args=["--ros-args", "-p", f"scenario:={scen}", "-p", "role_name:=hero"])
    node = SimPublisher()
    try:
        assert node.tf_status == "published" and set(recorded) == {"/tf", "/tf_static"}
        static = recorded["/tf_static"]
        assert static.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL and static.qos.depth == 1
        assert len(static.msgs) == 1  # sent once, kept for late subscribers
        mounts = {t.child_frame_id: t for t in static.msgs[0].transforms}
        assert set(mounts) == {"hero/rgb_front", "hero/semantic_segmentation_front"} == set(node.frame_ids.values())
        for t in mounts.values():
            assert isinstance(t, TransformStamped) and t.header.frame_id == "hero"
            tr, q = t.transform.translation, t.transform.rotation
            assert (tr.x, tr.y, tr.z) == pytest.approx((1.0, 0.0, 1.6))  # default ego.mount_x, ego.mount_z
            assert (q.x, q.y, q.z, q.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5))  # optical frame, pitch 0
        frames = [node.source.step() for _ in range(2)]
        for f in frames:
            node.publish_frame(f)
        sent = recorded["/tf"].msgs
        assert len(sent) == 2 and all(len(m.transforms) == 1 for m in sent)
        for f, m in zip(frames, sent):
            t = m.transforms[0]
            assert (t.header.frame_id, t.child_frame_id) == ("map", "hero")
            assert t.header.stamp.sec + t.header.stamp.nanosec * 1e-9 == pytest.approx(f.stamp)
            assert (t.transform.translation.x, t.transform.translation.y) == pytest.approx((f.ego_pose.x, f.ego_pose.y))
            yaw = math.radians(f.ego_pose.yaw)  # embedded: right-handed already, yaw as is
            q = t.transform.rotation
            assert (q.x, q.y, q.z, q.w) == pytest.approx((0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)))
        assert len(static.msgs) == 1
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_without_tf2_msgs_the_node_says_so_and_publishes_the_rest(tmp_path, ros_env, monkeypatch):
    from ros2_ws.sim_publisher import TF_MISSING, SimPublisher

    monkeypatch.setitem(sys.modules, "tf2_msgs", None)  # what a pip-only install looks like
    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    rclpy.init(args=["--ros-args", "-p", f"scenario:={scen}"])
    node = SimPublisher()
    try:
        assert node.tf_status == TF_MISSING and "tf2_msgs is not installed" in TF_MISSING
        assert node.pub_tf is None and node.pub_tf_static is None
        node.publish_frame(node.source.step())
        assert node.published == 1 and node.publish_errors == 0
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_bad_scenario_exits_with_clear_error(ros_env):
    proc = subprocess.run([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p", "scenario:=nope"],
                          env=ros_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "scenario 'nope' not found" in proc.stderr


def test_source_parameter_switches_to_carla_bridge(tmp_path, ros_env):
    """`source:=carla` publishes the same topics from the CARLA bridge (here talking to the STAND-IN
    carla module of tests/sim/carla_standin.py, injected as `carla` into the publisher process)."""
    from pathlib import Path

    from sensor_msgs.msg import Image

    shim = tmp_path / "shim" / "carla"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("from carla_standin import make as _make\n"
                                      "globals().update({k: v for k, v in vars(_make('0.9.16')).items()\n"
                                      "                  if not k.startswith('__')})\n")
    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    env = dict(ros_env)
    standin_dir = Path(__file__).resolve().parents[1] / "sim"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shim"), str(standin_dir), env.get("PYTHONPATH", "")])
    rclpy.init()
    node = rclpy.create_node("sim_publisher_carla_test")
    got: list = []
    node.create_subscription(Image, "/carla/ego_vehicle/semantic_segmentation_front/image", got.append, 50)
    proc = subprocess.Popen([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p", f"scenario:={scen}",
                             "-p", "source:=carla", "-p", "wait_for_subscribers:=1", "-p", "frames:=4"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(got) < 4:
            rclpy.spin_once(node, timeout_sec=0.1)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown()
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log
    assert "publishing carla scenario" in log
    assert len(got) == 4 and got[0].encoding == "bgra8" and got[0].header.frame_id == "ego_vehicle/semantic_segmentation_front"
    # what the CARLA ROS bridge publishes: CARLA's CityScapesPalette of the raw tags, so road lines keep
    # their own colour (the stand-in draws every tag of 0.9.16, RoadLines included)
    from ros2_ws.image_conversions import image_to_numpy, to_rgb

    colours = {tuple(c) for c in to_rgb(image_to_numpy(got[-1]), "bgra8").reshape(-1, 3).tolist()}
    assert (157, 234, 50) in colours and (128, 64, 128) in colours  # RoadLines beside Roads


def test_lockstep_waits_for_each_outcome_and_times_out_on_a_lost_one(tmp_path, ros_env):
    """sync_mode lockstep: frame k+1 goes out only once the RSU's outcome of frame k is in (here an
    echo of its stamp on /rsu/vehicle_0/image), or after lockstep_timeout; a frame at 10 Hz advances
    simulated time 0.1 s; the timeout and the real-time factor are on /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ros2_ws.node_common import image_qos, parse_diagnostics

    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    rclpy.init()
    node = rclpy.create_node("lockstep_test")
    frames: list[tuple[float, object]] = []  # (arrival, msg)
    diag: dict = {}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/carla/hero/rgb_front/image", lambda m: frames.append((time.monotonic(), m)), qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(parse_diagnostics(m)), 50)
    outcome = node.create_publisher(Image, "/rsu/vehicle_0/image", image_qos())
    proc = subprocess.Popen([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p",
                             f"scenario:={scen}", "-p", "role_name:=hero", "-p", "rate:=10", "-p", "frames:=5",
                             "-p", "sync_mode:=lockstep", "-p", "lockstep_timeout:=1.5",
                             "-p", "diagnostics_period:=0.2"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    answered: list[float] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            if len(frames) > len(answered):
                t_arr, msg = frames[len(answered)]
                answered.append(time.monotonic())
                if len(answered) == 3:
                    continue  # frame 3 is "lost": no outcome, the simulator must time out and go on
                time.sleep(0.4)  # a slow RSU: the simulator must wait, not run ahead
                echo = Image()
                echo.header.stamp = msg.header.stamp
                outcome.publish(echo)
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.05)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown()
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log
    assert len(frames) == 5, log
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in frames]
    assert np.allclose(np.diff(stamps), 0.1)  # 10 Hz camera: two 0.05 s ticks per frame
    gaps = np.diff([t for t, _ in frames])
    assert all(g > 0.35 for g in gaps), gaps  # never ahead of the outcome
    assert gaps[2] > 1.4, gaps  # frame 3's outcome never came: the timeout, then frame 4
    sim = diag["sqgan sim"]
    assert sim["sync_mode"] == "lockstep" and sim["frames_published"] == "5", sim
    assert sim["lockstep_timeouts"] == "1" and sim["lockstep_outcomes"] == "4", sim
    assert 0 < float(sim["real_time_factor"]) < 1.0, sim
    assert "no RSU outcome for the frame at 0.200000000" in log, log


def test_bad_sync_mode_is_one_clear_line(tmp_path, ros_env):
    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO)
    p = subprocess.run([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p", f"scenario:={scen}",
                        "-p", "sync_mode:=synchronous"], env=ros_env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "sync_mode='synchronous': use one of free, lockstep, auto" in p.stderr, p.stderr


def test_a_warning_on_the_warning_topic_brakes_the_ego_to_a_stop(tmp_path, ros_env):
    """The closed loop's last hop: a hazard warning (the vehicle node's republished JSON) makes the
    simulator's ego brake (sim/brake.py) to a standstill; malformed ones are counted, not obeyed."""
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String

    from ros2_ws.node_common import parse_diagnostics

    scen = tmp_path / "rostest.yaml"
    scen.write_text(SCENARIO.replace("duration: 0.5", "duration: 30.0") + "ego: {speed: 8.0}\n")
    rclpy.init()
    node = rclpy.create_node("brake_test")
    diag: dict = {}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(parse_diagnostics(m)), 50)
    pub = node.create_publisher(String, "/vehicle_0/hazard_warnings", 50)
    proc = subprocess.Popen([sys.executable, "-m", "ros2_ws.sim_publisher", "--ros-args", "-p",
                             f"scenario:={scen}", "-p", "rate:=20", "-p", "frames:=-1", "-p", "diagnostics_period:=0.2",
                             "-p", "warning_topic:=/vehicle_0/hazard_warnings", "-p", "brake_hold:=0.5"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    warning = {"type": "vulnerable_road_user", "confidence": 0.9, "region": [1, 2, 3, 4], "stamp": 1.0, "vehicle_id": 0}

    def sim(key: str) -> str | None:
        return diag.get("sqgan sim", {}).get(key)

    def spin_until(pred, timeout: float) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            if pred():
                return True
        return False

    try:
        assert spin_until(lambda: sim("ego_speed") is not None and float(sim("ego_speed")) > 5.0, 90)
        assert sim("braking") == "False"
        pub.publish(String(data="{not json"))
        pub.publish(String(data=json.dumps({"vehicle_id": 0, "stamp": 1.0, "warnings": [warning]})))
        assert spin_until(lambda: sim("braking") == "True", 20), diag
        assert spin_until(lambda: float(sim("ego_speed")) < 0.1, 30), diag  # 8 m/s at 6 m/s^2: 1.3 s of sim time
        assert spin_until(lambda: sim("braking") == "False", 20), diag  # no more warnings: it drives on
        assert spin_until(lambda: float(sim("ego_speed")) > 1.0, 30), diag
    finally:
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=30)
        node.destroy_node()
        rclpy.shutdown()
    s = diag["sqgan sim"]
    assert s["warnings_received"] == "1" and s["warnings_malformed"] == "1" and s["brake_on"] == "1", s
