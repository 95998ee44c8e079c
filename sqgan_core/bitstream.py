"""The SQ-GAN frame format (version 1): a 15-byte header and the coded masks and indices.

    offset size field
    0      2    magic "SQ"
    2      1    version (high nibble) | coding mode (low nibble: 0 entropy-coded, 1 raw)
    3      2    model id (uint16; the decoder must hold the same weights and priors)
    5      1    H / 16 (1..255)
    6      1    W / 16 (1..255)
    7      1    padding added to reach multiples of 16: rows (high nibble) | columns (low nibble)
    8      2    N_x, kept image tokens (uint16)
    10     2    N_s, kept semantic tokens (uint16)
    12     1    log2 J_x (high nibble) | log2 J_s (low nibble)
    13     2    CRC-16/CCITT over bytes 0..12 and the payload
    15     ...  payload

Payload order: mask_s, mask_x, indices_s, indices_x (the semantic layer first). Entropy mode: one
range-coded stream (masks enumeratively, indices under the model's priors). Raw mode: masks as K bits
each and indices as log2 J bits each, MSB first: exactly the paper's bound. The encoder writes
whichever is shorter, so a frame never exceeds K(2 + log2 J (m_x + m_s)) bits + 15 header bytes +
< 1 byte of padding, whatever the priors. All integers are big-endian.
"""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

from sqgan_core.entropy import (
    IndexPrior,
    PriorSet,
    RangeDecoder,
    RangeEncoder,
    bytes_to_words,
    decode_mask,
    encode_mask,
    prior_for,
    words_to_bytes,
)
from sqgan_core.errors import InputError

MAGIC = b"SQ"
VERSION = 1
DOWNSAMPLE = 16  # token grid = image / 16 in format version 1
MODE_ENTROPY, MODE_RAW = 0, 1
_HEAD = struct.Struct(">2sBHBBBHHB")  # everything before the CRC
HEADER_SIZE = _HEAD.size + 2
MASKED = -1


class FrameError(InputError, ValueError):
    """A byte string that is not a decodable SQ-GAN frame for this decoder; the message says why."""


@dataclass(frozen=True)
class FrameHeader:
    model_id: int
    grid_h: int
    grid_w: int
    pad_h: int
    pad_w: int
    n_x: int
    n_s: int
    log2_jx: int
    log2_js: int
    mode: int = MODE_ENTROPY

    @property
    def num_tokens(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def height(self) -> int:
        return self.grid_h * DOWNSAMPLE - self.pad_h

    @property
    def width(self) -> int:
        return self.grid_w * DOWNSAMPLE - self.pad_w

    @property
    def m_x(self) -> float:
        return self.n_x / self.num_tokens

    @property
    def m_s(self) -> float:
        return self.n_s / self.num_tokens

    @property
    def bound_bits(self) -> int:
        """The paper's bound for this frame: K (2 + log2 J (m_x + m_s)) = 2K + log2 J (N_x + N_s)."""
        return 2 * self.num_tokens + self.log2_jx * self.n_x + self.log2_js * self.n_s

    @property
    def raw_payload_bytes(self) -> int:
        return -(-self.bound_bits // 8)

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise FrameError(msg)

        need(1 <= self.grid_h <= 255 and 1 <= self.grid_w <= 255,
             f"token grid {self.grid_h}x{self.grid_w} outside 1..255 per side")
        need(0 <= self.pad_h < DOWNSAMPLE and 0 <= self.pad_w < DOWNSAMPLE, "padding must be 0..15 per side")
        need(self.height >= 1 and self.width >= 1, f"image size {self.height}x{self.width} is empty")
        need(0 <= self.n_x <= self.num_tokens and 0 <= self.n_s <= self.num_tokens,
             f"kept tokens N_x={self.n_x}, N_s={self.n_s} exceed K={self.num_tokens}")
        need(1 <= self.log2_jx <= 15 and 1 <= self.log2_js <= 15, "codebook sizes must be 2^1..2^15")
        need(self.mode in (MODE_ENTROPY, MODE_RAW), f"unknown coding mode {self.mode}")
        need(0 <= self.model_id <= 0xFFFF, "model id must fit 16 bits")


@dataclass(frozen=True)
class Frame:
    header: FrameHeader
    indices_x: np.ndarray  # (K,) int64, MASKED where dropped
    indices_s: np.ndarray


def frame_stats(header: FrameHeader, frame_bytes: int) -> dict[str, float | int | str]:
    """Sizes against the paper's bound, per pixel of the original (unpadded) image."""
    pixels = header.height * header.width
    bits = 8 * frame_bytes
    return {
        "height": header.height,
        "width": header.width,
        "mx": header.m_x,
        "ms": header.m_s,
        "n_x": header.n_x,
        "n_s": header.n_s,
        "tokens": header.num_tokens,
        "mode": "entropy" if header.mode == MODE_ENTROPY else "raw",
        "model_id": f"{header.model_id:04x}",
        "bytes": frame_bytes,
        "bits": bits,
        "header_bits": 8 * HEADER_SIZE,
        "payload_bits": bits - 8 * HEADER_SIZE,
        "bpp": bits / pixels,
        "payload_bpp": (bits - 8 * HEADER_SIZE) / pixels,
        "bound_bits": header.bound_bits,
        "bound_bpp": header.bound_bits / pixels,
    }


def _bits_msb(values: np.ndarray, width: int) -> np.ndarray:
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)


def _from_bits_msb(bits: np.ndarray, width: int) -> np.ndarray:
    weights = (1 << np.arange(width - 1, -1, -1, dtype=np.int64))
    return (bits.reshape(-1, width).astype(np.int64) * weights).sum(1)


def _check_stream(indices: np.ndarray, k: int, n: int, log2_j: int, name: str) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size != k:
        raise ValueError(f"{name}: {indices.size} indices for a grid of {k} tokens")
    kept = indices[indices != MASKED]
    if kept.size != n:
        raise ValueError(f"{name}: {kept.size} kept tokens, header says {n}")
    if kept.size and (kept.min() < 0 or kept.max() >= 1 << log2_j):
        raise ValueError(f"{name}: index outside 0..{(1 << log2_j) - 1}")
    return indices


def write_frame(header: FrameHeader, indices_x: np.ndarray, indices_s: np.ndarray,
                prior_x: IndexPrior | PriorSet, prior_s: IndexPrior | PriorSet) -> bytes:
    """Code one frame; picks the entropy-coded payload unless the raw one is shorter."""
    header.validate()
    k = header.num_tokens
    ix = _check_stream(indices_x, k, header.n_x, header.log2_jx, "image stream")
    is_ = _check_stream(indices_s, k, header.n_s, header.log2_js, "semantic stream")
    chosen = []
    for prior, log2_j, name in ((prior_x, header.log2_jx, "image"), (prior_s, header.log2_js, "semantic")):
        p = prior_for(prior, log2_j)
        if p is None:
            raise ValueError(f"{name}: the model has no prior for a codebook of {1 << log2_j} codes")
        chosen.append(p)
    prior_x, prior_s = chosen

    enc = RangeEncoder()
    encode_mask(enc, is_ != MASKED, header.n_s)
    encode_mask(enc, ix != MASKED, header.n_x)
    prior_s.encode(enc, is_[is_ != MASKED])
    prior_x.encode(enc, ix[ix != MASKED])
    payload = words_to_bytes(enc.get_compressed())
    mode = MODE_ENTROPY
    if len(payload) > header.raw_payload_bytes:
        bits = np.concatenate([
            (is_ != MASKED).astype(np.uint8), (ix != MASKED).astype(np.uint8),
            _bits_msb(is_[is_ != MASKED], header.log2_js), _bits_msb(ix[ix != MASKED], header.log2_jx),
        ])
        payload = np.packbits(bits).tobytes()
        mode = MODE_RAW
    head = _HEAD.pack(MAGIC, (VERSION << 4) | mode, header.model_id, header.grid_h, header.grid_w,
                      (header.pad_h << 4) | header.pad_w, header.n_x, header.n_s,
                      (header.log2_jx << 4) | header.log2_js)
    crc = binascii.crc_hqx(payload, binascii.crc_hqx(head, 0xFFFF))
    return head + struct.pack(">H", crc) + payload


def read_header(data: bytes) -> FrameHeader:
    """Parse and check the header and the CRC; needs no model (used by `sqgan info`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError(f"a frame must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise FrameError(f"truncated frame: {len(data)} bytes, the header alone needs {HEADER_SIZE}")
    magic, vm, model_id, gh, gw, pad, nx, ns, logj = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise FrameError(f"not an SQ-GAN frame (magic {magic!r}, expected {MAGIC!r})")
    if vm >> 4 != VERSION:
        raise FrameError(f"unsupported frame format version {vm >> 4} (this decoder reads version {VERSION})")
    (crc,) = struct.unpack_from(">H", data, _HEAD.size)
    if binascii.crc_hqx(data[HEADER_SIZE:], binascii.crc_hqx(data[:_HEAD.size], 0xFFFF)) != crc:
        raise FrameError("CRC mismatch: the frame is corrupted or truncated")
    header = FrameHeader(model_id, gh, gw, pad >> 4, pad & 15, nx, ns, logj >> 4, logj & 15, vm & 15)
    header.validate()
    return header


def _sizes(prior: IndexPrior | PriorSet) -> str:
    return ", ".join(map(str, prior.sizes if isinstance(prior, PriorSet) else [prior.num_symbols]))


def read_frame(data: bytes, prior_x: IndexPrior | PriorSet, prior_s: IndexPrior | PriorSet, *, model_id: int | None = None,
               max_tokens: int | None = None) -> Frame:
    """Decode a frame into index maps. Every failure is a FrameError; the work is bounded by
    `max_tokens` (checked before any payload decoding or allocation that scales with the frame)."""
    header = read_header(data)
    if model_id is not None and header.model_id != model_id:
        raise FrameError(f"frame was encoded by model {header.model_id:04x}, this decoder holds model {model_id:04x}")
    if max_tokens is not None and header.num_tokens > max_tokens:
        raise FrameError(f"frame declares {header.height}x{header.width} ({header.num_tokens} tokens), "
                         f"above this decoder's limit of {max_tokens} tokens (raise it with --max-tokens / "
                         f"max_tokens if the frame is trusted)")
    px, ps = prior_for(prior_x, header.log2_jx), prior_for(prior_s, header.log2_js)
    if px is None or ps is None:
        raise FrameError(f"frame codebooks 2^{header.log2_jx}/2^{header.log2_js} are not among the model's "
                         f"({_sizes(prior_x)} / {_sizes(prior_s)} codes)")
    prior_x, prior_s = px, ps
    payload = bytes(data[HEADER_SIZE:])
    k = header.num_tokens
    if header.mode == MODE_RAW:
        if len(payload) != header.raw_payload_bytes:
            raise FrameError(f"raw payload is {len(payload)} bytes, header implies {header.raw_payload_bytes}")
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
        keep_s, keep_x = bits[:k].astype(bool), bits[k:2 * k].astype(bool)
        if keep_s.sum() != header.n_s or keep_x.sum() != header.n_x:
            raise FrameError("raw masks disagree with the kept-token counts in the header")
        off = 2 * k
        vs = _from_bits_msb(bits[off:off + header.n_s * header.log2_js], header.log2_js)
        off += header.n_s * header.log2_js
        vx = _from_bits_msb(bits[off:off + header.n_x * header.log2_jx], header.log2_jx)
    else:
        if len(payload) > header.raw_payload_bytes:
            raise FrameError(f"entropy payload of {len(payload)} bytes exceeds the raw size "
                             f"{header.raw_payload_bytes}: no valid encoder writes that")
        try:
            dec = RangeDecoder(bytes_to_words(payload))
            keep_s = decode_mask(dec, k, header.n_s)
            keep_x = decode_mask(dec, k, header.n_x)
            vs = prior_s.decode(dec, header.n_s)
            vx = prior_x.decode(dec, header.n_x)
        except FrameError:
            raise
        except Exception as exc:  # noqa: BLE001 - constriction raises assorted errors on garbage
            raise FrameError(f"entropy-coded payload does not decode: {exc}") from None
    ix = np.full(k, MASKED, dtype=np.int64)
    is_ = np.full(k, MASKED, dtype=np.int64)
    ix[keep_x] = vx
    is_[keep_s] = vs
    return Frame(header, ix, is_)
