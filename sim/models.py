"""Low-poly actor models (vehicles, two-wheelers with riders, pedestrians, trams).

Models are built in a local frame (x forward, y left, z up, origin on the ground at the centre)
as lists of `(bone, Mesh)` parts: bone 0 moves with the actor, other bones (pedestrian legs and
arms) swing about a pivot, so walking people are animated without skinning. Every part carries
its Cityscapes trainId: a rider is `rider`, the bicycle under them `bicycle`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sqgan_core.labels import class_id
from sim.meshes import (M_FABRIC, M_GLASS, M_HEADLIGHT, M_METAL, M_PAINT, M_RUBBER, M_SKIN, M_TAILLIGHT, Mesh,
                        MeshBuilder)

L_PERSON, L_RIDER, L_CAR, L_TRUCK = class_id("person"), class_id("rider"), class_id("car"), class_id("truck")
L_BUS, L_TRAIN, L_MOTO, L_BIKE = class_id("bus"), class_id("train"), class_id("motorcycle"), class_id("bicycle")

CAR_COLORS = np.array([
    (0.80, 0.80, 0.82), (0.05, 0.05, 0.06), (0.35, 0.36, 0.38), (0.55, 0.05, 0.04), (0.06, 0.12, 0.35),
    (0.70, 0.70, 0.68), (0.15, 0.25, 0.15), (0.75, 0.60, 0.20), (0.90, 0.90, 0.88), (0.25, 0.10, 0.08),
    (0.12, 0.30, 0.55), (0.45, 0.45, 0.40),
])
CLOTH_COLORS = np.array([
    (0.08, 0.08, 0.10), (0.15, 0.18, 0.30), (0.50, 0.10, 0.10), (0.60, 0.58, 0.55), (0.12, 0.25, 0.12),
    (0.35, 0.25, 0.18), (0.70, 0.55, 0.25), (0.20, 0.20, 0.22), (0.80, 0.80, 0.78), (0.10, 0.30, 0.45),
])
SKIN_COLORS = np.array([(0.85, 0.64, 0.52), (0.62, 0.42, 0.30), (0.40, 0.26, 0.18), (0.92, 0.75, 0.62)])


@dataclass
class Model:
    """A rigged model: parts with bone ids, pivots (local, per bone) and the footprint size."""

    parts: list[tuple[int, Mesh]]
    length: float
    width: float
    pivots: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    def merged(self) -> Mesh:
        mb = MeshBuilder()
        for _, m in self.parts:
            mb.extend(m)
        return mb.build()


def _wheel(mb: MeshBuilder, x: float, y: float, r: float, w: float, label: int) -> None:
    # the cap faces outward on both sides: the outer end of the cylinder is the capped one
    mb.cylinder(x, y, r, r, w, (0.03, 0.03, 0.03), M_RUBBER, label, sides=7, axis="x",
                yaw=math.pi / 2 if y > 0 else -math.pi / 2)


def car(rng: np.random.Generator, kind: str | None = None) -> Model:
    """Sedan, hatchback, SUV or van; paint colour drawn from a realistic distribution."""
    kind = kind or str(rng.choice(["sedan", "hatch", "suv", "van"], p=[0.4, 0.25, 0.25, 0.1]))
    dims = {"sedan": (4.6, 1.80, 1.45), "hatch": (4.0, 1.75, 1.50), "suv": (4.7, 1.90, 1.75),
            "van": (5.2, 2.0, 2.2)}[kind]
    L, W, H = dims[0] * rng.uniform(0.95, 1.05), dims[1], dims[2]
    paint = CAR_COLORS[rng.integers(len(CAR_COLORS))] * rng.uniform(0.85, 1.1)
    prm = float(rng.random())
    mb = MeshBuilder()
    clear = 0.18
    lower_h = H * 0.5 if kind != "van" else H * 0.45
    mb.box(0, 0, clear, L, W, lower_h - clear, 0, paint, M_PAINT, L_CAR, prm)
    if kind == "van":
        mb.box(-0.25, 0, lower_h, L - 0.9, W - 0.06, H - lower_h, 0, paint, M_PAINT, L_CAR, prm)
        mb.box(L / 2 - 0.75, 0, lower_h + 0.05, 0.6, W - 0.2, (H - lower_h) * 0.8, 0, (0.05, 0.06, 0.07), M_GLASS,
               L_CAR, prm, pitch=-0.35)
        mb.box(-0.25, 0, lower_h + 0.25, L - 1.3, W - 0.04, 0.5, 0, (0.05, 0.06, 0.07), M_GLASS, L_CAR, prm)
    else:
        cab_l = L * (0.5 if kind == "sedan" else 0.62)
        cab_x = -L * (0.05 if kind == "sedan" else 0.12)
        mb.box(cab_x, 0, lower_h, cab_l, W - 0.14, H - lower_h - 0.06, 0, (0.05, 0.06, 0.07), M_GLASS, L_CAR, prm)
        mb.box(cab_x, 0, H - 0.07, cab_l - 0.25, W - 0.18, 0.07, 0, paint, M_PAINT, L_CAR, prm)
        # windscreen slope: a tilted glass slab in front of the cabin
        mb.box(cab_x + cab_l / 2 + 0.25, 0, lower_h, 0.55, W - 0.2, 0.06, 0, (0.05, 0.06, 0.07), M_GLASS, L_CAR,
               prm, pitch=-0.6)
    for sx in (1, -1):
        for sy in (1, -1):
            _wheel(mb, sx * (L / 2 - 0.8), sy * (W / 2 - 0.12), 0.33, 0.24, L_CAR)
    for sy in (1, -1):
        mb.box(L / 2 - 0.02, sy * (W / 2 - 0.3), lower_h - 0.25, 0.06, 0.35, 0.12, 0, (1.0, 0.95, 0.85), M_HEADLIGHT, L_CAR)
        mb.box(-L / 2 + 0.02, sy * (W / 2 - 0.25), lower_h - 0.22, 0.06, 0.3, 0.12, 0, (0.7, 0.02, 0.02), M_TAILLIGHT, L_CAR)
    return Model([(0, mb.build())], L, W)


def truck(rng: np.random.Generator) -> Model:
    """Box truck: cab and cargo box."""
    L = rng.uniform(7.0, 10.0)
    W, H = 2.45, rng.uniform(3.2, 3.8)
    cab_c = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    box_c = np.array([0.85, 0.85, 0.83]) * rng.uniform(0.7, 1.05) if rng.random() < 0.7 else CAR_COLORS[rng.integers(12)]
    prm = float(rng.random())
    mb = MeshBuilder()
    cab_l = 2.2
    mb.box(L / 2 - cab_l / 2, 0, 0.5, cab_l, W, 1.3, 0, cab_c, M_PAINT, L_TRUCK, prm)
    mb.box(L / 2 - cab_l / 2 - 0.1, 0, 1.8, cab_l - 0.2, W - 0.05, 1.0, 0, (0.05, 0.06, 0.07), M_GLASS, L_TRUCK, prm)
    mb.box(L / 2 - cab_l / 2 - 0.2, 0, 2.8, cab_l - 0.4, W - 0.1, 0.15, 0, cab_c, M_PAINT, L_TRUCK, prm)
    mb.box(-cab_l / 2 - 0.15, 0, 0.9, L - cab_l - 0.3, W, H - 0.9, 0, box_c, M_PAINT, L_TRUCK, prm)
    mb.box(-cab_l / 2, 0, 0.5, L - cab_l, 0.9, 0.4, 0, (0.1, 0.1, 0.1), M_METAL, L_TRUCK)
    for x in (L / 2 - 1.2, -L / 2 + 1.5, -L / 2 + 2.8):
        for sy in (1, -1):
            _wheel(mb, x, sy * (W / 2 - 0.2), 0.5, 0.35, L_TRUCK)
    for sy in (1, -1):
        mb.box(L / 2 - 0.02, sy * (W / 2 - 0.3), 0.7, 0.06, 0.3, 0.15, 0, (1, 0.95, 0.85), M_HEADLIGHT, L_TRUCK)
    return Model([(0, mb.build())], L, W)


def bus(rng: np.random.Generator) -> Model:
    """City bus with a continuous window band."""
    L, W, H = rng.uniform(11.0, 12.5), 2.55, 3.1
    col = [(0.85, 0.75, 0.10), (0.70, 0.08, 0.08), (0.10, 0.35, 0.60), (0.85, 0.85, 0.85), (0.15, 0.45, 0.25)][rng.integers(5)]
    prm = float(rng.random())
    mb = MeshBuilder()
    mb.box(0, 0, 0.35, L, W, 1.0, 0, col, M_PAINT, L_BUS, prm)
    mb.box(0, 0, 1.35, L, W - 0.04, 1.25, 0, (0.05, 0.06, 0.07), M_GLASS, L_BUS, prm)
    mb.box(0, 0, 2.6, L, W, 0.5, 0, col, M_PAINT, L_BUS, prm)
    mb.box(-1.0, 0, 3.1, 3.0, 1.8, 0.3, 0, (0.6, 0.6, 0.6), M_METAL, L_BUS, prm)
    for x in (L / 2 - 2.4, -L / 2 + 3.0):
        for sy in (1, -1):
            _wheel(mb, x, sy * (W / 2 - 0.2), 0.5, 0.3, L_BUS)
    for sy in (1, -1):
        mb.box(L / 2 - 0.02, sy * (W / 2 - 0.3), 0.6, 0.06, 0.3, 0.15, 0, (1, 0.95, 0.85), M_HEADLIGHT, L_BUS)
    return Model([(0, mb.build())], L, W)


def tram(rng: np.random.Generator, segments: int = 3) -> Model:
    """Articulated low-floor tram (Cityscapes `train`), ~30 m, with a pantograph."""
    seg_l, W = 9.6, 2.4
    L = segments * seg_l + (segments - 1) * 0.4
    col = [(0.85, 0.85, 0.82), (0.75, 0.10, 0.10), (0.95, 0.75, 0.10), (0.15, 0.35, 0.55)][rng.integers(4)]
    prm = float(rng.random())
    mb = MeshBuilder()
    for k in range(segments):
        cx = -L / 2 + seg_l / 2 + k * (seg_l + 0.4)
        mb.box(cx, 0, 0.3, seg_l, W, 1.0, 0, col, M_PAINT, L_TRAIN, prm)
        mb.box(cx, 0, 1.3, seg_l, W - 0.04, 1.3, 0, (0.05, 0.06, 0.07), M_GLASS, L_TRAIN, prm)
        mb.box(cx, 0, 2.6, seg_l, W, 0.7, 0, col, M_PAINT, L_TRAIN, prm)
        if k < segments - 1:
            mb.box(cx + seg_l / 2 + 0.2, 0, 0.4, 0.6, W - 0.4, 2.7, 0, (0.1, 0.1, 0.1), M_RUBBER, L_TRAIN)
    mb.box(0, 0, 3.3, 1.6, 0.6, 0.6, 0, (0.25, 0.25, 0.25), M_METAL, L_TRAIN)
    mb.box(0, 0, 3.9, 0.08, 1.6, 0.5, 0, (0.2, 0.2, 0.2), M_METAL, L_TRAIN)
    for sx in (1, -1):
        mb.box(sx * (L / 2 - 0.02), 0, 0.8, 0.06, 1.6, 0.2, 0, (1, 0.95, 0.85), M_HEADLIGHT, L_TRAIN)
    return Model([(0, mb.build())], L, W)


def _person_parts(rng: np.random.Generator, label: int, seated: bool = False,
                  z0: float = 0.0) -> tuple[list[tuple[int, Mesh]], dict[int, tuple[float, float, float]]]:
    """Torso+head (bone 0), legs (1, 2), arms (3, 4); returns parts and the hip/shoulder pivots."""
    h = rng.uniform(1.55, 1.92)
    top = CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))]
    pants = CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))]
    skin = SKIN_COLORS[rng.integers(len(SKIN_COLORS))]
    prm = float(rng.random())
    hip = 0.48 * h
    sh = 0.81 * h
    body, legl, legr, arml, armr = MeshBuilder(), MeshBuilder(), MeshBuilder(), MeshBuilder(), MeshBuilder()
    body.box(0, 0, z0 + hip, 0.24, 0.38, sh - hip + 0.04, 0, top, M_FABRIC, label, prm)
    # head and hair as boxes: at street distances a person is a few dozen pixels tall
    body.box(0.0, 0, z0 + sh + 0.02, 0.2, 0.18, h - sh - 0.06, 0, skin, M_SKIN, label, prm)
    hair = (0.05, 0.04, 0.03) if rng.random() < 0.7 else (0.45, 0.35, 0.2)
    body.box(-0.02, 0, z0 + h - 0.06, 0.22, 0.2, 0.07, 0, hair, M_FABRIC, label, prm)
    if rng.random() < 0.3:  # backpack / bag
        body.box(-0.18, 0, z0 + hip + 0.2, 0.14, 0.3, 0.35, 0, CLOTH_COLORS[rng.integers(10)], M_FABRIC, label, prm)
    if seated:
        legl.box(0.2, 0.1, z0 + hip - 0.1, 0.5, 0.14, 0.14, 0, pants, M_FABRIC, label, prm)
        legr.box(0.2, -0.1, z0 + hip - 0.1, 0.5, 0.14, 0.14, 0, pants, M_FABRIC, label, prm)
        legl.box(0.42, 0.1, z0 + hip - 0.55, 0.13, 0.13, 0.48, 0, pants, M_FABRIC, label, prm)
        legr.box(0.42, -0.1, z0 + hip - 0.55, 0.13, 0.13, 0.48, 0, pants, M_FABRIC, label, prm)
    else:
        legl.box(0, 0.1, z0, 0.16, 0.15, hip, 0, pants, M_FABRIC, label, prm)
        legr.box(0, -0.1, z0, 0.16, 0.15, hip, 0, pants, M_FABRIC, label, prm)
    for mbarm, y in ((arml, 0.24), (armr, -0.24)):
        mbarm.box(0, y, z0 + sh - 0.66, 0.1, 0.1, 0.66, 0, top, M_FABRIC, label, prm)
    parts = [(0, body.build()), (1, legl.build()), (2, legr.build()), (3, arml.build()), (4, armr.build())]
    pivots = {1: (0.0, 0.0, z0 + hip), 2: (0.0, 0.0, z0 + hip), 3: (0.0, 0.0, z0 + sh), 4: (0.0, 0.0, z0 + sh)}
    return parts, pivots


def pedestrian(rng: np.random.Generator) -> Model:
    parts, pivots = _person_parts(rng, L_PERSON)
    return Model(parts, 0.4, 0.6, pivots)


def bicycle(rng: np.random.Generator, with_rider: bool = True) -> Model:
    """Bicycle (label bicycle) with wheels as octagonal rings; the rider is labelled rider."""
    mb = MeshBuilder()
    frame = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    r = 0.34
    for x in (0.55, -0.55):
        mb.ring(x, r, r, 0.05, (0.03, 0.03, 0.03), M_RUBBER, L_BIKE, segments=10)
    for (x0, z0, x1, z1) in ((-0.55, r, 0.0, r), (0.0, r, 0.45, 0.85), (-0.55, r, -0.1, 0.8), (0.0, r, -0.1, 0.8),
                             (-0.1, 0.8, 0.45, 0.85), (0.45, 0.85, 0.55, r), (0.45, 0.85, 0.4, 1.05)):
        dx, dz = x1 - x0, z1 - z0
        ln = math.hypot(dx, dz)
        mb.box((x0 + x1) / 2, 0, (z0 + z1) / 2 - 0.02, ln + 0.02, 0.04, 0.04, 0, frame, M_PAINT, L_BIKE,
               pitch=-math.atan2(dz, dx))
    mb.box(0.4, 0, 1.03, 0.06, 0.55, 0.04, 0, (0.1, 0.1, 0.1), M_METAL, L_BIKE)
    mb.box(-0.12, 0, 0.82, 0.24, 0.12, 0.05, 0, (0.05, 0.05, 0.05), M_FABRIC, L_BIKE)
    parts = [(0, mb.build())]
    pivots: dict[int, tuple[float, float, float]] = {}
    if with_rider:
        rp, pivots = _person_parts(rng, L_RIDER, seated=True, z0=0.0)
        shifted = []
        for bone, m in rp:
            v = m.vertices.copy()
            v[:, 0] -= 0.15
            v[:, 2] += 0.42
            shifted.append((bone, Mesh(v)))
        parts += shifted
        pivots = {b: (p[0] - 0.15, p[1], p[2] + 0.42) for b, p in pivots.items()}
    return Model(parts, 1.8, 0.6, pivots)


def motorcycle(rng: np.random.Generator, with_rider: bool = True) -> Model:
    """Motorcycle (label motorcycle) with a rider (label rider)."""
    mb = MeshBuilder()
    col = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    for x in (0.72, -0.72):
        _wheel(mb, x, 0.0, 0.32, 0.14, L_MOTO)
    mb.box(0.05, 0, 0.35, 1.2, 0.34, 0.4, 0, (0.15, 0.15, 0.16), M_METAL, L_MOTO)
    mb.box(0.25, 0, 0.72, 0.6, 0.36, 0.25, 0, col, M_PAINT, L_MOTO)
    mb.box(-0.4, 0, 0.72, 0.7, 0.3, 0.12, 0, (0.05, 0.05, 0.05), M_FABRIC, L_MOTO)
    mb.box(0.65, 0, 0.6, 0.12, 0.1, 0.5, 0, (0.3, 0.3, 0.3), M_METAL, L_MOTO, pitch=0.4)
    mb.box(0.72, 0, 1.05, 0.06, 0.7, 0.05, 0, (0.1, 0.1, 0.1), M_METAL, L_MOTO)
    mb.box(0.82, 0, 0.85, 0.1, 0.22, 0.16, 0, (1, 0.95, 0.85), M_HEADLIGHT, L_MOTO)
    parts = [(0, mb.build())]
    pivots: dict[int, tuple[float, float, float]] = {}
    if with_rider:
        rp, pivots = _person_parts(rng, L_RIDER, seated=True)
        for bone, m in rp:
            v = m.vertices.copy()
            v[:, 0] -= 0.3
            v[:, 2] += 0.32
            parts.append((bone, Mesh(v)))
        pivots = {b: (p[0] - 0.3, p[1], p[2] + 0.32) for b, p in pivots.items()}
    return Model(parts, 2.1, 0.8, pivots)


def transform_mesh(mesh: Mesh, x: float, y: float, yaw: float, z: float = 0.0) -> Mesh:
    """Place a local-frame mesh in the world (used for parked, never-moving actors)."""
    v = mesh.vertices.copy()
    c, s = math.cos(yaw), math.sin(yaw)
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)
    v[:, 0:3] = v[:, 0:3] @ r.T + np.array([x, y, z], np.float32)
    v[:, 3:6] = v[:, 3:6] @ r.T
    return Mesh(v)
