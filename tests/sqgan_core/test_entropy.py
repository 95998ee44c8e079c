import numpy as np
import pytest

from sqgan_core.entropy import (
    IndexPrior,
    RangeDecoder,
    RangeEncoder,
    bytes_to_words,
    decode_mask,
    encode_mask,
    mask_information_bits,
    words_to_bytes,
)


def _roundtrip_mask(keep):
    enc = RangeEncoder()
    encode_mask(enc, keep, int(keep.sum()))
    data = words_to_bytes(enc.get_compressed())
    return decode_mask(RangeDecoder(bytes_to_words(data)), keep.size, int(keep.sum())), data


@pytest.mark.parametrize("k, n", [(1, 0), (1, 1), (512, 0), (512, 512), (512, 1), (512, 256), (512, 511), (7, 3)])
def test_mask_roundtrip_and_cost(k, n):
    rng = np.random.default_rng(k * 1000 + n)
    keep = np.zeros(k, dtype=bool)
    keep[rng.choice(k, n, replace=False)] = True
    out, data = _roundtrip_mask(keep)
    assert np.array_equal(out, keep)
    # enumerative coding: log2 C(K, N) plus at most one coder word of overhead, never more than K bits
    assert 8 * len(data) <= mask_information_bits(k, n) + 32 + 8
    if n in (0, k):
        assert data == b""  # fully determined masks cost nothing


def test_mask_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="kept tokens"):
        encode_mask(RangeEncoder(), np.array([True, False]), 2)


def test_garbage_decodes_to_exactly_n_kept_or_is_detected():
    rng = np.random.default_rng(1)
    decoded = 0
    for _ in range(200):
        words = rng.integers(0, 2 ** 32, size=rng.integers(0, 40), dtype=np.uint64).astype(np.uint32)
        k = int(rng.integers(1, 600))
        n = int(rng.integers(0, k + 1))
        try:
            keep = decode_mask(RangeDecoder(words), k, n)
        except AssertionError:  # constriction's "invalid compressed data"; read_frame turns it into FrameError
            continue
        decoded += 1
        assert keep.sum() == n
    assert decoded > 100


def test_index_prior_roundtrip_and_skew_saves_bits():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(1024, 0.05))  # skewed usage, as after training
    symbols = rng.choice(1024, size=300, p=p)
    for prior in (IndexPrior(p), IndexPrior.uniform(1024)):
        enc = RangeEncoder()
        prior.encode(enc, symbols)
        data = words_to_bytes(enc.get_compressed())
        assert np.array_equal(prior.decode(RangeDecoder(bytes_to_words(data)), symbols.size), symbols)
    assert IndexPrior(p).information_bits(symbols) < 0.8 * IndexPrior.uniform(1024).information_bits(symbols)
    assert IndexPrior.uniform(1024).information_bits(symbols) == pytest.approx(3000)


@pytest.mark.parametrize("bad", [np.array([1.0]), np.array([0.5, -0.1, 0.6]), np.array([np.nan, 1.0]), np.zeros(4)])
def test_index_prior_validates(bad):
    with pytest.raises(ValueError):
        IndexPrior(bad)
