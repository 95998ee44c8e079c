"""Procedural town: a road grid with lanes, intersections, tram avenue, blocks and street furniture.

The town is generated from a seed into chunks (one per intersection cell) so the renderer can cull
what the camera cannot see. The same `Town` object answers the traffic model's questions (lane
centre lines, stop lines, sidewalk loops, tram track), so agents move on the geometry that is
drawn. Geometry is labelled at construction, one trainId per triangle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sqgan_core.labels import class_id
from sim import models
from sim.meshes import (M_ASPHALT, M_BARK, M_CONCRETE, M_DIRT, M_FACADE, M_FOLIAGE, M_GLASS, M_GRASS, M_HEADLIGHT,
                        M_LAMP, M_MARKING, M_METAL, M_PAINT, M_PAVING, M_RAIL, M_SIGN, M_WOOD, Mesh, MeshBuilder)

LANE_W = 3.5
PARK_W = 2.4
CURB_H = 0.15
TL_CYCLE = 24.0  # traffic-light cycle, s: green 9 s, yellow 3 s, red 12 s; cross axis shifted 12 s
TL_GREEN, TL_YELLOW = 9.0, 12.0
DETAIL_DISTANCE = 130.0  # markings, poles, signs and parked bikes beyond this are a pixel or less

L_ROAD, L_SIDEWALK, L_BUILDING, L_WALL, L_FENCE, L_POLE = (class_id(n) for n in (
    "road", "sidewalk", "building", "wall", "fence", "pole"))
L_TLIGHT, L_TSIGN, L_VEG, L_TERRAIN = (class_id(n) for n in ("traffic light", "traffic sign", "vegetation", "terrain"))

FACADE_COLORS = np.array([
    (0.78, 0.72, 0.62), (0.85, 0.83, 0.78), (0.55, 0.53, 0.50), (0.55, 0.27, 0.20), (0.72, 0.55, 0.32),
    (0.50, 0.55, 0.60), (0.65, 0.45, 0.38), (0.40, 0.40, 0.42), (0.88, 0.80, 0.62), (0.60, 0.62, 0.55),
    (0.30, 0.32, 0.36), (0.75, 0.68, 0.70),
])


def light_state(t: float, offset: float, axis: str) -> str:
    """Traffic-light state for travel along `axis` ('x' or 'y') at an intersection.

    Mirrors `tl_state()` in the shader so drawn lamps and stopping agents agree.
    """
    phase = (t + offset + (TL_CYCLE / 2 if axis == "y" else 0.0)) % TL_CYCLE
    return "green" if phase < TL_GREEN else "yellow" if phase < TL_YELLOW else "red"


@dataclass
class Road:
    """A straight road across the whole grid: along x at y=pos (axis 'x') or along y at x=pos."""

    axis: str
    pos: float
    lanes: int
    median: float = 0.0
    parking: bool = False
    tram: bool = False

    @property
    def half_width(self) -> float:
        return self.median / 2 + self.lanes * LANE_W + (PARK_W if self.parking else 0.0)

    def lane_offset(self, k: int) -> float:
        """Distance of lane k (0 = innermost) centre from the road centre line."""
        return self.median / 2 + (k + 0.5) * LANE_W


@dataclass
class Chunk:
    key: tuple[int, int]
    mesh: Mesh
    center: np.ndarray
    radius: float
    max_distance: float = float("inf")  # small props are skipped beyond this (sub-pixel anyway)


@dataclass
class Town:
    seed: int
    xs: np.ndarray
    ys: np.ndarray
    vroads: list[Road]   # along y, at x = xs[i]
    hroads: list[Road]   # along x, at y = ys[j]
    sidewalk: np.ndarray  # (nx, ny) sidewalk width per block
    light_offset: np.ndarray  # (nx+1, ny+1) per intersection phase offset
    chunks: list[Chunk] = field(default_factory=list)
    block_kind: dict = field(default_factory=dict)

    @property
    def nx(self) -> int:
        return len(self.xs) - 1

    @property
    def ny(self) -> int:
        return len(self.ys) - 1

    def block_rect(self, i: int, j: int) -> tuple[float, float, float, float]:
        """Raised block (sidewalk kerb to kerb) of cell (i, j)."""
        return (self.xs[i] + self.vroads[i].half_width, self.ys[j] + self.hroads[j].half_width,
                self.xs[i + 1] - self.vroads[i + 1].half_width, self.ys[j + 1] - self.hroads[j + 1].half_width)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return (self.xs[0] - self.vroads[0].half_width, self.ys[0] - self.hroads[0].half_width,
                self.xs[-1] + self.vroads[-1].half_width, self.ys[-1] + self.hroads[-1].half_width)

    def tram_road(self) -> Road | None:
        for r in self.vroads + self.hroads:
            if r.tram:
                return r
        return None


def _layout(seed: int, bx: int, by: int) -> Town:
    rng = np.random.default_rng([seed, 11])

    def axis_positions(n: int) -> np.ndarray:
        sizes = rng.uniform(55, 95, n)
        return np.concatenate([[0.0], np.cumsum(sizes)]) - sizes.sum() / 2

    xs, ys = axis_positions(bx), axis_positions(by)

    def make_roads(axis: str, n: int) -> list[Road]:
        roads = []
        avenue = int(rng.integers(1, n)) if n >= 2 else 0
        for k in range(n + 1):
            if k == avenue:
                roads.append(Road(axis, 0.0, 2, median=7.0, parking=False, tram=(axis == "y")))
            else:
                lanes = 1 if rng.random() < 0.75 else 2
                roads.append(Road(axis, 0.0, lanes, parking=bool(rng.random() < 0.6)))
        return roads

    vroads, hroads = make_roads("y", bx), make_roads("x", by)
    for r, p in zip(vroads, xs):
        r.pos = float(p)
    for r, p in zip(hroads, ys):
        r.pos = float(p)
    # The tram runs along exactly one avenue (the vertical one); horizontal avenue has a planted median.
    sidewalk = rng.uniform(3.5, 5.5, (bx, by))
    offsets = rng.uniform(0, TL_CYCLE, (bx + 1, by + 1))
    return Town(seed, xs, ys, vroads, hroads, sidewalk, offsets)


class _Ctx:
    """Per-build state: the RNG and the chunk builders."""

    def __init__(self, town: Town, rng: np.random.Generator) -> None:
        self.town = town
        self.rng = rng
        self.mbs: dict[tuple[int, int], MeshBuilder] = {}
        self.details: dict[tuple[int, int], MeshBuilder] = {}
        self.parked: list[tuple[str, float, float, float]] = []

    def mb_at(self, x: float, y: float) -> MeshBuilder:
        """Builder of the 80 m outskirts tile holding (x, y), so far scenery is culled per tile."""
        return self.mb((1000 + int(math.floor(x / 80.0)), 1000 + int(math.floor(y / 80.0))))

    def detail(self, key: tuple[int, int]) -> MeshBuilder:
        """Builder for small props of a chunk (markings, poles, signs), drawn only up close."""
        if key not in self.details:
            self.details[key] = MeshBuilder()
        return self.details[key]

    def mb(self, key: tuple[int, int]) -> MeshBuilder:
        if key not in self.mbs:
            self.mbs[key] = MeshBuilder()
        return self.mbs[key]


# ---------------------------------------------------------------------------------------------
# roads
# ---------------------------------------------------------------------------------------------
def _marking_dashes(mb: MeshBuilder, x0: float, x1: float, y: float, along_x: bool, width: float,
                    dash: float, gap: float, yellow: bool = False) -> None:
    col = (0.75, 0.62, 0.2) if yellow else (0.85, 0.85, 0.82)
    s = x0
    while s < x1 - 0.5:
        e = min(s + dash, x1)
        if along_x:
            mb.rect(s, y - width / 2, e, y + width / 2, 0.035, col, M_MARKING, L_ROAD)
        else:
            mb.rect(y - width / 2, s, y + width / 2, e, 0.035, col, M_MARKING, L_ROAD)
        s = e + gap


def _road_segment(ctx: _Ctx, key, road: Road, a: float, b: float, cross_a: Road, cross_b: Road) -> None:
    """Asphalt, markings, crossings, stop lines and (tram avenue) tracks between two intersections."""
    base = ctx.mb(key)
    mb = ctx.detail(key)
    rng = ctx.rng
    hw = road.half_width
    s0, s1 = a + cross_a.half_width, b - cross_b.half_width
    if s1 <= s0:
        return
    along_x = road.axis == "x"
    c = road.pos
    wear = float(rng.random())

    def rect(u0, v0, u1, v1, z, col, mat, lab, prm=0.0):
        if along_x:
            mb.rect(u0, c + v0, u1, c + v1, z, col, mat, lab, prm)
        else:
            mb.rect(c + v0, u0, c + v1, u1, z, col, mat, lab, prm)

    if along_x:
        base.rect(s0, c - hw, s1, c + hw, 0.0, (0.22, 0.22, 0.23), M_ASPHALT, L_ROAD, wear)
    else:
        base.rect(c - hw, s0, c + hw, s1, 0.0, (0.22, 0.22, 0.23), M_ASPHALT, L_ROAD, wear)
    zs, ze = s0 + 4.5, s1 - 4.5  # zebra crossings occupy 4 m at both ends
    # edge lines
    for sgn in (1, -1):
        v = sgn * (road.lane_offset(road.lanes - 1) + LANE_W / 2 - 0.15)
        rect(zs, min(v, v + sgn * 0.15) - 0.0, ze, max(v, v + sgn * 0.15), 0.035, (0.8, 0.8, 0.78), M_MARKING, L_ROAD)
        for k in range(1, road.lanes):
            _marking_dashes(mb, zs, ze, c + sgn * (road.median / 2 + k * LANE_W), along_x, 0.14, 3.0, 6.0)
    if road.median > 0:
        if road.tram:
            if along_x:
                base.rect(s0, c - road.median / 2, s1, c + road.median / 2, 0.03, (0.30, 0.29, 0.28), M_ASPHALT, L_ROAD, wear)
            else:
                base.rect(c - road.median / 2, s0, c + road.median / 2, s1, 0.03, (0.30, 0.29, 0.28), M_ASPHALT, L_ROAD, wear)
            for tc in (-1.6, 1.6):
                for rail in (-0.72, 0.72):
                    rect(s0, tc + rail - 0.04, s1, tc + rail + 0.04, 0.06, (0.45, 0.43, 0.42), M_RAIL, L_ROAD)
            # overhead-line poles along the median
            n = int((s1 - s0) // 30)
            for k in range(n):
                u = s0 + 15 + 30 * k
                px, py = (u, c) if along_x else (c, u)
                mb.cylinder(px, py, 0.0, 0.14, 7.5, (0.35, 0.37, 0.36), M_METAL, L_POLE, sides=6, cap=False)
        else:
            # planted median: kerb, grass and trees
            lo, hi = -road.median / 2 + 0.5, road.median / 2 - 0.5
            if along_x:
                base.box((s0 + s1) / 2 + 0, c, 0.0, s1 - s0 - 6, road.median - 1.0, CURB_H + 0.02, 0,
                       (0.55, 0.55, 0.53), M_CONCRETE, L_SIDEWALK, top_mat=M_GRASS, top_color=(0.25, 0.35, 0.12))
            else:
                base.box(c, (s0 + s1) / 2, 0.0, s1 - s0 - 6, road.median - 1.0, CURB_H + 0.02, math.pi / 2,
                       (0.55, 0.55, 0.53), M_CONCRETE, L_SIDEWALK, top_mat=M_GRASS, top_color=(0.25, 0.35, 0.12))
            # the grass top is labelled terrain by a second slightly higher quad
            if along_x:
                base.rect(s0 + 3.05, c + lo + 0.05, s1 - 3.05, c + hi - 0.05, CURB_H + 0.05, (0.25, 0.35, 0.12), M_GRASS, L_TERRAIN)
            else:
                base.rect(c + lo + 0.05, s0 + 3.05, c + hi - 0.05, s1 - 3.05, CURB_H + 0.05, (0.25, 0.35, 0.12), M_GRASS, L_TERRAIN)
            n = int((s1 - s0 - 8) // 12)
            for k in range(n):
                u = s0 + 8 + 12 * k
                px, py = (u, c) if along_x else (c, u)
                _tree(base, rng, px, py, CURB_H)
    else:
        # centre line: dashed white, solid near intersections
        _marking_dashes(mb, zs + 8, ze - 8, c, along_x, 0.14, 3.0, 5.0)
        for u0, u1 in ((zs, zs + 8), (ze - 8, ze)):
            rect(u0, -0.07, u1, 0.07, 0.035, (0.85, 0.85, 0.82), M_MARKING, L_ROAD)
    # zebra crossings and stop lines at both ends
    for u_edge, sgn in ((s0, 1), (s1, -1)):
        lane_hw = road.lane_offset(road.lanes - 1) + LANE_W / 2
        v = -lane_hw + 0.4
        while v < lane_hw - 0.4:
            u0, u1 = sorted((u_edge + sgn * 0.6, u_edge + sgn * 4.0))
            rect(u0, v, u1, v + 0.5, 0.035, (0.86, 0.86, 0.84), M_MARKING, L_ROAD)
            v += 1.0
        # stop line on the inbound half (right-hand traffic)
        u0, u1 = sorted((u_edge + sgn * 4.4, u_edge + sgn * 4.8))
        inbound = (road.median / 2, lane_hw) if sgn == -1 else (-lane_hw, -road.median / 2)
        if along_x:
            rect(u0, inbound[0], u1, inbound[1], 0.035, (0.86, 0.86, 0.84), M_MARKING, L_ROAD)
        else:
            lo, hi = (-lane_hw, -road.median / 2) if sgn == -1 else (road.median / 2, lane_hw)
            rect(u0, lo, u1, hi, 0.035, (0.86, 0.86, 0.84), M_MARKING, L_ROAD)
    # parked vehicles along the kerb
    if road.parking:
        for sgn in (1, -1):
            u = s0 + 6.5
            v = sgn * (road.half_width - PARK_W / 2 - 0.1)
            while u < s1 - 8:
                gap = rng.uniform(0.8, 6.0)
                kind = str(rng.choice(["car", "car", "car", "car", "van", "truck", "moto"]))
                ln = {"car": 4.7, "van": 5.3, "truck": 8.5, "moto": 2.2}[kind]
                if u + ln > s1 - 8:
                    break
                if rng.random() < 0.8:
                    yaw = (0.0 if sgn < 0 else math.pi) if along_x else (math.pi / 2 if sgn > 0 else -math.pi / 2)
                    px, py = (u + ln / 2, c + v) if along_x else (c + v, u + ln / 2)
                    ctx.parked.append((kind, px, py, yaw, key))
                u += ln + gap


def _intersection(ctx: _Ctx, i: int, j: int) -> None:
    """Intersection square, traffic lights on all four approaches and a few signs."""
    t, rng = ctx.town, ctx.rng
    key = (i, j)
    mb = ctx.detail(key)
    vr, hr = t.vroads[i], t.hroads[j]
    x, y = t.xs[i], t.ys[j]
    ctx.mb(key).rect(x - vr.half_width, y - hr.half_width, x + vr.half_width, y + hr.half_width, 0.0,
                     (0.22, 0.22, 0.23), M_ASPHALT, L_ROAD, float(rng.random()))
    if vr.tram:
        for tc in (-1.6, 1.6):
            for rail in (-0.72, 0.72):
                mb.rect(x + tc + rail - 0.04, y - hr.half_width, x + tc + rail + 0.04, y + hr.half_width, 0.06,
                        (0.45, 0.43, 0.42), M_RAIL, L_ROAD)
    off = float(t.light_offset[i, j])
    # approach direction d (unit vector of travel), axis of travel, road travelled, crossing road
    for d, axis in (((1, 0), "x"), ((-1, 0), "x"), ((0, 1), "y"), ((0, -1), "y")):
        dx, dy = d
        road, cross = (hr, vr) if axis == "x" else (vr, hr)
        # near-right corner of the approach (right of travel = (dy, -dx))
        rx, ry = dy, -dx
        cx = x - dx * (cross.half_width + 1.2) + rx * (road.half_width + 1.0)
        cy = y - dy * (cross.half_width + 1.2) + ry * (road.half_width + 1.0)
        outside = (i == 0 and cx < x) or (i == t.nx and cx > x) or (j == 0 and cy < y) or (j == t.ny and cy > y)
        if outside and rng.random() < 0.5:
            continue
        face = math.atan2(-dy, -dx)  # lamps face oncoming traffic
        _traffic_light(mb, cx, cy, face, off, axis, arm=road.lane_offset(road.lanes - 1) + road.half_width - 1.0,
                       rx=-rx, ry=-ry)
        if rng.random() < 0.55:
            sx = cx - dx * 6.0
            sy = cy - dy * 6.0
            _sign(mb, rng, sx, sy, face)


def _traffic_light(mb: MeshBuilder, x: float, y: float, face: float, offset: float, axis: str, arm: float,
                   rx: float, ry: float) -> None:
    """Pole with a mast arm over the lanes and two signal heads (pole head at 2.6 m, arm head high)."""
    pole_c = (0.32, 0.33, 0.33)
    mb.cylinder(x, y, 0.0, 0.1, 6.0, pole_c, M_METAL, L_POLE, sides=6, cap=False)
    arm_len = max(2.0, min(arm, 8.0) - 0.5)
    ax, ay = x + rx * arm_len / 2, y + ry * arm_len / 2
    mb.box(ax, ay, 5.6, arm_len, 0.14, 0.14, math.atan2(ry, rx), pole_c, M_METAL, L_POLE)
    cx, cy = math.cos(face), math.sin(face)
    grp = 0.0 if axis == "x" else 1.0
    for hx, hy, hz in ((x + cx * 0.25, y + cy * 0.25, 2.3), (x + rx * arm_len + cx * 0.0, y + ry * arm_len, 4.45)):
        mb.box(hx, hy, hz, 0.3, 0.36, 1.05, face, (0.12, 0.12, 0.11), M_PAINT, L_TLIGHT)
        for k, dz in enumerate((0.85, 0.52, 0.19)):
            # lamp quad on the front face; colour encodes (lamp index, phase offset, axis group)
            px, py = hx + cx * 0.155, hy + cy * 0.155
            sx, sy = -cy * 0.12, cx * 0.12
            z0, z1 = hz + dz - 0.12, hz + dz + 0.12
            mb.quad((px - sx, py - sy, z0), (px + sx, py + sy, z0), (px + sx, py + sy, z1), (px - sx, py - sy, z1),
                    (-1, -1), (1, -1), (1, 1), (-1, 1), (float(k), offset, grp), M_LAMP, L_TLIGHT)


SIGN_KINDS = (("limit", (0.9, 0.9, 0.88)), ("noentry", (0.7, 0.05, 0.05)), ("mandatory", (0.05, 0.2, 0.6)),
              ("stop", (0.7, 0.05, 0.05)), ("info", (0.05, 0.25, 0.55)), ("yield", (0.9, 0.9, 0.88)))


def _sign(mb: MeshBuilder, rng: np.random.Generator, x: float, y: float, face: float) -> None:
    """Sign pole (pole) with one or two plates (traffic sign) facing traffic."""
    mb.cylinder(x, y, 0.0, 0.045, 2.9, (0.55, 0.56, 0.56), M_METAL, L_POLE, sides=5, cap=False)
    n = 1 if rng.random() < 0.7 else 2
    for k in range(n):
        idx = int(rng.integers(len(SIGN_KINDS)))
        kind, col = SIGN_KINDS[idx]
        z = 2.45 - k * 0.8
        fx, fy = math.cos(face) * 0.06, math.sin(face) * 0.06
        if kind == "info":
            mb.box(x + fx, y + fy, z - 0.3, 0.04, 0.9, 0.6, face, col, M_SIGN, L_TSIGN, param=float(idx))
        else:
            sides = {"stop": 8, "yield": 3}.get(kind, 14)
            mb.cylinder(x + fx, y + fy, z, 0.35, 0.035, col, M_SIGN, L_TSIGN, sides=sides, param=float(idx),
                        axis="x", yaw=face)


def _tree(mb: MeshBuilder, rng: np.random.Generator, x: float, y: float, z0: float, scale: float = 1.0) -> None:
    h = rng.uniform(2.5, 4.0) * scale
    mb.cylinder(x, y, z0, 0.16 * scale, h + 0.5, (0.25, 0.18, 0.12), M_BARK, L_VEG, sides=5, radius_top=0.1 * scale,
                cap=False)
    tone = rng.uniform(0.7, 1.2)
    green = np.array([0.18, 0.30, 0.08]) * tone
    r = rng.uniform(1.6, 2.6) * scale
    mb.blob(x, y, z0 + h + r * 0.75, r, r, r * rng.uniform(0.9, 1.3), green, M_FOLIAGE, L_VEG, rng,
            float(rng.random()), seg=5, rings=3)
    if rng.random() < 0.6:
        r2 = r * 0.7
        mb.blob(x + rng.uniform(-0.8, 0.8), y + rng.uniform(-0.8, 0.8), z0 + h + r * 1.4, r2, r2, r2, green * 1.1,
                M_FOLIAGE, L_VEG, rng, float(rng.random()), seg=5, rings=3)


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------
def _block(ctx: _Ctx, i: int, j: int) -> None:
    t, rng = ctx.town, ctx.rng
    key = (i, j)
    mb = ctx.mb(key)
    x0, y0, x1, y1 = t.block_rect(i, j)
    sw = float(t.sidewalk[i, j])
    # raised slab: the top is sidewalk, the kerb faces are sidewalk too
    mb.box((x0 + x1) / 2, (y0 + y1) / 2, 0.0, x1 - x0, y1 - y0, CURB_H, 0, (0.55, 0.54, 0.52), M_CONCRETE,
           L_SIDEWALK, top_mat=M_PAVING, top_color=(0.58, 0.56, 0.53))
    centre_dist = math.hypot((x0 + x1) / 2, (y0 + y1) / 2) / max(abs(t.xs[0]), abs(t.ys[0]), 1.0)
    r = rng.random()
    kind = "park" if r < 0.16 else "mixed" if r < 0.34 else "urban"
    t.block_kind[key] = kind
    ix0, iy0, ix1, iy1 = x0 + sw, y0 + sw, x1 - sw, y1 - sw
    z = CURB_H
    # street furniture on the sidewalk ring: lamps and trees
    for (ax, ay, bx, by, nx_, ny_) in ((x0, y0, x1, y0, 0, -1), (x1, y0, x1, y1, 1, 0), (x1, y1, x0, y1, 0, 1),
                                       (x0, y1, x0, y0, -1, 0)):
        length = math.hypot(bx - ax, by - ay)
        ux, uy = (bx - ax) / length, (by - ay) / length
        trees = rng.random() < 0.55
        s = 9.0 + rng.uniform(0, 6)
        while s < length - 9:
            px, py = ax + ux * s - nx_ * 0.7, ay + uy * s - ny_ * 0.7
            if trees and int(s) % 2 == 0:
                _tree(mb, rng, px - nx_ * 0.3, py - ny_ * 0.3, z)
                mb.rect(px - nx_ * 0.3 - 0.7, py - ny_ * 0.3 - 0.7, px - nx_ * 0.3 + 0.7, py - ny_ * 0.3 + 0.7, z + 0.04,
                        (0.25, 0.2, 0.15), M_DIRT, L_TERRAIN)
            else:
                _street_lamp(ctx.detail(key), px, py, z, math.atan2(ny_, nx_))
            if rng.random() < 0.12:
                # bollards / bins (pole)
                ctx.detail(key).cylinder(px + ux * 2, py + uy * 2, z, 0.08, 0.9, (0.3, 0.3, 0.3), M_METAL, L_POLE,
                                         sides=6)
            if rng.random() < 0.06:
                # parked bicycles on the sidewalk
                ctx.parked.append(("bike", px + ux * 3 - nx_ * 0.5, py + uy * 3 - ny_ * 0.5,
                                   math.atan2(ny_, nx_) + math.pi / 2, key))
            s += rng.uniform(14, 22) if not trees else rng.uniform(11, 15)
    if kind == "park":
        _park(ctx, mb, ix0, iy0, ix1, iy1, z)
        return
    # buildings along the four sides; corners belong to the south / north rows
    depth_s = rng.uniform(12, 20)
    depth_n = rng.uniform(12, 20)
    tall = 1.0 + 1.5 * max(0.0, 1.0 - centre_dist)
    _row(ctx, mb, ix0, iy0, ix1, iy0, depth_s, z, kind, tall)
    _row(ctx, mb, ix1, iy1, ix0, iy1, depth_n, z, kind, tall)
    _row(ctx, mb, ix1, iy0 + depth_s, ix1, iy1 - depth_n, rng.uniform(12, 20), z, kind, tall)
    _row(ctx, mb, ix0, iy1 - depth_n, ix0, iy0 + depth_s, rng.uniform(12, 20), z, kind, tall)
    # courtyard: terrain, visible through gaps
    mb.rect(ix0 + 10, iy0 + 10, ix1 - 10, iy1 - 10, z + 0.04, (0.3, 0.36, 0.15), M_GRASS, L_TERRAIN)


def _street_lamp(mb: MeshBuilder, x: float, y: float, z: float, toward: float) -> None:
    """Street lamp: pole, arm and luminaire, all `pole` as in Cityscapes."""
    col = (0.3, 0.31, 0.31)
    mb.cylinder(x, y, z, 0.09, 7.5, col, M_METAL, L_POLE, sides=6, radius_top=0.06, cap=False)
    ax, ay = math.cos(toward), math.sin(toward)
    mb.box(x + ax * 0.8, y + ay * 0.8, z + 7.3, 1.6, 0.08, 0.08, toward, col, M_METAL, L_POLE)
    mb.box(x + ax * 1.5, y + ay * 1.5, z + 7.1, 0.6, 0.25, 0.2, toward, (0.85, 0.8, 0.6), M_HEADLIGHT, L_POLE)


def _row(ctx: _Ctx, mb: MeshBuilder, ax: float, ay: float, bx: float, by: float, depth: float,
         z: float, kind: str, tall: float) -> None:
    """Lots along the segment a->b with buildings set back `depth` to the left of travel."""
    rng = ctx.rng
    length = math.hypot(bx - ax, by - ay)
    if length < 4:
        return
    ux, uy = (bx - ax) / length, (by - ay) / length
    lx, ly = -uy, ux  # inward normal
    yaw = math.atan2(uy, ux)
    s = 0.0
    while s < length - 3:
        w = min(rng.uniform(9, 28), length - s)
        if length - s - w < 6:
            w = length - s
        r = rng.random()
        cx, cy = ax + ux * (s + w / 2), ay + uy * (s + w / 2)
        if kind == "mixed" and r < 0.35:
            # gap lot: wall or fence along the sidewalk, grass or trees behind
            barrier = "wall" if rng.random() < 0.5 else "fence"
            if barrier == "wall":
                h = rng.uniform(1.2, 2.6)
                col = FACADE_COLORS[rng.integers(len(FACADE_COLORS))] * 0.8
                mb.box(cx + lx * 0.2, cy + ly * 0.2, z, w, 0.3, h, yaw, col, M_CONCRETE, L_WALL, float(rng.random()))
            else:
                _fence(mb, rng, cx + lx * 0.2, cy + ly * 0.2, z, w, yaw)
            mb.oriented_rect(cx + lx * depth / 2, cy + ly * depth / 2, w, depth - 0.6, yaw, z + 0.04,
                             (0.28, 0.36, 0.14), M_GRASS, L_TERRAIN)
            if rng.random() < 0.7:
                _tree(mb, rng, cx + lx * depth * 0.6, cy + ly * depth * 0.6, z, scale=rng.uniform(1.0, 1.5))
            if rng.random() < 0.5:
                # hedge behind the fence
                mb.box(cx + lx * 1.2, cy + ly * 1.2, z, w * 0.8, 0.9, rng.uniform(1.0, 1.8), yaw, (0.14, 0.24, 0.07),
                       M_FOLIAGE, L_VEG, float(rng.random()))
        else:
            floors = int(rng.integers(2, 7) * tall) + (rng.integers(0, 6) if rng.random() < 0.2 else 0)
            h = 1.2 + floors * rng.uniform(3.0, 3.5)
            col = FACADE_COLORS[rng.integers(len(FACADE_COLORS))] * rng.uniform(0.85, 1.1)
            style = float(rng.random())
            mat = M_FACADE
            d = depth * rng.uniform(0.8, 1.0)
            mb.box(cx + lx * d / 2, cy + ly * d / 2, z, w, d, h, yaw, col, mat, L_BUILDING, style,
                   top_mat=M_CONCRETE, top_color=(0.35, 0.34, 0.33))
            # cornice / roof ledge and an occasional shop awning (building in Cityscapes)
            mb.box(cx + lx * d / 2, cy + ly * d / 2, z + h, w + 0.3, d + 0.3, 0.35, yaw, col * 0.8, M_CONCRETE,
                   L_BUILDING)
            if rng.random() < 0.4:
                ac = models.CLOTH_COLORS[rng.integers(10)]
                mb.box(cx - lx * 0.6, cy - ly * 0.6, z + 2.6, w * 0.8, 1.3, 0.12, yaw, ac, M_WOOD, L_BUILDING,
                       pitch=0.0)
        s += w


def _fence(mb: MeshBuilder, rng: np.random.Generator, cx: float, cy: float, z: float, w: float, yaw: float) -> None:
    """Fence (fence label): posts and a panel textured as planks or metal bars."""
    h = rng.uniform(1.0, 1.8)
    col = (0.45, 0.33, 0.22) if rng.random() < 0.5 else (0.25, 0.27, 0.26)
    mb.box(cx, cy, z, w, 0.06, h, yaw, col, M_WOOD, L_FENCE, float(rng.random()))
    ux, uy = math.cos(yaw), math.sin(yaw)
    n = max(2, int(w / 4.0))
    for k in range(n + 1):
        s = -w / 2 + w * k / n
        mb.box(cx + ux * s, cy + uy * s, z, 0.1, 0.1, h + 0.1, yaw, np.array(col) * 0.7, M_WOOD, L_FENCE)


def _park(ctx: _Ctx, mb: MeshBuilder, x0: float, y0: float, x1: float, y1: float, z: float) -> None:
    rng = ctx.rng
    mb.rect(x0, y0, x1, y1, z + 0.04, (0.27, 0.38, 0.13), M_GRASS, L_TERRAIN, float(rng.random()))
    # fence around the park, with a gap, and a hedge on one side
    for (ax, ay, bx, by) in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        L = math.hypot(bx - ax, by - ay)
        yaw = math.atan2(by - ay, bx - ax)
        r = rng.random()
        if r < 0.5:
            _fence(mb, rng, (ax + bx) / 2, (ay + by) / 2, z, L - 4, yaw)
        elif r < 0.8:
            mb.box((ax + bx) / 2, (ay + by) / 2, z, L - 4, 1.0, rng.uniform(1.0, 1.6), yaw, (0.14, 0.25, 0.07),
                   M_FOLIAGE, L_VEG, float(rng.random()))
    n = int((x1 - x0) * (y1 - y0) / 140)
    for _ in range(n):
        _tree(mb, rng, rng.uniform(x0 + 3, x1 - 3), rng.uniform(y0 + 3, y1 - 3), z, scale=rng.uniform(1.0, 1.8))
    for _ in range(n // 3):
        bx, by = rng.uniform(x0 + 3, x1 - 3), rng.uniform(y0 + 3, y1 - 3)
        mb.blob(bx, by, z + 0.4, rng.uniform(0.8, 1.5), rng.uniform(0.8, 1.5), 0.7, (0.15, 0.26, 0.07), M_FOLIAGE,
                L_VEG, rng, float(rng.random()))
    # a path through the park (sidewalk)
    mb.rect((x0 + x1) / 2 - 1.2, y0, (x0 + x1) / 2 + 1.2, y1, z + 0.08, (0.6, 0.56, 0.5), M_PAVING, L_SIDEWALK)


def _outskirts(ctx: _Ctx) -> None:
    """Countryside around the grid: outer sidewalks, walls, fields, tree lines and hills."""
    t, rng = ctx.town, ctx.rng
    ex0, ey0, ex1, ey1 = t.extent
    R = 700.0
    sw = 4.0
    key = (-1, -1)
    mb = ctx.mb(key)
    # outer sidewalk ring (raised), then terrain
    for (a, b, c_, d) in ((ex0 - sw, ey0 - sw, ex1 + sw, ey0), (ex0 - sw, ey1, ex1 + sw, ey1 + sw),
                          (ex0 - sw, ey0, ex0, ey1), (ex1, ey0, ex1 + sw, ey1)):
        mb.box((a + c_) / 2, (b + d) / 2, 0.0, c_ - a, d - b, CURB_H, 0, (0.55, 0.54, 0.52), M_CONCRETE, L_SIDEWALK,
               top_mat=M_PAVING, top_color=(0.58, 0.56, 0.53))
    g0, g1, g2, g3 = ex0 - sw, ey0 - sw, ex1 + sw, ey1 + sw
    for (a, b, c_, d) in ((-R, -R, R, g1), (-R, g3, R, R), (-R, g1, g0, g3), (g2, g1, R, g3)):
        mb.rect(a, b, c_, d, 0.0, (0.32, 0.38, 0.16), M_GRASS, L_TERRAIN, float(rng.random()))
    # outer walls / fences along the ring, tree lines and a few distant buildings
    for side in range(4):
        if side < 2:
            yline = g1 - 1.0 if side == 0 else g3 + 1.0
            xs_ = np.arange(g0, g2, 20.0)
            for x in xs_:
                r = rng.random()
                m = ctx.mb_at(x + 10, yline)
                if r < 0.35:
                    m.box(x + 10, yline, 0.0, 20, 0.35, rng.uniform(1.5, 3.0), 0, (0.6, 0.58, 0.55), M_CONCRETE, L_WALL,
                          float(rng.random()))
                elif r < 0.6:
                    _fence(m, rng, x + 10, yline, 0.0, 19.5, 0.0)
                elif r < 0.85:
                    _tree(m, rng, x + 10, yline + (-5 if side == 0 else 5), 0.0, scale=rng.uniform(1.2, 2.0))
            for x in np.arange(-R + 20, R, 70.0):
                yy = (g1 - rng.uniform(40, 160)) if side == 0 else (g3 + rng.uniform(40, 160))
                xx = x + rng.uniform(-15, 15)
                _tree(ctx.mb_at(xx, yy), rng, xx, yy, 0.0, scale=rng.uniform(2.0, 3.5))
        else:
            xline = g0 - 1.0 if side == 2 else g2 + 1.0
            for y in np.arange(g1, g3, 20.0):
                r = rng.random()
                m = ctx.mb_at(xline, y + 10)
                if r < 0.35:
                    m.box(xline, y + 10, 0.0, 20, 0.35, rng.uniform(1.5, 3.0), math.pi / 2, (0.6, 0.58, 0.55),
                          M_CONCRETE, L_WALL, float(rng.random()))
                elif r < 0.6:
                    _fence(m, rng, xline, y + 10, 0.0, 19.5, math.pi / 2)
                elif r < 0.85:
                    _tree(m, rng, xline + (-5 if side == 2 else 5), y + 10, 0.0, scale=rng.uniform(1.2, 2.0))
            for y in np.arange(-R + 20, R, 70.0):
                xx = (g0 - rng.uniform(40, 160)) if side == 2 else (g2 + rng.uniform(40, 160))
                yy = y + rng.uniform(-15, 15)
                _tree(ctx.mb_at(xx, yy), rng, xx, yy, 0.0, scale=rng.uniform(2.0, 3.5))
    # distant hills (terrain) and forest (vegetation) break the horizon
    hills = ctx.mb((-3, -3))
    for k in range(14):
        a = 2 * math.pi * k / 14 + rng.uniform(-0.1, 0.1)
        d = rng.uniform(480, 620)
        hills.blob(math.cos(a) * d, math.sin(a) * d, -10.0, rng.uniform(90, 160), rng.uniform(90, 160),
                   rng.uniform(25, 60), (0.3, 0.36, 0.18), M_GRASS, L_TERRAIN, rng, float(rng.random()), seg=9, rings=4,
                   jitter=0.1)
        if rng.random() < 0.6:
            hills.blob(math.cos(a + 0.12) * (d - 60), math.sin(a + 0.12) * (d - 60), -2.0, rng.uniform(40, 80),
                       rng.uniform(40, 80), rng.uniform(12, 22), (0.12, 0.2, 0.06), M_FOLIAGE, L_VEG, rng,
                       float(rng.random()), seg=9, rings=4, jitter=0.25)


def _parked(ctx: _Ctx, budget: int) -> None:
    """Parked cars, vans, trucks, motorcycles and bicycles (static, but labelled as actors)."""
    rng = ctx.rng
    slots = ctx.parked
    order = rng.permutation(len(slots))[:budget]
    for idx in sorted(order.tolist()):
        kind, x, y, yaw, key = slots[idx]
        if kind in ("car", "van"):
            m = models.car(rng, "van" if kind == "van" else None)
        elif kind == "truck":
            m = models.truck(rng)
        elif kind == "moto":
            m = models.motorcycle(rng, with_rider=False)
        else:
            m = models.bicycle(rng, with_rider=False)
        # parked actors are drawn with the small props (within DETAIL_DISTANCE): hundreds of them
        # line the kerbs and beyond ~130 m they are a few pixels behind moving traffic
        ctx.detail(key).extend(models.transform_mesh(m.merged(), x, y, yaw))


def build_town(seed: int, blocks_x: int = 6, blocks_y: int = 6, parked: int = 120) -> Town:
    """Generate the town for `seed` (deterministic) with its render chunks."""
    town = _layout(seed, blocks_x, blocks_y)
    ctx = _Ctx(town, np.random.default_rng([seed, 23]))
    for i in range(town.nx + 1):
        for j in range(town.ny + 1):
            _intersection(ctx, i, j)
            if i < town.nx:
                _road_segment(ctx, (i, j), town.hroads[j], town.xs[i], town.xs[i + 1], town.vroads[i],
                              town.vroads[i + 1])
            if j < town.ny:
                _road_segment(ctx, (i, j), town.vroads[i], town.ys[j], town.ys[j + 1], town.hroads[j],
                              town.hroads[j + 1])
            if i < town.nx and j < town.ny:
                _block(ctx, i, j)
    _outskirts(ctx)
    _parked(ctx, parked)
    chunks = []
    for store, lod in ((ctx.mbs, float("inf")), (ctx.details, DETAIL_DISTANCE)):
        for key in sorted(store):
            mesh = store[key].build()
            if mesh.count == 0:
                continue
            c, r = mesh.bounds()
            chunks.append(Chunk(key, mesh, c, r, lod))
    town.chunks = chunks
    return town
