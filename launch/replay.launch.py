"""`ros2 launch sqgan replay.launch.py [keys_dir:=... profile:=... model:=...]`: the 'replay' graph.

Link, RSU and vehicle without the simulator: the camera topics come from `ros2 bag play` (or
`sqgan bag play`) of a recorded drive. The nodes and their parameters come from configs/nodes/
through ros2_ws.graph, the same description `sqgan launch replay` runs.
"""
from ros2_ws.launch_support import launch_description


def generate_launch_description():
    return launch_description("replay")
