"""launch_testing test of the installed launch files: rsu.launch.py and vehicle.launch.py from the
ament index (as `ros2 launch sqgan ...` would find them), a simulator camera beside them, decoded
images expected on /rsu/vehicle_0/image, and every process ending cleanly when launch shuts down.

Run by tests/launch/test_launch_files.py through the `launch_test` CLI (the vendored launch_testing
pytest plugin does not load under pytest 9). Needs SQGAN_TEST_KEYS (a `sqgan keys` folder) and two
free endpoints in SQGAN_TEST_RSU_ENDPOINT."""
import os
import unittest

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node
from launch_testing_ros import WaitForTopics
from sensor_msgs.msg import Image

SHARE = get_package_share_directory("sqgan")
ARGS = {"keys_dir": os.environ["SQGAN_TEST_KEYS"], "rsu_endpoint": os.environ["SQGAN_TEST_RSU_ENDPOINT"],
        "rsu_connect": os.environ["SQGAN_TEST_RSU_ENDPOINT"], "out_dir": os.environ.get("SQGAN_TEST_OUT", "out")}


def include(name: str) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", name)),
                                    launch_arguments=ARGS.items())


@pytest.mark.launch_test
def generate_test_description():
    camera = Node(package="sqgan", executable="sim_publisher", name="sim_publisher", output="screen",
                  parameters=[{"scenario": "default", "role_name": "ego_vehicle", "rate": 4.0, "frames": -1}])
    return launch.LaunchDescription([
        include("rsu.launch.py"),
        include("vehicle.launch.py"),
        camera,
        launch_testing.actions.ReadyToTest(),
    ]), {"camera": camera}


class TestDecodedImagesArrive(unittest.TestCase):

    def test_rsu_publishes_decoded_images(self, camera):
        with WaitForTopics([("/rsu/vehicle_0/image", Image)], timeout=150.0) as wait:
            images = wait.received_messages("/rsu/vehicle_0/image")
            self.assertGreaterEqual(len(images), 1)
            self.assertEqual((images[0].encoding, images[0].height, images[0].width), ("rgb8", 256, 512))


@launch_testing.post_shutdown_test()
class TestCleanShutdown(unittest.TestCase):

    def test_every_process_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)  # 0 for all: a SIGINT'd node exits 0, no traceback
