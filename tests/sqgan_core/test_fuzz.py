"""Mutation fuzzing of the frame parser: every input either decodes into a consistent frame or raises
FrameError; no other exception, no hang (pytest-timeout), no allocation beyond max_tokens."""
import binascii
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqgan_core.bitstream import HEADER_SIZE, MASKED, FrameError, FrameHeader, read_frame, write_frame
from sqgan_core.entropy import IndexPrior

U = IndexPrior.uniform(1024)
SKEWED = IndexPrior(np.r_[np.full(16, 1.0), np.full(1008, 1e-4)])


def _frame(gh, gw, m, seed, prior):
    rng = np.random.default_rng(seed)
    k = gh * gw
    n = int(m * k)
    ix = np.full(k, MASKED)
    is_ = np.full(k, MASKED)
    ix[rng.choice(k, n, replace=False)] = rng.integers(0, 16 if prior is SKEWED else 1024, n)
    is_[rng.choice(k, n, replace=False)] = rng.integers(0, 1024, n)
    return write_frame(FrameHeader(7, gh, gw, 3, 5, n, n, 10, 10), ix, is_, prior, U), prior


BASES = [_frame(16, 32, 0.5, 0, U), _frame(4, 8, 0.2, 1, SKEWED), _frame(16, 32, 1.0, 2, SKEWED),
         _frame(2, 3, 0.0, 3, U), _frame(8, 8, 0.7, 4, IndexPrior(np.r_[1.0, np.full(1023, 1e-9)]))]


def _resign(d: bytes) -> bytes:
    if len(d) < HEADER_SIZE:
        return d
    crc = binascii.crc_hqx(d[HEADER_SIZE:], binascii.crc_hqx(d[:13], 0xFFFF))
    return d[:13] + struct.pack(">H", crc) + d[HEADER_SIZE:]


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10 ** 6), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10 ** 6), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10 ** 6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10 ** 6), st.integers(1, 64)),
    st.tuples(st.just("append"), st.integers(1, 4096), st.integers(0, 255)),
)


def _apply(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        p = pos % (len(b) + 1)
        if op == "flip" and b:
            b[p % len(b)] ^= 1 << arg
        elif op == "set" and b:
            b[p % len(b)] = arg
        elif op == "truncate":
            del b[p:]
        elif op == "insert":
            b.insert(p, arg)
        elif op == "delete":
            del b[p:p + arg]
        elif op == "append":
            b += bytes([arg]) * pos
    return bytes(b)


def _check(data: bytes, prior: IndexPrior) -> None:
    try:
        f = read_frame(data, prior, U, max_tokens=4096)
    except FrameError:
        return
    k = f.header.num_tokens
    assert f.indices_x.shape == f.indices_s.shape == (k,)
    assert int((f.indices_x != MASKED).sum()) == f.header.n_x
    assert int((f.indices_s != MASKED).sum()) == f.header.n_s
    assert f.indices_x.max(initial=-1) < 1024 and f.indices_s.max(initial=-1) < 1024


@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(mutation, min_size=1, max_size=4),
       resign=st.booleans())
def test_ten_thousand_mutated_frames(base, ops, resign):
    """resign=True recomputes the CRC so the mutation reaches the header checks and the payload decoder."""
    data, prior = BASES[base]
    bad = _apply(data, ops)
    _check(_resign(bad) if resign else bad, prior)


@settings(max_examples=2_000, deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=2048))
def test_random_bytes(blob):
    _check(blob, U)
    _check(_resign(b"SQ\x10" + blob), U)


def test_codec_decode_survives_resigned_garbage(small_codec):
    """Through the whole decoder (model included): FrameError or a well-formed image, nothing else."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (64, 96)).astype(np.uint8)
    data = small_codec.encode(img, lab, 0.5, 0.5).data
    decoded = 0
    for i in range(150):
        bad = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(0, len(bad))] = rng.integers(0, 256)
        try:
            out = small_codec.decode(_resign(bytes(bad)) if i % 2 else bytes(bad))
        except FrameError:
            continue
        decoded += 1
        assert out.image.dtype == np.uint8 and out.image.shape == (out.header.height, out.header.width, 3)
        assert out.labels.shape == out.image.shape[:2]
    assert decoded > 0  # some mutations keep a valid header and must decode, not crash
