"""ROS 2 ament_python package `sqgan`; also installable with `pip install -e .`.

Three import packages ship together: `sqgan_core` (the codec, no ROS), `sim` (scenario sources) and
`ros2_ws` (thin rclpy nodes). The `sqgan` console command discovers subcommands through the
`sqgan.commands` and `sqgan.bench` entry-point groups, so the codec never imports a node.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sqgan"


def data(dest: str, pattern: str) -> tuple[str, list[str]]:
    return (f"share/{PACKAGE}/{dest}", sorted(glob(pattern)))


setup(
    name=PACKAGE,
    version="0.1.0",
    description="SQ-GAN semantic image streaming over lossy V2X links (ROS 2)",
    package_data={"sqgan_core": ["weights/*.pt", "weights/*.json", "weights/README.md"]},
    packages=find_packages(include=["sqgan_core", "sqgan_core.*", "sim", "sim.*", "ros2_ws", "ros2_ws.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        data("launch", "launch/*.launch.py"),
        data("configs/model", "configs/model/*.yaml"),
        data("configs/scenarios", "configs/scenarios/*.yaml"),
        data("configs/links", "configs/links/*.yaml"),
        data("configs/nodes", "configs/nodes/*.yaml"),
        data("configs/dds", "configs/dds/*.xml"),
        data("configs/train", "configs/train/*.yaml"),
        data("configs/safety", "configs/safety/*.yaml"),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "torch>=2.5",
        "constriction>=0.4",
        "pyyaml>=6",
        "pillow>=10",
        "tqdm>=4.60",
    ],
    extras_require={
        "link": ["pyzmq>=25"],
        "sim": ["opencv-python-headless>=4.8"],
        "carla": ["carla>=0.9.13"],
        "test": ["pytest>=8", "hypothesis>=6"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "sqgan = sqgan_core.cli:main",
            "sim_publisher = ros2_ws.sim_publisher:main",
            "link_emulator = sqgan_core.transport.emulator:main",
            "vehicle_encoder = ros2_ws.vehicle_node:main",
            "rsu_decoder = ros2_ws.rsu_node:main",
            "rsu_hazards = ros2_ws.hazard_node:main",
            "pipeline_recorder = ros2_ws.recorder_node:main",
        ],
        "sqgan.commands": [
            "codec = sqgan_core.cli.codec_commands:register",
            "codec-demo = sqgan_core.cli.codec_demo:register",
            "train = sqgan_core.cli.train_commands:register",
            "segment = sqgan_core.cli.segment_commands:register",
            "eval = sqgan_core.cli.eval_command:register",
            "sim = sim.cli:register",
            "keys = sqgan_core.cli.keys_command:register",
            "link = sqgan_core.transport.emulator:register",
            "launch = ros2_ws.launcher:register",
            "demo = ros2_ws.demo:register",
            "bag = ros2_ws.bag:register",
            "scenario = ros2_ws.scenario_command:register",
        ],
        "sqgan.frame_sources": [
            "embedded = sim:make_source",
        ],
        "sqgan.bench": [
            "codec = sqgan_core.cli.bench_codec:register",
            "segmenter = sqgan_core.cli.bench_segmenter:register",
            "train = sqgan_core.cli.bench_training:register",
            "ratecontrol = sqgan_core.cli.bench_rate:register",
            "concealer = sqgan_core.cli.bench_concealer:register",
            "sim = sim.bench:register",
            "pipeline = ros2_ws.bench:register",
            "stream = ros2_ws.bench_stream:register",
            "classic = ros2_ws.bench_classic:register",
            "all = ros2_ws.bench_all:register",
        ],
    },
)
