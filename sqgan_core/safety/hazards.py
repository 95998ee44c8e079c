"""Hazards in the ego vehicle's path, detected at the RSU from what it reconstructs.

The RSU does not see the camera image: it sees s_hat (SQ-GAN's decoded semantic map, or a segmenter's
map for a classic codec) and x_hat (the decoded image). The detector works on those alone, so what it
finds is exactly what survived the codec and the link:

* `vulnerable_road_user`: person, rider or two-wheeler pixels inside the ego's drivable corridor, a
  trapezoid from the bonnet to the horizon (fractions of the image, `configs/safety/hazards.yaml`).
* `cut_in`: a vehicle covering a growing share of the near half of the corridor (entering it, as
  opposed to a car ahead holding its distance).
* `red_light`: traffic-light pixels where the ego's own lights appear, whose colour in x_hat is red
  (the semantic map says "traffic light", not which lamp is lit).

The segmenter on x_hat may be given as a second opinion; it can raise a finding's confidence, never
create one against an empty s_hat alone unless its own evidence passes the same thresholds. A finding
becomes a warning once seen in `hits` of the last `frames` frames (persistence against one-frame noise).
"""
from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sqgan_core.config import ConfigError, find_config, load_yaml
from sqgan_core.labels import CLASS_NAMES

HAZARD_TYPES = ("vulnerable_road_user", "cut_in", "red_light")
REFERENCE_PIXELS = 256 * 512  # pixel thresholds in the config are for this camera size


@dataclass(frozen=True)
class Corridor:
    bottom_y: float = 1.0
    top_y: float = 0.52
    bottom_half_width: float = 0.42
    top_half_width: float = 0.05
    center_x: float = 0.5

    def mask(self, h: int, w: int) -> np.ndarray:
        return _corridor_mask(self, h, w)


@lru_cache(maxsize=16)
def _corridor_mask(c: Corridor, h: int, w: int) -> np.ndarray:
    rows = (np.arange(h) + 0.5) / h
    cols = (np.arange(w) + 0.5) / w
    frac = np.clip((rows - c.top_y) / max(1e-6, c.bottom_y - c.top_y), 0.0, 1.0)
    half = c.top_half_width + frac * (c.bottom_half_width - c.top_half_width)
    inside_rows = (rows >= c.top_y) & (rows <= c.bottom_y)
    m = (np.abs(cols[None, :] - c.center_x) <= half[:, None]) & inside_rows[:, None]
    m.setflags(write=False)
    return m


@dataclass(frozen=True)
class HazardConfig:
    corridor: Corridor = Corridor()
    vru_classes: tuple[int, ...] = (11, 12, 17, 18)
    vru_min_pixels: float = 24.0
    vru_full_pixels: float = 120.0
    cut_in_classes: tuple[int, ...] = (13, 14, 15, 17, 18)
    cut_in_near_y: float = 0.70
    cut_in_min_share: float = 0.08
    cut_in_growth: float = 0.02
    light_region: tuple[float, float, float, float] = (0.25, 0.75, 0.0, 0.55)  # x0, x1, y0, y1
    light_min_pixels: float = 6.0
    light_red_share: float = 0.15
    hits: int = 1
    frames: int = 2
    second_opinion_weight: float = 0.5
    min_confidence: float = 0.3
    name: str = "default"

    @classmethod
    def load(cls, name_or_path: str | Path = "hazards") -> "HazardConfig":
        """`configs/safety/<name>.yaml` or a YAML path."""
        path = find_config("safety", name_or_path)
        try:
            data = load_yaml(path.read_text())
        except Exception as exc:  # noqa: BLE001 - any unreadable YAML is one clear error
            raise ConfigError(f"hazard config {path}: not valid YAML ({exc})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, d: Any, where: str = "<memory>") -> "HazardConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"hazard config {where}: a mapping expected")
        known = {"name", "corridor", "vulnerable", "cut_in", "red_light", "persistence", "second_opinion_weight",
                 "min_confidence"}
        bad = sorted(set(d) - known)
        if bad:
            raise ConfigError(f"hazard config {where}: unknown keys {bad} (known: {sorted(known)})")

        def section(key: str, fields: Sequence[str]) -> dict[str, Any]:
            s = d.get(key) or {}
            if not isinstance(s, dict):
                raise ConfigError(f"hazard config {where}: {key} must be a mapping")
            extra = sorted(set(s) - set(fields))
            if extra:
                raise ConfigError(f"hazard config {where}: {key}: unknown keys {extra} (known: {list(fields)})")
            return s

        def num(v: Any, what: str, lo: float, hi: float) -> float:
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"hazard config {where}: {what} must be a number, got {v!r}") from None
            if not (lo <= x <= hi) or not math.isfinite(x):
                raise ConfigError(f"hazard config {where}: {what} must be in [{lo}, {hi}], got {x}")
            return x

        def classes(v: Any, what: str) -> tuple[int, ...]:
            if not isinstance(v, list) or not v:
                raise ConfigError(f"hazard config {where}: {what} must be a list of class names")
            out = []
            for name in v:
                if name not in CLASS_NAMES:
                    raise ConfigError(f"hazard config {where}: {what}: unknown class {name!r}")
                out.append(CLASS_NAMES.index(name))
            return tuple(out)

        base = cls()
        c = section("corridor", ("bottom_y", "top_y", "bottom_half_width", "top_half_width", "center_x"))
        cor = Corridor(**{k: num(v, f"corridor.{k}", 0.0, 1.0) for k, v in c.items()})
        if cor.top_y >= cor.bottom_y:
            raise ConfigError(f"hazard config {where}: corridor.top_y must be above (smaller than) bottom_y")
        v = section("vulnerable", ("classes", "min_pixels", "full_pixels"))
        ci = section("cut_in", ("classes", "near_y", "min_share", "growth"))
        rl = section("red_light", ("region", "min_pixels", "red_share"))
        pe = section("persistence", ("hits", "frames"))
        region = base.light_region
        if "region" in rl:
            r = rl["region"]
            if not isinstance(r, dict) or set(r) != {"x0", "x1", "y0", "y1"}:
                raise ConfigError(f"hazard config {where}: red_light.region needs x0, x1, y0, y1")
            region = tuple(num(r[k], f"red_light.region.{k}", 0.0, 1.0) for k in ("x0", "x1", "y0", "y1"))
            if region[0] >= region[1] or region[2] >= region[3]:
                raise ConfigError(f"hazard config {where}: red_light.region is empty")
        hits = int(num(pe.get("hits", base.hits), "persistence.hits", 1, 100))
        frames = int(num(pe.get("frames", base.frames), "persistence.frames", 1, 100))
        if hits > frames:
            raise ConfigError(f"hazard config {where}: persistence.hits ({hits}) exceeds persistence.frames ({frames})")
        vmin = num(v.get("min_pixels", base.vru_min_pixels), "vulnerable.min_pixels", 1, 1e6)
        vfull = num(v.get("full_pixels", base.vru_full_pixels), "vulnerable.full_pixels", 1, 1e6)
        if vfull <= vmin:
            raise ConfigError(f"hazard config {where}: vulnerable.full_pixels must exceed min_pixels")
        return cls(
            corridor=cor,
            vru_classes=classes(v["classes"], "vulnerable.classes") if "classes" in v else base.vru_classes,
            vru_min_pixels=vmin, vru_full_pixels=vfull,
            cut_in_classes=classes(ci["classes"], "cut_in.classes") if "classes" in ci else base.cut_in_classes,
            cut_in_near_y=num(ci.get("near_y", base.cut_in_near_y), "cut_in.near_y", 0.0, 1.0),
            cut_in_min_share=num(ci.get("min_share", base.cut_in_min_share), "cut_in.min_share", 0.0, 1.0),
            cut_in_growth=num(ci.get("growth", base.cut_in_growth), "cut_in.growth", 0.0, 1.0),
            light_region=region,  # type: ignore[arg-type]
            light_min_pixels=num(rl.get("min_pixels", base.light_min_pixels), "red_light.min_pixels", 1, 1e6),
            light_red_share=num(rl.get("red_share", base.light_red_share), "red_light.red_share", 0.0, 1.0),
            hits=hits, frames=frames,
            second_opinion_weight=num(d.get("second_opinion_weight", base.second_opinion_weight),
                                      "second_opinion_weight", 0.0, 1.0),
            min_confidence=num(d.get("min_confidence", base.min_confidence), "min_confidence", 0.0, 1.0),
            name=str(d.get("name", "default")))


@dataclass
class HazardWarning:
    """What the RSU sends back to a vehicle: the hazard, how sure, where in the image (x0, y0, x1, y1
    pixels, exclusive end), and the camera stamp of the frame it was based on."""

    type: str
    confidence: float
    region: tuple[int, int, int, int]
    stamp: float
    vehicle_id: int = 0
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "HazardWarning":
        """From a back-channel message; anything malformed is a ValueError naming the field."""
        if not isinstance(d, dict):
            raise ValueError("hazard warning: a mapping expected")
        try:
            t = str(d["type"])
            if t not in HAZARD_TYPES:
                raise ValueError(f"hazard warning: unknown type {t!r}")
            region = tuple(int(v) for v in d["region"])
            if len(region) != 4:
                raise ValueError("hazard warning: region needs 4 numbers")
            conf = float(d["confidence"])
            if not 0.0 <= conf <= 1.0:
                raise ValueError(f"hazard warning: confidence {conf} outside [0, 1]")
            ev = d.get("evidence") or {}
            return cls(t, conf, region, float(d["stamp"]), int(d.get("vehicle_id", 0)),  # type: ignore[arg-type]
                       {str(k): float(v) for k, v in ev.items()} if isinstance(ev, dict) else {})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"hazard warning: missing or bad field ({exc})") from None


def verdict(vehicle_id: int, stamp: float, warnings: Sequence[HazardWarning]) -> dict[str, Any]:
    """The RSU's verdict on one frame: its camera stamp and the warnings (none = clear). Published per
    frame, so a lock-step simulator knows the frame was judged, and forwarded to the vehicle when it
    carries warnings."""
    return {"vehicle_id": int(vehicle_id), "stamp": float(stamp), "warnings": [w.to_dict() for w in warnings]}


def parse_verdict(d: Any, vehicle_id: int | None = None) -> tuple[int, float, list[HazardWarning]]:
    """(vehicle id, stamp, warnings) of a verdict from the network or a topic (a dict, or its JSON
    text); ValueError naming what is wrong with it, also when it is for another vehicle than
    `vehicle_id` (where given)."""
    if isinstance(d, (str, bytes)):
        try:
            d = json.loads(d)
        except ValueError as exc:
            raise ValueError(f"hazard verdict: not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError("hazard verdict: a JSON object expected")
    try:
        vid, stamp = int(d["vehicle_id"]), float(d["stamp"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"hazard verdict: missing or bad vehicle_id/stamp ({exc})") from None
    ws = d.get("warnings")
    if not isinstance(ws, list) or len(ws) > len(HAZARD_TYPES):
        raise ValueError(f"hazard verdict: warnings must be a list of at most {len(HAZARD_TYPES)}")
    if vehicle_id is not None and vid != vehicle_id:
        raise ValueError(f"hazard verdict: for vehicle {vid}, not vehicle {vehicle_id}")
    return vid, stamp, [HazardWarning.from_dict(w) for w in ws]


@dataclass
class Finding:
    type: str
    confidence: float
    region: tuple[int, int, int, int]
    evidence: dict[str, float]


@lru_cache(maxsize=16)
def _region_mask(region: tuple[float, float, float, float], h: int, w: int) -> np.ndarray:
    """The (x0, x1, y0, y1) image fraction as an (h, w) mask, built once per frame size (read-only)."""
    x0, x1, y0, y1 = region
    m = np.zeros((h, w), dtype=bool)
    m[int(y0 * h): int(math.ceil(y1 * h)), int(x0 * w): int(math.ceil(x1 * w))] = True
    m.setflags(write=False)
    return m


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _red(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    return (r >= 110) & (r * 10 >= 16 * g) & (r * 10 >= 16 * b)


class HazardDetector:
    """Per-vehicle detector; keep one per vehicle (persistence and cut-in growth are per stream)."""

    def __init__(self, config: HazardConfig | None = None) -> None:
        self.cfg = config or HazardConfig()
        self._seen: dict[str, deque[bool]] = {t: deque(maxlen=self.cfg.frames) for t in HAZARD_TYPES}
        self._prev_cut_share: float | None = None
        self.frames = 0
        self.warnings = 0

    def reset(self) -> None:
        for d in self._seen.values():
            d.clear()
        self._prev_cut_share = None

    # -- one frame -------------------------------------------------------------------------------
    def _vru_conf(self, labels: np.ndarray, corridor: np.ndarray, scale: float) -> tuple[float, np.ndarray, int]:
        m = np.isin(labels, self.cfg.vru_classes) & corridor
        n = int(m.sum())
        lo, hi = self.cfg.vru_min_pixels * scale, self.cfg.vru_full_pixels * scale
        if n < lo:
            return 0.0, m, n
        return float(min(1.0, 0.5 + 0.5 * (n - lo) / (hi - lo))), m, n

    def detect(self, s_hat: np.ndarray, x_hat: np.ndarray | None = None,
               seg: np.ndarray | None = None) -> list[Finding]:
        """Findings in one frame (no persistence). s_hat, seg: (H, W) trainIds; x_hat: (H, W, 3) uint8."""
        if s_hat.ndim != 2:
            raise ValueError(f"s_hat must be an (H, W) label map, got shape {s_hat.shape}")
        h, w = s_hat.shape
        if x_hat is not None and x_hat.shape[:2] != (h, w):
            raise ValueError(f"x_hat {x_hat.shape[:2]} and s_hat {(h, w)} sizes differ")
        if seg is not None and seg.shape != (h, w):
            raise ValueError(f"segmenter map {seg.shape} and s_hat {(h, w)} sizes differ")
        cfg = self.cfg
        scale = h * w / REFERENCE_PIXELS
        corridor = cfg.corridor.mask(h, w)
        out: list[Finding] = []

        c1, m1, n1 = self._vru_conf(s_hat, corridor, scale)
        c2, m2, n2 = self._vru_conf(seg, corridor, scale) if seg is not None else (0.0, None, 0)
        conf = c1 + cfg.second_opinion_weight * c2 * (1.0 - c1) if c1 > 0 else cfg.second_opinion_weight * c2
        if conf > 0:
            mask = m1 if c1 > 0 else m2
            out.append(Finding("vulnerable_road_user", conf, _bbox(mask), {"pixels_shat": n1, "pixels_seg": n2}))

        near = corridor.copy()
        near[: int(round(cfg.cut_in_near_y * h))] = False
        near_n = max(1, int(near.sum()))
        veh = np.isin(s_hat, cfg.cut_in_classes) & near
        share = float(veh.sum()) / near_n
        prev, self._prev_cut_share = self._prev_cut_share, share
        if prev is not None and share >= cfg.cut_in_min_share and share - prev >= cfg.cut_in_growth:
            c = float(min(1.0, 0.5 + (share - cfg.cut_in_min_share) / max(1e-6, 2 * cfg.cut_in_min_share)))
            out.append(Finding("cut_in", c, _bbox(veh), {"share": share, "growth": share - prev}))

        if x_hat is not None:
            light = (s_hat == CLASS_NAMES.index("traffic light")) & _region_mask(cfg.light_region, h, w)
            n = int(light.sum())
            if n >= cfg.light_min_pixels * max(scale, 0.25):
                red = _red(x_hat) & light
                share = float(red.sum()) / n
                if share >= cfg.light_red_share:
                    c = float(min(1.0, 0.5 + 0.5 * share / max(1e-6, 2 * cfg.light_red_share)))
                    out.append(Finding("red_light", c, _bbox(light), {"pixels": n, "red_share": share}))
        return out

    def update(self, s_hat: np.ndarray, x_hat: np.ndarray | None = None, seg: np.ndarray | None = None, *,
               stamp: float = 0.0, vehicle_id: int = 0) -> list[HazardWarning]:
        """Warnings for this frame: findings seen in `hits` of the last `frames` frames, above
        `min_confidence`."""
        found = {f.type: f for f in self.detect(s_hat, x_hat, seg)}
        self.frames += 1
        out = []
        for t in HAZARD_TYPES:
            self._seen[t].append(t in found)
            f = found.get(t)
            if f is not None and sum(self._seen[t]) >= self.cfg.hits and f.confidence >= self.cfg.min_confidence:
                out.append(HazardWarning(t, round(f.confidence, 3), f.region, float(stamp), int(vehicle_id),
                                         {k: round(float(v), 4) for k, v in f.evidence.items()}))
        self.warnings += len(out)
        return out


__all__ = ["Corridor", "Finding", "HAZARD_TYPES", "HazardConfig", "HazardDetector", "HazardWarning", "parse_verdict",
           "verdict"]
