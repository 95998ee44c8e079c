"""The launch files under the real ROS 2 `launch`/`launch_ros`/`launch_testing` (the vendored wheels of
../shared/vendor/ros2_launch, installed by tools/install.sh when that folder is there): started from an
installed prefix, they must bring up a graph that decodes images, and end with clean exit codes."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("launch_testing", reason="ROS 2 launch_testing is not installed (tools/install.sh installs the "
                                             "vendored wheels when ../shared/vendor/ros2_launch exists)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed")

HERE = Path(__file__).resolve().parent


def _endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.slow
@pytest.mark.ros
def test_vehicle_and_rsu_launch_files_decode_images_and_exit_cleanly(installed_prefix, installed_env_of, tmp_path):
    launch_test = shutil.which("launch_test", path=str(Path(os.sys.executable).parent))
    assert launch_test, "launch_testing is importable but its launch_test CLI is missing"
    env = installed_env_of(installed_prefix)
    keys = tmp_path / "keys"
    p = subprocess.run([str(installed_prefix / "lib" / "sqgan" / "sqgan"), "keys", "--out", str(keys)], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    env.update({"SQGAN_TEST_KEYS": str(keys), "SQGAN_TEST_RSU_ENDPOINT": _endpoint(), "SQGAN_TEST_OUT": str(tmp_path),
                "ROS_DOMAIN_ID": str(random.randint(100, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    p = subprocess.run([launch_test, str(HERE / "launch_vehicle_rsu.py")], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=540)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "test_rsu_publishes_decoded_images" in out and "test_every_process_exits_cleanly" in out
