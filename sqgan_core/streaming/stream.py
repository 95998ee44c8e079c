"""The codec on the stream: images -> packets at the vehicle, assembled frames -> images at the RSU.

StreamEncoder: an RGB image and its trainId map -> packets (resizing images whose token grid is
beyond the configured limit, and recording the camera's size so the RSU can restore it).
StreamDecoder: an AssembledFrame -> RGB image + trainIds at the camera's size, lost tokens through a
`Concealer` (semantic stream first, then the image stream conditioned on s_hat).
"""
from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sqgan_core.bitstream import DOWNSAMPLE
from sqgan_core.checkpoint import CheckpointError, default_checkpoint
from sqgan_core.codec import Codec, DecodedFrame
from sqgan_core.config import ConfigError
from sqgan_core.errors import InputError
from sqgan_core.streaming.assembler import AssembledFrame
from sqgan_core.models.concealer import s_hat_token_histogram
from sqgan_core.streaming.concealment import Concealer, NoModelConcealer
from sqgan_core.streaming.packetizer import Packetizer

log = logging.getLogger("sqgan.streaming")

UNTRAINED_PREFIX = "untrained:"


class ModelSpecError(InputError, ValueError):
    """A `model` parameter that names nothing loadable; the message says what to pass instead."""


def load_codec(spec: str, *, device: str = "cpu") -> tuple[Codec, bool]:
    """`model` parameter -> (codec, untrained?). `untrained:<config>` must be asked for explicitly;
    an empty spec means the shipped trained model, and is an error while none is shipped."""
    spec = (spec or "").strip()
    try:
        if spec.startswith(UNTRAINED_PREFIX):
            cfg = spec[len(UNTRAINED_PREFIX):] or "small"
            return Codec.untrained(cfg, device=device), True
        path = Path(spec) if spec else default_checkpoint()
        if path is None:
            raise ModelSpecError("no trained model is shipped yet: set the `model` parameter to a checkpoint path, "
                                 "or to 'untrained:small' for random weights (reconstructions will be noise)")
        return Codec.from_checkpoint(path, device=device), False
    except (CheckpointError, ConfigError, FileNotFoundError) as exc:
        raise ModelSpecError(f"model {spec!r}: {exc}") from None


UNTRAINED_WARNING = ("*** UNTRAINED MODEL ({spec}): random weights. Sizes, rates and timings are real; "
                     "reconstructed images and semantic maps are noise. ***")


def fit_size(height: int, width: int, max_tokens: int) -> tuple[int, int]:
    """The size to encode at: unchanged when the 16-pixel token grid fits `max_tokens` and 255 per
    side, else scaled down (aspect kept) until it does."""
    def tokens(h: int, w: int) -> tuple[int, int]:
        return -(-h // DOWNSAMPLE), -(-w // DOWNSAMPLE)

    gh, gw = tokens(height, width)
    if gh * gw <= max_tokens and gh <= 255 and gw <= 255:
        return height, width
    scale = min(math.sqrt(max_tokens / (gh * gw)), 255 / gh, 255 / gw)
    while True:
        h, w = max(1, int(height * scale)), max(1, int(width * scale))
        gh, gw = tokens(h, w)
        if gh * gw <= max_tokens and gh <= 255 and gw <= 255:
            return h, w
        scale *= 0.98


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if labels.shape[:2] == size:
        return labels
    return np.asarray(Image.fromarray(labels).resize((size[1], size[0]), Image.NEAREST))


@dataclass
class EncodedPackets:
    packets: list[bytes]
    seq: int
    n_x: int
    n_s: int
    bytes_total: int
    bpp: float  # everything on the wire (headers, CRCs, redundant info) per camera pixel
    encode_ms: float
    resized: bool
    frame: bytes | None = None  # the same tokens as one v1 frame (bitstream), when asked for


class StreamEncoder:
    """One vehicle's encoder: m_x, m_s may change between frames (thread-safe setters)."""

    def __init__(self, codec: Codec, vehicle_id: int, *, m_x: float = 0.5, m_s: float = 0.5,
                 max_packet_bytes: int = 256, info_copies: int = 2, max_tokens: int | None = None,
                 first_seq: int | None = None) -> None:
        self.codec = codec
        self.packetizer = Packetizer(codec.priors_x, codec.priors_s, codec.model_id, vehicle_id=vehicle_id,
                                     max_packet_bytes=max_packet_bytes, info_copies=info_copies)
        self.max_tokens = min(max_tokens or codec.max_tokens, codec.max_tokens)
        self._lock = threading.Lock()
        self.set_rates(m_x, m_s)
        # A random initial sequence number: a restarted vehicle looks like a new stream at the RSU.
        self.seq = secrets.randbelow(1 << 16) if first_seq is None else first_seq % (1 << 16)

    def set_rates(self, m_x: float, m_s: float, codebook: tuple[int | None, int | None] | None = None) -> None:
        """Keep fractions and, optionally, the (J_x, J_s) codebook sizes (None: the full codebooks)."""
        for name, v in (("m_x", m_x), ("m_s", m_s)):
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if codebook is not None:
            have_x, have_s = self.codec.codebook_sizes()
            for name, size, have in (("J_x", codebook[0], have_x), ("J_s", codebook[1], have_s)):
                if size is not None and size not in have:
                    raise ValueError(f"{name} = {size}: this model sends {', '.join(map(str, have))} codes")
        with self._lock:
            self.m_x, self.m_s = float(m_x), float(m_s)
            self.codebook = codebook

    def encode(self, rgb: np.ndarray, labels: np.ndarray, stamp: tuple[int, int] = (0, 0),
               frame_id: str = "", want_frame: bool = False) -> EncodedPackets:
        t0 = time.perf_counter()
        with self._lock:
            m_x, m_s, codebook = self.m_x, self.m_s, self.codebook
        oh, ow = rgb.shape[:2]
        size = fit_size(oh, ow, self.max_tokens)
        rgb_in, lab_in = resize_rgb(rgb, size), resize_labels(labels, size)
        with torch.inference_mode():
            tokens, ph, pw = self.codec.tokens_for(rgb_in, lab_in, m_x, m_s, codebook)
        header = self.codec.header_for(tokens, ph, pw)
        packets = self.packetizer.packetize(header, tokens.indices_x[0].cpu().numpy(),
                                            tokens.indices_s[0].cpu().numpy(), seq=self.seq, stamp=stamp,
                                            orig_size=(oh, ow), frame_id=frame_id)
        frame = self.codec.write(tokens, ph, pw).data if want_frame else None
        seq = self.seq
        self.seq = (self.seq + 1) % (1 << 16)
        total = sum(len(p) for p in packets)
        return EncodedPackets(packets, seq, header.n_x, header.n_s, total, 8 * total / (oh * ow),
                              1000 * (time.perf_counter() - t0), size != (oh, ow), frame)


class StreamDecoder:
    """Assembled frames -> images at the camera's size. Lost tokens go through `concealer` (default:
    the no-model baseline, which leaves them to the ADM)."""

    def __init__(self, codec: Codec, concealer: Concealer | None = None) -> None:
        self.codec = codec
        self.concealer = concealer if concealer is not None else NoModelConcealer()

    def decode(self, frame: AssembledFrame) -> DecodedFrame:
        h = frame.header
        grid = (h.grid_h, h.grid_w)
        dev = self.codec.device

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(dev)[None]

        with torch.inference_mode():
            cs = self.concealer.semantic(frame)
            s_idx = self.codec.decode_semantic(tensor(cs.indices), grid, h.log2_js, self.codec.soft_codes("semantic", cs))
            hist = None
            if frame.lost_x.any() and self.concealer.needs_s_hat:
                hist = s_hat_token_histogram(s_idx, DOWNSAMPLE)[0]
            cx = self.concealer.image(frame, hist)
            x_hat = self.codec.decode_image(tensor(cx.indices), grid, s_idx, h.log2_jx, self.codec.soft_codes("image", cx))
        out = self.codec.to_frame(x_hat, s_idx, h)
        size = (frame.info.orig_height, frame.info.orig_width)
        image, labels = resize_rgb(out.image, size), resize_labels(out.labels, size)
        extras: dict[str, Any] = {"tokens_lost": frame.tokens_lost, "complete": frame.complete,
                                  "concealment": self.concealer.name}
        return DecodedFrame(np.ascontiguousarray(image), np.ascontiguousarray(labels), h, extras)


def warm_up(codec: Any) -> None:
    """One tiny encode + decode before declaring the node ready: the first inference of a process
    is several times slower (lazy initialisation), which would otherwise land on the first frame."""
    img = np.zeros((32, 32, 3), np.uint8)
    codec.decode(codec.encode(img, np.zeros((32, 32), np.uint8), 0.5, 0.5).data)
