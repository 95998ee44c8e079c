"""CARLA semantic tag sets (0.9.13 .. 0.9.16, 0.10) -> Cityscapes trainIds, raw and palette."""
from __future__ import annotations

import numpy as np
import pytest

from sqgan_core.labels import PALETTE, VOID, class_id
from sim import carla_tags
from sim.carla_tags import (CITYSCAPES_TAGS, LEGACY_TAGS, TAG_SETS, bgra_to_rgb, palette_to_train_ids, parse_version,
                            tag_set_for_version, tags_to_train_ids)


@pytest.mark.parametrize("version, expected", [
    ("0.9.13", "legacy"), ("0.9.13-dirty", "legacy"), ("0.9.14", "cityscapes"), ("0.9.15", "cityscapes"),
    ("0.9.15-2-g1b2c", "cityscapes"), ("0.9.16", "cityscapes"), ("0.10.0", "cityscapes"), ("0.9.12", "legacy"),
])
def test_version_selects_tag_set(version, expected):
    assert tag_set_for_version(version) == expected


def test_unreadable_version_is_an_error():
    with pytest.raises(ValueError, match="version"):
        parse_version("latest")


# expected trainIds per tag, written out by hand (not derived from the tables under test)
LEGACY_EXPECTED = {0: VOID, 1: "building", 2: "fence", 3: VOID, 4: "person", 5: "pole", 6: "road", 7: "road",
                   8: "sidewalk", 9: "vegetation", 10: "car", 11: "wall", 12: "traffic sign", 13: "sky", 14: VOID,
                   15: VOID, 16: VOID, 17: VOID, 18: "traffic light", 19: VOID, 20: VOID, 21: VOID, 22: "terrain"}
CITYSCAPES_EXPECTED = {0: VOID, 1: "road", 2: "sidewalk", 3: "building", 4: "wall", 5: "fence", 6: "pole",
                       7: "traffic light", 8: "traffic sign", 9: "vegetation", 10: "terrain", 11: "sky", 12: "person",
                       13: "rider", 14: "car", 15: "truck", 16: "bus", 17: "train", 18: "motorcycle", 19: "bicycle",
                       20: VOID, 21: VOID, 22: VOID, 23: VOID, 24: "road", 25: VOID, 26: VOID, 27: VOID, 28: VOID}


def _tid(v):
    return v if v == VOID else class_id(v)


@pytest.mark.parametrize("tag_set, expected", [("legacy", LEGACY_EXPECTED), ("cityscapes", CITYSCAPES_EXPECTED)])
def test_raw_tag_image_maps_every_tag(tag_set, expected):
    tags = np.array([list(expected)], np.uint8).repeat(3, 0)
    out = tags_to_train_ids(tags, tag_set)
    assert out.shape == tags.shape and out.dtype == np.uint8
    assert out[0].tolist() == [_tid(v) for v in expected.values()]
    # tags that no version defines are void, never a class
    assert (tags_to_train_ids(np.arange(29, 256, dtype=np.uint8)[None], tag_set) == VOID).all()


@pytest.mark.parametrize("tag_set, expected", [("legacy", LEGACY_EXPECTED), ("cityscapes", CITYSCAPES_EXPECTED)])
def test_palette_image_maps_like_raw_tags(tag_set, expected):
    colours = np.array([[col for _t, _n, col, _c in TAG_SETS[tag_set]]], np.uint8)
    out = palette_to_train_ids(colours, tag_set)
    assert out[0].tolist() == [_tid(v) for v in expected.values()]
    stray = np.array([[[1, 2, 3], [255, 255, 255]]], np.uint8)
    assert (palette_to_train_ids(stray, tag_set) == VOID).all()


def test_newer_palette_equals_cityscapes_palette_for_the_19_classes():
    for tag, _n, col, cls in CITYSCAPES_TAGS:
        if cls is not None and tag != 24:
            assert tuple(PALETTE[class_id(cls)]) == col


def test_legacy_palette_differs_where_carla_0913_did():
    cols = {n: c for _t, n, c, _cl in LEGACY_TAGS}
    assert cols["Fence"] == (100, 40, 40) and cols["Terrain"] == (145, 170, 100)


def test_tag_table_matches_installed_carla_client():
    """The real carla 0.9.16 wheel's CityObjectLabel enum equals our newer tag table."""
    carla = pytest.importorskip("carla")
    if getattr(carla, "IS_STANDIN", False) or not hasattr(carla, "CityObjectLabel"):
        pytest.skip("real carla client not installed")
    enum = {int(v): n.lower() for n, v in carla.CityObjectLabel.names.items() if int(v) != 255}
    ours = {t: n.lower() for t, n, _c, _cl in CITYSCAPES_TAGS}
    ours[0] = "none"
    assert enum == ours


def _library_palette(standin) -> tuple[tuple[int, int, int], ...]:
    try:
        return standin.real_client_palette()
    except standin.PaletteUnavailable as exc:
        pytest.skip(str(exc))


def _table_disagreements(palette) -> list[str]:
    """Tags whose colour in sim.carla_tags' newer table differs from the client library's palette."""
    ours = {t: (n, col) for t, n, col, _c in carla_tags.TAG_SETS["cityscapes"]}
    problems = [f"sim.carla_tags has {len(ours)} tags, the client library's palette {len(palette)}"] \
        if len(ours) != len(palette) else []
    return problems + [f"tag {t} {n}: sim.carla_tags {col}, the client library {palette[t]}"
                       for t, (n, col) in sorted(ours.items()) if t < len(palette) and col != palette[t]]


def _server_image_problems(carla) -> list[str]:
    """Where sim.carla_tags disagrees with the stand-in server's `Image.convert(CityScapesPalette)` (colours
    from the client library) on an image of every tag: the colour sim_publisher publishes for a tag
    (tags_to_palette), and the class a palette image reads back as (palette_to_train_ids)."""
    tags = np.array([[t for t, _n, _c, _x in carla._state["tags"]]], np.uint8)
    bgra = np.zeros(tags.shape + (4,), np.uint8)
    bgra[..., 2], bgra[..., 3] = tags, 255
    img = carla.Image(1, 0.05, tags.shape[1], 1, 90.0, bgra.tobytes())
    img.convert(carla.ColorConverter.CityScapesPalette)
    server = bgra_to_rgb(img.raw_data, tags.shape[1], 1)
    ours = carla_tags.tags_to_palette(tags, "cityscapes")
    back, want = palette_to_train_ids(server, "cityscapes"), tags_to_train_ids(tags, "cityscapes")
    problems = []
    for k, (tag, name, _c, _x) in enumerate(carla._state["tags"]):
        if tuple(ours[0, k]) != tuple(server[0, k]):
            problems.append(f"tag {tag} {name}: published as {tuple(ours[0, k])}, the server gives {tuple(server[0, k])}")
        if back[0, k] != want[0, k]:
            problems.append(f"tag {tag} {name}: the server's colour reads back as trainId {back[0, k]}, not {want[0, k]}")
    return problems


def test_palette_matches_the_real_client_library(carla_standin):
    """Every CityScapesPalette colour of sim.carla_tags equals the one compiled into the real carla 0.9.16
    client library, and the stand-in server converts with the library's colours."""
    palette = _library_palette(carla_standin)
    # CARLA's documented first entries and a few others, by hand: the locator found the palette
    assert palette[:3] == ((0, 0, 0), (128, 64, 128), (244, 35, 232))
    assert palette[14] == (0, 0, 142) and palette[24] == (157, 234, 50) and palette[28] == (180, 165, 180)
    assert _table_disagreements(palette) == []
    carla = carla_standin.make("0.9.16")
    assert "real carla client library" in carla._state["palette_source"]
    assert [col for _t, _n, col, _x in carla._state["tags"]] == list(palette)
    assert _server_image_problems(carla) == []


@pytest.mark.parametrize("name, wrong", [("Fences", (100, 40, 40)), ("Terrain", (145, 170, 100)),
                                         ("RoadLines", (128, 64, 128))])
def test_a_wrong_colour_in_carla_tags_fails(carla_standin, monkeypatch, name, wrong):
    """Mutation check: one wrong colour in sim.carla_tags (here 0.9.13's fence and terrain colours, or road
    lines drawn as road) is caught both by the table comparison and through the stand-in server."""
    palette = _library_palette(carla_standin)
    mutated = tuple((t, n, wrong if n == name else col, c) for t, n, col, c in CITYSCAPES_TAGS)
    monkeypatch.setitem(carla_tags.TAG_SETS, "cityscapes", mutated)
    monkeypatch.setattr(carla_tags, "CITYSCAPES_TAGS", mutated)
    tag = next(t for t, n, _c, _x in mutated if n == name)
    problems = _table_disagreements(palette)
    assert len(problems) == 1 and problems[0].startswith(f"tag {tag} {name}:"), problems
    carla = carla_standin.make("0.9.16")  # independent of the mutated table: its colours are the library's
    assert carla._state["tags"][tag][2] == palette[tag] != wrong
    server = _server_image_problems(carla)
    assert any(p.startswith(f"tag {tag} ") and "published as" in p for p in server), server
    assert any(p.startswith(f"tag {tag} ") and "reads back" in p for p in server), server  # the colour is unknown


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="tag set"):
        tags_to_train_ids(np.zeros((2, 2), np.uint8), "0.9.16")
    with pytest.raises(ValueError, match="H x W x 3"):
        palette_to_train_ids(np.zeros((2, 2), np.uint8), "legacy")
    with pytest.raises(ValueError, match="expected 2x2x4"):
        bgra_to_rgb(b"\0" * 12, 2, 2)


def test_bgra_to_rgb_swaps_channels():
    raw = np.array([[[1, 2, 3, 255], [4, 5, 6, 255]]], np.uint8).tobytes()
    assert bgra_to_rgb(raw, 2, 1).tolist() == [[[3, 2, 1], [6, 5, 4]]]
