"""Headless OpenGL renderer (moderngl on EGL; Mesa's llvmpipe where there is no GPU).

One scene pass writes HDR colour and the uint trainId into two attachments of one framebuffer,
so the label of a pixel is the label of the very triangle whose shading is in the RGB pixel; no
MSAA, blending or filtering ever touches the label attachment. The post pass (exposure, lens
blur, rain, vignette, sensor noise) reads colour only.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from sqgan_core.labels import class_id
from sim import shaders
from sim.frame import CameraIntrinsics
from sim.meshes import VERTEX_ATTRS, VERTEX_FLOATS, VERTEX_FORMAT
from sim.scenario import CameraConfig, WeatherConfig

L_SKY = class_id("sky")
NEAR, FAR = 0.5, 2000.0


class RendererUnavailable(RuntimeError):
    """No usable OpenGL context (missing EGL/Mesa packages or moderngl)."""


@dataclass
class Environment:
    """Per-scenario lighting and camera response derived from weather and time of day."""

    sun_dir: np.ndarray
    sun_col: np.ndarray
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    amb_ground: np.ndarray
    fog_col: np.ndarray
    fog: float
    cloud: float
    rain: float
    wet: float
    night: float
    headlights: float
    exposure: float
    noise: float
    blur: float
    vignette: float
    seed: float

    @classmethod
    def from_config(cls, weather: WeatherConfig, camera: CameraConfig, seed: int) -> "Environment":
        rng = np.random.default_rng([seed, 5])
        h = weather.time_of_day
        elev = math.radians(62.0) * math.sin(math.pi * (h - 6.0) / 12.0)  # sunrise 6h, sunset 18h
        az = math.radians(weather.sun_azimuth if weather.sun_azimuth is not None else rng.uniform(0, 360))
        sun = np.array([math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az), math.sin(elev)])
        day = float(np.clip((math.degrees(elev) + 4.0) / 14.0, 0.0, 1.0))  # 0 night .. 1 full day
        low = float(np.clip(1.0 - math.degrees(max(elev, 0.0)) / 25.0, 0.0, 1.0))  # golden hour
        cloud, rain = weather.cloudiness, weather.rain
        overcast = max(cloud, rain)
        sun_col = np.array([1.0, 0.93 - 0.3 * low, 0.85 - 0.55 * low]) * 3.0 * day * (1.0 - 0.8 * overcast)
        zen = np.array([0.12, 0.28, 0.65]) * day + np.array([0.005, 0.008, 0.02]) * (1 - day)
        hor = np.array([0.62, 0.72, 0.85]) * day + np.array([0.02, 0.025, 0.04]) * (1 - day)
        hor = hor + np.array([0.5, 0.22, 0.02]) * low * day * (1.0 - overcast)
        grey = np.array([0.5, 0.52, 0.55]) * (0.04 + 0.96 * day)
        zen = zen * (1 - overcast) + grey * 0.75 * overcast * (1.0 - 0.35 * rain)
        hor = hor * (1 - overcast) + grey * overcast * (1.0 - 0.3 * rain)
        amb_ground = np.array([0.25, 0.22, 0.18]) * (0.05 + 0.95 * day)
        fog_col = hor * 0.9 + 0.05 * day
        # fog 1 -> ~40 m visibility (density 0.075/m); even clear air has some haze
        fog = 0.0015 + 0.075 * weather.fog ** 1.5 + 0.004 * rain
        night = 1.0 - day
        exposure = 0.9 * (1.0 + 0.5 * overcast * day) * (1.0 + 1.5 * night)
        noise = camera.noise * (1.0 + 2.0 * night)
        return cls(sun, sun_col, zen, hor, amb_ground, fog_col, fog, cloud, rain, rain * 0.9 + 0.0, night,
                   1.0 if night > 0.5 else 0.0, exposure, noise, camera.blur, camera.vignette, float(seed % 9973))


@dataclass
class CameraPose:
    """World-frame camera position (m) and orientation (radians); z up, yaw about z from +x."""

    x: float
    y: float
    z: float
    yaw: float
    pitch: float = 0.0
    roll: float = 0.0

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cy, sy, cp, sp = math.cos(self.yaw), math.sin(self.yaw), math.cos(self.pitch), math.sin(self.pitch)
        f = np.array([cy * cp, sy * cp, sp])
        r = np.array([sy, -cy, 0.0])
        u = np.cross(r, f)
        if self.roll:
            cr, sr = math.cos(self.roll), math.sin(self.roll)
            r, u = r * cr + u * sr, -r * sr + u * cr
        return f, r, u

    def view(self) -> np.ndarray:
        f, r, u = self.axes()
        p = np.array([self.x, self.y, self.z])
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = r, u, -f
        m[0, 3], m[1, 3], m[2, 3] = -r @ p, -u @ p, f @ p
        return m


def projection(cam: CameraIntrinsics, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """OpenGL projection reproducing the pinhole intrinsics (pixel centres at i + 0.5)."""
    W, H = cam.width, cam.height
    P = np.zeros((4, 4))
    P[0, 0] = 2 * cam.fx / W
    P[0, 2] = 1 - 2 * cam.cx / W
    P[1, 1] = 2 * cam.fy / H
    P[1, 2] = 2 * cam.cy / H - 1
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def create_context():
    """Standalone headless GL 3.3+ context; EGL first (no X server), then the platform default."""
    try:
        import moderngl
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RendererUnavailable(f"moderngl is not installed ({exc}); run tools/install.sh") from None
    errors = []
    for kwargs in ({"backend": "egl"}, {}):
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as exc:  # noqa: BLE001 - try the next backend, report all
            errors.append(f"{kwargs or 'default'}: {exc}")
    raise RendererUnavailable("no headless OpenGL context (install libegl1 libegl-mesa0 libgl1-mesa-dri): "
                              + "; ".join(errors))


class Renderer:
    """Renders static chunks plus a per-frame dynamic vertex array to (rgb, labels)."""

    def __init__(self, camera: CameraIntrinsics, chunks: list, draw_distance: float = 320.0) -> None:
        import moderngl

        self.mgl = moderngl
        self.camera = camera
        self.ctx = create_context()
        ctx = self.ctx
        W, H = camera.width, camera.height
        self.hdr = ctx.texture((W, H), 4, dtype="f2")
        self.hdr.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.hdr.repeat_x = self.hdr.repeat_y = False
        self.label_rb = ctx.renderbuffer((W, H), 1, dtype="u1")  # GL_R8UI: integer, never blended
        self.depth = ctx.depth_renderbuffer((W, H))
        self.fbo = ctx.framebuffer([self.hdr, self.label_rb], self.depth)
        self.out_rb = ctx.renderbuffer((W, H), 4)
        self.out_fbo = ctx.framebuffer([self.out_rb])
        # one specialised scene program per material family (see shaders.MATERIAL_GROUPS)
        self.groups = shaders.MATERIAL_GROUPS
        self.group_of_mat = np.zeros(64, np.int64)
        for g, mats in enumerate(self.groups):
            self.group_of_mat[list(mats)] = g
        self.scenes = [ctx.program(vertex_shader=shaders.SCENE_VS, fragment_shader=shaders.scene_fs_for(m))
                       for m in self.groups]
        self.sky = ctx.program(vertex_shader=shaders.FULLSCREEN_VS, fragment_shader=shaders.SKY_FS)
        self.post = ctx.program(vertex_shader=shaders.FULLSCREEN_VS, fragment_shader=shaders.POST_FS)
        tri = ctx.buffer(np.array([-1, -1, 3, -1, -1, 3], np.float32).tobytes())
        self.sky_vao = ctx.vertex_array(self.sky, [(tri, "2f", "in_xy")])
        self.post_vao = ctx.vertex_array(self.post, [(tri, "2f", "in_xy")])
        # static geometry: one buffer, chunk ranges for culling
        self.draw_distance = draw_distance
        # static geometry: one buffer ordered (group, chunk) so that each family's part of a
        # chunk is one contiguous range
        G = len(self.groups)
        self.chunk_info = [(np.asarray(c.center, np.float64), float(c.radius),
                            float(getattr(c, "max_distance", float("inf")))) for c in chunks]
        self.ranges = np.zeros((G, len(chunks), 2), np.int64)
        pieces, first = [], 0
        split = []
        for c in chunks:
            g = self.group_of_mat[c.mesh.vertices[:, 11].astype(np.int64)]
            split.append([c.mesh.vertices[g == k] for k in range(G)])
        for k in range(G):
            for ci in range(len(chunks)):
                v = split[ci][k]
                self.ranges[k, ci] = (first, len(v))
                pieces.append(v)
                first += len(v)
        data = np.concatenate(pieces) if first else np.zeros((3, VERTEX_FLOATS), np.float32)
        self.static_vbo = ctx.buffer(np.ascontiguousarray(data, np.float32).tobytes())
        self.static_vaos = [ctx.vertex_array(p, [(self.static_vbo, VERTEX_FORMAT, *VERTEX_ATTRS)], skip_errors=True)
                            for p in self.scenes]
        # sun shadow map of the static scene around the camera, re-rendered only when the camera
        # has moved SHADOW_REFRESH metres from the map's centre (the sun does not move)
        self.shadow_size = 1024
        self.shadow_tex = ctx.depth_texture((self.shadow_size, self.shadow_size))
        self.shadow_tex.compare_func = ""
        self.shadow_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.shadow_fbo = ctx.framebuffer(depth_attachment=self.shadow_tex)
        self.shadow_prog = ctx.program(vertex_shader=shaders.SHADOW_VS, fragment_shader=shaders.SHADOW_FS)
        self.shadow_vao = ctx.vertex_array(self.shadow_prog, [(self.static_vbo, "3f 44x", "in_pos")], skip_errors=True)
        self.shadow_center: np.ndarray | None = None
        self.shadow_sun: np.ndarray | None = None
        self.lightvp = np.eye(4)
        self.dyn_capacity = 0
        self.dyn_vbo = None
        self.dyn_vaos: list = []
        self.proj = projection(camera)
        self.stats = {"chunks_drawn": 0, "static_vertices": 0, "dynamic_vertices": 0}

    def info(self) -> dict[str, str]:
        return {k: str(self.ctx.info.get(k, "")) for k in ("GL_RENDERER", "GL_VERSION")}

    def _ensure_dyn(self, n: int) -> None:
        if n <= self.dyn_capacity:
            return
        cap = max(1024, int(n * 1.5))
        if self.dyn_vbo is not None:
            for vao in self.dyn_vaos:
                vao.release()
            self.dyn_vbo.release()
        self.dyn_vbo = self.ctx.buffer(reserve=cap * VERTEX_FLOATS * 4, dynamic=True)
        self.dyn_vaos = [self.ctx.vertex_array(p, [(self.dyn_vbo, VERTEX_FORMAT, *VERTEX_ATTRS)], skip_errors=True)
                         for p in self.scenes]
        self.dyn_capacity = cap

    def visible_chunks(self, pose: CameraPose) -> list[int]:
        """Indices of chunks in the view frustum (bounding spheres) within draw distance, nearest first."""
        f, r, u = pose.axes()
        p = np.array([pose.x, pose.y, pose.z])
        tan_h = self.camera.width / 2 / self.camera.fx
        tan_v = self.camera.height / 2 / self.camera.fy
        sec_h, sec_v = math.sqrt(1 + tan_h * tan_h), math.sqrt(1 + tan_v * tan_v)
        out = []
        for ci, (c, rad, lod) in enumerate(self.chunk_info):
            d = c - p
            dist = float(np.linalg.norm(d))
            if dist - rad > min(self.draw_distance, lod):
                continue
            z = d @ f
            if z < -rad:
                continue
            if abs(d @ r) > z * tan_h + rad * sec_h or abs(d @ u) > z * tan_v + rad * sec_v:
                continue
            out.append((dist, ci))
        out.sort()
        return [ci for _, ci in out]

    SHADOW_HALF = 110.0     # metres covered either side of the centre
    SHADOW_REFRESH = 35.0   # re-render after the camera moved this far from the centre

    def _light_matrix(self, center: np.ndarray, sun: np.ndarray) -> np.ndarray:
        up = np.array([0.0, 0.0, 1.0]) if abs(sun[2]) < 0.95 else np.array([1.0, 0.0, 0.0])
        f = -sun / np.linalg.norm(sun)
        r = np.cross(f, up)
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        eye = center + sun * 400.0
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = r, u, -f
        view[0, 3], view[1, 3], view[2, 3] = -r @ eye, -u @ eye, f @ eye
        h, near, far = self.SHADOW_HALF, 1.0, 800.0
        proj = np.diag([1.0 / h, 1.0 / h, -2.0 / (far - near), 1.0])
        proj[2, 3] = -(far + near) / (far - near)
        return proj @ view

    def _update_shadows(self, pose: CameraPose, env: "Environment") -> bool:
        """Render the static shadow map if the sun is up and the camera left the covered area."""
        if env.sun_dir[2] < 0.08 or float(np.max(env.sun_col)) < 0.05:
            return False
        cam = np.array([pose.x, pose.y, 0.0])
        fwd = np.array([math.cos(pose.yaw), math.sin(pose.yaw), 0.0])
        want = cam + fwd * self.SHADOW_HALF * 0.45  # most of the map in front of the camera
        if (self.shadow_center is not None and np.array_equal(self.shadow_sun, env.sun_dir)
                and np.linalg.norm(want[:2] - self.shadow_center[:2]) < self.SHADOW_REFRESH):
            return True
        center = np.round(want / 5.0) * 5.0
        self.shadow_center, self.shadow_sun = center, np.array(env.sun_dir)
        self.lightvp = self._light_matrix(center, np.asarray(env.sun_dir, np.float64))
        self.shadow_prog["u_lightvp"].write(self.lightvp.T.astype("f4").tobytes())
        self.shadow_fbo.use()
        self.ctx.viewport = (0, 0, self.shadow_size, self.shadow_size)
        self.ctx.enable(self.mgl.DEPTH_TEST)
        self.ctx.depth_func = "<"
        self.shadow_fbo.clear(depth=1.0)
        reach = self.SHADOW_HALF * 1.5
        for ci, (c, rad, lod) in enumerate(self.chunk_info):
            if rad > 300.0 or np.hypot(c[0] - center[0], c[1] - center[1]) > reach + rad:
                continue  # ground and far scenery cast no useful shadow here
            for k in range(len(self.groups)):
                first, count = self.ranges[k, ci]
                if count:
                    self.shadow_vao.render(self.mgl.TRIANGLES, vertices=int(count), first=int(first))
        return True

    MAX_FORCED_LIGHTS = 8

    def render(self, pose: CameraPose, dynamic: np.ndarray | None, env: Environment, time: float,
               frame: int, post: bool = True,
               forced_lights: list[tuple[float, str, str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Render one frame; returns (rgb HxWx3 uint8, labels HxW uint8), top row first.

        `forced_lights`: (intersection phase offset, axis 'x'|'y', state 'red'|'yellow'|'green') of up to
        8 intersections whose lamps show `state` for travel along `axis` (the cross axis shows green
        for a forced red and red otherwise) instead of the cycle; see Traffic.light()."""
        mgl, ctx = self.mgl, self.ctx
        view = pose.view()
        vp = self.proj @ view
        f, _, _ = pose.axes()
        cam = np.array([pose.x, pose.y, pose.z])
        uni = {"u_cam_pos": cam, "u_cam_fwd": f, "u_sun_dir": env.sun_dir, "u_sun_col": env.sun_col,
               "u_sky_zenith": env.sky_zenith, "u_sky_horizon": env.sky_horizon, "u_amb_ground": env.amb_ground,
               "u_fog_col": env.fog_col, "u_fog": env.fog, "u_time": time, "u_wet": env.wet, "u_night": env.night,
               "u_headlights": env.headlights}
        shadows = self._update_shadows(pose, env)
        self.shadow_tex.use(2)
        vp_bytes = vp.T.astype("f4").tobytes()
        lvp_bytes = self.lightvp.T.astype("f4").tobytes()
        force = np.zeros((self.MAX_FORCED_LIGHTS, 4), np.float32)
        for k, (offset, axis, state) in enumerate((forced_lights or [])[:self.MAX_FORCED_LIGHTS]):
            force[k] = (offset, 0.0 if axis == "x" else 1.0, {"red": 0, "yellow": 1, "green": 2}[state], 1.0)
        force_bytes = force.tobytes()
        for sc in self.scenes:
            sc["u_viewproj"].write(vp_bytes)
            if "u_tl_force" in sc:
                sc["u_tl_force"].write(force_bytes)
            if "u_lightvp" in sc:
                sc["u_lightvp"].write(lvp_bytes)
                sc["u_shadow"].value = 2
                sc["u_shadow_on"].value = 1.0 if shadows else 0.0
                sc["u_shadow_size"].value = float(self.shadow_size)
            for k, v in uni.items():
                if k in sc:
                    sc[k].value = tuple(float(x) for x in v) if isinstance(v, np.ndarray) else float(v)
        self.fbo.use()
        ctx.viewport = (0, 0, self.camera.width, self.camera.height)
        ctx.disable(mgl.BLEND | mgl.CULL_FACE)
        ctx.enable(mgl.DEPTH_TEST)
        ctx.depth_func = "<"
        self.fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        visible = self.visible_chunks(pose)
        dyn_ranges: list[tuple[int, int]] = []
        ndyn = 0
        if dynamic is not None and len(dynamic):
            g = self.group_of_mat[dynamic[:, 11].astype(np.int64)]
            order = np.argsort(g, kind="stable")
            counts = np.bincount(g, minlength=len(self.groups))
            self._ensure_dyn(len(dynamic))
            self.dyn_vbo.write(np.ascontiguousarray(dynamic[order], np.float32).tobytes())
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            dyn_ranges = [(int(a), int(n)) for a, n in zip(starts, counts)]
            ndyn = len(dynamic)
        nstat = 0
        # dynamic actors first: they are near and occlude much of the static scene
        for k in range(len(self.groups)):
            if dyn_ranges and dyn_ranges[k][1]:
                self.dyn_vaos[k].render(mgl.TRIANGLES, vertices=dyn_ranges[k][1], first=dyn_ranges[k][0])
        for k in range(len(self.groups)):
            vao = self.static_vaos[k]
            rk = self.ranges[k]
            for ci in visible:
                first, count = rk[ci]
                if count:
                    vao.render(mgl.TRIANGLES, vertices=int(count), first=int(first))
                    nstat += int(count)
        # sky fills exactly the pixels no triangle covered (depth still 1.0)
        ctx.depth_func = "<="
        sky = self.sky
        sky["u_inv_viewproj"].write(np.linalg.inv(vp).T.astype("f4").tobytes())
        for k in ("u_sun_dir", "u_sun_col", "u_sky_zenith", "u_sky_horizon", "u_fog_col"):
            sky[k].value = tuple(float(x) for x in uni[k])
        for k, v in (("u_fog", env.fog), ("u_cloud", env.cloud), ("u_time", time), ("u_night", env.night),
                     ("u_seed", env.seed)):
            if k in sky:
                sky[k].value = float(v)
        sky["u_sky_label"].value = L_SKY
        self.sky_vao.render(mgl.TRIANGLES)
        ctx.disable(mgl.DEPTH_TEST)
        # camera response
        self.out_fbo.use()
        self.hdr.use(0)
        pp = self.post
        pp["u_hdr"].value = 0
        pp["u_size"].value = (float(self.camera.width), float(self.camera.height))
        vals = {"u_exposure": env.exposure, "u_sensor_noise": env.noise if post else 0.0, "u_blur": env.blur if post else 0.0,
                "u_vignette": env.vignette if post else 0.0, "u_rain": env.rain if post else 0.0, "u_time": time,
                "u_seed": env.seed}
        for k, v in vals.items():
            if k in pp:
                pp[k].value = float(v)
        if "u_frame" in pp:
            pp["u_frame"].value = int(frame)
        self.post_vao.render(mgl.TRIANGLES)
        W, H = self.camera.width, self.camera.height
        rgb = np.frombuffer(self.out_fbo.read(components=3, alignment=1), np.uint8).reshape(H, W, 3)[::-1]
        lab = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="u1", alignment=1), np.uint8)
        lab = lab.reshape(H, W)[::-1]
        self.stats = {"chunks_drawn": len(visible), "static_vertices": nstat, "dynamic_vertices": ndyn}
        return np.ascontiguousarray(rgb), np.ascontiguousarray(lab)

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.release()
            self.ctx = None
