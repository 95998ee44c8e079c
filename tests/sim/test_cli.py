"""`sqgan sim ...` and `sqgan bench sim` through the real entry points."""
from __future__ import annotations

import json

import pytest

from sqgan_core.cli import main


def test_sim_export_prints_json_with_fractions(tmp_path, capsys):
    rc = main(["sim", "export", "--frames", "2", "--seed", "4", "--out", str(tmp_path), "--width", "64",
               "--height", "32", "--quiet", "--compact"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("frames", "seconds", "fps", "class_pixel_fraction"):
        assert key in out
    assert out["frames"] == 2 and out["seed"] == 4 and out["width"] == 64
    assert len(list((tmp_path / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))) == 2


def test_sim_export_stride_keeps_every_nth_tick_identical_to_a_full_run(tmp_path, capsys):
    import numpy as np

    from sim.export import read_pair

    common = ["sim", "export", "--seed", "4", "--width", "64", "--height", "32", "--quiet", "--compact", "--city", "c"]
    assert main(common + ["--frames", "2", "--stride", "3", "--out", str(tmp_path / "s")]) == 0
    assert json.loads(capsys.readouterr().out)["stride"] == 3
    assert main(common + ["--frames", "4", "--out", str(tmp_path / "f")]) == 0
    names = sorted(p.name for p in (tmp_path / "s" / "leftImg8bit" / "train" / "c").iterdir())
    assert names == ["c_000004_000000_leftImg8bit.png", "c_000004_000003_leftImg8bit.png"]  # ticks 0 and 3
    for name in names:  # skipped ticks advance the world exactly as rendered ones do
        strided = read_pair(tmp_path / "s" / "leftImg8bit" / "train" / "c" / name)
        full = read_pair(tmp_path / "f" / "leftImg8bit" / "train" / "c" / name)
        assert np.array_equal(strided[0], full[0]) and np.array_equal(strided[1], full[1])


@pytest.mark.parametrize("argv, message", [
    (["sim", "export", "--frames", "0", "--out", "x"], "--frames"),
    (["sim", "export", "--frames", "1", "--stride", "0", "--out", "x"], "--stride"),
    (["sim", "export", "--frames", "1", "--split", "../../evil", "--out", "x"], "--split"),
    (["sim", "export", "--frames", "1", "--split", "/tmp/evil", "--out", "x"], "--split"),
    (["sim", "export", "--frames", "1", "--city", "..", "--out", "x"], "--city"),
    (["sim", "export", "--frames", "1", "--out", "x", "--scenario", "nope"], "not found"),
    (["sim", "export", "--frames", "1", "--out", "x", "--width", "3"], "--width"),
])
def test_user_errors_are_clean(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # refused by argparse while parsing
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bench_sim_prints_one_json_object(capsys):
    rc = main(["bench", "sim", "--json", "--frames", "3", "--warmup", "1", "--width", "64", "--height", "32",
               "--cores", "0"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["target"] == "sim" and res["fps"] > 0 and res["width"] == 64


def test_scenarios_listing(capsys):
    assert main(["sim", "scenarios"]) == 0
    assert "rainy_night" in json.loads(capsys.readouterr().out)
