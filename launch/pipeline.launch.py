"""`ros2 launch sqgan pipeline.launch.py [keys_dir:=... profile:=... model:=...]`: the 'pipeline' graph.

The nodes and their parameters come from configs/nodes/ through ros2_ws.graph, the same description
`sqgan launch pipeline` runs where ROS 2 launch is not installed.
"""
from ros2_ws.launch_support import launch_description


def generate_launch_description():
    return launch_description("pipeline")
