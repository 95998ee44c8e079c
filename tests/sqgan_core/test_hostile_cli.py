"""Hostile input for every `sqgan` command: bad paths, bad arguments, bad images, bad frames, bad configs.

Each case must end with a non-zero exit and one stderr line naming the problem, never a traceback.
The commands run in-process through `sqgan_core.cli.main` (an exception escaping it is what a user
would see as a traceback); `test_every_command_has_hostile_cases` keeps the table complete when a
command is added."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest

from sqgan_core.cli import build_parser, main
from sqgan_core.imageio import write_labels, write_rgb


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A folder of bad inputs next to a few good ones, so each case changes one thing."""
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(1)
    write_rgb(d / "img.png", rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    write_labels(d / "lab.png", rng.integers(0, 19, (64, 128)).astype(np.uint8))
    write_labels(d / "lab_small.png", rng.integers(0, 19, (32, 64)).astype(np.uint8))
    (d / "junk.png").write_bytes(b"this is not an image at all\n" * 4)
    (d / "empty.png").write_bytes(b"")
    (d / "junk.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (d / "junk.sqg").write_bytes(b"\x00" * 40)
    (d / "empty.sqg").write_bytes(b"")
    assert main(["encode", str(d / "img.png"), "--labels", str(d / "lab.png"), "-o", str(d / "good.sqg"),
                 "--untrained"]) == 0
    good = (d / "good.sqg").read_bytes()
    (d / "cut.sqg").write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    (d / "flipped.sqg").write_bytes(bytes(flipped))
    (d / "bad.yaml").write_text("batch_size: [1, 2\n  lr: : :\n")
    (d / "unknown.yaml").write_text("batch_size: 2\nno_such_key: 1\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "a_file").write_text("a file where a folder belongs\n")
    (d / "empty_dir").mkdir()
    assert main(["keys", "--out", str(d / "keys")]) == 0
    for split in ("train", "val"):  # the smallest dataset a training command accepts
        assert main(["sim", "export", "--frames", "1", "--split", split, "--width", "128", "--height", "64",
                     "--out", str(d / "data"), "--quiet"]) == 0
    return d


# (argv, words the one error line must contain). {d} is the fixture folder.
CASES: list[tuple[list[str], list[str]]] = [
    # encode
    (["encode", "{d}/missing.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained"], ["missing.png"]),
    (["encode", "{d}/junk.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained"], ["junk.png"]),
    (["encode", "{d}/empty.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained"], ["empty.png"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab_small.png", "-o", "{d}/o.sqg", "--untrained"], ["size"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--model", "{d}/junk.pt"],
     ["junk.pt"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained", "--config",
      "{d}/bad.yaml"], ["bad.yaml"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/empty_dir", "--untrained"], ["empty_dir"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained", "--max-tokens", "0"],
     ["--max-tokens"]),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/o.sqg", "--untrained", "--device", "tpu"],
     ["--device"]),
    # decode
    (["decode", "{d}/missing.sqg", "-o", "{d}/o.png", "--untrained"], ["missing.sqg"]),
    (["decode", "{d}/junk.sqg", "-o", "{d}/o.png", "--untrained"], ["junk.sqg"]),
    (["decode", "{d}/empty.sqg", "-o", "{d}/o.png", "--untrained"], ["empty.sqg"]),
    (["decode", "{d}/cut.sqg", "-o", "{d}/o.png", "--untrained"], ["cut.sqg"]),
    (["decode", "{d}/good.sqg", "-o", "{d}/a_file/o.png", "--untrained"], ["a_file"]),
    (["decode", "{d}/good.sqg", "-o", "{d}/o.png", "--labels-out", "{d}/l.jpg", "--untrained"], ["l.jpg"]),
    (["decode", "{d}/good.sqg", "-o", "{d}/o.png", "--model", "{d}/junk.pt"], ["junk.pt"]),
    # info
    (["info", "{d}/junk.sqg"], ["junk.sqg"]),
    (["info", "{d}/cut.sqg"], ["cut.sqg"]),
    (["info", "{d}/empty_dir"], ["empty_dir"]),
    # codec-demo
    (["codec-demo", "--data", "{d}/missing_data", "--untrained"], ["missing_data"]),
    (["codec-demo", "--data", "{d}/empty_dir", "--untrained"], ["empty_dir"]),
    (["codec-demo", "--data", "{d}/data", "--frames", "0", "--untrained"], ["--frames"]),
    (["codec-demo", "--data", "{d}/data", "--rates", "0.5,x", "--untrained"], ["--rates"]),
    (["codec-demo", "--data", "{d}/data", "--out", "{d}/a_file", "--untrained"], ["a_file"]),
    # demo
    (["demo", "--profile", "nosuch", "--out", "{d}/demo"], ["nosuch"]),
    (["demo", "--param", "vehicle.m_x=7", "--out", "{d}/demo"], ["m_x"]),
    (["demo", "--vehicles", "0", "--out", "{d}/demo"], ["--vehicles"]),
    (["demo", "--frames", "-3", "--out", "{d}/demo"], ["--frames"]),
    (["demo", "--scenario", "nosuch", "--out", "{d}/demo"], ["nosuch"]),
    (["demo", "--model", "{d}/junk.pt", "--out", "{d}/demo"], ["junk.pt"]),
    (["demo", "--out", "{d}/a_file"], ["a_file"]),
    # eval
    (["eval", "--data", "{d}/missing_data", "--untrained"], ["missing_data"]),
    (["eval", "--frames", "0", "--untrained"], ["--frames"]),
    (["eval", "--grid", "0.5", "--untrained"], ["--grid"]),
    (["eval", "--baseline", "{d}/junk.pt", "--untrained", "--frames", "1"], ["junk.pt"]),
    (["eval", "--segmenter", "{d}/junk.pt", "--untrained", "--frames", "1"], ["junk.pt"]),
    (["eval", "--scenario", "nosuch", "--untrained"], ["nosuch"]),
    (["eval", "--untrained", "-o", "{d}/a_file/e.json"], ["a_file"]),
    (["eval", "--untrained", "--plot", "{d}/e.xyz"], ["e.xyz"]),
    (["eval", "--untrained", "--loss", "bernoulli:2"], ["--loss", "bernoulli:P"]),
    (["eval", "--untrained", "--loss", "bernoulli:0.2", "--concealment", "magic"], ["--concealment", "magic"]),
    (["eval", "--untrained", "--loss", "bernoulli:0.2", "--concealer", "bidirectional={d}/nope.pt"], ["nope.pt"]),
    (["eval", "--untrained", "--loss", "bernoulli:0.2", "--concealment", "bidirectional"], ["no method is available"]),
    (["eval", "--untrained", "--codebooks", "100"], ["--codebooks"]),
    (["eval", "--untrained", "--codebooks", "64"], ["--codebooks", "sqgan train codebooks"]),
    # keys
    (["keys", "--out", "{d}/keys_v0", "--vehicles", "0"], ["--vehicles"]),
    (["keys", "--out", "{d}/a_file"], ["a_file"]),
    (["keys", "--out", "{d}/keys_bad_role", "--role", "pilot"], ["--role"]),
    # launch
    (["launch", "nosuch", "--dry-run"], ["nosuch"]),
    (["launch", "pipeline", "--keys", "{d}/keys", "--profile", "nosuch", "--dry-run"], ["nosuch"]),
    (["launch", "pipeline", "vehicle.m_x:=7", "--dry-run"], ["m_x"]),
    (["launch", "pipeline", "nonsense", "--dry-run"], ["nonsense"]),
    (["launch", "pipeline", "--keys", "{d}/empty_dir", "--dry-run"], ["empty_dir"]),
    (["launch", "pipeline", "--keys", "{d}/keys", "--model", "{d}/junk.pt", "--dry-run"], ["junk.pt"]),
    (["launch", "pipeline", "--keys", "{d}/keys", "scenario:=nosuch", "--dry-run"],
     ["sim_publisher: scenario 'nosuch' not found"]),
    (["launch", "pipeline", "--duration", "-1", "--dry-run"], ["--duration"]),
    # link
    (["link", "--profile", "nosuch"], ["nosuch"]),
    (["link", "--profile", "{d}/bad.yaml"], ["bad.yaml"]),
    (["link", "--keys", "{d}/keys", "--listen", "not-an-endpoint", "--duration", "1"], ["not-an-endpoint"]),
    (["link", "--keys", "{d}/keys", "--forward", "tcp://127.0.0.1:99999", "--duration", "1"], ["99999"]),
    (["link", "--keys", "{d}/empty_dir", "--duration", "1"], ["empty_dir"]),
    (["link", "--keys", "{d}/keys", "--allow", "{d}/missing_allow", "--duration", "1"], ["missing_allow"]),
    (["link", "--keys", "{d}/keys", "--allow", "{d}/empty_dir", "--duration", "1"], ["empty_dir"]),
    (["link", "--duration", "-1"], ["--duration"]),
    # segment
    (["segment", "{d}/missing.png", "-o", "{d}/s.png"], ["missing.png"]),
    (["segment", "{d}/junk.png", "-o", "{d}/s.png"], ["junk.png"]),
    (["segment", "{d}/img.png", "-o", "{d}/s"], ["extension"]),
    (["segment", "{d}/img.png", "-o", "{d}/s.png", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["segment", "{d}/img.png", "-o", "{d}/s.png", "--max-pixels", "0"], ["--max-pixels"]),
    # sim
    (["sim", "export", "--frames", "0", "--out", "{d}/sim"], ["--frames"]),
    (["sim", "export", "--frames", "1", "--scenario", "nosuch", "--out", "{d}/sim"], ["nosuch"]),
    (["sim", "export", "--frames", "1", "--split", "../../evil", "--out", "{d}/sim"], ["--split"]),
    (["sim", "export", "--frames", "1", "--width", "7", "--out", "{d}/sim"], ["--width"]),
    (["sim", "export", "--frames", "1", "--source", "carla", "--out", "{d}/sim"], ["carla"]),
    (["sim", "export", "--frames", "1", "--out", "{d}/a_file"], ["a_file"]),
    (["sim", "grid", "--frames", "0", "--out", "{d}/grid.png"], ["--frames"]),
    (["sim", "grid", "--frames", "1", "--out", "{d}/a_file/grid.png"], ["a_file"]),
    (["sim", "scenarios", "extra"], ["extra"]),
    # train
    *[c for stage in ("semantic", "image", "finetune", "joint") for c in [
        (["train", stage, "--data", "{d}/missing_data", "--out", "{d}/t"], ["missing_data"]),
        (["train", stage, "--data", "{d}/empty_dir", "--out", "{d}/t"], ["empty_dir"]),
        (["train", stage, "--data", "{d}/empty_dir", "--out", "{d}/t", "--train-config", "{d}/bad.yaml"],
         ["bad.yaml"]),
        (["train", stage, "--data", "{d}/empty_dir", "--out", "{d}/t", "--train-config", "{d}/unknown.yaml"],
         ["no_such_key"]),
        (["train", stage, "--data", "{d}/data", "--out", "{d}/t", "--init", "{d}/junk.pt"], ["junk.pt"]),
        (["train", stage, "--data", "{d}/data", "--out", "{d}/t", "--device", "gpu"], ["--device"]),
        (["train", stage, "--data", "{d}/empty_dir", "--out", "{d}/t", "--steps", "0"], ["--steps"]),
        (["train", stage, "--data", "{d}/empty_dir", "--out", "{d}/t", "--max-minutes", "-1"], ["--max-minutes"]),
    ]],
    (["train", "concealer", "--data", "{d}/missing_data", "--out", "{d}/t"], ["missing_data"]),
    (["train", "concealer", "--data", "{d}/data", "--out", "{d}/t", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["train", "concealer", "--data", "{d}/data", "--out", "{d}/t", "--init", "{d}/junk.pt"], ["junk.pt"]),
    (["train", "concealer", "--data", "{d}/data", "--out", "{d}/t", "--kind", "lstm"], ["--kind"]),
    (["train", "codebooks", "--model", "{d}/junk.pt", "-o", "{d}/c.pt"], ["junk.pt"]),
    (["train", "codebooks", "--model", "shipped", "--sizes", "1000", "-o", "{d}/c.pt"], ["--sizes"]),
    (["train", "codebooks", "--model", "shipped", "-o", "{d}/a_file/c.pt"], ["a_file"]),
    (["train", "segmenter", "--data", "{d}/missing_data", "--work-dir", "{d}/w", "-o", "{d}/s.pt"],
     ["missing_data"]),
    (["train", "segmenter", "--data", "{d}/empty_dir", "--work-dir", "{d}/w", "-o", "{d}/s.pt", "--iters", "0"],
     ["--iters"]),
    (["train", "segmenter", "--data", "{d}/empty_dir", "--work-dir", "{d}/w", "-o", "{d}/s.pt", "--crop", "7", "9"],
     ["--crop"]),
    (["train", "segmenter", "--data", "{d}/data", "--work-dir", "{d}/w", "-o", "{d}/s.pt", "--init",
      "{d}/junk.pt", "--iters", "1"], ["junk.pt"]),
    (["train", "segmenter", "--data", "{d}/data", "--work-dir", "{d}/w", "-o", "{d}/s.pt", "--lr", "-1"], ["--lr"]),
    (["train", "priors", "--model", "{d}/missing.pt", "--data", "{d}/data", "-o", "{d}/p.pt"], ["missing.pt"]),
    (["train", "priors", "--model", "{d}/junk.pt", "--data", "{d}/data", "-o", "{d}/p.pt"], ["junk.pt"]),
    (["train", "priors", "--model", "shipped", "--data", "{d}/missing_data", "-o", "{d}/p.pt"], ["missing_data"]),
    (["train", "priors", "--model", "shipped", "--data", "{d}/data", "-o", "{d}/p.pt", "--frames", "0"],
     ["--frames"]),
    (["train", "priors", "--model", "shipped", "--data", "{d}/data", "-o", "{d}/empty_dir"], ["empty_dir"]),
    # bag
    (["bag", "info", "{d}/missing_bag"], ["missing_bag"]),
    (["bag", "info", "{d}/empty_dir"], ["empty_dir"]),
    (["bag", "record", "/sqgan_no_such_topic", "-o", "{d}/a_file"], ["a_file"]),
    (["bag", "record", "/sqgan_no_such_topic", "-o", "{d}/new_bag", "--discovery-timeout", "0.5"],
     ["/sqgan_no_such_topic"]),
    (["bag", "record", "/t", "-o", "{d}/new_bag2", "--storage", "zip"], ["--storage"]),
    (["bag", "play", "{d}/missing_bag"], ["missing_bag"]),
    (["bag", "play", "{d}/empty_dir", "--rate", "0"], ["--rate"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "-o", "{d}/r"], ["missing_bag"]),
    (["bag", "eval", "{d}/empty_dir", "--camera", "/c", "-o", "{d}/r2"], ["empty_dir"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "-o", "{d}/a_file"], ["a_file"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "-o", "{d}/no_folder/r"], ["no_folder"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "--link", "nosuch", "-o", "{d}/r3"], ["nosuch"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "--codec", "bpg", "-o", "{d}/r4"], ["bpg"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "--extra-rates", "1", "-o", "{d}/r5"], ["--extra-rates"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "--grid", "2,2", "-o", "{d}/r6"], ["--grid"]),
    (["bag", "eval", "{d}/missing_bag", "--camera", "/c", "--model", "{d}/junk.pt", "-o", "{d}/r7"], ["junk.pt"]),
    (["bag", "transcode", "{d}/missing_bag", "-o", "{d}/t", "--decode"], ["missing_bag"]),
    (["bag", "transcode", "{d}/empty_dir", "-o", "{d}/t2", "--decode"], ["empty_dir"]),
    (["bag", "transcode", "{d}/missing_bag", "-o", "{d}/t3", "--mx", "2"], ["--mx"]),
    (["bag", "simulate", "-o", "{d}/a_file", "--frames", "1"], ["a_file"]),
    (["bag", "simulate", "-o", "{d}/sim_new", "--frames", "0"], ["--frames"]),
    (["bag", "simulate", "-o", "{d}/sim_new2", "--scenario", "nosuch"], ["nosuch"]),
    (["bag", "simulate", "-o", "{d}/sim_new3", "--storage", "zip"], ["--storage"]),
    # scenario
    (["scenario", "run", "nosuch"], ["nosuch"]),
    (["scenario", "run", "{d}/bad.yaml"], ["bad.yaml"]),
    (["scenario", "run", "default", "--link", "nosuch"], ["nosuch"]),
    (["scenario", "run", "default", "--codec", "bpg"], ["bpg"]),
    (["scenario", "run", "default", "--codec", "jpeg2000"], ["--bpp"]),
    (["scenario", "run", "default", "--mx", "2"], ["--mx"]),
    (["scenario", "suite", "--scenarios", "nosuch"], ["nosuch"]),
    (["scenario", "suite", "--scenarios", "default", "--links", "nosuch"], ["nosuch"]),
    (["scenario", "suite", "--scenarios", "default", "--codecs", "bpg"], ["bpg"]),
    (["scenario", "suite", "--scenarios", "default", "--bpp", "-1"], ["--bpp"]),
    # bench
    (["bench", "codec", "--mx", "2"], ["--mx"]),
    (["bench", "ratecontrol", "--untrained", "--sizes", "100"], ["--sizes"]),
    (["bench", "concealer", "--untrained", "--loss", "lots"], ["--loss"]),
    (["bench", "concealer", "--untrained", "--concealment", "none"], ["--concealment"]),
    (["bench", "ratecontrol", "--untrained", "--table", "{d}/junk.pt"], ["junk.pt"]),
    (["bench", "ratecontrol", "--untrained", "--budget", "0"], ["--budget"]),
    (["bench", "codec", "--height", "7", "--untrained"], ["--height"]),
    (["bench", "codec", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["bench", "pipeline", "--vehicles", "0"], ["--vehicles"]),
    (["bench", "pipeline", "--profile", "nosuch"], ["nosuch"]),
    (["bench", "pipeline", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["bench", "stream", "--vehicles", "0"], ["--vehicles"]),
    (["bench", "stream", "--vehicles", "1", "--profile", "nosuch"], ["nosuch"]),
    (["bench", "stream", "--vehicles", "1", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["bench", "segmenter", "--model", "{d}/junk.pt", "--frames", "1"], ["junk.pt"]),
    (["bench", "segmenter", "--frames", "0"], ["--frames"]),
    (["bench", "segmenter", "--scenario", "nosuch", "--frames", "1"], ["nosuch"]),
    (["bench", "sim", "--frames", "0"], ["--frames"]),
    (["bench", "all", "--bag", "{d}/missing_bag"], ["missing_bag"]),
    (["bench", "all", "--only", "nosuch"], ["nosuch"]),
    (["bench", "all", "--timeout", "0"], ["--timeout"]),
    (["bench", "classic", "--frames", "0"], ["--frames"]),
    (["bench", "classic", "--mx", "2"], ["--mx"]),
    (["bench", "classic", "--model", "{d}/junk.pt"], ["junk.pt"]),
    (["bench", "sim", "--scenario", "nosuch"], ["nosuch"]),
    (["bench", "sim", "--width", "0"], ["--width"]),
    (["bench", "train", "--data", "{d}/missing_data"], ["missing_data"]),
    (["bench", "train", "--data", "{d}/data", "--stages", "nosuch"], ["nosuch"]),
    (["bench", "train", "--data", "{d}/data", "--steps", "0"], ["--steps"]),
    (["bench", "train", "--data", "{d}/data", "--train-config", "{d}/list.yaml"], ["list.yaml"]),
    (["bench", "train", "--data", "{d}/data", "--model", "{d}/junk.pt"], ["junk.pt"]),
]


def _command(argv: list[str]) -> str:
    return " ".join(argv[:2]) if argv[0] in ("sim", "train", "bench", "bag", "scenario") else argv[0]


def _leaf_commands() -> set[str]:
    names: set[str] = set()

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            names.add(" ".join(prefix))
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, prefix + [name])

    walk(build_parser(), [])
    return names


def test_every_command_has_hostile_cases():
    covered = {_command(argv) for argv, _ in CASES}
    assert _leaf_commands() - covered == set()


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_hostile_input_gets_one_line_naming_the_problem(hostile, argv, words, capsys, monkeypatch):
    monkeypatch.chdir(hostile)  # nothing a case writes by accident lands in the repository
    args = [a.format(d=hostile) for a in argv]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse
        code = exc.code
    # any other exception escapes here: that is the traceback a user would have seen
    err = capsys.readouterr().err
    assert code not in (0, None), f"exit {code} for {args}"
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    problem = [ln for ln in lines if "error" in ln.lower()]
    assert len(problem) == 1, f"expected one error line, got:\n{err}"
    for word in words:
        assert word.format(d=hostile) in problem[0], f"{word!r} not named in: {problem[0]}"
    assert sys.exc_info() == (None, None, None)
