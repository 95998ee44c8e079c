"""Agents of the embedded simulator: lane-following vehicles (ego included), cyclists,
motorcyclists, pedestrians and trams, on the town's road grid, ticked at 0.05 s.

Vehicles follow lane centre lines built from the town geometry, turn through intersections on
smooth curves, keep a time gap to the vehicle ahead and stop at red lights (the ego optionally).
Everything draws from seeded generators, so a seed reproduces the same traffic.

Closed loop (issue 16): `brake` is the ego's brake command (EmbeddedSimulator.set_brake). While it
is set the ego's desired speed is 0 and its deceleration is bounded by `ego_max_decel`; released, it
accelerates back to its set speed at the common 2.5 m/s^2. Without a command the ego follows traffic
like every vehicle (acceleration clamped to [-7, 2.5] m/s^2), so open-loop scenarios are unchanged.
Scripted hazards (sim/hazards.py) add their actors here and may force traffic lights (`light()`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim import models
from sim.meshes import VERTEX_FLOATS
from sim.town import LANE_W, Road, Town, light_state

GREEN_WAVE_AHEAD = 250.0  # m: with a green wave the lights on the ego's next 250 m of path are green

NodeT = tuple[int, int]
FAR_LOD = 220.0  # metres from the ego beyond which agents are integrated at 5 Hz
DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


class LanePath:
    """A growing polyline (0.5 m samples) with arc length, heading and stop-line events."""

    STEP = 0.5

    def __init__(self, town: Town, start: NodeT, nxt: NodeT, lane: int, rng: np.random.Generator,
                 route: list[str] | str = "random", lateral: float = 0.0) -> None:
        self.town, self.rng, self.lane, self.lateral = town, rng, lane, lateral
        self.route = route
        self.route_i = 0
        self.pts = np.zeros((0, 2))
        self.s = np.zeros(0)
        self.events: list[tuple[float, NodeT, str]] = []  # (s of stop line, node, travel axis)
        self.prev, self.node = start, nxt
        self._add_segment(start, nxt, first=True)

    # geometry of one lane between two intersections
    def _road(self, a: NodeT, b: NodeT) -> tuple[Road, str]:
        if a[1] == b[1]:
            return self.town.hroads[a[1]], "x"
        return self.town.vroads[a[0]], "y"

    def _cross(self, n: NodeT, axis: str) -> Road:
        return self.town.vroads[n[0]] if axis == "x" else self.town.hroads[n[1]]

    def _lane_ends(self, a: NodeT, b: NodeT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        road, axis = self._road(a, b)
        pa = np.array([self.town.xs[a[0]], self.town.ys[a[1]]])
        pb = np.array([self.town.xs[b[0]], self.town.ys[b[1]]])
        d = (pb - pa) / np.linalg.norm(pb - pa)
        right = np.array([d[1], -d[0]])
        k = min(self.lane, road.lanes - 1)
        off = road.lane_offset(k) + self.lateral
        start = pa + d * (self._cross(a, axis).half_width + 0.5) + right * off
        end = pb - d * (self._cross(b, axis).half_width + 0.5) + right * off
        return start, end, d

    def _append(self, pts: np.ndarray) -> None:
        if len(self.pts):
            pts = pts[1:] if np.allclose(pts[0], self.pts[-1]) else pts
            seg = np.linalg.norm(np.diff(np.vstack([self.pts[-1:], pts]), axis=0), axis=1)
            s = self.s[-1] + np.cumsum(seg)
        else:
            seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            s = np.concatenate([[0.0], np.cumsum(seg)])
        self.pts = np.vstack([self.pts, pts])
        self.s = np.concatenate([self.s, s])

    def _add_segment(self, a: NodeT, b: NodeT, first: bool = False) -> None:
        start, end, d = self._lane_ends(a, b)
        n = max(2, int(np.linalg.norm(end - start) / self.STEP))
        line = start + (end - start) * np.linspace(0, 1, n)[:, None]
        if not first and len(self.pts):
            # curve from the previous lane end through the intersection
            p0 = self.pts[-1]
            d0 = self.pts[-1] - self.pts[-2]
            d0 /= np.linalg.norm(d0)
            if abs(d0 @ d) > 0.99:
                curve = p0 + (start - p0) * np.linspace(0, 1, max(2, int(np.linalg.norm(start - p0) / self.STEP)))[:, None]
            else:
                ctrl = p0 + d0 * ((start - p0) @ d0)
                t = np.linspace(0, 1, 24)[:, None]
                curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t ** 2 * start
            self._append(curve)
        self._append(line)
        road, axis = self._road(a, b)
        self.events.append((float(self.s[-1]) - 4.2, b, axis))

    def _choose_next(self) -> NodeT:
        a, b = self.prev, self.node
        d = (b[0] - a[0], b[1] - a[1])
        options = {"straight": d, "left": (-d[1], d[0]), "right": (d[1], -d[0])}
        valid = {k: (b[0] + v[0], b[1] + v[1]) for k, v in options.items()
                 if 0 <= b[0] + v[0] <= self.town.nx and 0 <= b[1] + v[1] <= self.town.ny}
        if isinstance(self.route, list):
            want = self.route[self.route_i % len(self.route)]
            self.route_i += 1
            order = [want, "right", "left", "straight"]
        elif self.route == "loop":
            want = ("straight", "straight", "right")[self.route_i % 3]
            self.route_i += 1
            order = [want, "right", "left", "straight"]
        else:
            r = self.rng.random()
            order = (["straight", "left", "right"] if r < 0.5 else ["left", "right", "straight"] if r < 0.75
                     else ["right", "left", "straight"])
        for k in order:
            if k in valid:
                return valid[k]
        return a  # dead end (cannot happen on a grid with >= 2 blocks)

    def ensure(self, s: float, ahead: float = 80.0) -> None:
        """Extend the path so it reaches at least `ahead` metres past `s`."""
        while self.s[-1] < s + ahead:
            nxt = self._choose_next()
            self.prev, self.node = self.node, nxt
            self._add_segment(self.prev, self.node)
        # forget samples far behind to bound memory
        if len(self.s) > 4000 and self.s[1000] < s - 50:
            self.pts, self.s = self.pts[1000:], self.s[1000:]
            self.events = [e for e in self.events if e[0] > s - 50]

    def at(self, s: float) -> tuple[float, float, float]:
        """Position and heading (radians) at arc length s."""
        i = int(self.s.searchsorted(s)) - 1
        i = 0 if i < 0 else (len(self.s) - 2 if i > len(self.s) - 2 else i)
        s0, s1 = float(self.s[i]), float(self.s[i + 1])
        t = 0.0 if s1 <= s0 else (s - s0) / (s1 - s0)
        (x0, y0), (x1, y1) = self.pts[i].tolist(), self.pts[i + 1].tolist()
        return x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, math.atan2(y1 - y0, x1 - x0)

    def next_stop(self, s: float) -> tuple[float, NodeT, str] | None:
        for e in self.events:
            if e[0] > s - 1.0:
                return e
        return None


@dataclass
class Actor:
    kind: str
    model: models.Model
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    target_speed: float = 10.0
    s: float = 0.0
    path: LanePath | None = None
    obey_lights: bool = True
    phase: float = 0.0           # walk cycle
    loop: np.ndarray | None = None  # pedestrian rectangle (4, 2)
    loop_len: float = 0.0
    direction: float = 1.0
    rng: np.random.Generator | None = None
    lod_dt: float = 0.05          # time step applied this tick (0 for far agents between updates)
    lod_phase: int = 0
    scripted: bool = False        # moved by a scripted hazard (sim/hazards.py), not by the traffic model


class Traffic:
    """All moving agents; `step()` advances 0.05 s, `vertices()` returns the posed actor meshes."""

    def __init__(self, town: Town, seed: int, counts: dict[str, int], ego_speed: float, ego_route,
                 ego_obeys_lights: bool, hazards=(), ego_max_decel: float = 6.0, green_wave: bool = False) -> None:
        self.town = town
        self.rng = np.random.default_rng([seed, 31])
        self.time = 0.0
        self.tick = 0
        self.actors: list[Actor] = []
        mrng = np.random.default_rng([seed, 37])
        # ego starts on the tram avenue heading along it, so trams and busy traffic show early
        tram_i = next((i for i, r in enumerate(town.vroads) if r.tram), 1)
        j0 = int(self.rng.integers(0, max(1, town.ny - 1)))
        ego_path = LanePath(town, (tram_i, j0), (tram_i, j0 + 1), 0, np.random.default_rng([seed, 41]), ego_route)
        self.ego = Actor("ego", models.car(mrng, "sedan"), target_speed=ego_speed, path=ego_path,
                         obey_lights=ego_obeys_lights, s=6.0, speed=ego_speed)
        self.actors.append(self.ego)
        occupied: list[tuple[float, float]] = [(0.0, 0.0)]
        kinds = (["car"] * counts["vehicles"] + ["moto"] * counts["motorcycles"] + ["bike"] * counts["cyclists"])
        self.rng.shuffle(kinds)
        for kind in kinds:
            self._spawn_vehicle(kind, mrng)
        for _ in range(counts["pedestrians"]):
            self._spawn_pedestrian(mrng)
        for k in range(counts["trams"]):
            self._spawn_tram(mrng, k)
        # closed loop: brake command, forced lights and scripted hazards (appended last, so the
        # actors above and their vertex pool are those of the same scenario without hazards)
        self.brake = False
        self.ego_max_decel = float(ego_max_decel)
        self.green_wave = bool(green_wave)
        self.light_overrides: dict[NodeT, tuple[str, str]] = {}
        self.hazards: list = []
        if hazards:
            from sim.hazards import make_hazard

            for k, h in enumerate(hazards):
                hz = make_hazard(h, self, seed, k)
                self.hazards.append(hz)
                if hz.actor is not None:
                    self.actors.append(hz.actor)
        self._update_lights()
        for k, a in enumerate(self.actors):
            a.lod_phase = k % 4
        self._update_poses()
        self._build_pool()

    # -- spawning --------------------------------------------------------------------------------
    def _random_edge(self, near: NodeT | None = None) -> tuple[NodeT, NodeT]:
        t = self.town
        while True:
            if near is not None:
                a = (int(np.clip(near[0] + self.rng.integers(-2, 3), 0, t.nx)),
                     int(np.clip(near[1] + self.rng.integers(-1, 4), 0, t.ny)))
            else:
                a = (int(self.rng.integers(0, t.nx + 1)), int(self.rng.integers(0, t.ny + 1)))
            d = DIRS[int(self.rng.integers(4))]
            b = (a[0] + d[0], a[1] + d[1])
            if 0 <= b[0] <= t.nx and 0 <= b[1] <= t.ny:
                return a, b

    def _spawn_vehicle(self, kind: str, mrng: np.random.Generator) -> None:
        rng = self.rng
        if kind == "car":
            r = rng.random()
            kind = "bus" if r < 0.12 else "truck" if r < 0.22 else "car"
        model = {"car": lambda: models.car(mrng), "bus": lambda: models.bus(mrng), "truck": lambda: models.truck(mrng),
                 "moto": lambda: models.motorcycle(mrng), "bike": lambda: models.bicycle(mrng)}[kind]()
        speed = {"car": (8, 13), "bus": (7, 10), "truck": (7, 10), "moto": (9, 14), "bike": (4, 6.5)}[kind]
        near = self.ego.path.prev if rng.random() < 0.5 else None  # keep the ego's surroundings busy
        for _attempt in range(20):
            a, b = self._random_edge(near)
            road = self.town.hroads[a[1]] if a[1] == b[1] else self.town.vroads[a[0]]
            lane = int(rng.integers(0, road.lanes))
            lateral = 1.0 if kind == "bike" else 0.0
            if kind == "bike":
                lane = road.lanes - 1
            path = LanePath(self.town, a, b, lane, np.random.default_rng(rng.integers(2**31)), "random", lateral)
            s = float(rng.uniform(2.0, max(3.0, path.s[-1] - 10.0)))
            x, y, _ = path.at(s)
            if all((x - ox) ** 2 + (y - oy) ** 2 > 9.0 ** 2 for ox, oy in self._occupied()):
                v = float(rng.uniform(*speed))
                self.actors.append(Actor(kind, model, s=s, path=path, target_speed=v, speed=v * 0.5, x=x, y=y))
                return

    def _occupied(self) -> list[tuple[float, float]]:
        out = []
        for a in self.actors:
            if a.path is not None:
                x, y, _ = a.path.at(a.s)
                out.append((x, y))
        return out

    def _spawn_pedestrian(self, mrng: np.random.Generator) -> None:
        t, rng = self.town, self.rng
        if rng.random() < 0.5:  # crowd the blocks along the ego's first streets
            e = self.ego.path.prev
            i = int(np.clip(e[0] - 1 + rng.integers(0, 2), 0, t.nx - 1))
            j = int(np.clip(e[1] + rng.integers(-1, 3), 0, t.ny - 1))
        else:
            i, j = int(rng.integers(0, t.nx)), int(rng.integers(0, t.ny))
        x0, y0, x1, y1 = t.block_rect(i, j)
        sw = float(t.sidewalk[i, j])
        inset = float(rng.uniform(0.8, max(0.9, sw - 0.8)))
        loop = np.array([[x0 + inset, y0 + inset], [x1 - inset, y0 + inset], [x1 - inset, y1 - inset],
                         [x0 + inset, y1 - inset]])
        per = 2 * ((x1 - x0 - 2 * inset) + (y1 - y0 - 2 * inset))
        standing = rng.random() < 0.15
        a = Actor("person", models.pedestrian(mrng), loop=loop, loop_len=per, s=float(rng.uniform(0, per)),
                  target_speed=0.0 if standing else float(rng.uniform(1.0, 1.7)), direction=float(rng.choice([-1, 1])),
                  phase=float(rng.uniform(0, 6.28)))
        a.speed = a.target_speed
        self.actors.append(a)

    def _spawn_tram(self, mrng: np.random.Generator, k: int) -> None:
        road = self.town.tram_road()
        if road is None:
            return
        a = Actor("tram", models.tram(mrng), target_speed=8.0, speed=8.0)
        ys = self.town.ys
        a.loop = np.array([ys[0] - 40.0, ys[-1] + 40.0])
        span = a.loop[1] - a.loop[0]
        a.loop_len = 2 * span
        a.s = (k * span * 2 / max(1, self.town.ny) + self.rng.uniform(0, span)) % (2 * span)
        self.actors.append(a)

    # -- traffic lights ----------------------------------------------------------------------------
    def light(self, node: NodeT, axis: str) -> str:
        """State of the light at intersection `node` for travel along `axis`: the cycle of
        sim.town.light_state, unless forced (green wave, red_light hazard): the forced axis shows the
        forced state and the cross axis green for a forced red, red otherwise (the renderer draws the
        same, see Renderer.render(forced_lights=...))."""
        forced = self.light_overrides.get(node)
        if forced is not None:
            f_axis, state = forced
            return state if axis == f_axis else ("green" if state == "red" else "red")
        return light_state(self.time, float(self.town.light_offset[node]), axis)

    def _update_lights(self) -> None:
        overrides: dict[NodeT, tuple[str, str]] = {}
        if self.green_wave:
            e = self.ego
            e.path.ensure(e.s, ahead=GREEN_WAVE_AHEAD)
            for s_stop, node, axis in e.path.events:
                if -40.0 < s_stop - e.s < GREEN_WAVE_AHEAD:
                    overrides[node] = (axis, "green")
        for hz in self.hazards:
            hz.lights(self, overrides)
        self.light_overrides = overrides

    def forced_lights(self) -> list[tuple[float, str, str]]:
        """(phase offset, axis, state) of the forced intersections, nearest to the ego first, for the renderer."""
        ex, ey = self.ego.x, self.ego.y
        t = self.town
        items = sorted(self.light_overrides.items(),
                       key=lambda kv: (t.xs[kv[0][0]] - ex) ** 2 + (t.ys[kv[0][1]] - ey) ** 2)
        return [(float(t.light_offset[node]), axis, state) for node, (axis, state) in items]

    # -- dynamics --------------------------------------------------------------------------------
    def _leader_gaps(self, lane_actors: list[Actor]) -> np.ndarray:
        """Bumper gap to the nearest vehicle or tram ahead in the same direction (inf if none), vectorised.

        Pedestrians stay on sidewalks and are not obstacles for lane traffic."""
        obstacles = lane_actors + [a for a in self.actors if a.kind == "tram"]
        st = np.array([[a.x, a.y, a.yaw, a.model.length] for a in obstacles])
        pos, lengths = st[:, :2], st[:, 3]
        heads = np.stack([np.cos(st[:, 2]), np.sin(st[:, 2])], 1)
        m = len(lane_actors)
        rel = pos[None, :, :] - pos[:m, None, :]                           # (m, n, 2)
        h = heads[:m]
        along = np.einsum("mnk,mk->mn", rel, h)
        lat = np.abs(rel[..., 0] * h[:, 1:2] - rel[..., 1] * h[:, 0:1])
        align = h @ heads.T                                                  # (m, n)
        mask = (along > 0.1) & (along < 45.0) & (lat < 1.8) & (align > 0.3)
        mask[np.arange(m), np.arange(m)] = False
        gap = np.where(mask, along - (lengths[None, :] + lengths[:m, None]) / 2, np.inf)
        return gap.min(axis=1)

    def step(self, dt: float) -> None:
        """Advance all agents by dt. Agents far from the ego (beyond FAR_LOD m) are integrated every
        4th tick with 4*dt: they are too far to be seen moving, and this keeps the frame budget."""
        self.time += dt
        self.tick += 1
        ego = self.ego
        ex, ey = self.ego.x, self.ego.y
        for a in self.actors:
            far = (a.x - ex) ** 2 + (a.y - ey) ** 2 > FAR_LOD ** 2 and a is not self.ego
            a.lod_dt = (4 * dt if (self.tick + a.lod_phase) % 4 == 0 else 0.0) if far else dt
        lane_actors = [a for a in self.actors if a.path is not None]
        gaps = self._leader_gaps(lane_actors)
        for a, gap in zip(lane_actors, gaps):
            dt_a = a.lod_dt
            if dt_a == 0.0:
                continue
            v_des = a.target_speed
            if gap < math.inf:
                v_des = min(v_des, max(0.0, (gap - 2.5) / 1.1))
            if a.obey_lights:
                ev = a.path.next_stop(a.s)
                if ev is not None:
                    s_stop, node, axis = ev
                    d = s_stop - a.s - a.model.length / 2
                    state = self.light(node, axis)
                    if state != "green" and d > -0.5:
                        brake_ok = d > a.speed ** 2 / (2 * 4.0) - 1.0
                        if state == "red" or brake_ok:
                            v_des = min(v_des, max(0.0, d - 0.5) / 1.2)
            acc_lo = -7.0
            if a is ego and self.brake:  # closed loop: brake to a stop at the emergency limit
                v_des, acc_lo = 0.0, -self.ego_max_decel
            acc = min(max((v_des - a.speed) / dt_a, acc_lo), 2.5)
            a.speed = max(0.0, a.speed + acc * dt_a)
            a.s += a.speed * dt_a
            a.path.ensure(a.s)
        for a in self.actors:
            if a.kind == "person" and a.loop is not None:
                a.s = (a.s + a.direction * a.speed * a.lod_dt) % a.loop_len
                a.phase += a.speed * a.lod_dt * 3.2
            elif a.kind == "tram":
                a.s = (a.s + a.speed * dt) % a.loop_len
        for hz in self.hazards:
            hz.update(self, dt)
        if self.green_wave or self.hazards:
            self._update_lights()
        if self.tick % 20 == 0:
            self._recycle()
        self._update_poses()

    RECYCLE_FAR = {"person": 200.0, "vehicle": 300.0}   # agents farther than this from the ego move
    RECYCLE_HIDDEN = {"person": 100.0, "vehicle": 150.0}  # ... to a place at least this far (unseen)

    def _recycle(self) -> None:
        """Keep the ego's surroundings populated: once a second, agents left far behind are moved
        to blocks and lanes around the ego's next intersections, always beyond the distance at
        which they are drawn, so nothing pops in or out of view. Deterministic (seeded RNG)."""
        t, rng = self.town, self.rng
        ex, ey = self.ego.x, self.ego.y
        node = self.ego.path.node
        for a in self.actors:
            if a is self.ego or a.kind == "tram" or a.scripted:
                continue
            person = a.kind == "person"
            key = "person" if person else "vehicle"
            if (a.x - ex) ** 2 + (a.y - ey) ** 2 < self.RECYCLE_FAR[key] ** 2:
                continue
            for _attempt in range(6):
                if person:
                    i = int(np.clip(node[0] + rng.integers(-2, 2), 0, t.nx - 1))
                    j = int(np.clip(node[1] + rng.integers(-2, 2), 0, t.ny - 1))
                    x0, y0, x1, y1 = t.block_rect(i, j)
                    inset = float(rng.uniform(0.8, max(0.9, float(t.sidewalk[i, j]) - 0.8)))
                    loop = np.array([[x0 + inset, y0 + inset], [x1 - inset, y0 + inset], [x1 - inset, y1 - inset],
                                     [x0 + inset, y1 - inset]])
                    per = 2 * ((x1 - x0 - 2 * inset) + (y1 - y0 - 2 * inset))
                    s_new = float(rng.uniform(0, per))
                    px, py, _ = _on_rect(loop, s_new, a.direction)
                    if (px - ex) ** 2 + (py - ey) ** 2 > self.RECYCLE_HIDDEN[key] ** 2:
                        a.loop, a.loop_len, a.s = loop, per, s_new
                        a.x, a.y = px, py
                        break
                else:
                    a0, b0 = self._random_edge(node)
                    road = t.hroads[a0[1]] if a0[1] == b0[1] else t.vroads[a0[0]]
                    lane = road.lanes - 1 if a.kind == "bike" else int(rng.integers(0, road.lanes))
                    path = LanePath(t, a0, b0, lane, np.random.default_rng(rng.integers(2**31)), "random",
                                    1.0 if a.kind == "bike" else 0.0)
                    s_new = float(rng.uniform(2.0, max(3.0, path.s[-1] - 10.0)))
                    px, py, yaw = path.at(s_new)
                    clear = all((px - o.x) ** 2 + (py - o.y) ** 2 > 81.0 for o in self.actors
                                if o.path is not None and o is not a)
                    if clear and (px - ex) ** 2 + (py - ey) ** 2 > self.RECYCLE_HIDDEN[key] ** 2:
                        a.path, a.s, a.speed = path, s_new, a.target_speed * 0.5
                        a.x, a.y, a.yaw = px, py, yaw
                        break

    def _update_poses(self) -> None:
        road = self.town.tram_road()
        peds = [a for a in self.actors if a.kind == "person" and not a.scripted]
        if peds:
            xs, ys, yaws = _on_rects(np.array([a.loop for a in peds]), np.array([a.s for a in peds]),
                                     np.array([a.direction for a in peds]))
            for a, x, y, yaw in zip(peds, xs.tolist(), ys.tolist(), yaws.tolist()):
                a.x, a.y, a.yaw = x, y, yaw
        for a in self.actors:
            if a.path is not None:
                if a.lod_dt or a is self.ego:
                    a.x, a.y, a.yaw = a.path.at(a.s)
            elif a.kind == "tram" and road is not None:
                span = a.loop[1] - a.loop[0]
                if a.s < span:   # northbound on the east track
                    a.x, a.y, a.yaw = road.pos + 1.6, a.loop[0] + a.s, math.pi / 2
                else:
                    a.x, a.y, a.yaw = road.pos - 1.6, a.loop[1] - (a.s - span), -math.pi / 2

    # -- geometry ----------------------------------------------------------------------------------
    def _build_pool(self) -> None:
        """Concatenate every non-ego actor's parts once; per frame only poses and limb angles change."""
        verts, pivots, limb, actor_of_vertex = [], [], [], []
        for ai, a in enumerate(self.actors):
            if a.kind == "ego":
                continue
            for bone, mesh in a.model.parts:
                piv = a.model.pivots.get(bone, (0.0, 0.0, 0.0)) if bone else (0.0, 0.0, 0.0)
                verts.append(mesh.vertices)
                pivots.append(np.broadcast_to(np.asarray(piv, np.float32), (mesh.count, 3)))
                # limb code: 0 rigid, +-1 legs (swing in antiphase), +-2 arms
                code = {0: 0, 1: 1, 2: -1, 3: -2, 4: 2}.get(bone, 0)
                limb.append(np.full(mesh.count, code, np.int64))
                actor_of_vertex.append(np.full(mesh.count, ai, np.int64))
        if verts:
            self.local = np.concatenate(verts)
            self.vpivot = np.concatenate(pivots)
            self.vlimb = np.concatenate(limb)
            self.vactor = np.concatenate(actor_of_vertex)
        else:
            self.local = np.zeros((0, VERTEX_FLOATS), np.float32)
            self.vpivot = np.zeros((0, 3), np.float32)
            self.vlimb = self.vactor = np.zeros(0, np.int64)
        self.kind_code = np.array([{"person": 1, "bike": 2, "moto": 3}.get(a.kind, 0) for a in self.actors])

    def vertices(self, cam_x: float, cam_y: float, cam_yaw: float, radius: float = 140.0,
                 half_fov: float = math.radians(50.0)) -> np.ndarray:
        """World-space vertices of actors near and in front of the camera, posed for this tick."""
        if not len(self.local):
            return self.local
        st = np.array([[a.x, a.y, a.yaw, a.phase, a.speed, a.s, a.model.length] for a in self.actors])
        dx, dy = st[:, 0] - cam_x, st[:, 1] - cam_y
        fx, fy = math.cos(cam_yaw), math.sin(cam_yaw)
        dist = np.sqrt(dx * dx + dy * dy)
        ahead = dx * fx + dy * fy
        # inside the draw radius and the horizontal view cone, widened by the actor's size
        cone = ahead > dist * math.cos(half_fov) - st[:, 6]
        # people and two-wheelers are a few pixels tall beyond ~90 m: skip them there
        small = (self.kind_code == 1) | (self.kind_code == 2) | (self.kind_code == 3)
        visible = (dist < np.where(small, min(radius, 90.0), radius)) & cone
        # limb swing per actor: walkers by walk phase, riders pedal with distance travelled
        kc = self.kind_code
        swing = np.where(kc == 1, np.sin(st[:, 3]) * 0.45 * np.minimum(1.0, st[:, 4]),
                         np.where(kc == 2, np.sin(st[:, 5] * 2.0) * 0.5, 0.0))
        sel = np.nonzero(visible[self.vactor])[0]
        va = self.vactor[sel]
        limb = self.vlimb[sel]
        ang = np.where(limb == 0, 0.0, swing[va] * np.sign(limb) * np.where(np.abs(limb) == 2, 0.8, 1.0))
        ang = np.where((kc[va] == 3) | ((kc[va] == 2) & (np.abs(limb) == 2)), 0.0, ang)
        loc = self.local[sel]
        piv = self.vpivot[sel]
        ca, sa = np.cos(ang), np.sin(ang)
        q = loc[:, 0:3] - piv
        qx = q[:, 0] * ca + q[:, 2] * sa
        qz = -q[:, 0] * sa + q[:, 2] * ca
        px, py, pz = qx + piv[:, 0], q[:, 1] + piv[:, 1], qz + piv[:, 2]
        nx = loc[:, 3] * ca + loc[:, 5] * sa
        nz = -loc[:, 3] * sa + loc[:, 5] * ca
        ny = loc[:, 4]
        cy, sy = np.cos(st[va, 2]), np.sin(st[va, 2])
        out = loc.copy()
        out[:, 0] = cy * px - sy * py + st[va, 0]
        out[:, 1] = sy * px + cy * py + st[va, 1]
        out[:, 2] = pz
        out[:, 3] = cy * nx - sy * ny
        out[:, 4] = sy * nx + cy * ny
        out[:, 5] = nz
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actors:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out


def _on_rect(loop: np.ndarray, s: float, direction: float) -> tuple[float, float, float]:
    """Point at arc length s along a closed rectangle loop and the walking heading."""
    pts = np.vstack([loop, loop[:1]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    k = 0
    while s > seg[k] and k < 3:
        s -= seg[k]
        k += 1
    d = (pts[k + 1] - pts[k]) / max(seg[k], 1e-6)
    p = pts[k] + d * min(s, seg[k])
    yaw = math.atan2(d[1], d[0]) if direction > 0 else math.atan2(-d[1], -d[0])
    return float(p[0]), float(p[1]), yaw


def _on_rects(loops: np.ndarray, s: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised `_on_rect` for many walkers: loops (P, 4, 2), arc lengths (P,), directions (P,)."""
    nxt = np.roll(loops, -1, axis=1)
    seg = np.linalg.norm(nxt - loops, axis=2)                     # (P, 4)
    cum = np.cumsum(seg, axis=1)
    k = np.minimum((s[:, None] > cum).sum(axis=1), 3)
    start = np.where(k > 0, cum[np.arange(len(s)), np.maximum(k - 1, 0)], 0.0)
    r = np.arange(len(s))
    a, b = loops[r, k], nxt[r, k]
    L = np.maximum(seg[r, k], 1e-6)
    d = (b - a) / L[:, None]
    p = a + d * np.clip(s - start, 0, L)[:, None]
    yaw = np.where(direction > 0, np.arctan2(d[:, 1], d[:, 0]), np.arctan2(-d[:, 1], -d[:, 0]))
    return p[:, 0], p[:, 1], yaw
