"""Sender side: one coded frame -> info packets and interleaved index packets (`wire` format).

Index packet j of P carries the kept tokens j, j+P, j+2P, ... of both streams, so a lost packet is a
set of scattered tokens that concealment can predict from their neighbours, never a hole.
"""
from __future__ import annotations

import numpy as np

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.entropy import IndexPrior, PriorSet, RangeEncoder, encode_mask, prior_for, words_to_bytes
from sqgan_core.streaming.wire import (
    DEFAULT_PACKET_BYTES,
    FrameInfo,
    INFO_BODY,
    KIND_INDEX,
    KIND_INFO,
    MAX_FRAME_ID,
    MAX_OUTPUT_PIXELS,
    MAX_PACKETS_PER_FRAME,
    MAX_PACKET_BYTES,
    MAX_UPSCALE,
    MIN_PACKET_BYTES,
    OVERHEAD,
    PacketHeader,
    SEQ_MODULUS,
    pack_info,
    seal,
)

def _stream_counts(n: int, p: int, j: int) -> int:
    """How many of n kept tokens index packet j of p carries (tokens j, j+p, ...)."""
    return len(range(j, n, p))


# ---- sender -------------------------------------------------------------------------------------

class Packetizer:
    """Turns one frame's index maps into packets of at most `max_packet_bytes` (header and CRC included)."""

    def __init__(self, prior_x: IndexPrior | PriorSet, prior_s: IndexPrior | PriorSet, model_id: int, *, vehicle_id: int,
                 max_packet_bytes: int = DEFAULT_PACKET_BYTES, info_copies: int = 2) -> None:
        if not 0 <= vehicle_id <= 0xFFFF:
            raise ValueError(f"vehicle id {vehicle_id} must be 0..65535")
        if not MIN_PACKET_BYTES <= max_packet_bytes <= MAX_PACKET_BYTES:
            raise ValueError(f"packet size {max_packet_bytes} must be {MIN_PACKET_BYTES}..{MAX_PACKET_BYTES} bytes")
        if not 1 <= info_copies <= 4:
            raise ValueError(f"info_copies {info_copies} must be 1..4 (2 or more survives any single loss)")
        self.prior_x, self.prior_s, self.model_id = prior_x, prior_s, model_id
        self.vehicle_id = vehicle_id
        self.max_packet_bytes = max_packet_bytes
        self.info_copies = info_copies

    def packetize(self, header: FrameHeader, indices_x: np.ndarray, indices_s: np.ndarray, *, seq: int,
                  stamp: tuple[int, int] = (0, 0), orig_size: tuple[int, int] | None = None,
                  frame_id: str = "") -> list[bytes]:
        """All packets of one frame, in send order (first info copy, index packets, then the other
        copies spread through and after them)."""
        header.validate()
        k = header.num_tokens
        ix = np.asarray(indices_x, dtype=np.int64).reshape(-1)
        is_ = np.asarray(indices_s, dtype=np.int64).reshape(-1)
        keep_x, keep_s = ix != MASKED, is_ != MASKED
        if ix.size != k or is_.size != k or keep_x.sum() != header.n_x or keep_s.sum() != header.n_s:
            raise ValueError("index maps do not match the header's grid and kept-token counts")
        for v, lj, name in ((ix[keep_x], header.log2_jx, "image"), (is_[keep_s], header.log2_js, "semantic")):
            if v.size and (v.min() < 0 or v.max() >= 1 << lj):
                raise ValueError(f"{name} index outside 0..{(1 << lj) - 1}")
        prior_x, prior_s = prior_for(self.prior_x, header.log2_jx), prior_for(self.prior_s, header.log2_js)
        if prior_x is None or prior_s is None:
            raise ValueError(f"no priors for codebooks of 2^{header.log2_jx}/2^{header.log2_js} codes")
        oh, ow = orig_size if orig_size is not None else (header.height, header.width)
        if not (1 <= oh <= 0xFFFF and 1 <= ow <= 0xFFFF):
            raise ValueError(f"original size {oh}x{ow} outside 1..65535")
        if oh * ow > MAX_OUTPUT_PIXELS or oh > MAX_UPSCALE * header.height or ow > MAX_UPSCALE * header.width:
            raise ValueError(f"camera size {oh}x{ow} is beyond what receivers restore ({MAX_OUTPUT_PIXELS} pixels, "
                             f"{MAX_UPSCALE}x the encoded size)")
        fid = frame_id.encode()
        if len(fid) > MAX_FRAME_ID:
            raise ValueError(f"frame_id {frame_id!r} longer than {MAX_FRAME_ID} bytes")
        sec, nsec = int(stamp[0]), int(stamp[1])
        if not (-(1 << 31) <= sec < 1 << 31 and 0 <= nsec < 1_000_000_000):
            raise ValueError(f"stamp {stamp} is not a valid builtin_interfaces/Time")
        seq %= SEQ_MODULUS

        enc = RangeEncoder()
        encode_mask(enc, keep_s, header.n_s)
        encode_mask(enc, keep_x, header.n_x)
        masks = words_to_bytes(enc.get_compressed())
        room = self.max_packet_bytes - OVERHEAD - INFO_BODY.size - len(fid)
        if room < 8:
            raise ValueError(f"packet size {self.max_packet_bytes} leaves no room for the info fields")
        n_frag = max(1, -(-len(masks) // room))
        n_info = n_frag * self.info_copies

        vals_x, vals_s = ix[keep_x], is_[keep_s]
        bodies = self._index_bodies(vals_x, vals_s, header, n_info, prior_x, prior_s)
        p = len(bodies)
        count = p + n_info
        info = FrameInfo(header, sec, nsec, oh, ow, frame_id, n_info, n_frag)
        chunks = [masks[f * room:(f + 1) * room] for f in range(n_frag)]
        info_pkts = [[seal(PacketHeader(KIND_INFO, self.vehicle_id, seq, p + c * n_frag + f, count, self.model_id),
                            pack_info(info, f, chunks[f])) for f in range(n_frag)] for c in range(self.info_copies)]
        index_pkts = [seal(PacketHeader(KIND_INDEX, self.vehicle_id, seq, j, count, self.model_id), bodies[j])
                      for j in range(p)]
        # Send order: copy 0 first (the receiver can place indices as they come), the other copies spread
        # evenly through the rest so a burst of consecutive losses rarely takes every copy.
        out = list(info_pkts[0])
        rest = self.info_copies - 1
        cuts = [round(p * (c + 1) / rest) if rest else p for c in range(rest)]
        start = 0
        for c in range(rest):
            out += index_pkts[start:cuts[c]] + info_pkts[c + 1]
            start = cuts[c]
        out += index_pkts[start:]
        return out

    def _index_bodies(self, vals_x: np.ndarray, vals_s: np.ndarray, header: FrameHeader, n_info: int,
                      prior_x: IndexPrior, prior_s: IndexPrior) -> list[bytes]:
        total = vals_x.size + vals_s.size
        if total == 0:
            return []
        cap = self.max_packet_bytes - OVERHEAD - 1
        est_bits = total * max(header.log2_jx, header.log2_js)
        p = max(1, -(-est_bits // (8 * cap)))
        while True:
            if p + n_info > MAX_PACKETS_PER_FRAME:
                raise ValueError(f"frame needs more than {MAX_PACKETS_PER_FRAME} packets of {self.max_packet_bytes} "
                                 "bytes: raise the packet size or lower m_x/m_s")
            bodies = [self._index_body(vals_x, vals_s, p, j, prior_x, prior_s) for j in range(p)]
            longest = max(len(b) for b in bodies)
            if longest <= cap:
                return bodies
            p = max(p + 1, -(-p * longest // cap))

    @staticmethod
    def _index_body(vals_x: np.ndarray, vals_s: np.ndarray, p: int, j: int, prior_x: IndexPrior,
                    prior_s: IndexPrior) -> bytes:
        enc = RangeEncoder()
        prior_s.encode(enc, vals_s[j::p])
        prior_x.encode(enc, vals_x[j::p])
        return bytes([p]) + words_to_bytes(enc.get_compressed())
