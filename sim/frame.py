"""The frame type every scenario source yields (embedded simulator and CARLA bridge alike).

One type for both sources is what lets the ROS nodes, the exporter and the codec's data loaders
swap the embedded simulator for a real CARLA server by a parameter and nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# CARLA's synchronous-mode tick (0.05 s, 20 Hz); the embedded simulator uses the same clock.
TICK_SECONDS = 0.05


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera in CARLA's terms: image size and horizontal field of view (degrees).

    CARLA cameras take `image_size_x`, `image_size_y` and `fov` and have square pixels with the
    principal point at the image centre, so fx = fy = width / (2 tan(fov/2)).
    """

    width: int = 512
    height: int = 256
    fov: float = 90.0

    def __post_init__(self) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int)):
            raise TypeError(f"camera size must be integers, got {self.width!r} x {self.height!r}")
        if not (16 <= self.width <= 8192 and 16 <= self.height <= 8192):
            raise ValueError(f"camera size {self.width}x{self.height} out of range 16..8192")
        if not (1.0 <= self.fov <= 170.0):
            raise ValueError(f"camera fov {self.fov} out of range 1..170 degrees")

    @property
    def fx(self) -> float:
        return self.width / (2.0 * math.tan(math.radians(self.fov) / 2.0))

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    def matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K (the `k` of sensor_msgs/CameraInfo, row-major)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Pose:
    """Ego pose in the source's world frame: metres and degrees (CARLA's Transform units).

    That frame is CARLA's left-handed one (yaw clockwise seen from above) for the CARLA bridge and a
    right-handed one (x east, y north, z up, yaw counter-clockwise) for the embedded simulator;
    sim.tf_tree converts either to ROS axes for /tf.
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0


@dataclass
class SimFrame:
    """One synchronised camera frame: RGB, exact trainId labels, time and camera.

    `rgb` is HxWx3 uint8 in RGB order; `labels` is HxW uint8 Cityscapes trainIds with 255 = void,
    pixel-aligned with `rgb` (rendered from the same geometry). `stamp` is simulation time in
    seconds (index * 0.05 for the embedded simulator, CARLA's elapsed_seconds for the bridge).
    """

    rgb: np.ndarray
    labels: np.ndarray
    stamp: float
    index: int
    camera: CameraIntrinsics
    ego_pose: Pose = field(default_factory=Pose)
    ego_speed: float = 0.0
    source: str = "embedded"
    # CARLA only: the semantic camera's raw tags (HxW uint8) and their tag set, so the ROS publisher can
    # send the CityScapesPalette image the CARLA ROS bridge sends (road lines, ground, ... keep their
    # CARLA colours). None for the embedded simulator, whose labels are trainIds from the start.
    carla_tags: np.ndarray | None = None
    tag_set: str | None = None
    # Closed-loop scenarios: the scripted hazards' state at this frame (EmbeddedSimulator.hazard_state()),
    # one dict per hazard; empty for scenarios without hazards.
    hazards: list = field(default_factory=list)

    def __post_init__(self) -> None:
        h, w = self.camera.height, self.camera.width
        if self.rgb.shape != (h, w, 3) or self.rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be {h}x{w}x3 uint8, got {self.rgb.shape} {self.rgb.dtype}")
        if self.labels.shape != (h, w) or self.labels.dtype != np.uint8:
            raise ValueError(f"labels must be {h}x{w} uint8, got {self.labels.shape} {self.labels.dtype}")
