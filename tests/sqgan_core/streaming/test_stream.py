import numpy as np
import pytest

from sqgan_core.streaming.stream import ModelSpecError, StreamDecoder, StreamEncoder, fit_size, load_codec
from sqgan_core.streaming.assembler import FrameAssembler


def test_model_spec_must_be_explicit(monkeypatch, tmp_path):
    import sqgan_core.streaming.stream as s

    monkeypatch.setattr(s, "default_checkpoint", lambda: None)
    with pytest.raises(ModelSpecError, match="untrained:small"):
        load_codec("")
    with pytest.raises(ModelSpecError, match="not found"):
        load_codec(str(tmp_path / "missing.pt"))
    codec, untrained = load_codec("untrained:small")
    assert untrained and codec.metadata["untrained"]


@pytest.mark.parametrize("h,w,limit", [(256, 512, 2048), (1080, 1920, 2048), (3000, 40, 8192), (5, 5000, 512)])
def test_fit_size_respects_token_limits(h, w, limit):
    fh, fw = fit_size(h, w, limit)
    gh, gw = -(-fh // 16), -(-fw // 16)
    assert gh * gw <= limit and gh <= 255 and gw <= 255
    if -(-h // 16) * -(-w // 16) <= limit and -(-w // 16) <= 255:
        assert (fh, fw) == (h, w)
    else:
        assert abs(fh / fw - h / w) / (h / w) < 0.1


def _roundtrip(codec, shape, **kw):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    lab = rng.integers(0, 19, shape).astype(np.uint8)
    enc = StreamEncoder(codec, 5, first_seq=65535, **kw)
    out = enc.encode(img, lab, (7, 8), "cam", want_frame=True)
    asm = FrameAssembler(codec.prior_x, codec.prior_s, codec.model_id)
    frames = [f for p in out.packets for f in asm.push(p, 0.0)]
    assert len(frames) == 1 and frames[0].seq == 65535 and enc.seq == 0
    return img, lab, out, StreamDecoder(codec).decode(frames[0])


def test_packets_decode_like_the_plain_codec(small_codec):
    img, lab, out, dec = _roundtrip(small_codec, (100, 70))
    direct = small_codec.decode(out.frame)  # the CompressedImage payload is a v1 frame of the same tokens
    assert np.array_equal(dec.image, direct.image) and np.array_equal(dec.labels, direct.labels)
    assert dec.image.shape == (100, 70, 3) and all(len(p) <= 256 for p in out.packets)
    assert out.bpp == pytest.approx(8 * sum(map(len, out.packets)) / (100 * 70))


def test_oversized_camera_is_resized_and_restored(small_codec):
    img, lab, out, dec = _roundtrip(small_codec, (200, 400), max_tokens=64)
    assert out.resized and dec.image.shape == (200, 400, 3) and dec.labels.shape == (200, 400)


def test_rates_change_at_run_time_and_are_validated(small_codec):
    enc = StreamEncoder(small_codec, 1)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lab = np.zeros((64, 64), np.uint8)
    a = enc.encode(img, lab)
    enc.set_rates(1.0, 1.0)
    b = enc.encode(img, lab)
    assert (a.n_x, b.n_x) == (8, 16) and b.bytes_total > a.bytes_total
    with pytest.raises(ValueError, match="m_x"):
        enc.set_rates(1.5, 0.5)
