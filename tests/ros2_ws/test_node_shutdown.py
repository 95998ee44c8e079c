"""Ctrl-C in a terminal sends SIGINT to every process of the foreground group, and `ros2 launch`
forwards one more: each node must end with exit code 0 and no traceback when SIGINT comes twice."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")


def _endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _ros_args(**params) -> list[str]:
    out = ["--ros-args"]
    for k, v in params.items():
        out += ["-p", f"{k}:={v}"]
    return out


@pytest.mark.ros
@pytest.mark.parametrize("node", ["rsu", "vehicle", "sim_publisher"])
def test_a_double_sigint_to_the_process_group_ends_the_node_cleanly(node, keyset):
    ep = _endpoint()
    if node == "rsu":
        cmd = [sys.executable, "-m", "ros2_ws.rsu_node"] + _ros_args(
            endpoint=ep, secret_key=keyset / "rsu.key_secret", allow_dir=keyset / "allowed", model="untrained:small")
        ready = "RSU listening"
    elif node == "sim_publisher":  # frames:=-1: it never ends by itself; only the signals stop it
        cmd = [sys.executable, "-m", "ros2_ws.sim_publisher"] + _ros_args(frames=-1, rate=20.0)
        ready = "publishing "
    else:
        cmd = [sys.executable, "-m", "ros2_ws.vehicle_node"] + _ros_args(
            vehicle_id=0, link_endpoint=ep, secret_key=keyset / "vehicle_0.key_secret",
            server_key=keyset / "rsu.key", model="untrained:small")
        ready = "vehicle 0:"
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(100, 200)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines = []
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if ready in line:
            break
    assert any(ready in ln for ln in lines), "".join(lines)
    os.killpg(p.pid, signal.SIGINT)  # the terminal's Ctrl-C ...
    time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)  # ... and launch's forwarded SIGINT while the node winds down
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "Traceback" not in out, "".join(lines) + out
