"""Image + semantic map <-> frame bytes: the model, the bitstream and the pre/post-processing.

This is the only object nodes and commands need. Any image size works: the codec pads to the next
multiple of 16 (edge replication) and the header carries the padding, so the decoder crops back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sqgan_core.bitstream import (
    DOWNSAMPLE,
    MASKED,
    Frame,
    FrameError,
    FrameHeader,
    frame_stats,
    read_header,
    read_frame,
    write_frame,
)
from sqgan_core.checkpoint import CheckpointError, build_untrained, load_checkpoint, model_id_of
from sqgan_core.codebooks import KEY as REDUCED_KEY
from sqgan_core.codebooks import parse_reduced
from sqgan_core.config import ModelConfig
from sqgan_core.entropy import IndexPrior, PriorSet
from sqgan_core.labels import from_channel_index, validate_train_ids
from sqgan_core.models import SQGAN, Tokens
from sqgan_core.models.sqgan import SoftCodes
from sqgan_core.models.masking import keep_count

# The decoder's work grows with the square of the token count (ADM attention): a forged 15-byte header
# with a 64x128 grid (8192 tokens) cost 32 s and 1.5 GB to decode on 2 CPU cores. 2048 tokens (a
# 512x1024 frame, 4x the 256x512 camera) bound that to about 2 s and 0.1 GB for any frame, from a file
# or the network; larger frames need an explicit `--max-tokens` (CLI) or `max_tokens` (nodes).
DEFAULT_MAX_TOKENS = 2048


@dataclass
class EncodedFrame:
    data: bytes
    header: FrameHeader

    @property
    def stats(self) -> dict[str, Any]:
        return frame_stats(self.header, len(self.data))


@dataclass
class DecodedFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8 trainIds, 255 = void
    header: FrameHeader
    extras: dict[str, Any] = field(default_factory=dict)


def _pad_to_multiple(a: np.ndarray, f: int) -> tuple[np.ndarray, int, int]:
    ph, pw = -a.shape[0] % f, -a.shape[1] % f
    if ph or pw:
        pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
        a = np.pad(a, pad, mode="edge")
    return a, ph, pw


class Codec:
    """SQ-GAN encoder and decoder for one set of weights (on CPU unless `device` says otherwise)."""

    def __init__(self, model: SQGAN, *, device: str | torch.device = "cpu", max_tokens: int = DEFAULT_MAX_TOKENS,
                 metadata: dict[str, Any] | None = None) -> None:
        if model.downsample != DOWNSAMPLE:
            raise ValueError(f"frame format v1 needs a 1/{DOWNSAMPLE} token grid, model has 1/{model.downsample}")
        self.model_id = model_id_of(model)  # before any layout change, so it matches the checkpoint's
        self.device = torch.device(device)
        self.model = model.to(self.device).prepare_for_inference()
        self.max_tokens = max_tokens
        self.metadata = dict(metadata or {})
        jx, js = model.codebook_sizes
        self.log2_jx, self.log2_js = jx.bit_length() - 1, js.bit_length() - 1
        self.prior_x = IndexPrior(model.img_mq.index_prior.detach().cpu().double().numpy())
        self.prior_s = IndexPrior(model.sem_mq.index_prior.detach().cpu().double().numpy())
        # k-means reductions of each codebook (sqgan_core.codebooks), when the checkpoint carries them:
        # the frame header's log2 J says which size a frame uses; priors_* hold one prior per size.
        self.reduced = parse_reduced(self.metadata.get(REDUCED_KEY), model)
        self.priors_x = PriorSet({self.log2_jx: self.prior_x, **{b: r.prior for b, r in self.reduced["image"].items()}})
        self.priors_s = PriorSet({self.log2_js: self.prior_s, **{b: r.prior for b, r in self.reduced["semantic"].items()}})
        self._tables: dict[tuple[str, int], torch.Tensor] = {}

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], **kwargs: Any) -> "Codec":
        model, meta = load_checkpoint(path)
        try:
            return cls(model, metadata={**meta, "checkpoint": str(Path(path))}, **kwargs)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None

    # ---- codebook sizes ------------------------------------------------------------------------
    def codebook_sizes(self) -> tuple[list[int], list[int]]:
        """The codebook sizes each stream can be sent with (full size last)."""
        return self.priors_x.sizes, self.priors_s.sizes

    def _bits_of(self, stream: str, size: int | None) -> int:
        full = self.log2_jx if stream == "image" else self.log2_js
        if size is None or size == 1 << full:
            return full
        bits = int(size).bit_length() - 1
        if bits not in self.reduced[stream]:
            have = self.priors_x.sizes if stream == "image" else self.priors_s.sizes
            raise ValueError(f"{stream} codebook of {size} codes: this model has {', '.join(map(str, have))}")
        return bits

    def table(self, stream: str, bits: int) -> torch.Tensor | None:
        """The code vectors a 2^bits codebook embeds (None: the model's own full codebook)."""
        if bits == (self.log2_jx if stream == "image" else self.log2_js):
            return None
        key = (stream, bits)
        if key not in self._tables:
            self._tables[key] = self.reduced[stream][bits].centroids.to(self.device)
        return self._tables[key]

    @classmethod
    def untrained(cls, config: ModelConfig | str = "small", **kwargs: Any) -> "Codec":
        model = build_untrained(config)
        return cls(model, metadata={"untrained": True, "config": model.config.name}, **kwargs)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    # ---- tensors <-> arrays --------------------------------------------------------------------
    def _prepare(self, image: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
        labels = validate_train_ids(labels)
        if labels.shape != image.shape[:2]:
            raise ValueError(f"labels {labels.shape} and image {image.shape[:2]} differ in size")
        h, w = image.shape[:2]
        gh, gw = -(-h // DOWNSAMPLE), -(-w // DOWNSAMPLE)
        if gh > 255 or gw > 255 or gh * gw > self.max_tokens:
            raise ValueError(f"image {h}x{w} gives a {gh}x{gw} token grid; the limit is 255 per side and "
                             f"{self.max_tokens} tokens")
        image, ph, pw = _pad_to_multiple(image, DOWNSAMPLE)
        labels, _, _ = _pad_to_multiple(labels, DOWNSAMPLE)
        if not image.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
            image = image.copy()
        if not labels.flags.writeable:
            labels = labels.copy()
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1
        lab = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device)[None].long()
        return x, lab, ph, pw

    def header_for(self, tokens: Tokens, ph: int = 0, pw: int = 0) -> FrameHeader:
        """The frame header of one encoded image (also what the packetiser sends in its info packets)."""
        gh, gw = tokens.grid
        bx, bs = tokens.codebook_bits or (self.log2_jx, self.log2_js)
        return FrameHeader(self.model_id, gh, gw, ph, pw, int(tokens.keep_x.sum()), int(tokens.keep_s.sum()), bx, bs)

    # ---- public API ----------------------------------------------------------------------------
    def tokens_for(self, image: np.ndarray, labels: np.ndarray, m_x: float, m_s: float,
                   codebook: tuple[int | None, int | None] | None = None) -> tuple[Tokens, int, int]:
        """`codebook`: (J_x, J_s) sizes to send with (None: the full codebooks)."""
        bx, bs = (self._bits_of("image", codebook[0]), self._bits_of("semantic", codebook[1])) if codebook else (
            self.log2_jx, self.log2_js)
        x, lab, ph, pw = self._prepare(image, labels)
        tokens = self.model.encode(x, lab, m_x, m_s)
        if (bx, bs) != (self.log2_jx, self.log2_js):
            tokens = Tokens(self._reduce(tokens.indices_x, "image", bx), self._reduce(tokens.indices_s, "semantic", bs),
                            tokens.grid, (bx, bs))
        return tokens, ph, pw

    def _reduce(self, indices: torch.Tensor, stream: str, bits: int) -> torch.Tensor:
        full = self.log2_jx if stream == "image" else self.log2_js
        if bits == full:
            return indices
        labels = torch.from_numpy(self.reduced[stream][bits].labels).to(indices.device)
        return torch.where(indices >= 0, labels[indices.clamp(min=0)], indices)

    def write(self, tokens: Tokens, ph: int = 0, pw: int = 0) -> EncodedFrame:
        header = self.header_for(tokens, ph, pw)
        data = write_frame(header, tokens.indices_x[0].cpu().numpy(), tokens.indices_s[0].cpu().numpy(),
                           self.priors_x, self.priors_s)
        # The header as written: the coder may have fallen back to the raw layout (mode), which every
        # report (encode --json, frame.stats, bench codec) must show as `sqgan info` does.
        return EncodedFrame(data, read_header(data))

    def encode(self, image: np.ndarray, labels: np.ndarray, m_x: float, m_s: float,
               codebook: tuple[int | None, int | None] | None = None) -> EncodedFrame:
        """RGB uint8 image + trainId map -> frame bytes. m_x, m_s in [0, 1] (1 keeps every token);
        `codebook` (J_x, J_s) picks reduced codebooks (`codebook_sizes()`), None the full ones."""
        tokens, ph, pw = self.tokens_for(image, labels, m_x, m_s, codebook)
        return self.write(tokens, ph, pw)

    def read(self, data: bytes) -> Frame:
        return read_frame(data, self.priors_x, self.priors_s, model_id=self.model_id, max_tokens=self.max_tokens)

    def tokens_of(self, frame: Frame) -> Tokens:
        h = frame.header
        ix = torch.from_numpy(frame.indices_x).to(self.device)[None]
        is_ = torch.from_numpy(frame.indices_s).to(self.device)[None]
        return Tokens(ix, is_, (h.grid_h, h.grid_w), (h.log2_jx, h.log2_js))

    def reconstruct(self, tokens: Tokens, header: FrameHeader) -> DecodedFrame:
        s_idx = self.decode_semantic(tokens.indices_s, tokens.grid, header.log2_js)
        return self.to_frame(self.decode_image(tokens.indices_x, tokens.grid, s_idx, header.log2_jx), s_idx, header)

    def decode_semantic(self, indices_s: torch.Tensor, grid: tuple[int, int], bits: int,
                        soft: SoftCodes | None = None) -> torch.Tensor:
        """(1, K) semantic indices of a 2^bits codebook -> s_hat channel indices (1, H, W)."""
        return self.model.decode_semantic_tokens(indices_s, grid, self.table("semantic", bits), soft)

    def decode_image(self, indices_x: torch.Tensor, grid: tuple[int, int], s_idx: torch.Tensor, bits: int,
                     soft: SoftCodes | None = None) -> torch.Tensor:
        return self.model.decode_image_tokens(indices_x, grid, s_idx, self.table("image", bits), soft)

    def soft_codes(self, stream: str, concealed: Any) -> SoftCodes | None:
        """A concealer's distributions over the full codebook (`Concealed.probs`) -> expected code vectors."""
        if concealed.positions is None or concealed.probs is None or not len(concealed.positions):
            return None
        mq = self.model.img_mq if stream == "image" else self.model.sem_mq
        emb = mq.vq.embedding
        vectors = concealed.probs.to(emb.device, emb.dtype) @ emb
        return SoftCodes(torch.from_numpy(np.asarray(concealed.positions)).to(emb.device), vectors, concealed.as_kept)

    def to_frame(self, x_hat: torch.Tensor, s_idx: torch.Tensor, header: FrameHeader) -> DecodedFrame:
        """The decoder's tensors -> uint8 RGB and trainIds, cropped to the encoded size."""
        img = ((x_hat[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        lab = from_channel_index(s_idx[0].cpu().numpy())
        return DecodedFrame(np.ascontiguousarray(img[: header.height, : header.width]),
                            np.ascontiguousarray(lab[: header.height, : header.width]), header)

    def decode(self, data: bytes) -> DecodedFrame:
        """Frame bytes -> reconstructed RGB image and semantic map. Raises FrameError on bad input."""
        frame = self.read(data)
        return self.reconstruct(self.tokens_of(frame), frame.header)

    def keep_counts(self, height: int, width: int, m_x: float, m_s: float) -> tuple[int, int]:
        """(N_x, N_s) an image of this size gets at these fractions (N = floor(m K))."""
        k = -(-height // DOWNSAMPLE) * -(-width // DOWNSAMPLE)
        return keep_count(m_x, k), keep_count(m_s, k)


__all__ = ["Codec", "EncodedFrame", "DecodedFrame", "FrameError", "MASKED"]
