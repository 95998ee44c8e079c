"""`sqgan bag`: rosbag2 bags that ros2 bag can read, recorded from live topics and played back with
their timing (rosbags library; `ros2 bag` is not installable here)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sqgan_core.cli import main

SQGAN = [str(Path(sys.executable).with_name("sqgan"))]


def _write_bag(path: Path, storage: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (ts.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                  "builtin_interfaces/msg/Time"))
    Str = ts.types["std_msgs/msg/String"]
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    w.open()
    cam = w.add_connection("/cam", "sensor_msgs/msg/Image", typestore=ts)
    note = w.add_connection("/note", "std_msgs/msg/String", typestore=ts)
    for i in range(5):
        img = Image(header=Header(stamp=Time(sec=i, nanosec=0), frame_id="cam"), height=1, width=2, encoding="mono8",
                    is_bigendian=0, step=2, data=np.array([i, i], np.uint8))
        w.write(cam, 10**9 + i * 10**8, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
    w.write(note, 10**9 + 2 * 10**8, ts.serialize_cdr(Str(data="hello"), "std_msgs/msg/String"))
    w.close()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_info_lists_topics_types_counts_and_duration(tmp_path, capsys, storage):
    _write_bag(tmp_path / "b", storage)
    assert main(["bag", "info", str(tmp_path / "b"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["storage"] == storage and info["messages"] == 6 and info["duration_s"] == pytest.approx(0.4, abs=1e-3)
    assert info["topics"] == [
        {"topic": "/cam", "type": "sensor_msgs/msg/Image", "count": 5, "serialization_format": "cdr"},
        {"topic": "/note", "type": "std_msgs/msg/String", "count": 1, "serialization_format": "cdr"}]


@pytest.mark.ros
def test_record_then_play_round_trip(tmp_path):
    """Record a live topic, read it back, play it: the subscriber gets the same messages, in order."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    env = dict(os.environ, PYTHONUNBUFFERED="1")  # this process's private ROS domain (tests/conftest.py)
    bag = tmp_path / "bag"
    rec = subprocess.Popen(SQGAN + ["bag", "record", "/sqgan_test/cam", "-o", str(bag), "--max-messages", "8",
                                    "--discovery-timeout", "30"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    rclpy.init()
    node = rclpy.create_node("bag_test")
    pub = node.create_publisher(Image, "/sqgan_test/cam", 10)
    got: list = []
    playing = False  # the subscriber below keeps only what the player publishes
    sub_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/sqgan_test/cam", lambda m: got.append(m) if playing else None, sub_qos)
    try:
        k, t_end = 0, time.monotonic() + 90
        while rec.poll() is None and time.monotonic() < t_end:
            k += 1
            msg = Image(height=1, width=2, encoding="mono8", step=2, data=bytes([k % 256, 7]))
            msg.header.stamp.sec, msg.header.frame_id = k, "cam"
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
        out, err = rec.communicate(timeout=30)
        assert rec.returncode == 0, err
        info = json.loads(subprocess.run(SQGAN + ["bag", "info", str(bag), "--json"], capture_output=True, text=True,
                                         env=env, check=True).stdout)
        assert info["storage"] == "mcap" and info["messages"] == 8
        assert info["topics"][0]["type"] == "sensor_msgs/msg/Image"
        recorded = _stamps_in(bag)
        assert recorded == sorted(recorded) and len(set(recorded)) == 8
        node.destroy_publisher(pub)
        playing = True
        player = subprocess.Popen(SQGAN + ["bag", "play", str(bag), "--rate", "2", "--delay", "0",
                                            "--wait-for-subscribers", "1", "--discovery-timeout", "30"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t_end = time.monotonic() + 60
        while (player.poll() is None or len(got) < 8) and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)
        out, err = player.communicate(timeout=30)
        assert player.returncode == 0, err
        assert json.loads(out)["published"] == 8
        assert [m.header.stamp.sec for m in got] == recorded  # the same messages, in recorded order
    finally:
        if rec.poll() is None:
            rec.kill()
        node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.ros
def test_play_waiting_for_subscribers_that_never_come_fails_naming_the_topic(tmp_path):
    """--wait-for-subscribers must not hang or play into the void: it gives up with one clear line."""
    _write_bag(tmp_path / "b", "mcap")
    p = subprocess.run(SQGAN + ["bag", "play", str(tmp_path / "b"), "--delay", "0", "--topics", "/cam",
                                "--wait-for-subscribers", "1", "--discovery-timeout", "1"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "fewer than 1 subscriber(s) on /cam (0)" in p.stderr, p.stderr


def _stamps_in(bag: Path) -> list[int]:
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as r:
        return [ts.deserialize_cdr(data, c.msgtype).header.stamp.sec for c, _t, data in r.messages()]


CAM = "/carla/ego_vehicle/rgb_front/image"
SEM = "/carla/ego_vehicle/semantic_segmentation_front/image"


@pytest.mark.ros
@pytest.mark.slow
def test_record_the_demo_graph_then_replay_it_through_vehicle_link_and_rsu(tmp_path):
    """rosbag replay end to end: `sqgan bag record` the camera topics of the running demo graph, then
    `sqgan demo --bag` plays them (looped) into vehicle -> lossy link -> RSU instead of the simulator,
    and the RSU decodes the played stream."""
    from ros2_ws.demo import run_pipeline

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    bag = tmp_path / "drive"
    rec = subprocess.Popen(SQGAN + ["bag", "record", CAM, SEM, "-o", str(bag), "--discovery-timeout", "120"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        live = run_pipeline(tmp_path / "live", profile="urban_5pct", sim_frames=8, sim_rate=2.0, record_frames=3,
                            timeout=90, quiet=True)
        assert live["frames_recorded"] >= 1
        rec.send_signal(signal.SIGINT)  # Ctrl-C ends a recording, as with ros2 bag record
        _out, err = rec.communicate(timeout=60)
    finally:
        if rec.poll() is None:
            rec.kill()
    assert rec.returncode == 0, err
    info = json.loads(subprocess.run(SQGAN + ["bag", "info", str(bag), "--json"], capture_output=True, text=True,
                                     env=env, check=True).stdout)
    counts = {t["topic"]: t["count"] for t in info["topics"]}
    assert set(counts) == {CAM, SEM} and min(counts.values()) >= 3, counts

    replay = run_pipeline(tmp_path / "replay", profile="urban_5pct", record_frames=4, timeout=90, quiet=True,
                          bag=bag)
    assert replay["graph_exit_code"] == 0
    assert replay["frames_recorded"] >= 4 and replay["mean_bpp"] > 0, replay
    assert "sim_publisher" not in (tmp_path / "replay" / "pipeline.log").read_text()
