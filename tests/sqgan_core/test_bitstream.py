import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqgan_core.bitstream import (
    HEADER_SIZE,
    MASKED,
    MODE_ENTROPY,
    MODE_RAW,
    FrameError,
    FrameHeader,
    frame_stats,
    read_frame,
    read_header,
    write_frame,
)
from sqgan_core.entropy import IndexPrior

U1024 = IndexPrior.uniform(1024)


def make_frame(gh=16, gw=32, mx=0.5, ms=0.5, seed=0, prior_x=U1024, prior_s=U1024, pad=(0, 0), model_id=0x1234,
               p_x=None):
    rng = np.random.default_rng(seed)
    k = gh * gw
    nx, ns = int(mx * k), int(ms * k)
    jx, js = prior_x.num_symbols, prior_s.num_symbols
    ix = np.full(k, MASKED)
    is_ = np.full(k, MASKED)
    ix[rng.choice(k, nx, replace=False)] = rng.choice(jx, nx, p=p_x)
    is_[rng.choice(k, ns, replace=False)] = rng.integers(0, js, ns)
    h = FrameHeader(model_id, gh, gw, pad[0], pad[1], nx, ns, jx.bit_length() - 1, js.bit_length() - 1)
    return h, ix, is_, write_frame(h, ix, is_, prior_x, prior_s)


def test_roundtrip_is_bit_exact():
    h, ix, is_, data = make_frame()
    f = read_frame(data, U1024, U1024, model_id=0x1234)
    assert np.array_equal(f.indices_x, ix) and np.array_equal(f.indices_s, is_)
    assert f.header.n_x == h.n_x and f.header.height == 256 and f.header.width == 512


def test_same_input_gives_same_bytes():
    assert make_frame(seed=3)[3] == make_frame(seed=3)[3]


def test_header_is_at_most_16_bytes_and_padding_is_carried():
    h, _, _, data = make_frame(gh=3, gw=5, pad=(6, 15))
    assert HEADER_SIZE <= 16
    back = read_header(data)
    assert (back.height, back.width) == (3 * 16 - 6, 5 * 16 - 15)


def test_bits_grow_with_m():
    sizes = [len(make_frame(mx=m, ms=m, seed=1)[3]) for m in (0.0, 0.1, 0.2, 0.5, 0.8, 1.0)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    sx = [len(make_frame(mx=m, ms=0.3, seed=1)[3]) for m in (0.1, 0.4, 0.9)]
    assert sx == sorted(sx)


@settings(max_examples=300, deadline=None)
@given(gh=st.integers(1, 20), gw=st.integers(1, 40), mx=st.floats(0, 1), ms=st.floats(0, 1),
       seed=st.integers(0, 2 ** 16), skew=st.sampled_from(["uniform", "matched", "adversarial"]))
def test_size_never_exceeds_the_paper_bound(gh, gw, mx, ms, seed, skew):
    """Total bits <= K(2 + 10(m_x + m_s)) + header (<= 16 bytes), for any priors, even ones that fit
    the data badly (then the raw mode takes over)."""
    rng = np.random.default_rng(seed)
    p_x = None
    prior = U1024
    if skew != "uniform":
        p = np.maximum(rng.dirichlet(np.full(1024, 0.05)), 1e-9)
        p /= p.sum()
        prior = IndexPrior(p)
        # adversarial: symbols drawn from the prior's least likely codes
        p_x = p if skew == "matched" else (1 / p) / (1 / p).sum()
    h, ix, is_, data = make_frame(gh, gw, mx, ms, seed, prior_x=prior, p_x=p_x)
    k = gh * gw
    paper_bound = k * (2 + 10 * (h.n_x / k + h.n_s / k))
    assert h.bound_bits == pytest.approx(paper_bound)
    assert 8 * len(data) <= paper_bound + 8 * 16
    f = read_frame(data, prior, U1024)
    assert np.array_equal(f.indices_x, ix) and np.array_equal(f.indices_s, is_)


def test_raw_mode_is_used_when_entropy_coding_loses():
    rng = np.random.default_rng(0)
    p = np.full(1024, 1e-6)
    p[0] = 1.0  # the prior bets everything on code 0 ...
    prior = IndexPrior(p)
    h, ix, is_, data = make_frame(prior_x=prior, p_x=np.r_[0.0, np.full(1023, 1 / 1023)])  # ... which never occurs
    assert read_header(data).mode == MODE_RAW
    assert len(data) == HEADER_SIZE + h.raw_payload_bytes
    f = read_frame(data, prior, U1024)
    assert np.array_equal(f.indices_x, ix)
    _, _, _, good = make_frame(prior_x=prior, p_x=np.r_[1.0, np.zeros(1023)])
    # the image indices (256 x 10 bits = 320 bytes raw) now cost almost nothing
    assert read_header(good).mode == MODE_ENTROPY and len(good) < len(data) - 300


def test_stats_report_bits_and_bound():
    h, _, _, data = make_frame()
    s = frame_stats(read_header(data), len(data))
    assert s["bits"] == 8 * len(data) and s["bound_bits"] == 512 * (2 + 10)
    assert s["bound_bpp"] == pytest.approx((10 * (0.5 + 0.5) + 2) / 256)
    assert s["mx"] == 0.5 and s["ms"] == 0.5 and s["height"] == 256 and s["width"] == 512


def _resign(data: bytes) -> bytes:
    """Recompute the CRC so that a mutation reaches the checks behind it."""
    import binascii
    crc = binascii.crc_hqx(data[HEADER_SIZE:], binascii.crc_hqx(data[:13], 0xFFFF))
    return data[:13] + struct.pack(">H", crc) + data[HEADER_SIZE:]


def _with_header_byte(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data)
    b[offset] = value
    return _resign(bytes(b))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:10], "truncated"),
    (lambda d: b"", "truncated"),
    (lambda d: b"XX" + d[2:], "magic"),
    (lambda d: _with_header_byte(d, 2, 0x20), "version 2"),
    (lambda d: _with_header_byte(d, 2, 0x17), "coding mode"),
    (lambda d: d[:-1], "CRC"),
    (lambda d: d[:40] + bytes([d[40] ^ 0x10]) + d[41:], "CRC"),
    (lambda d: d[:5] + bytes([d[5] ^ 1]) + d[6:], "CRC"),
    (lambda d: _with_header_byte(d, 5, 0), "token grid"),
    (lambda d: _with_header_byte(d, 8, 0xFF), "exceed K"),
    (lambda d: _with_header_byte(d, 12, 0x0A), "codebook"),
])
def test_malformed_frames_raise_frame_error(mutate, message):
    _, _, _, data = make_frame()
    bad = mutate(data)
    assert bad != data
    with pytest.raises(FrameError, match=message):
        read_frame(bad, U1024, U1024, model_id=0x1234, max_tokens=8192)


def test_unknown_model_id_and_codebook_mismatch():
    _, _, _, data = make_frame(model_id=0xBEEF)
    with pytest.raises(FrameError, match="model beef"):
        read_frame(data, U1024, U1024, model_id=0x1234)
    with pytest.raises(FrameError, match="codebooks"):
        read_frame(data, IndexPrior.uniform(512), U1024)


def test_absurd_sizes_are_refused_before_decoding():
    _, _, _, data = make_frame(gh=200, gw=250, mx=0.01, ms=0.01)
    with pytest.raises(FrameError, match="limit of 8192 tokens"):
        read_frame(data, U1024, U1024, max_tokens=8192)


def test_raw_payload_length_is_checked():
    prior = IndexPrior(np.r_[1.0, np.full(1023, 1e-9)])
    _, _, _, data = make_frame(prior_x=prior, p_x=np.r_[0.0, np.full(1023, 1 / 1023)])
    assert read_header(data).mode == MODE_RAW
    with pytest.raises(FrameError, match="raw payload"):
        read_frame(_resign(data + b"\0"), prior, U1024)


def test_entropy_payload_longer_than_raw_is_refused():
    h, _, _, data = make_frame(mx=0.1, ms=0.1)
    with pytest.raises(FrameError, match="exceeds the raw size"):
        read_frame(_resign(data + b"\x55" * (h.raw_payload_bytes + 10)), U1024, U1024)


@pytest.mark.parametrize("bad", [None, "SQ...", 12345, [1, 2, 3]])
def test_non_bytes_input_is_a_frame_error(bad):
    with pytest.raises(FrameError, match="must be bytes"):
        read_header(bad)


def test_writer_refuses_inconsistent_streams():
    h, ix, is_, _ = make_frame()
    with pytest.raises(ValueError, match="kept tokens"):
        write_frame(h, np.full_like(ix, MASKED), is_, U1024, U1024)
    bad = ix.copy()
    bad[bad >= 0] = 5000
    with pytest.raises(ValueError, match="outside"):
        write_frame(h, bad, is_, U1024, U1024)
