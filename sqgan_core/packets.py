"""Frames <-> self-describing packets for a lossy link, and bounded reassembly at the receiver.

Why packets and not the frame bytes of `bitstream`: one range-coded frame is all-or-nothing — a single
lost byte loses the frame. Here a frame is split so that any packet can be lost and the rest still
decode:

* **Info packets** carry the frame-level fields (token grid, padding, N_x, N_s, log2 J, camera stamp,
  original camera size, frame_id) and both keep masks, entropy-coded exactly as in the frame format
  (`encode_mask`). Without the masks no index can be placed, so the info is sent `info_copies` times
  (default 2), the copies far apart in send order: losing any one packet never loses a frame.
* **Index packets**: packet j of P carries the kept tokens j, j+P, j+2P, ... (scan order) of both
  streams, range-coded on their own under the model's `IndexPrior`. A lost index packet is therefore
  a set of *scattered* missing tokens, which the ADM (and later the concealment model) fills from
  their neighbours, instead of a hole.

Every packet (version 1, big-endian) starts with an 11-byte header and ends with a CRC-32:

    offset size field
    0      2    magic "Sp"
    2      1    version (high nibble) | kind (low nibble: 1 info, 2 index)
    3      2    vehicle id
    5      2    frame sequence number (wraps; compared with serial-number arithmetic)
    7      1    packet index within the frame (index packets 0..P-1, then the info packets)
    8      1    packet count of the frame (P + info packets)
    9      2    model id (the receiver must hold the same weights and priors)
    11     ...  body (kind-specific, see `_INFO` and `_index_body`)
    -4     4    CRC-32 over everything before it

No zmq, no ROS, no torch here: nodes and the link only move the bytes this module produces.
"""
from __future__ import annotations

import binascii
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sqgan_core.bitstream import DOWNSAMPLE, MASKED, FrameError, FrameHeader
from sqgan_core.entropy import (
    IndexPrior,
    RangeDecoder,
    RangeEncoder,
    bytes_to_words,
    decode_mask,
    encode_mask,
    words_to_bytes,
)
from sqgan_core.errors import InputError

MAGIC = b"Sp"
VERSION = 1
KIND_INFO, KIND_INDEX = 1, 2
_COMMON = struct.Struct(">2sBHHBBH")
COMMON_SIZE = _COMMON.size  # 11
CRC_SIZE = 4
OVERHEAD = COMMON_SIZE + CRC_SIZE
# grid_h, grid_w, pad, n_x, n_s, log2 J, stamp sec, stamp nanosec, orig h, orig w, info packets,
# fragment index, fragment count, frame_id length
_INFO = struct.Struct(">BBBHHBiIHHBBBB")
DEFAULT_PACKET_BYTES = 256
MIN_PACKET_BYTES = 96
MAX_PACKET_BYTES = 65000  # below a UDP datagram; also bounds what a receiver buffers per packet
MAX_PACKETS_PER_FRAME = 255
MAX_FRAME_ID = 63
SEQ_MODULUS = 1 << 16


class PacketError(InputError, ValueError):
    """A byte string that is not a usable packet; `reason` is a short counter key (e.g. "bad_crc")."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ---- sequence numbers ---------------------------------------------------------------------------

def seq_diff(a: int, b: int) -> int:
    """a - b in serial-number arithmetic (RFC 1982): positive when a is newer, in -32768..32767."""
    d = (a - b) % SEQ_MODULUS
    return d - SEQ_MODULUS if d >= SEQ_MODULUS // 2 else d


# ---- packet layer -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PacketHeader:
    kind: int
    vehicle_id: int
    seq: int
    index: int
    count: int
    model_id: int


@dataclass(frozen=True)
class Packet:
    header: PacketHeader
    body: bytes
    size: int  # bytes on the wire, header and CRC included


def _seal(header: PacketHeader, body: bytes) -> bytes:
    head = _COMMON.pack(MAGIC, (VERSION << 4) | header.kind, header.vehicle_id, header.seq, header.index,
                        header.count, header.model_id)
    data = head + body
    return data + struct.pack(">I", binascii.crc32(data))


def parse_packet(data: bytes, *, max_bytes: int = MAX_PACKET_BYTES) -> Packet:
    """Check framing, version, CRC and the header's own consistency. Raises PacketError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError("not_bytes", f"a packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < OVERHEAD:
        raise PacketError("too_short", f"{len(data)} bytes, a packet needs at least {OVERHEAD}")
    if len(data) > max_bytes:
        raise PacketError("too_long", f"{len(data)} bytes, above the limit of {max_bytes}")
    magic, vk, vehicle, seq, index, count, model_id = _COMMON.unpack_from(data)
    if magic != MAGIC:
        raise PacketError("bad_magic", f"not an SQ-GAN packet (magic {magic!r}, expected {MAGIC!r})")
    if vk >> 4 != VERSION:
        raise PacketError("bad_version", f"packet format version {vk >> 4}, this receiver reads {VERSION}")
    (crc,) = struct.unpack_from(">I", data, len(data) - CRC_SIZE)
    if binascii.crc32(data[:-CRC_SIZE]) != crc:
        raise PacketError("bad_crc", "CRC-32 mismatch: corrupted or truncated packet")
    kind = vk & 15
    if kind not in (KIND_INFO, KIND_INDEX):
        raise PacketError("bad_kind", f"unknown packet kind {kind}")
    if count == 0 or index >= count:
        raise PacketError("bad_fields", f"packet index {index} outside a frame of {count} packets")
    return Packet(PacketHeader(kind, vehicle, seq, index, count, model_id), data[COMMON_SIZE:-CRC_SIZE], len(data))


# ---- bodies -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameInfo:
    """The frame-level fields every info packet repeats."""

    header: FrameHeader  # of the *encoded* (possibly resized) image; header.mode is unused here
    stamp_sec: int
    stamp_nanosec: int
    orig_height: int  # the camera image's size before any resize (the RSU restores it)
    orig_width: int
    frame_id: str
    info_packets: int
    fragment_count: int


def _pack_info(info: FrameInfo, fragment: int, chunk: bytes) -> bytes:
    h = info.header
    fid = info.frame_id.encode()
    return _INFO.pack(h.grid_h, h.grid_w, (h.pad_h << 4) | h.pad_w, h.n_x, h.n_s, (h.log2_jx << 4) | h.log2_js,
                      info.stamp_sec, info.stamp_nanosec, info.orig_height, info.orig_width, info.info_packets,
                      fragment, info.fragment_count, len(fid)) + fid + chunk


MAX_OUTPUT_PIXELS = 3840 * 2160  # the receiver restores the camera size: bound what a sender may ask for
MAX_UPSCALE = 16  # camera size / encoded size per side (vehicles only scale down to fit max_tokens)


def _unpack_info(pkt: Packet, max_tokens: int, max_output_pixels: int = MAX_OUTPUT_PIXELS) -> tuple[FrameInfo, int, bytes]:
    body = pkt.body
    if len(body) < _INFO.size:
        raise PacketError("bad_fields", f"info body of {len(body)} bytes, needs at least {_INFO.size}")
    (gh, gw, pad, nx, ns, logj, sec, nsec, oh, ow, n_info, frag, n_frag, fid_len) = _INFO.unpack_from(body)
    header = FrameHeader(pkt.header.model_id, gh, gw, pad >> 4, pad & 15, nx, ns, logj >> 4, logj & 15)
    try:
        header.validate()
    except FrameError as exc:
        raise PacketError("bad_fields", f"info packet: {exc}") from None
    if header.num_tokens > max_tokens:
        raise PacketError("too_large", f"frame of {header.num_tokens} tokens above the limit of {max_tokens}")
    if not (n_frag >= 1 and frag < n_frag and n_info >= n_frag and n_info % n_frag == 0):
        raise PacketError("bad_fields", f"info fragment {frag}/{n_frag} of {n_info} info packets is inconsistent")
    if n_info > pkt.header.count or pkt.header.index < pkt.header.count - n_info:
        raise PacketError("bad_fields", "info packet numbered like an index packet")
    if nsec >= 1_000_000_000 or oh == 0 or ow == 0:
        raise PacketError("bad_fields", "info packet: bad stamp nanoseconds or empty original size")
    if oh * ow > max_output_pixels or oh > MAX_UPSCALE * header.height or ow > MAX_UPSCALE * header.width:
        raise PacketError("too_large", f"original size {oh}x{ow} is beyond {max_output_pixels} pixels or "
                                       f"{MAX_UPSCALE}x the encoded {header.height}x{header.width}")
    if len(body) < _INFO.size + fid_len:
        raise PacketError("bad_fields", "info packet truncated inside frame_id")
    try:
        frame_id = body[_INFO.size:_INFO.size + fid_len].decode()
    except UnicodeDecodeError:
        raise PacketError("bad_fields", "frame_id is not UTF-8") from None
    info = FrameInfo(header, sec, nsec, oh, ow, frame_id, n_info, n_frag)
    return info, frag, body[_INFO.size + fid_len:]


def _stream_counts(n: int, p: int, j: int) -> int:
    """How many of n kept tokens index packet j of p carries (tokens j, j+p, ...)."""
    return len(range(j, n, p))


# ---- sender -------------------------------------------------------------------------------------

class Packetizer:
    """Turns one frame's index maps into packets of at most `max_packet_bytes` (header and CRC included)."""

    def __init__(self, prior_x: IndexPrior, prior_s: IndexPrior, model_id: int, *, vehicle_id: int,
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
        if self.prior_x.num_symbols != 1 << header.log2_jx or self.prior_s.num_symbols != 1 << header.log2_js:
            raise ValueError("priors do not match the header's codebook sizes")
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
        room = self.max_packet_bytes - OVERHEAD - _INFO.size - len(fid)
        if room < 8:
            raise ValueError(f"packet size {self.max_packet_bytes} leaves no room for the info fields")
        n_frag = max(1, -(-len(masks) // room))
        n_info = n_frag * self.info_copies

        vals_x, vals_s = ix[keep_x], is_[keep_s]
        bodies = self._index_bodies(vals_x, vals_s, header, n_info)
        p = len(bodies)
        count = p + n_info
        info = FrameInfo(header, sec, nsec, oh, ow, frame_id, n_info, n_frag)
        chunks = [masks[f * room:(f + 1) * room] for f in range(n_frag)]
        info_pkts = [[_seal(PacketHeader(KIND_INFO, self.vehicle_id, seq, p + c * n_frag + f, count, self.model_id),
                            _pack_info(info, f, chunks[f])) for f in range(n_frag)] for c in range(self.info_copies)]
        index_pkts = [_seal(PacketHeader(KIND_INDEX, self.vehicle_id, seq, j, count, self.model_id), bodies[j])
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

    def _index_bodies(self, vals_x: np.ndarray, vals_s: np.ndarray, header: FrameHeader, n_info: int) -> list[bytes]:
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
            bodies = [self._index_body(vals_x, vals_s, p, j) for j in range(p)]
            longest = max(len(b) for b in bodies)
            if longest <= cap:
                return bodies
            p = max(p + 1, -(-p * longest // cap))

    def _index_body(self, vals_x: np.ndarray, vals_s: np.ndarray, p: int, j: int) -> bytes:
        enc = RangeEncoder()
        self.prior_s.encode(enc, vals_s[j::p])
        self.prior_x.encode(enc, vals_x[j::p])
        return bytes([p]) + words_to_bytes(enc.get_compressed())


# ---- receiver -----------------------------------------------------------------------------------

@dataclass
class AssembledFrame:
    """A frame as the receiver got it. Tokens of lost index packets are MASKED in `indices_*` and
    flagged in `lost_*` (so a concealment model can tell lost from deliberately dropped tokens)."""

    vehicle_id: int
    seq: int
    info: FrameInfo
    indices_x: np.ndarray  # (K,) int64
    indices_s: np.ndarray
    lost_x: np.ndarray  # (K,) bool: kept by the encoder, lost on the link
    lost_s: np.ndarray
    packets_expected: int
    packets_received: int
    bytes_received: int
    first_arrival: float
    sender: str | None = None

    @property
    def header(self) -> FrameHeader:
        return self.info.header

    @property
    def complete(self) -> bool:
        return not (self.lost_x.any() or self.lost_s.any())

    @property
    def stamp(self) -> tuple[int, int]:
        return self.info.stamp_sec, self.info.stamp_nanosec

    @property
    def tokens_lost(self) -> int:
        return int(self.lost_x.sum() + self.lost_s.sum())


Concealer = Callable[[AssembledFrame], tuple[np.ndarray, np.ndarray]]


def conceal_as_masked(frame: AssembledFrame) -> tuple[np.ndarray, np.ndarray]:
    """Default concealment: lost tokens stay MASKED and the ADM fills them like dropped ones.
    The lost-index transformer (concealment issue) replaces this with a predictor of the lost codes."""
    return frame.indices_x, frame.indices_s


@dataclass
class _Partial:
    seq: int
    count: int
    first_arrival: float
    sender: str | None
    info: FrameInfo | None = None
    fragments: dict[int, bytes] = field(default_factory=dict)
    index_bodies: dict[int, bytes] = field(default_factory=dict)
    received: set[int] = field(default_factory=set)
    bytes_received: int = 0
    masks: tuple[np.ndarray, np.ndarray] | None = None  # (keep_x, keep_s) once every fragment is in

    @property
    def p(self) -> int | None:
        return None if self.info is None else self.count - self.info.info_packets

    def ready(self) -> bool:
        return self.masks is not None and len(self.index_bodies) == self.p


@dataclass
class VehicleStats:
    frames_complete: int = 0
    frames_partial: int = 0  # decoded with some tokens lost
    frames_lost: int = 0  # packets arrived but the masks never did
    frames_unseen: int = 0  # sequence gaps: not one packet arrived
    packets_stale: int = 0  # arrived after a newer frame of the same vehicle was released
    packets_arrived: int = 0  # every packet of this vehicle that parsed: stale, late, duplicate ones too
    packets_received: int = 0  # of those, the ones stored into a frame or counted as a spare copy
    # Packets a closed frame needed (its index packets and one info copy) that had not arrived when it
    # closed. Not the wire loss: spare info copies and frames of which nothing arrived are not in it
    # (the demo's packets_lost is packets sent minus packets_arrived; docs/pipeline.md "Counting loss").
    packets_missing: int = 0
    packets_late: int = 0  # needed, but arrived after their frame closed (taken back out of packets_missing)
    packets_redundant: int = 0  # info copies beyond the one the frame needed, arriving after it closed
    bytes_received: int = 0
    tokens_lost: int = 0
    resets: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _VehicleState:
    def __init__(self) -> None:
        self.partials: OrderedDict[int, _Partial] = OrderedDict()
        self.last_emitted: int | None = None
        self.last_seen: float | None = None
        self.buffered = 0
        # seq -> (packet indices still missing that the frame needed, spare info copies not yet seen)
        self.closed: OrderedDict[int, tuple[set[int], set[int]]] = OrderedDict()
        self.stats = VehicleStats()


class FrameAssembler:
    """Reassembles frames per (vehicle id, sequence number) with bounded memory.

    Frames are released in sequence order per vehicle: as soon as every index packet and one copy of
    the info have arrived, or — with packets missing — when `frame_timeout` passes or a newer frame
    completes. Anything older than the last released frame is stale and dropped. A vehicle silent for
    `idle_reset` seconds, or whose sequence number jumps back by more than `stale_window`, is treated
    as a restarted stream. At most `max_vehicles` vehicles, `max_frames_in_flight` frames and
    `max_bytes_per_vehicle` bytes per vehicle are held; beyond that the oldest goes (counted).
    """

    def __init__(self, prior_x: IndexPrior, prior_s: IndexPrior, model_id: int, *, max_tokens: int = 8192,
                 max_packet_bytes: int = 1400, max_frames_in_flight: int = 4, frame_timeout: float = 0.15,
                 idle_reset: float = 1.0, max_vehicles: int = 64, max_bytes_per_vehicle: int = 1 << 18,
                 stale_window: int = 32, closed_memory: int = 16,
                 max_output_pixels: int = MAX_OUTPUT_PIXELS) -> None:
        self.prior_x, self.prior_s, self.model_id = prior_x, prior_s, model_id
        self.max_tokens = max_tokens
        self.max_packet_bytes = max_packet_bytes
        self.max_frames_in_flight = max_frames_in_flight
        self.frame_timeout = frame_timeout
        self.idle_reset = idle_reset
        self.max_vehicles = max_vehicles
        self.max_bytes_per_vehicle = max_bytes_per_vehicle
        self.stale_window = stale_window
        self.closed_memory = closed_memory
        self.max_output_pixels = max_output_pixels
        self.vehicles: OrderedDict[int, _VehicleState] = OrderedDict()
        self.rejected: Counter[str] = Counter()  # packets refused before reaching a frame, by reason
        self.packets_accepted = 0

    # -- public ---------------------------------------------------------------------------------
    def push(self, data: bytes, now: float, *, sender: str | None = None,
             expect_vehicle: int | None = None) -> list[AssembledFrame]:
        """Take one packet; return the frames it lets go (possibly none). Never raises on bad input:
        rejections are counted in `rejected` by reason."""
        try:
            pkt = parse_packet(data, max_bytes=self.max_packet_bytes)
            if pkt.header.model_id != self.model_id:
                raise PacketError("wrong_model", f"packet from model {pkt.header.model_id:04x}, "
                                                 f"this receiver holds {self.model_id:04x}")
            if expect_vehicle is not None and pkt.header.vehicle_id != expect_vehicle:
                raise PacketError("spoofed_vehicle", f"sender may only send as vehicle {expect_vehicle}, "
                                                     f"packet says {pkt.header.vehicle_id}")
            return self._accept(pkt, now, sender)
        except PacketError as exc:
            self.rejected[exc.reason] += 1
            return []

    def poll(self, now: float) -> list[AssembledFrame]:
        """Release or drop frames whose time is up. Call a few times per frame period."""
        out: list[AssembledFrame] = []
        for vid, st in list(self.vehicles.items()):
            for seq, part in list(st.partials.items()):
                if now - part.first_arrival >= self.frame_timeout:
                    out += self._release_through(vid, st, seq)
        return out

    def stats(self, vehicle_id: int) -> VehicleStats | None:
        st = self.vehicles.get(vehicle_id)
        return None if st is None else st.stats

    def in_flight(self) -> int:
        return sum(len(st.partials) for st in self.vehicles.values())

    # -- internals ------------------------------------------------------------------------------
    def _vehicle(self, vid: int, now: float) -> _VehicleState:
        st = self.vehicles.get(vid)
        if st is None:
            if len(self.vehicles) >= self.max_vehicles:
                self.vehicles.popitem(last=False)  # the one least recently heard from
                self.rejected["vehicle_evicted"] += 1
            st = self.vehicles[vid] = _VehicleState()
        elif st.last_seen is not None and now - st.last_seen > self.idle_reset:
            self._reset(st)
        self.vehicles.move_to_end(vid)
        st.last_seen = now
        return st

    def _reset(self, st: _VehicleState) -> None:
        for part in st.partials.values():
            self._count_lost_frame(st, part)
        st.partials.clear()
        st.closed.clear()
        st.buffered = 0
        st.last_emitted = None
        st.stats.resets += 1

    def _accept(self, pkt: Packet, now: float, sender: str | None) -> list[AssembledFrame]:
        h = pkt.header
        st = self._vehicle(h.vehicle_id, now)
        st.stats.packets_arrived += 1
        if h.seq in st.closed:
            missing, spare = st.closed[h.seq]
            if h.index in missing:
                missing.discard(h.index)
                st.stats.packets_missing -= 1
                st.stats.packets_late += 1
            elif h.index in spare:  # a redundant info copy after the frame was complete: received, not late
                spare.discard(h.index)
                st.stats.packets_redundant += 1
                st.stats.packets_received += 1
                st.stats.bytes_received += pkt.size
            else:
                self.rejected["duplicate"] += 1
            return []
        if st.last_emitted is not None and seq_diff(h.seq, st.last_emitted) <= 0:
            if -seq_diff(h.seq, st.last_emitted) > self.stale_window:
                self._reset(st)  # the vehicle restarted (new random initial sequence number)
            else:
                st.stats.packets_stale += 1
                self.rejected["stale"] += 1
                return []
        out: list[AssembledFrame] = []
        part = st.partials.get(h.seq)
        fresh = part is None
        if part is None:
            if len(st.partials) >= self.max_frames_in_flight and seq_diff(h.seq, next(iter(st.partials))) < 0:
                st.stats.packets_stale += 1
                self.rejected["stale"] += 1  # older than everything in flight, and no room for it
                return []
            part = _Partial(h.seq, h.count, now, sender)
        elif h.count != part.count:
            self.rejected["inconsistent"] += 1
            return []
        elif h.index in part.received:
            self.rejected["duplicate"] += 1
            return []
        try:
            self._store(part, pkt)
        except PacketError as exc:
            self.rejected[exc.reason] += 1
            return []
        if fresh:  # only a packet that parsed completely may open a frame
            while len(st.partials) >= self.max_frames_in_flight:
                self.rejected["frame_evicted"] += 1
                out += self._release_through(h.vehicle_id, st, next(iter(st.partials)))
            st.partials[h.seq] = part
            self._sort(st)
        part.received.add(h.index)
        part.bytes_received += pkt.size
        st.buffered += pkt.size
        st.stats.packets_received += 1
        st.stats.bytes_received += pkt.size
        self.packets_accepted += 1
        while st.buffered > self.max_bytes_per_vehicle and st.partials:
            self.rejected["frame_evicted"] += 1
            out += self._release_through(h.vehicle_id, st, next(iter(st.partials)))
        if h.seq in st.partials and part.ready():
            out += self._release_through(h.vehicle_id, st, h.seq)
        return out

    @staticmethod
    def _sort(st: _VehicleState) -> None:
        if len(st.partials) > 1:
            ref = next(iter(st.partials))
            items = sorted(st.partials.items(), key=lambda kv: seq_diff(kv[0], ref))
            st.partials = OrderedDict(items)

    def _store(self, part: _Partial, pkt: Packet) -> None:
        h = pkt.header
        if h.kind == KIND_INFO:
            info, frag, chunk = _unpack_info(pkt, self.max_tokens, self.max_output_pixels)
            if part.info is None:
                if part.index_bodies and any(j >= h.count - info.info_packets for j in part.index_bodies):
                    raise PacketError("inconsistent", "info disagrees with index packets already received")
                part.info = info
            elif info != part.info:
                raise PacketError("inconsistent", "info packets of one frame disagree")
            part.fragments.setdefault(frag, chunk)
            if part.masks is None and len(part.fragments) == info.fragment_count:
                part.masks = self._decode_masks(part)
        else:
            if not pkt.body:
                raise PacketError("bad_fields", "empty index packet")
            p = pkt.body[0]
            if p == 0 or h.index >= p or p >= h.count:
                raise PacketError("bad_fields", f"index packet {h.index} of {p} in a frame of {h.count}")
            if part.info is not None and p != part.p:
                raise PacketError("inconsistent", f"index packet says {p} index packets, info says {part.p}")
            known = {b[0] for b in part.index_bodies.values()}
            if known and p not in known:
                raise PacketError("inconsistent", "index packets of one frame disagree on their number")
            part.index_bodies[h.index] = pkt.body

    def _decode_masks(self, part: _Partial) -> tuple[np.ndarray, np.ndarray]:
        info = part.info
        assert info is not None
        data = b"".join(part.fragments[f] for f in range(info.fragment_count))
        k = info.header.num_tokens
        try:
            dec = RangeDecoder(bytes_to_words(data))
            keep_s = decode_mask(dec, k, info.header.n_s)
            keep_x = decode_mask(dec, k, info.header.n_x)
        except Exception as exc:  # noqa: BLE001 - constriction raises assorted errors on garbage
            raise PacketError("bad_masks", f"keep masks do not decode: {exc}") from None
        return keep_x, keep_s

    def _release_through(self, vid: int, st: _VehicleState, seq: int) -> list[AssembledFrame]:
        """Close every partial frame up to and including `seq` (sequence order), newest last."""
        out = []
        while st.partials:
            first_seq, part = next(iter(st.partials.items()))
            if seq_diff(first_seq, seq) > 0:
                break
            del st.partials[first_seq]
            st.buffered -= part.bytes_received
            if st.last_emitted is not None:
                gap = seq_diff(first_seq, st.last_emitted) - 1
                if 0 < gap <= 1000:
                    st.stats.frames_unseen += gap
            st.last_emitted = first_seq
            frame = self._finish(vid, part) if part.masks is not None else None
            missing = set(range(part.count)) - part.received
            spare: set[int] = set()
            if frame is None:
                self._count_lost_frame(st, part)
            else:
                # With the masks in, the info copies not yet seen were not needed: not lost.
                spare = {j for j in missing if j >= (part.p or part.count)}
                missing -= spare
                st.stats.packets_missing += len(missing)
                st.stats.tokens_lost += frame.tokens_lost
                if frame.complete:
                    st.stats.frames_complete += 1
                else:
                    st.stats.frames_partial += 1
                out.append(frame)
            st.closed[first_seq] = (missing, spare)
            while len(st.closed) > self.closed_memory:
                st.closed.popitem(last=False)
        return out

    @staticmethod
    def _count_lost_frame(st: _VehicleState, part: _Partial) -> None:
        st.stats.frames_lost += 1
        st.stats.packets_missing += part.count - len(part.received)

    def _finish(self, vid: int, part: _Partial) -> AssembledFrame | None:
        info = part.info
        assert info is not None and part.masks is not None
        keep_x, keep_s = part.masks
        k = info.header.num_tokens
        pos_x, pos_s = np.flatnonzero(keep_x), np.flatnonzero(keep_s)
        ix = np.full(k, MASKED, dtype=np.int64)
        is_ = np.full(k, MASKED, dtype=np.int64)
        lost_x, lost_s = keep_x.copy(), keep_s.copy()
        p = part.p
        assert p is not None
        for j, body in part.index_bodies.items():
            if j >= p:
                continue
            px, ps = pos_x[j::p], pos_s[j::p]
            try:
                dec = RangeDecoder(bytes_to_words(body[1:]))
                vs = self.prior_s.decode(dec, ps.size)
                vx = self.prior_x.decode(dec, px.size)
            except Exception:  # noqa: BLE001 - a body that passed the CRC but does not decode
                self.rejected["bad_index_body"] += 1
                part.received.discard(j)
                continue
            ix[px], is_[ps] = vx, vs
            lost_x[px] = False
            lost_s[ps] = False
        return AssembledFrame(vid, part.seq, info, ix, is_, lost_x, lost_s, part.count, len(part.received),
                              part.bytes_received, part.first_arrival, part.sender)


def frame_bits_on_wire(packets: list[bytes]) -> int:
    """Everything the link carries for a frame: headers, CRCs and redundant info copies included."""
    return 8 * sum(len(p) for p in packets)


__all__ = [
    "AssembledFrame", "Concealer", "FrameAssembler", "FrameInfo", "Packet", "PacketError", "PacketHeader",
    "Packetizer", "VehicleStats", "conceal_as_masked", "frame_bits_on_wire", "parse_packet", "seq_diff",
    "DEFAULT_PACKET_BYTES", "DOWNSAMPLE", "OVERHEAD",
]
