"""The wire format of the stream: packet header, CRC, the frame-info body, and their parsers.


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
    11     ...  body (kind-specific, see `INFO_BODY` and `Packetizer._index_body`)
    -4     4    CRC-32 over everything before it

No zmq, no ROS, no torch here: nodes and the link only move the bytes this package produces.
"""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from sqgan_core.bitstream import FrameError, FrameHeader
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
INFO_BODY = struct.Struct(">BBBHHBiIHHBBBB")
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


def seal(header: PacketHeader, body: bytes) -> bytes:
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


def pack_info(info: FrameInfo, fragment: int, chunk: bytes) -> bytes:
    h = info.header
    fid = info.frame_id.encode()
    return INFO_BODY.pack(h.grid_h, h.grid_w, (h.pad_h << 4) | h.pad_w, h.n_x, h.n_s, (h.log2_jx << 4) | h.log2_js,
                      info.stamp_sec, info.stamp_nanosec, info.orig_height, info.orig_width, info.info_packets,
                      fragment, info.fragment_count, len(fid)) + fid + chunk


MAX_OUTPUT_PIXELS = 3840 * 2160  # the receiver restores the camera size: bound what a sender may ask for
MAX_UPSCALE = 16  # camera size / encoded size per side (vehicles only scale down to fit max_tokens)


def unpack_info(pkt: Packet, max_tokens: int, max_output_pixels: int = MAX_OUTPUT_PIXELS) -> tuple[FrameInfo, int, bytes]:
    body = pkt.body
    if len(body) < INFO_BODY.size:
        raise PacketError("bad_fields", f"info body of {len(body)} bytes, needs at least {INFO_BODY.size}")
    (gh, gw, pad, nx, ns, logj, sec, nsec, oh, ow, n_info, frag, n_frag, fid_len) = INFO_BODY.unpack_from(body)
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
    if len(body) < INFO_BODY.size + fid_len:
        raise PacketError("bad_fields", "info packet truncated inside frame_id")
    try:
        frame_id = body[INFO_BODY.size:INFO_BODY.size + fid_len].decode()
    except UnicodeDecodeError:
        raise PacketError("bad_fields", "frame_id is not UTF-8") from None
    info = FrameInfo(header, sec, nsec, oh, ow, frame_id, n_info, n_frag)
    return info, frag, body[INFO_BODY.size + fid_len:]


def frame_bits_on_wire(packets: list[bytes]) -> int:
    """Everything the link carries for a frame: headers, CRCs and redundant info copies included."""
    return 8 * sum(len(p) for p in packets)
