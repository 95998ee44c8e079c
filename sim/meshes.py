"""Triangle-mesh building blocks for the embedded simulator.

Every vertex carries its trainId, so the label image is rasterised from exactly the triangles
that produce the RGB image. Layout (14 float32 per vertex): position (3), normal (3), uv (2,
metres along the surface, used by the procedural textures), colour (3, linear RGB base colour),
material (1, selects the procedural texture in the shader), label (1, trainId) and param (1, a
per-object random number that varies windows, wear, foliage tone...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VERTEX_FLOATS = 14
VERTEX_FORMAT = "3f 3f 2f 3f 1f 1f 1f"
VERTEX_ATTRS = ("in_pos", "in_normal", "in_uv", "in_color", "in_mat", "in_label", "in_param")

# Materials (procedural textures in sim/shaders.py; keep the numbers in sync with it).
M_PAINT, M_ASPHALT, M_MARKING, M_PAVING, M_FACADE, M_GLASS, M_FOLIAGE, M_GRASS = range(8)
M_FABRIC, M_LAMP, M_CONCRETE, M_WOOD, M_METAL, M_SIGN, M_RUBBER, M_HEADLIGHT = range(8, 16)
M_BARK, M_RAIL, M_DIRT, M_SKIN, M_TAILLIGHT = range(16, 21)


@dataclass
class Mesh:
    """An (N, 14) float32 vertex array of triangles (every 3 rows one triangle)."""

    vertices: np.ndarray

    @property
    def count(self) -> int:
        return int(self.vertices.shape[0])

    def bounds(self) -> tuple[np.ndarray, float]:
        """Bounding sphere (centre, radius) used for view culling."""
        if self.count == 0:
            return np.zeros(3), 0.0
        p = self.vertices[:, :3]
        lo, hi = p.min(0), p.max(0)
        c = (lo + hi) / 2
        return c, float(np.linalg.norm(hi - lo) / 2)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class MeshBuilder:
    """Accumulates primitives; `build()` returns one Mesh. Angles are radians, yaw about +z."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(p.shape[0] for p in self._parts)

    def extend(self, other: "MeshBuilder | Mesh") -> None:
        if isinstance(other, Mesh):
            self._parts.append(other.vertices)
        else:
            self._parts.extend(other._parts)

    def build(self) -> Mesh:
        if not self._parts:
            return Mesh(np.zeros((0, VERTEX_FLOATS), np.float32))
        return Mesh(np.ascontiguousarray(np.concatenate(self._parts).astype(np.float32)))

    # -- raw triangles -------------------------------------------------------------------------
    def triangles(self, pos: np.ndarray, normal: np.ndarray, uv: np.ndarray, color, mat: int, label: int,
                  param: float = 0.0) -> None:
        """Append triangles given per-vertex positions (N,3), normals (N,3) and uvs (N,2)."""
        n = pos.shape[0]
        v = np.empty((n, VERTEX_FLOATS), np.float32)
        v[:, 0:3] = pos
        v[:, 3:6] = normal
        v[:, 6:8] = uv
        v[:, 8:11] = np.broadcast_to(np.asarray(color, np.float32), (n, 3))
        v[:, 11] = mat
        v[:, 12] = label
        v[:, 13] = param
        self._parts.append(v)

    def quad(self, p0, p1, p2, p3, uv0, uv1, uv2, uv3, color, mat: int, label: int, param: float = 0.0) -> None:
        """Planar quad p0-p1-p2-p3 (counter-clockwise seen from the front)."""
        p = np.array([p0, p1, p2, p0, p2, p3], np.float64)
        n = np.cross(p[1] - p[0], p[2] - p[0])
        ln = np.linalg.norm(n)
        n = n / ln if ln > 0 else np.array([0.0, 0.0, 1.0])
        uv = np.array([uv0, uv1, uv2, uv0, uv2, uv3], np.float64)
        self.triangles(p, np.broadcast_to(n, (6, 3)), uv, color, mat, label, param)

    def rect(self, x0: float, y0: float, x1: float, y1: float, z: float, color, mat: int, label: int,
             param: float = 0.0) -> None:
        """Horizontal rectangle facing up; uv = world x, y (textures stay continuous across tiles)."""
        self.quad((x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z),
                  (x0, y0), (x1, y0), (x1, y1), (x0, y1), color, mat, label, param)

    def oriented_rect(self, cx: float, cy: float, length: float, width: float, yaw: float, z: float, color,
                      mat: int, label: int, param: float = 0.0) -> None:
        """Horizontal rectangle centred at (cx, cy), long side along yaw; uv in local metres."""
        r = _rot_z(yaw)[:2, :2]
        hl, hw = length / 2, width / 2
        loc = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
        w = loc @ r.T + (cx, cy)
        pts = [(w[i, 0], w[i, 1], z) for i in range(4)]
        uvs = [(loc[i, 0] + hl, loc[i, 1] + hw) for i in range(4)]
        self.quad(*pts, *uvs, color, mat, label, param)

    # -- solids --------------------------------------------------------------------------------
    def box(self, cx: float, cy: float, z0: float, length: float, width: float, height: float, yaw: float,
            color, mat: int, label: int, param: float = 0.0, top_mat: int | None = None, top_color=None,
            bottom: bool = False, pitch: float = 0.0) -> None:
        """Box standing on z0, centred at (cx, cy), length along the yaw direction.

        Side faces get uv = (metres along the face, metres above z0) so facades tile windows by
        floor; the top gets local metres. `pitch` tilts the box about its local y axis.
        """
        hl, hw = length / 2, width / 2
        corners = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
        rot = _rot_z(yaw)
        if pitch:
            cp, sp = math.cos(pitch), math.sin(pitch)
            rot = rot @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        off = np.array([cx, cy, z0])

        def w(p):
            return np.asarray(p, np.float64) @ rot.T + off

        lengths = [length, width, length, width]
        for i in range(4):
            a, b = corners[i], corners[(i + 1) % 4]
            L = lengths[i]
            self.quad(w((a[0], a[1], 0)), w((b[0], b[1], 0)), w((b[0], b[1], height)), w((a[0], a[1], height)),
                      (0, 0), (L, 0), (L, height), (0, height), color, mat, label, param + i * 0.137)
        tm = mat if top_mat is None else top_mat
        tc = color if top_color is None else top_color
        c = corners
        self.quad(w((c[0, 0], c[0, 1], height)), w((c[1, 0], c[1, 1], height)), w((c[2, 0], c[2, 1], height)),
                  w((c[3, 0], c[3, 1], height)), (0, 0), (length, 0), (length, width), (0, width), tc, tm, label,
                  param)
        if bottom:
            self.quad(w((c[3, 0], c[3, 1], 0)), w((c[2, 0], c[2, 1], 0)), w((c[1, 0], c[1, 1], 0)),
                      w((c[0, 0], c[0, 1], 0)), (0, 0), (length, 0), (length, width), (0, width), color, mat,
                      label, param)

    def cylinder(self, cx: float, cy: float, z0: float, radius: float, height: float, color, mat: int,
                 label: int, sides: int = 8, param: float = 0.0, radius_top: float | None = None,
                 cap: bool = True, axis: str = "z", yaw: float = 0.0) -> None:
        """Upright (axis z) or horizontal (axis x, along yaw) cylinder / truncated cone."""
        rt = radius if radius_top is None else radius_top
        ang = np.linspace(0, 2 * math.pi, sides + 1)
        ca, sa = np.cos(ang), np.sin(ang)
        bot = np.stack([radius * ca, radius * sa, np.zeros_like(ca)], 1)
        top = np.stack([rt * ca, rt * sa, np.full_like(ca, height)], 1)
        nrm = np.stack([ca, sa, np.full_like(ca, (radius - rt) / max(height, 1e-6))], 1)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        i = np.arange(sides)
        tri_idx = np.stack([i, i + 1, i + 1, i, i + 1, i], 1)  # which column
        tri_top = np.array([0, 0, 1, 0, 1, 1], bool)
        pos = np.where(tri_top[None, :, None], top[tri_idx], bot[tri_idx]).reshape(-1, 3)
        nn = nrm[tri_idx].reshape(-1, 3)
        uv = np.stack([ang[tri_idx] * radius, np.where(tri_top, height, 0.0)[None, :].repeat(sides, 0)], 2).reshape(-1, 2)
        if cap:
            ct = np.array([0.0, 0.0, height])
            capp = np.stack([np.broadcast_to(ct, (sides, 3)), top[i], top[i + 1]], 1).reshape(-1, 3)
            pos = np.concatenate([pos, capp])
            nn = np.concatenate([nn, np.broadcast_to([0.0, 0.0, 1.0], (sides * 3, 3))])
            uv = np.concatenate([uv, capp[:, :2]])
        if axis == "x":
            pos = pos[:, [2, 1, 0]] * np.array([1.0, 1.0, -1.0]) + np.array([-height / 2, 0.0, 0.0])
            nn = nn[:, [2, 1, 0]] * np.array([1.0, 1.0, -1.0])
        rot = _rot_z(yaw)
        pos = pos @ rot.T + (cx, cy, z0)
        nn = nn @ rot.T
        self.triangles(pos, nn, uv, color, mat, label, param)

    def ring(self, cx: float, cz: float, radius: float, width: float, color, mat: int, label: int,
             segments: int = 8) -> None:
        """Flat annulus in the local x-z plane at y=0 (bicycle wheels): 2 triangles per segment."""
        a = np.linspace(0, 2 * math.pi, segments + 1)
        ro, ri = radius, radius - width
        pts = []
        for k in range(segments):
            o0 = (cx + ro * math.cos(a[k]), 0.0, cz + ro * math.sin(a[k]))
            o1 = (cx + ro * math.cos(a[k + 1]), 0.0, cz + ro * math.sin(a[k + 1]))
            i0 = (cx + ri * math.cos(a[k]), 0.0, cz + ri * math.sin(a[k]))
            i1 = (cx + ri * math.cos(a[k + 1]), 0.0, cz + ri * math.sin(a[k + 1]))
            pts += [o0, o1, i1, o0, i1, i0]
        pos = np.array(pts)
        self.triangles(pos, np.broadcast_to([0.0, 1.0, 0.0], pos.shape), pos[:, [0, 2]], color, mat, label)

    def blob(self, cx: float, cy: float, cz: float, rx: float, ry: float, rz: float, color, mat: int, label: int,
             rng: np.random.Generator, param: float = 0.0, seg: int = 7, rings: int = 5, jitter: float = 0.18) -> None:
        """Irregular ellipsoid (tree crowns, bushes): a UV sphere with radial noise per vertex."""
        th = np.linspace(0, math.pi, rings + 1)
        ph = np.linspace(0, 2 * math.pi, seg + 1)
        T, P = np.meshgrid(th, ph, indexing="ij")
        d = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1)
        k = 1.0 + jitter * (rng.random(T.shape) * 2 - 1)
        k[:, -1] = k[:, 0]
        k[0, :] = k[0, 0]
        k[-1, :] = k[-1, 0]
        p = d * k[..., None] * np.array([rx, ry, rz]) + (cx, cy, cz)
        quads = []
        for a in range(rings):
            for b in range(seg):
                quads.append((p[a, b], p[a + 1, b], p[a + 1, b + 1], p[a, b + 1], d[a, b], d[a + 1, b],
                              d[a + 1, b + 1], d[a, b + 1]))
        pos = np.array([[q[0], q[1], q[2], q[0], q[2], q[3]] for q in quads]).reshape(-1, 3)
        nn = np.array([[q[4], q[5], q[6], q[4], q[6], q[7]] for q in quads]).reshape(-1, 3)
        uv = pos[:, :2] + pos[:, 2:3]
        self.triangles(pos, nn, uv, color, mat, label, param)
