"""Receiver side: packets -> AssembledFrame per (vehicle, sequence number), in order, with bounded memory.

Tokens of lost index packets come out MASKED and flagged in `lost_*`; tokens the encoder dropped
(SAMM-masked) are MASKED and not flagged, so concealment can tell the two apart.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.entropy import IndexPrior, PriorSet, RangeDecoder, bytes_to_words, decode_mask, prior_for
from sqgan_core.streaming.wire import (
    FrameInfo,
    KIND_INFO,
    MAX_OUTPUT_PIXELS,
    Packet,
    PacketError,
    parse_packet,
    seq_diff,
    unpack_info,
)

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
        # the last frame released before an idle reset: a stream that resumes a few frames later (the
        # frames in between lost on the link, e.g. while a lock-step simulator waited for them) still has
        # those frames counted as unseen; a restarted sender's jump back or far ahead is not a gap
        self.emitted_before_reset: int | None = None
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

    def __init__(self, prior_x: IndexPrior | PriorSet, prior_s: IndexPrior | PriorSet, model_id: int, *, max_tokens: int = 8192,
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
        if st.last_emitted is not None:
            st.emitted_before_reset = st.last_emitted
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
            info, frag, chunk = unpack_info(pkt, self.max_tokens, self.max_output_pixels)
            if prior_for(self.prior_x, info.header.log2_jx) is None or prior_for(self.prior_s, info.header.log2_js) is None:
                raise PacketError("unknown_codebook", f"frame coded with 2^{info.header.log2_jx}/2^{info.header.log2_js} "
                                                      "codes, a size this receiver's model does not have")
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
            elif st.emitted_before_reset is not None:
                gap = seq_diff(first_seq, st.emitted_before_reset) - 1
                if 0 < gap <= self.stale_window:
                    st.stats.frames_unseen += gap
            st.emitted_before_reset = None
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
                vs = prior_for(self.prior_s, info.header.log2_js).decode(dec, ps.size)  # type: ignore[union-attr]
                vx = prior_for(self.prior_x, info.header.log2_jx).decode(dec, px.size)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - a body that passed the CRC but does not decode
                self.rejected["bad_index_body"] += 1
                part.received.discard(j)
                continue
            ix[px], is_[ps] = vx, vs
            lost_x[px] = False
            lost_s[ps] = False
        return AssembledFrame(vid, part.seq, info, ix, is_, lost_x, lost_s, part.count, len(part.received),
                              part.bytes_received, part.first_arrival, part.sender)
