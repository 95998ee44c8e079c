"""The transforms behind the camera frame_ids, as the CARLA ROS bridge publishes them (no ROS here).

Images carry frame_id `<role>/<sensor>`; a frame_id only resolves (rviz, tf2 lookups, projecting
with camera_info) when /tf says where that frame is. ros-bridge sends `map -> <role>` (the ego pose,
every tick) and `<role> -> <role>/<sensor>` (where the sensor is mounted). This module computes
both from a SimFrame and the scenario's mount as plain numbers, so the axis conventions are tested
without ROS; ros2_ws/sim_publisher.py wraps them in tf2_msgs/TFMessage.

Conventions, those of ros-bridge's carla_common/transforms.py and camera.py:
* ROS frames are right-handed, x forward, y left, z up (REP 103). CARLA's world is Unreal's
  left-handed one (y to the right, yaw clockwise seen from above, pitch nose-up positive), so a CARLA
  location (x, y, z) is (x, -y, z) in ROS and its rotation is roll, -pitch, -yaw.
* The embedded simulator's world is already right-handed (x east, y north, z up, yaw
  counter-clockwise from +x); only pitch, nose-up positive here as in CARLA and `ego.pitch`, flips.
* A camera's frame is its optical frame (z forward, x right, y down), which is what the image
  pixels and camera_info's K refer to: ros-bridge rotates every camera's transform by the same
  body -> optical rotation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sim.frame import Pose, SimFrame

Vector3 = tuple[float, float, float]
Quaternion = tuple[float, float, float, float]  # x, y, z, w (geometry_msgs order)

WORLD_FRAME = "map"  # ros-bridge's world frame, the parent of every vehicle
# body (x forward, y left, z up) -> optical (z forward, x right, y down): ros-bridge's camera
# `quat_swap`, the rotation whose matrix has columns (0, -1, 0), (0, 0, -1), (1, 0, 0)
OPTICAL_FROM_BODY: Quaternion = (-0.5, 0.5, -0.5, 0.5)


@dataclass(frozen=True)
class FrameTransform:
    """`child` expressed in `parent`: where the child's origin is and how its axes are turned."""

    parent: str
    child: str
    translation: Vector3
    rotation: Quaternion


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> Quaternion:
    """Radians -> (x, y, z, w) of Rz(yaw) Ry(pitch) Rx(roll), tf_transformations' quaternion_from_euler."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy)


def quaternion_multiply(a: Quaternion, b: Quaternion) -> Quaternion:
    """Hamilton product a * b of (x, y, z, w) quaternions: rotate by b first, then by a."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def ros_pose(pose: Pose, source: str) -> tuple[Vector3, Quaternion]:
    """A source's ego pose (metres, degrees, in that source's world frame) -> ROS translation and rotation."""
    if source == "carla":  # left-handed: mirror y, and with it the sense of pitch and yaw
        translation = (pose.x, -pose.y, pose.z)
        rpy = (math.radians(pose.roll), -math.radians(pose.pitch), -math.radians(pose.yaw))
    elif source == "embedded":
        translation = (pose.x, pose.y, pose.z)
        rpy = (math.radians(pose.roll), -math.radians(pose.pitch), math.radians(pose.yaw))
    else:
        raise ValueError(f"unknown frame source {source!r}: its world frame's handedness is not known")
    return translation, quaternion_from_rpy(*rpy)


def ego_transform(frame: SimFrame, role: str) -> FrameTransform:
    """`map -> <role>`: the ego vehicle's pose in the world at this frame."""
    translation, rotation = ros_pose(frame.ego_pose, frame.source)
    return FrameTransform(WORLD_FRAME, role, translation, rotation)


def camera_mount_transforms(role: str, sensors: Iterable[str], mount_x: float, mount_z: float,
                            pitch: float) -> list[FrameTransform]:
    """`<role> -> <role>/<sensor>` for each camera, all at the scenario's mount (`ego.mount_x` forward,
    `ego.mount_z` up, `ego.pitch` degrees nose-up), each frame the camera's optical frame."""
    body = quaternion_from_rpy(0.0, -math.radians(pitch), 0.0)
    rotation = quaternion_multiply(body, OPTICAL_FROM_BODY)
    return [FrameTransform(role, f"{role}/{sensor}", (float(mount_x), 0.0, float(mount_z)), rotation)
            for sensor in sensors]
