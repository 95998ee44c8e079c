"""CARLA semantic tags -> Cityscapes trainIds, for every tag set from CARLA 0.9.13 to 0.10.

CARLA's semantic camera writes its own tag in the red channel of a BGRA image; with
`carla.ColorConverter.CityScapesPalette` it writes a colour instead. The tag numbering changed
in 0.9.14, when CARLA adopted Cityscapes' class list (Rider, Truck, Bus, Train, Motorcycle and
Bicycle became their own tags; before, every vehicle was `Vehicles` and every person
`Pedestrian`). 0.9.14, 0.9.15, 0.9.16 and 0.10 share the newer set (0.9.16's
`carla.CityObjectLabel` enumerates exactly `CITYSCAPES_TAGS` below). Tags that are not one of
the 19 Cityscapes training classes (ground, bridge, rail track, guard rail, static, dynamic,
water, other, unlabeled) map to 255 as in cityscapesScripts; road lines are road.
"""
from __future__ import annotations

import re

import numpy as np

from sqgan_core.labels import VOID, class_id

# (tag, CARLA name, CityScapesPalette colour RGB, Cityscapes class or None for void)
LEGACY_TAGS: tuple[tuple[int, str, tuple[int, int, int], str | None], ...] = (
    (0, "Unlabeled", (0, 0, 0), None),
    (1, "Building", (70, 70, 70), "building"),
    (2, "Fence", (100, 40, 40), "fence"),
    (3, "Other", (55, 90, 80), None),
    (4, "Pedestrian", (220, 20, 60), "person"),
    (5, "Pole", (153, 153, 153), "pole"),
    (6, "RoadLine", (157, 234, 50), "road"),
    (7, "Road", (128, 64, 128), "road"),
    (8, "SideWalk", (244, 35, 232), "sidewalk"),
    (9, "Vegetation", (107, 142, 35), "vegetation"),
    (10, "Vehicles", (0, 0, 142), "car"),
    (11, "Wall", (102, 102, 156), "wall"),
    (12, "TrafficSign", (220, 220, 0), "traffic sign"),
    (13, "Sky", (70, 130, 180), "sky"),
    (14, "Ground", (81, 0, 81), None),
    (15, "Bridge", (150, 100, 100), None),
    (16, "RailTrack", (230, 150, 140), None),
    (17, "GuardRail", (180, 165, 180), None),
    (18, "TrafficLight", (250, 170, 30), "traffic light"),
    (19, "Static", (110, 190, 160), None),
    (20, "Dynamic", (170, 120, 50), None),
    (21, "Water", (45, 60, 150), None),
    (22, "Terrain", (145, 170, 100), "terrain"),
)

CITYSCAPES_TAGS: tuple[tuple[int, str, tuple[int, int, int], str | None], ...] = (
    (0, "Unlabeled", (0, 0, 0), None),
    (1, "Roads", (128, 64, 128), "road"),
    (2, "Sidewalks", (244, 35, 232), "sidewalk"),
    (3, "Buildings", (70, 70, 70), "building"),
    (4, "Walls", (102, 102, 156), "wall"),
    (5, "Fences", (190, 153, 153), "fence"),
    (6, "Poles", (153, 153, 153), "pole"),
    (7, "TrafficLight", (250, 170, 30), "traffic light"),
    (8, "TrafficSigns", (220, 220, 0), "traffic sign"),
    (9, "Vegetation", (107, 142, 35), "vegetation"),
    (10, "Terrain", (152, 251, 152), "terrain"),
    (11, "Sky", (70, 130, 180), "sky"),
    (12, "Pedestrians", (220, 20, 60), "person"),
    (13, "Rider", (255, 0, 0), "rider"),
    (14, "Car", (0, 0, 142), "car"),
    (15, "Truck", (0, 0, 70), "truck"),
    (16, "Bus", (0, 60, 100), "bus"),
    (17, "Train", (0, 80, 100), "train"),
    (18, "Motorcycle", (0, 0, 230), "motorcycle"),
    (19, "Bicycle", (119, 11, 32), "bicycle"),
    (20, "Static", (110, 190, 160), None),
    (21, "Dynamic", (170, 120, 50), None),
    (22, "Other", (55, 90, 80), None),
    (23, "Water", (45, 60, 150), None),
    (24, "RoadLines", (157, 234, 50), "road"),
    (25, "Ground", (81, 0, 81), None),
    (26, "Bridge", (150, 100, 100), None),
    (27, "RailTrack", (230, 150, 140), None),
    (28, "GuardRail", (180, 165, 180), None),
)

TAG_SETS = {"legacy": LEGACY_TAGS, "cityscapes": CITYSCAPES_TAGS}


def parse_version(version: str) -> tuple[int, ...]:
    """'0.9.16', '0.9.13-dirty', '0.10.0', '0.9.14-2-gabc' -> (0, 9, 16) etc."""
    m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    if not m:
        raise ValueError(f"cannot read a CARLA version from {version!r}")
    return tuple(int(g) for g in m.groups(default="0"))


def tag_set_for_version(version: str) -> str:
    """Which tag set a CARLA server of `version` renders ('legacy' before 0.9.14)."""
    return "legacy" if parse_version(version) < (0, 9, 14) else "cityscapes"


def tag_lut(tag_set: str) -> np.ndarray:
    """256-entry lookup: CARLA tag -> trainId (255 for void and unknown tags)."""
    lut = np.full(256, VOID, np.uint8)
    for tag, _name, _col, cls in TAG_SETS[tag_set]:
        if cls is not None:
            lut[tag] = class_id(cls)
    return lut


def tags_to_palette(tags: np.ndarray, tag_set: str) -> np.ndarray:
    """Raw CARLA tag image -> H x W x 3 RGB in CARLA's CityScapesPalette, as the server's
    `Image.convert(CityScapesPalette)` and the CARLA ROS bridge's semantic topic give it (tags the
    set does not define are black, like `Unlabeled`)."""
    if tag_set not in TAG_SETS:
        raise ValueError(f"unknown CARLA tag set {tag_set!r}; known: {', '.join(TAG_SETS)}")
    lut = np.zeros((256, 3), np.uint8)
    for tag, _name, col, _cls in TAG_SETS[tag_set]:
        lut[tag] = col
    return lut[np.asarray(tags, np.uint8)]


def tags_to_train_ids(tags: np.ndarray, tag_set: str) -> np.ndarray:
    """Raw CARLA tag image (H x W uint8, the red channel) -> trainIds."""
    if tag_set not in TAG_SETS:
        raise ValueError(f"unknown CARLA tag set {tag_set!r}; known: {', '.join(TAG_SETS)}")
    return tag_lut(tag_set)[np.asarray(tags, np.uint8)]


def palette_to_train_ids(rgb: np.ndarray, tag_set: str) -> np.ndarray:
    """CityScapesPalette colour image (H x W x 3 RGB) -> trainIds; unknown colours are void."""
    if tag_set not in TAG_SETS:
        raise ValueError(f"unknown CARLA tag set {tag_set!r}; known: {', '.join(TAG_SETS)}")
    rgb = np.asarray(rgb, np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"palette image must be H x W x 3, got {rgb.shape}")
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(key.shape, VOID, np.uint8)
    for _tag, _name, col, cls in TAG_SETS[tag_set]:
        if cls is not None:
            out[key == ((col[0] << 16) | (col[1] << 8) | col[2])] = class_id(cls)
    return out


def bgra_to_rgb(raw: bytes | np.ndarray, width: int, height: int) -> np.ndarray:
    """carla.Image.raw_data (BGRA, row-major, no padding) -> H x W x 3 RGB copy."""
    a = np.frombuffer(raw, np.uint8)
    if a.size != width * height * 4:
        raise ValueError(f"image buffer holds {a.size} bytes, expected {width}x{height}x4 = {width * height * 4}")
    return np.ascontiguousarray(a.reshape(height, width, 4)[:, :, 2::-1])
