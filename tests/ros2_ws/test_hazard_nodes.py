"""The closed loop's ROS nodes, each against this process as its neighbour: the RSU hazard node judges
what the RSU publishes; the RSU decoder sends warnings back over the CurveZMQ back channel through
the downlink's link model; the vehicle node republishes them for whatever acts on them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros

H, W = 128, 256


class Proc:
    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in iter(self.p.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def log(self) -> str:
        return "".join(self.lines[-30:])

    def close(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def _node(module: str, env: dict[str, str], **params) -> Proc:
    cmd = [sys.executable, "-m", module, "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    return Proc(cmd, env)


class Probe:
    """An rclpy node in this process, spun on a thread, collecting what arrives."""

    def __init__(self, name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from ros2_ws.node_common import parse_diagnostics

        rclpy.init()
        self.node = rclpy.create_node(name)
        self.diag: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diag.update(parse_diagnostics(m)), 50)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def wait(pred, timeout: float, proc: Proc | None = None, during=None) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        if proc is not None:
            assert proc.p.poll() is None, "the node exited:\n" + proc.log()
        if during is not None:
            during()
        time.sleep(0.05)
    return False


def _frame(person: bool) -> tuple[np.ndarray, np.ndarray]:
    """A road scene as the RSU would reconstruct it; with `person`, a pedestrian in the ego's path."""
    from sqgan_core.labels import class_id

    labels = np.full((H, W), class_id("building"), np.uint8)
    labels[H // 2:] = class_id("road")
    if person:
        labels[70:100, 120:132] = class_id("person")
    rgb = np.full((H, W, 3), 90, np.uint8)
    return rgb, labels


def test_the_hazard_node_judges_every_frame_and_warns_of_a_person_in_the_path(ros_env):
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from ros2_ws.image_conversions import numpy_to_image
    from ros2_ws.node_common import image_qos

    probe = Probe("hazard_probe")
    verdicts: list[dict] = []
    probe.node.create_subscription(String, "/rsu/vehicle_0/hazards", lambda m: verdicts.append(json.loads(m.data)), 50)
    pub_img = probe.node.create_publisher(Image, "/rsu/vehicle_0/image", image_qos())
    pub_sem = probe.node.create_publisher(Image, "/rsu/vehicle_0/semantic", image_qos())
    node = _node("ros2_ws.hazard_node", ros_env, segmenter="none", diagnostics_period=0.3)
    sent: list[int] = []

    def publish(sec: int, person: bool, bad: bool = False) -> None:
        rgb, labels = _frame(person)
        if bad:
            labels[0, 0] = 200  # not a trainId: the frame is refused and counted, the node goes on
        img, sem = numpy_to_image(rgb, "rgb8"), numpy_to_image(labels, "mono8")
        for m in (img, sem):
            m.header.stamp.sec = sec
        pub_img.publish(img)
        pub_sem.publish(sem)
        sent.append(sec)

    try:
        assert wait(lambda: pub_sem.get_subscription_count() > 0, 90, node), node.log()
        frames = [(10, False, False), (11, True, False), (12, True, True), (13, True, False), (14, True, False),
                  (15, False, False)]
        for sec, person, bad in frames:
            publish(sec, person, bad)
            n = len(verdicts)
            wait(lambda: len(verdicts) > n, 10, node)  # one frame at a time: none dropped as stale
        assert wait(lambda: int(probe.diag.get("sqgan hazards: vehicle_0", {}).get("bad_input", 0)) == 1, 10, node), \
            probe.diag
    finally:
        node.close()
        probe.close()
    by_stamp = {round(v["stamp"]): v for v in verdicts}
    assert sorted(by_stamp) == [10, 11, 13, 14, 15], node.log()  # every good frame judged, with its camera stamp
    assert by_stamp[10]["warnings"] == [] and by_stamp[15]["warnings"] == []
    assert by_stamp[11]["warnings"] == []  # seen once: not yet a warning (persistence: 2 of the last 3 frames)
    for sec in (13, 14):
        (w,) = by_stamp[sec]["warnings"]
        assert w["type"] == "vulnerable_road_user" and w["vehicle_id"] == 0 and w["stamp"] == sec
        x0, y0, x1, y1 = w["region"]
        assert (x0, y0, x1, y1) == (120, 70, 132, 100)
    assert "frame skipped" in node.log() and "Traceback" not in node.log()


def test_warnings_cross_the_downlink_to_the_vehicle_and_bad_verdicts_are_refused(ros_env, keyset, endpoint):
    """RSU decoder (hazard_forwarding, downlink through a link profile) -> back channel -> vehicle node ->
    /vehicle_0/hazard_warnings. A verdict without warnings sends nothing; a malformed one is counted."""
    from std_msgs.msg import String

    probe = Probe("forward_probe")
    got: list[dict] = []
    probe.node.create_subscription(String, "/vehicle_0/hazard_warnings", lambda m: got.append(json.loads(m.data)), 50)
    pub = probe.node.create_publisher(String, "/rsu/vehicle_0/hazards", 50)
    rsu_ep, fb_ep = endpoint(), endpoint()
    rsu = _node("ros2_ws.rsu_node", ros_env, model="untrained:small", endpoint=rsu_ep, feedback_endpoint=fb_ep,
                secret_key=keyset / "rsu.key_secret", allow_dir=keyset / "allowed", hazard_forwarding="true",
                downlink_profile="urban_5pct", diagnostics_period=0.3)
    veh = _node("ros2_ws.vehicle_node", ros_env, model="untrained:small", vehicle_id=0, link_endpoint=rsu_ep,
                secret_key=keyset / "vehicle_0.key_secret", server_key=keyset / "rsu.key", feedback_endpoint=fb_ep,
                feedback_server_key=keyset / "rsu.key", diagnostics_period=0.3)
    warning = {"type": "vulnerable_road_user", "confidence": 0.9, "region": [1, 2, 3, 4], "stamp": 5.5,
               "vehicle_id": 0, "evidence": {"pixels_shat": 40.0}}
    try:
        assert wait(lambda: pub.get_subscription_count() > 0, 120, rsu), rsu.log()
        assert wait(lambda: any("vehicle 0:" in ln for ln in veh.lines), 120, veh), veh.log()
        pub.publish(String(data=json.dumps({"vehicle_id": 0, "stamp": 5.0, "warnings": []})))
        pub.publish(String(data="{not json"))
        pub.publish(String(data=json.dumps({"vehicle_id": 3, "stamp": 5.0, "warnings": [warning]})))  # wrong topic
        # the back channel is PUB/SUB: repeat until the subscription is joined (a lost one is a link loss)
        assert wait(lambda: bool(got), 30, veh, during=lambda: (
            pub.publish(String(data=json.dumps({"vehicle_id": 0, "stamp": 5.5, "warnings": [warning]}))),
            time.sleep(0.2))), veh.log() + rsu.log()
        assert wait(lambda: int(probe.diag.get("sqgan rsu", {}).get("hazard_malformed", 0)) == 2, 10, rsu), probe.diag
    finally:
        veh.close()
        rsu.close()
        probe.close()
    msg = got[0]
    assert msg["vehicle_id"] == 0 and msg["stamp"] == 5.5 and msg["warnings"][0]["type"] == "vulnerable_road_user"
    assert msg["warnings"][0]["region"] == [1, 2, 3, 4]
    rsu_diag = probe.diag["sqgan rsu"]
    assert int(rsu_diag["hazard_verdicts"]) >= 4
    sent, lost = int(rsu_diag["hazard_warnings_sent"]), int(rsu_diag["hazard_downlink_lost"])
    assert int(rsu_diag["hazard_warnings_forwarded"]) >= sent + lost and sent >= 1
    assert "Traceback" not in rsu.log() + veh.log()
