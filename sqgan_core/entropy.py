"""Entropy models for the two things a frame carries: keep masks and code indices (constriction).

Masks: the number of kept tokens N is in the header, so the mask is one of C(K, N) patterns. Coding
each position with P(kept) = (ones left) / (positions left) is exactly enumerative coding: it costs
log2 C(K, N) <= K * h2(N/K) <= K bits, the paper's per-position bit, and nothing for m = 0 or 1.

Indices: a categorical prior over the J codes, stored with the model (uniform until the training issue
fits it from code usage; then skewed usage is what makes the frame smaller than the bound).
"""
from __future__ import annotations

import numpy as np

try:
    import constriction
except ImportError as exc:  # pragma: no cover - constriction is a hard dependency of the bitstream
    raise ImportError("the SQ-GAN bitstream needs the 'constriction' package (pip install constriction)") from exc

_MODEL = constriction.stream.model
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder
_BERNOULLI = _MODEL.Bernoulli(perfect=False)


class IndexPrior:
    """A fixed categorical distribution over J code indices, turned into a constriction model once."""

    def __init__(self, probabilities: np.ndarray) -> None:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if p.size < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("index prior must be a finite, non-negative vector with a positive sum")
        self.probabilities = p / p.sum()
        self.num_symbols = p.size
        self._model = _MODEL.Categorical(self.probabilities, perfect=False)

    @classmethod
    def uniform(cls, num_symbols: int) -> "IndexPrior":
        return cls(np.full(num_symbols, 1.0 / num_symbols))

    def encode(self, encoder: RangeEncoder, symbols: np.ndarray) -> None:
        if symbols.size:
            encoder.encode(symbols.astype(np.int32, copy=False), self._model)

    def decode(self, decoder: RangeDecoder, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        return decoder.decode(self._model, count).astype(np.int64)

    def information_bits(self, symbols: np.ndarray) -> float:
        """Ideal code length of `symbols` under this prior (what the range coder approaches)."""
        return float(-np.log2(self.probabilities[symbols]).sum())


class PriorSet:
    """One stream's priors, one per codebook size the model can send: the full codebook and its
    k-means reductions (sqgan_core.codebooks). The frame header's log2 J picks the one to use."""

    def __init__(self, priors: "dict[int, IndexPrior] | IndexPrior") -> None:
        if isinstance(priors, IndexPrior):
            priors = {priors.num_symbols.bit_length() - 1: priors}
        for bits, p in priors.items():
            if p.num_symbols != 1 << bits:
                raise ValueError(f"prior for 2^{bits} codes has {p.num_symbols} symbols")
        self.priors = dict(sorted(priors.items()))
        self.full = self.priors[max(self.priors)]
        self.num_symbols = self.full.num_symbols  # the full codebook's, as an IndexPrior reports it

    def for_bits(self, log2_j: int) -> IndexPrior | None:
        return self.priors.get(log2_j)

    @property
    def sizes(self) -> list[int]:
        return [1 << b for b in self.priors]


def prior_for(prior: "IndexPrior | PriorSet", log2_j: int) -> IndexPrior | None:
    """The prior that codes indices of a 2^log2_j codebook, or None when the model has no such size."""
    if isinstance(prior, PriorSet):
        return prior.for_bits(log2_j)
    return prior if prior.num_symbols == 1 << log2_j else None


def _mask_probabilities(keep: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-position P(kept) of the enumerative model, and which positions are not already determined."""
    k = keep.size
    ones_before = np.concatenate(([0], np.cumsum(keep[:-1], dtype=np.int64))) if k else np.zeros(0, np.int64)
    ones_left = n - ones_before
    positions_left = k - np.arange(k)
    coded = (ones_left > 0) & (ones_left < positions_left)
    return ones_left / positions_left, coded


def encode_mask(encoder: RangeEncoder, keep: np.ndarray, n: int) -> None:
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    if int(keep.sum()) != n:
        raise ValueError(f"mask has {int(keep.sum())} kept tokens but N = {n}")
    p, coded = _mask_probabilities(keep, n)
    if coded.any():
        encoder.encode(keep[coded].astype(np.int32), _BERNOULLI, p[coded])


def decode_mask(decoder: RangeDecoder, k: int, n: int) -> np.ndarray:
    """Inverse of encode_mask; always returns exactly n kept positions, whatever the input bytes."""
    keep = np.zeros(k, dtype=bool)
    ones_left = n
    for i in range(k):
        positions_left = k - i
        if ones_left == 0:
            break
        if ones_left == positions_left:
            keep[i:] = True
            break
        bit = int(decoder.decode(_BERNOULLI, np.array([ones_left / positions_left]))[0])
        keep[i] = bool(bit)
        ones_left -= bit
    return keep


def mask_information_bits(k: int, n: int) -> float:
    """log2 C(K, N): the exact cost of the enumerative mask code (before coder overhead)."""
    from math import lgamma, log

    return (lgamma(k + 1) - lgamma(n + 1) - lgamma(k - n + 1)) / log(2)


def words_to_bytes(words: np.ndarray) -> bytes:
    """Range-coder words -> big-endian bytes with trailing zero bytes stripped (the decoder reads
    missing words as zeros, so they carry no information)."""
    return np.asarray(words, dtype=">u4").tobytes().rstrip(b"\0")


def bytes_to_words(data: bytes) -> np.ndarray:
    padded = data + b"\0" * (-len(data) % 4)
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)
