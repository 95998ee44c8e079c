"""The /tf tree of the camera frames: axis conventions of ROS, CARLA and the embedded simulator.

Expected values are written out from the conventions (REP 103, ros-bridge's carla_common/transforms.py
and its camera optical rotation), and rotations are checked by where they send the axes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.frame import CameraIntrinsics, Pose, SimFrame
from sim.tf_tree import (WORLD_FRAME, camera_mount_transforms, ego_transform, quaternion_from_rpy, quaternion_multiply,
                         ros_pose)

S = math.sqrt(0.5)


def rotate(q, v) -> np.ndarray:
    """v rotated by the unit quaternion q = (x, y, z, w), through its rotation matrix."""
    x, y, z, w = q
    m = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return m @ np.asarray(v, float)


def _frame(pose: Pose, source: str) -> SimFrame:
    cam = CameraIntrinsics(16, 16, 90.0)
    return SimFrame(rgb=np.zeros((16, 16, 3), np.uint8), labels=np.zeros((16, 16), np.uint8), stamp=0.5, index=10,
                    camera=cam, ego_pose=pose, source=source)


def test_quaternion_from_rpy_is_yaw_pitch_roll_about_fixed_axes():
    roll, pitch, yaw = 0.3, -0.7, 2.1
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    q = quaternion_from_rpy(roll, pitch, yaw)
    for axis in np.eye(3):
        assert np.allclose(rotate(q, axis), rz @ ry @ rx @ axis)
    a, b = quaternion_from_rpy(0.0, 0.0, 0.4), quaternion_from_rpy(0.0, 0.0, 0.5)
    assert np.allclose(quaternion_multiply(a, b), quaternion_from_rpy(0.0, 0.0, 0.9))


def test_carla_ego_pose_is_mirrored_into_ros_axes():
    """CARLA is left-handed: y and the sense of yaw flip, as ros-bridge does."""
    t = ego_transform(_frame(Pose(x=10.0, y=5.0, z=0.3, yaw=90.0), "carla"), "ego_vehicle")
    assert (t.parent, t.child) == (WORLD_FRAME, "ego_vehicle") == ("map", "ego_vehicle")
    assert t.translation == pytest.approx((10.0, -5.0, 0.3))
    assert t.rotation == pytest.approx((0.0, 0.0, -S, S))  # yaw -90 degrees in ROS
    # CARLA yaw 90 faces CARLA +y, which is ROS -y (to the right)
    assert rotate(t.rotation, (1, 0, 0)) == pytest.approx([0.0, -1.0, 0.0], abs=1e-12)
    _, nose_up = ros_pose(Pose(pitch=30.0), "carla")  # CARLA pitch is nose-up positive
    assert rotate(nose_up, (1, 0, 0)) == pytest.approx([math.cos(math.radians(30)), 0.0, 0.5])


def test_embedded_ego_pose_is_already_right_handed():
    t = ego_transform(_frame(Pose(x=10.0, y=5.0, yaw=90.0), "embedded"), "hero")
    assert (t.parent, t.child) == ("map", "hero")
    assert t.translation == pytest.approx((10.0, 5.0, 0.0))
    assert t.rotation == pytest.approx((0.0, 0.0, S, S))  # counter-clockwise: faces +y (north)
    assert ego_transform(_frame(Pose(), "embedded"), "hero").rotation == pytest.approx((0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="handedness"):
        ros_pose(Pose(), "unreal")


def test_camera_mounts_are_optical_frames_at_the_mount():
    mounts = camera_mount_transforms("ego_vehicle", ["rgb_front", "semantic_segmentation_front"], 1.0, 1.6, 0.0)
    assert [(m.parent, m.child) for m in mounts] == [("ego_vehicle", "ego_vehicle/rgb_front"),
                                                     ("ego_vehicle", "ego_vehicle/semantic_segmentation_front")]
    for m in mounts:
        assert m.translation == pytest.approx((1.0, 0.0, 1.6))
        assert m.rotation == pytest.approx((-0.5, 0.5, -0.5, 0.5))  # ros-bridge's camera rotation
        # optical axes in the vehicle frame: z looks forward, x to the right, y down
        assert rotate(m.rotation, (0, 0, 1)) == pytest.approx([1.0, 0.0, 0.0], abs=1e-12)
        assert rotate(m.rotation, (1, 0, 0)) == pytest.approx([0.0, -1.0, 0.0], abs=1e-12)
        assert rotate(m.rotation, (0, 1, 0)) == pytest.approx([0.0, 0.0, -1.0], abs=1e-12)
    (down,) = camera_mount_transforms("hero", ["rgb_front"], 2.0, 1.2, -15.0)  # ego.pitch -15: looking down
    assert down.translation == pytest.approx((2.0, 0.0, 1.2))
    look = rotate(down.rotation, (0, 0, 1))
    assert look == pytest.approx([math.cos(math.radians(15)), 0.0, -math.sin(math.radians(15))])
    assert rotate(down.rotation, (1, 0, 0)) == pytest.approx([0.0, -1.0, 0.0], abs=1e-12)  # still no roll
