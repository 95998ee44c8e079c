"""Every codec through the same link: SQ-GAN and the classic codecs, frame by frame, on a simulated clock.

Fairness rules (issue 14):
* **Same packets.** Every codec's frame goes on the wire in packets of at most `packet_bytes` with the
  same per-packet overhead as SQ-GAN's packets (an 11-byte header and a CRC-32, `sqgan_core.streaming.wire`);
  bpp counts every byte on the wire.
* **Same link.** Each codec's packets cross a fresh `LinkShaper` of the same profile and seed, the link
  model the emulator node runs, clocked by the frames' recorded times (offline: no sleeping).
* **What is lost.** A classic frame is lost when any of its packets is lost (one entropy-coded
  bitstream). SQ-GAN's packets are independently decodable: a lost packet loses only its tokens,
  which the RSU's concealment fills; a frame is lost only when every copy of its info is.
* **What is shown.** A lost frame is shown as the last frame that arrived (what a viewer holds on
  screen; a grey frame before the first), and the quality figures are of what is shown.

The SQ-GAN path is the nodes' own code: `StreamEncoder` -> packets -> `LinkShaper` -> `FrameAssembler`
-> `StreamDecoder`. No rclpy here.
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from sqgan_core.streaming.wire import COMMON_SIZE, CRC_SIZE, DEFAULT_PACKET_BYTES, OVERHEAD

SQGAN = "sqgan"
_CLASSIC_MAGIC = b"Cl"
_CLASSIC_HEADER = struct.Struct(">2sBHHBBH")  # the layout (and size) of an SQ-GAN packet header
assert _CLASSIC_HEADER.size == COMMON_SIZE


@dataclass
class EncodedFrame:
    """One frame of one codec at one rate, ready for the link."""

    packets: list[bytes]
    bpp_wire: float
    encode_ms: float
    recon: np.ndarray | None = None  # classic codecs: the decoded image (deterministic decode)
    decode_ms: float = 0.0
    scale: float = 1.0  # classic codecs: < 1 when the image was downscaled to reach the rate
    over_target: bool = False


@dataclass
class Shown:
    """What the receiver shows for one frame after the link."""

    image: np.ndarray
    labels: np.ndarray | None  # SQ-GAN's decoded semantic map; None for classic codecs
    arrived: bool  # the frame (or, for SQ-GAN, enough of it to decode) arrived
    packets_sent: int
    packets_arrived: int
    tokens_lost: int = 0
    decode_ms: float = 0.0


# -- classic frames on the wire ------------------------------------------------------------------------
def classic_packets(data: bytes, seq: int, packet_bytes: int = DEFAULT_PACKET_BYTES) -> list[bytes]:
    """A classic codec's frame bytes in packets of at most `packet_bytes`, each with SQ-GAN's overhead."""
    room = packet_bytes - OVERHEAD
    chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
    if len(chunks) > 255:
        raise ValueError(f"a frame of {len(data)} bytes needs {len(chunks)} packets of {packet_bytes} bytes; "
                         "at most 255 per frame")
    out = []
    for i, chunk in enumerate(chunks):
        body = _CLASSIC_HEADER.pack(_CLASSIC_MAGIC, 0x13, 0, seq % 65536, i, len(chunks), 0) + chunk
        out.append(body + struct.pack(">I", zlib.crc32(body)))
    return out


def _classic_seq_index(pkt: bytes) -> tuple[int, int, int] | None:
    if len(pkt) < OVERHEAD or struct.unpack(">I", pkt[-CRC_SIZE:])[0] != zlib.crc32(pkt[:-CRC_SIZE]):
        return None
    magic, _, _, seq, idx, count, _ = _CLASSIC_HEADER.unpack_from(pkt)
    return (seq, idx, count) if magic == _CLASSIC_MAGIC else None


# -- encoders ----------------------------------------------------------------------------------------
class SqganEncoder:
    """SQ-GAN at (m_x, m_s) through the vehicle node's StreamEncoder."""

    def __init__(self, codec: Any, m_x: float, m_s: float, packet_bytes: int = DEFAULT_PACKET_BYTES) -> None:
        from sqgan_core.streaming.stream import StreamEncoder

        self.codec = codec
        self.name, self.rate = SQGAN, f"m={m_x:g},{m_s:g}"
        self.enc = StreamEncoder(codec, vehicle_id=1, m_x=m_x, m_s=m_s, max_packet_bytes=packet_bytes, first_seq=0)

    def encode(self, rgb: np.ndarray, labels: np.ndarray, stamp_ns: int = 0) -> EncodedFrame:
        out = self.enc.encode(rgb, labels, stamp=(stamp_ns // 10**9, stamp_ns % 10**9))
        return EncodedFrame(out.packets, out.bpp, out.encode_ms)


class ClassicEncoder:
    """A classic codec at a target bpp on the wire (packet overhead included), per frame."""

    def __init__(self, name: str, packet_bytes: int = DEFAULT_PACKET_BYTES) -> None:
        self.name, self.packet_bytes = name, packet_bytes
        self.seq = 0
        self.prev: Any = None  # the previous frame's result: its setting starts the next search

    def encode(self, rgb: np.ndarray, target_bpp_wire: float) -> EncodedFrame:
        from sqgan_core.classic_codecs import encode_at_rate

        h, w = rgb.shape[:2]
        # the payload budget: the wire budget less one packet overhead per (full) packet it needs
        budget = target_bpp_wire * h * w / 8
        payload = budget - OVERHEAD * max(1, int(np.ceil(budget / self.packet_bytes)))
        coded = encode_at_rate(self.name, rgb, max(8 * max(payload, 16.0) / (h * w), 1e-4), hint=self.prev)
        self.prev = coded
        packets = classic_packets(coded.data, self.seq, self.packet_bytes)
        self.seq += 1
        return EncodedFrame(packets, 8 * sum(map(len, packets)) / (h * w), coded.encode_ms, coded.recon,
                            coded.decode_ms, coded.scale, bool(getattr(coded, "over_target", False)))


# -- the link ----------------------------------------------------------------------------------------
def _deliver(shaper: Any, until: float, on_packet: Any) -> None:
    """Hand `on_packet(packet, t)` everything the link delivers up to `until`, in time order."""
    while True:
        t = shaper.next_deadline()
        if t is None or t > until:
            return
        for pkt in shaper.due(t):
            on_packet(pkt, t)


@dataclass
class LinkResult:
    shown: list[Shown]
    link: dict[str, int] = field(default_factory=dict)


def _grey_like(rgb: np.ndarray) -> np.ndarray:
    return np.full_like(rgb, 128)


def run_sqgan(codec: Any, encoded: Sequence[EncodedFrame], frames: Sequence[np.ndarray], times_s: Sequence[float],
              profile: Any, packet_bytes: int = DEFAULT_PACKET_BYTES, seed: int | None = None,
              reuse: Sequence[Shown] | None = None) -> LinkResult:
    """SQ-GAN's packets of each frame across the link at its time; the RSU's assembler and decoder.

    `seed` overrides the profile's loss seed (another realisation of the same link). `reuse`, the
    clean-link result of the same encodings, stands in for the decode of a frame that arrived whole:
    the decoder is deterministic, so only frames with lost tokens are decoded again."""
    from sqgan_core.transport.shaper import LinkShaper
    from sqgan_core.streaming.assembler import FrameAssembler
    from sqgan_core.streaming.concealment import select_concealer
    from sqgan_core.streaming.stream import StreamDecoder
    from sqgan_core.streaming.wire import parse_packet

    shaper: LinkShaper[bytes] = LinkShaper(profile, seed=seed)
    assembler = FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id, max_tokens=codec.max_tokens,
                               max_packet_bytes=packet_bytes)
    # what the RSU node does by default: the shipped concealer when it fits these weights, else the baseline
    decoder = StreamDecoder(codec, select_concealer("auto", None, codec.model_id).concealer)
    ready: list[Any] = []
    arrived_pkts: dict[int, set[int]] = {}  # distinct packets per frame (the link may duplicate)

    def on_packet(pkt: bytes, t: float) -> None:
        head = parse_packet(pkt, max_bytes=packet_bytes).header
        arrived_pkts.setdefault(head.seq, set()).add(head.index)
        ready.extend(assembler.push(pkt, t))

    seqs = []
    for enc, t in zip(encoded, times_s):
        _deliver(shaper, t, on_packet)
        ready.extend(assembler.poll(t))
        seqs.append(parse_packet(enc.packets[0], max_bytes=packet_bytes).header.seq)
        for pkt in enc.packets:
            shaper.offer(pkt, len(pkt), t)
    t_end = (times_s[-1] if len(times_s) else 0.0) + 5.0
    _deliver(shaper, t_end, on_packet)
    ready.extend(assembler.poll(t_end + assembler.frame_timeout))
    by_seq = {f.seq: f for f in ready}
    shown, last = [], None
    for k, (enc, seq, rgb) in enumerate(zip(encoded, seqs, frames)):
        frame = by_seq.get(seq)
        if frame is not None and reuse is not None and frame.complete and reuse[k].arrived and not reuse[k].tokens_lost:
            last = Shown(reuse[k].image, reuse[k].labels, True, len(enc.packets), len(arrived_pkts.get(seq, ())),
                         0, reuse[k].decode_ms)
            shown.append(last)
        elif frame is not None:
            t0 = time.perf_counter()
            dec = decoder.decode(frame)
            ms = 1000 * (time.perf_counter() - t0)
            last = Shown(dec.image, dec.labels, True, len(enc.packets), len(arrived_pkts.get(seq, ())),
                         int(frame.tokens_lost), ms)
            shown.append(last)
        else:
            image = last.image if last is not None else _grey_like(rgb)
            labels = last.labels if last is not None else None
            shown.append(Shown(image, labels, False, len(enc.packets), len(arrived_pkts.get(seq, ()))))
    return LinkResult(shown, {k: int(v) for k, v in sorted(shaper.stats.items())})


def run_classic(encoded: Sequence[EncodedFrame], frames: Sequence[np.ndarray], times_s: Sequence[float],
                profile: Any, seed: int | None = None) -> LinkResult:
    """A classic codec's packets across the link; a frame is shown only when every packet arrived."""
    from sqgan_core.transport.shaper import LinkShaper

    shaper: LinkShaper[bytes] = LinkShaper(profile, seed=seed)
    got: dict[int, set[int]] = {}
    counts: dict[int, int] = {}

    def on_packet(pkt: bytes, _t: float) -> None:
        key = _classic_seq_index(pkt)
        if key is not None:
            seq, idx, count = key
            got.setdefault(seq, set()).add(idx)
            counts[seq] = count

    seqs = []
    for enc, t in zip(encoded, times_s):
        _deliver(shaper, t, on_packet)
        seqs.append(_classic_seq_index(enc.packets[0])[0])  # type: ignore[index]
        for pkt in enc.packets:
            shaper.offer(pkt, len(pkt), t)
    _deliver(shaper, (times_s[-1] if len(times_s) else 0.0) + 5.0, on_packet)
    shown, last = [], None
    for enc, seq, rgb in zip(encoded, seqs, frames):
        n_got = len(got.get(seq, ()))
        if n_got == len(enc.packets) and enc.recon is not None:
            last = Shown(enc.recon, None, True, len(enc.packets), n_got, 0, enc.decode_ms)
            shown.append(last)
        else:
            shown.append(Shown(last.image if last is not None else _grey_like(rgb), None, False,
                               len(enc.packets), n_got))
    return LinkResult(shown, {k: int(v) for k, v in sorted(shaper.stats.items())})
