"""Label exactness: labels are rasterised from the same triangles as the RGB image.

A known scene (ground plane, boxes, sky) is rendered and compared pixel by pixel with a CPU
ray-cast of the same geometry through the same pinhole intrinsics.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sqgan_core.labels import NUM_CLASSES, VOID, class_id
from sim.frame import CameraIntrinsics
from sim.meshes import M_ASPHALT, M_FACADE, M_PAINT, MeshBuilder
from sim.renderer import CameraPose, Environment, Renderer, projection
from sim.scenario import CameraConfig, WeatherConfig
from sim.town import Chunk

ROAD, CAR, BUILDING, SKY, PERSON = (class_id(n) for n in ("road", "car", "building", "sky", "person"))
# (x0, y0, z0, x1, y1, z1, label): axis-aligned boxes of the test scene
BOXES = [(10.0, -2.0, 0.0, 14.5, 0.0, 1.5, CAR), (25.0, 3.0, 0.0, 40.0, 12.0, 18.0, BUILDING),
         (7.0, 1.5, 0.0, 7.4, 1.9, 1.8, PERSON)]
GROUND = (-20.0, -30.0, 200.0, 30.0)


def _scene() -> list[Chunk]:
    mb = MeshBuilder()
    mb.rect(*GROUND, 0.0, (0.3, 0.3, 0.3), M_ASPHALT, ROAD)
    for x0, y0, z0, x1, y1, z1, lab in BOXES:
        col, mat = ((1.0, 0.0, 0.0), M_PAINT) if lab == CAR else ((0.2, 0.6, 0.2), M_FACADE)
        mb.box((x0 + x1) / 2, (y0 + y1) / 2, z0, x1 - x0, y1 - y0, z1 - z0, 0.0, col, mat, lab)
    m = mb.build()
    c, r = m.bounds()
    return [Chunk((0, 0), m, c, r)]


def _raycast(cam: CameraIntrinsics, pose: CameraPose) -> np.ndarray:
    """Reference labels: nearest hit of each pixel-centre ray with the plane and the boxes."""
    f, r, u = pose.axes()
    j, i = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    d = (r[None, None] * ((j - cam.cx) / cam.fx)[..., None] + u[None, None] * (-(i - cam.cy) / cam.fy)[..., None]
         + f[None, None])
    o = np.array([pose.x, pose.y, pose.z])
    best = np.full(d.shape[:2], np.inf)
    lab = np.full(d.shape[:2], SKY, np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / d[..., 2]
        p = o + d * t[..., None]
        hit = (t > 0) & (p[..., 0] >= GROUND[0]) & (p[..., 0] <= GROUND[2]) & (p[..., 1] >= GROUND[1]) & (p[..., 1] <= GROUND[3])
        best = np.where(hit, t, best)
        lab = np.where(hit, ROAD, lab)
        for x0, y0, z0, x1, y1, z1, bl in BOXES:
            lo, hi = np.array([x0, y0, z0]), np.array([x1, y1, z1])
            t0 = (lo - o) / d
            t1 = (hi - o) / d
            tmin = np.nanmax(np.minimum(t0, t1), axis=-1)
            tmax = np.nanmin(np.maximum(t0, t1), axis=-1)
            hit = (tmax >= tmin) & (tmax > 0) & (tmin < best)
            best = np.where(hit, tmin, best)
            lab = np.where(hit, bl, lab)
    return lab.astype(np.uint8)


def _boundary(lab: np.ndarray) -> np.ndarray:
    b = np.zeros(lab.shape, bool)
    b[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    b[:, :-1] |= lab[:, 1:] != lab[:, :-1]
    b[1:, :] |= lab[1:, :] != lab[:-1, :]
    b[:-1, :] |= lab[1:, :] != lab[:-1, :]
    return b


@pytest.fixture(scope="module")
def rendered():
    cam = CameraIntrinsics(320, 160, 90.0)
    r = Renderer(cam, _scene())
    pose = CameraPose(0.0, 0.5, 1.6, math.radians(8.0), math.radians(2.0))
    env = Environment.from_config(WeatherConfig(time_of_day=12.0, fog=0.0), CameraConfig(), 0)
    rgb, lab = r.render(pose, None, env, 0.0, 0, post=False)
    rgb_post, lab_post = r.render(pose, None, Environment.from_config(
        WeatherConfig(time_of_day=12.0, fog=0.5, rain=1.0), CameraConfig(noise=0.05), 0), 0.0, 1, post=True)
    r.close()
    return cam, pose, rgb, lab, rgb_post, lab_post


def test_labels_match_raycast_of_the_same_geometry(rendered):
    cam, pose, _, lab, _, _ = rendered
    ref = _raycast(cam, pose)
    mismatch = lab != ref
    # only pixels whose centre lies within a pixel of a silhouette may differ (edge rounding)
    assert not (mismatch & ~_boundary(ref)).any(), np.argwhere(mismatch & ~_boundary(ref))[:5]
    assert mismatch.mean() < 0.01
    for k in (ROAD, CAR, BUILDING, SKY, PERSON):
        assert (lab == k).sum() > 20, f"class {k} should be visible in the test scene"


def test_labels_hold_only_scene_trainids_no_blends(rendered):
    _, _, _, lab, _, lab_post = rendered
    assert set(np.unique(lab).tolist()) == {ROAD, CAR, BUILDING, SKY, PERSON}
    assert ((lab < NUM_CLASSES) | (lab == VOID)).all()


def test_weather_and_sensor_effects_never_touch_labels(rendered):
    _, _, rgb, lab, rgb_post, lab_post = rendered
    assert np.array_equal(lab, lab_post)
    assert not np.array_equal(rgb, rgb_post)


def test_rgb_silhouette_agrees_with_labels(rendered):
    """The car is painted pure red: a pixel is red exactly where its label is car."""
    _, _, rgb, lab, _, _ = rendered
    c = rgb.astype(int)
    red = (c[..., 0] > 1.5 * c[..., 1] + 10) & (c[..., 0] > 1.5 * c[..., 2] + 10)
    assert np.array_equal(red, lab == CAR)


def test_rgb_is_textured_not_flat(rendered):
    _, _, rgb, lab, _, _ = rendered
    road = rgb[lab == ROAD].astype(float)
    assert road.std(axis=0).mean() > 3.0  # asphalt grain and lighting, not a flat fill


def test_projection_reproduces_intrinsics():
    cam = CameraIntrinsics(512, 256, 90.0)
    pose = CameraPose(0, 0, 0, 0.0)
    P = projection(cam) @ pose.view()
    # a point 10 m ahead, 2 m right, 1 m up lands at u = cx + fx*2/10, v = cy - fy*1/10
    clip = P @ np.array([10.0, -2.0, 1.0, 1.0])
    ndc = clip[:3] / clip[3]
    u = (ndc[0] + 1) / 2 * cam.width
    v = (1 - ndc[1]) / 2 * cam.height
    assert u == pytest.approx(cam.cx + cam.fx * 0.2)
    assert v == pytest.approx(cam.cy - cam.fy * 0.1)


def test_building_casts_sun_shadow_on_the_road():
    """Sun low in +x: the building (x 25..40, y 3..12, 18 m tall) shades the road toward the camera."""
    cam = CameraIntrinsics(320, 160, 90.0)
    r = Renderer(cam, _scene())
    pose = CameraPose(0.0, 0.5, 1.6, math.radians(8.0), math.radians(-5.0))
    env = Environment.from_config(WeatherConfig(time_of_day=12.0, fog=0.0, cloudiness=0.0), CameraConfig(), 0)
    env.sun_dir = np.array([1.0, 0.0, 1.0]) / math.sqrt(2.0)
    rgb, lab = r.render(pose, None, env, 0.0, 0, post=False)
    r.close()
    # where does each road pixel's ray meet the ground?
    f, rr, u = pose.axes()
    j, i = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    d = rr * ((j - cam.cx) / cam.fx)[..., None] + u * (-(i - cam.cy) / cam.fy)[..., None] + f
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -pose.z / d[..., 2]
    gx, gy = pose.x + d[..., 0] * t, pose.y + d[..., 1] * t
    road = (lab == ROAD) & (t > 0)
    shaded = road & (gx > 9.0) & (gx < 24.0) & (gy > 4.0) & (gy < 11.0)   # inside the shadow (45 deg sun)
    lit = road & (gx > 9.0) & (gx < 24.0) & (gy < -4.0)
    assert shaded.sum() > 50 and lit.sum() > 50
    lum = rgb.astype(float).mean(axis=2)
    assert lum[shaded].mean() < 0.8 * lum[lit].mean()
