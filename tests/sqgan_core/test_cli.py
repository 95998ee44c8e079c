"""The `sqgan` command as a user runs it: a real subprocess through the installed console script."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sqgan_core.cli import main
from sqgan_core.imageio import read_labels, read_rgb, write_labels, write_rgb

SQGAN = [str(Path(sys.executable).with_name("sqgan"))]


def run(*args, check=True):
    p = subprocess.run(SQGAN + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    if check and p.returncode:
        raise AssertionError(f"sqgan {args} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (80, 144, 3), dtype=np.uint8)
    lab = np.kron(rng.integers(0, 19, (5, 9)), np.ones((16, 16), int)).astype(np.uint8)
    write_rgb(d / "img.png", img)
    write_labels(d / "lab.png", lab)
    return d, img, lab


def test_encode_info_decode_roundtrip(inputs):
    d, img, lab = inputs
    out = run("encode", d / "img.png", "--labels", d / "lab.png", "--mx", 0.5, "--ms", 0.25,
              "-o", d / "f.sqg", "--untrained", "--json")
    enc_stats = json.loads(out.stdout)
    info = json.loads(run("info", d / "f.sqg", "--json").stdout)
    for key in ("height", "width", "mx", "ms", "bits", "bpp", "bound_bits", "bound_bpp"):
        assert key in info
    assert info == enc_stats
    assert (info["height"], info["width"]) == (80, 144)
    assert info["mx"] == pytest.approx(22 / 45) and info["ms"] == pytest.approx(11 / 45)  # floor(m * 45)
    assert info["bits"] == 8 * (d / "f.sqg").stat().st_size
    run("decode", d / "f.sqg", "-o", d / "r.png", "--labels-out", d / "s.png", "--untrained")
    assert read_rgb(d / "r.png").shape == (80, 144, 3)
    s_hat = read_labels(d / "s.png")
    assert s_hat.shape == (80, 144) and set(np.unique(s_hat)) <= set(range(19)) | {255}


def test_human_readable_info(inputs):
    d, _, _ = inputs
    run("encode", d / "img.png", "--labels", d / "lab.png", "-o", d / "g.sqg", "--untrained")
    out = run("info", d / "g.sqg").stdout
    assert "paper bound" in out and "bpp" in out


def test_untrained_model_is_never_used_silently(inputs):
    d, _, _ = inputs
    p = run("encode", d / "img.png", "--labels", d / "lab.png", "-o", d / "x.sqg", check=False)
    from sqgan_core.checkpoint import default_checkpoint
    if default_checkpoint() is None:
        assert p.returncode == 2 and "--untrained" in p.stderr and "Traceback" not in p.stderr
        assert not (d / "x.sqg").exists()
    else:
        assert p.returncode == 0


@pytest.mark.parametrize("argv, message", [
    (["encode", "{d}/missing.png", "--labels", "{d}/lab.png", "-o", "{d}/y.sqg", "--untrained"], "no such image"),
    (["encode", "{d}/img.png", "--labels", "{d}/img.png", "-o", "{d}/y.sqg", "--untrained"], "palette"),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "--mx", "2", "-o", "{d}/y.sqg", "--untrained"], "[0, 1]"),
    (["decode", "{d}/img.png", "-o", "{d}/y.png", "--untrained"], "magic"),
    (["info", "{d}/nothing.sqg"], "cannot read"),
    (["decode", "{d}/f.sqg", "-o", "{d}/y.png", "--model", "{d}/nope.pt"], "checkpoint not found"),
    (["encode", "{d}/img.png", "--labels", "{d}/lab.png", "-o", "{d}/y.sqg", "--untrained", "--config", "huge"],
     "unknown model config"),
])
def test_errors_are_clear_and_traceback_free(inputs, argv, message):
    d, _, _ = inputs
    if not (d / "f.sqg").exists():
        test_encode_info_decode_roundtrip(inputs)
    p = run(*[a.format(d=d) for a in argv], check=False)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for cmd in ("encode", "decode", "info", "bench"):
        assert cmd in text


def test_frame_from_a_different_model_is_refused(inputs, tmp_path):
    d, _, _ = inputs
    from sqgan_core.checkpoint import build_untrained, save_checkpoint
    save_checkpoint(tmp_path / "other.pt", build_untrained("small", seed=9))
    run("encode", d / "img.png", "--labels", d / "lab.png", "-o", tmp_path / "o.sqg", "--model", tmp_path / "other.pt")
    p = run("decode", tmp_path / "o.sqg", "-o", tmp_path / "o.png", "--untrained", check=False)
    assert p.returncode == 2 and "encoded by model" in p.stderr


def test_bench_codec_prints_json():
    p = run("bench", "codec", "--untrained", "--height", "64", "--width", "128", "--iters", "2", "--warmup", "1",
            "--json")
    r = json.loads(p.stdout)
    cpu = r["devices"]["cpu"]
    for stage in ("encoders", "samm_vq", "entropy_encode", "entropy_decode", "adm", "decoders"):
        assert cpu["stages_ms"][stage]["p50"] > 0 and cpu["stages_ms"][stage]["p95"] >= cpu["stages_ms"][stage]["p50"]
    assert cpu["end_to_end_ms"]["p50"] > 0
    assert r["params"]["total"] > r["params"]["image_decoder"] > 0
    assert r["untrained"] is True and r["config"] == "small"
    assert "cuda" in r["devices"]  # either timings or {"available": false}


@pytest.mark.parametrize("argv, flag", [
    (["encode", "x.png", "--labels", "y.png", "--mx", "-1", "-o", "f.sqg"], "--mx"),
    (["encode", "x.png", "--labels", "y.png", "--ms", "1.5", "-o", "f.sqg"], "--ms"),
    (["bench", "codec", "--mx", "2"], "--mx"),
    (["bench", "codec", "--iters", "0"], "--iters"),
    (["eval", "--grid", "2,2"], "--grid"),
])
def test_out_of_range_arguments_name_the_flag_before_any_work(argv, flag, capsys, monkeypatch):
    """argparse rejects them (exit 2) while parsing: no model loads, no frame renders, no traceback."""
    from sqgan_core.cli import main
    from sqgan_core.codec import Codec

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(Codec, "from_checkpoint", classmethod(no_model))
    monkeypatch.setattr(Codec, "untrained", classmethod(no_model))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


def test_bad_output_paths_are_refused_before_any_work(inputs, tmp_path, capsys, monkeypatch):
    from sqgan_core.codec import Codec

    d, _, _ = inputs
    assert main(["encode", str(d / "img.png"), "--labels", str(d / "lab.png"), "-o", str(tmp_path / "f.sqg"),
                 "--untrained"]) == 0
    capsys.readouterr()

    def no_model(*a, **k):
        raise AssertionError("the model ran before the output path was checked")

    monkeypatch.setattr(Codec, "from_checkpoint", classmethod(no_model))
    monkeypatch.setattr(Codec, "untrained", classmethod(no_model))
    (tmp_path / "afile").write_text("x")
    frame = str(tmp_path / "f.sqg")
    cases = [
        (["decode", frame, "-o", str(tmp_path / "x.unknownext")], "cannot write .unknownext"),
        (["decode", frame, "-o", str(tmp_path / "x.png"), "--labels-out", str(tmp_path / "l.jpg")], "losslessly"),
        (["decode", frame, "-o", str(tmp_path)], "is a directory"),
        (["decode", frame, "-o", str(tmp_path / "afile" / "x.png")], "is a file, not a folder"),
        (["decode", frame, "-o", str(tmp_path / "noext")], "no extension"),
        (["encode", str(d / "img.png"), "--labels", str(d / "lab.png"), "-o", str(tmp_path)], "is a directory"),
        (["segment", str(d / "img.png"), "-o", str(tmp_path / "seg")], "no extension"),
        (["segment", str(d / "img.png"), "-o", str(tmp_path / "seg.jpg")], "losslessly"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_a_rate_rounded_to_no_tokens_is_said(tmp_path, capsys):
    write_rgb(tmp_path / "one.png", np.zeros((1, 1, 3), np.uint8))
    write_labels(tmp_path / "one_l.png", np.zeros((1, 1), np.uint8))
    assert main(["encode", str(tmp_path / "one.png"), "--labels", str(tmp_path / "one_l.png"), "--mx", "0.5",
                 "--ms", "1", "-o", str(tmp_path / "one.sqg"), "--untrained", "--json"]) == 0
    out = capsys.readouterr()
    assert "--mx 0.5 keeps floor(0.5 x 1) = 0" in out.err and "--ms" not in out.err
    assert json.loads(out.out)["n_x"] == 0


def test_a_forged_huge_frame_is_refused_at_once(tmp_path, capsys):
    """15 bytes that declare a 64x128 token grid cost the decoder 32 s and 1.5 GB when the limit was
    8192 tokens; the default limit (2048) refuses them before any work."""
    from sqgan_core.bitstream import FrameHeader, write_frame
    from sqgan_core.codec import DEFAULT_MAX_TOKENS, Codec

    codec = Codec.untrained("small")
    header = FrameHeader(codec.model_id, 64, 128, 0, 0, 0, 0, 10, 10)
    data = write_frame(header, np.full(64 * 128, -1), np.full(64 * 128, -1), codec.prior_x, codec.prior_s)
    (tmp_path / "forged.sqg").write_bytes(data)
    assert len(data) <= 32 and DEFAULT_MAX_TOKENS == 2048
    assert main(["decode", str(tmp_path / "forged.sqg"), "-o", str(tmp_path / "x.png"), "--untrained"]) == 2
    err = capsys.readouterr().err
    assert "8192 tokens" in err and "limit of 2048" in err and "--max-tokens" in err


def test_segment_refuses_an_image_above_its_pixel_bound(tmp_path, capsys):
    write_rgb(tmp_path / "big.png", np.zeros((1100, 2000, 3), np.uint8))
    assert main(["segment", str(tmp_path / "big.png"), "-o", str(tmp_path / "l.png")]) == 2
    err = capsys.readouterr().err
    assert "2000x1100" in err and "--max-pixels" in err and not (tmp_path / "l.png").exists()
