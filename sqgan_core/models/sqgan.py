"""The SQ-GAN generator: two pipelines that meet only through the semantic map.

Semantic pipeline (G_s): one-hot s -> E_s -> SAMM -> VQ -> placeholders -> ADM -> D_s -> s_hat.
Image pipeline (G_x): InputNet_x(x) + SemPE(s) -> E_x -> SAMM -> VQ -> placeholders -> ADM
-> D_x conditioned on s_hat through SPADE.

Inference is split into the stages the benchmark times and the bitstream needs: `encode_latents`,
`select`, `demask`, `decode_latents`; `encode` / `decode` chain them. The masking fractions are
arguments of every call, so one set of weights serves every rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sqgan_core.config import ModelConfig, PipelineConfig
from sqgan_core.labels import NUM_CHANNELS, VOID, VOID_INDEX
from sqgan_core.models.coders import Encoder, ImageDecoder, SemanticDecoder, SemPE
from sqgan_core.models.masking import ADM, SAMM
from sqgan_core.models.quantizer import MASKED, QuantOutput, VectorQuantizerEMA


def channel_one_hot(idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, H, W) channel indices -> (B, 20, H, W) one-hot, written channels-first in one scatter
    (F.one_hot + permute costs ~4x more at 256x512 on the CPU) in channels-last memory order."""
    b, h, w = idx.shape
    out = torch.zeros(b, h, w, NUM_CHANNELS, dtype=dtype, device=idx.device)
    out.scatter_(3, idx.unsqueeze(-1), 1.0)
    return out.permute(0, 3, 1, 2)  # a channels-last view: what the convolutions run fastest on


@dataclass
class Tokens:
    """What crosses the channel: per stream a (B, K) index map, MASKED (-1) where a token was dropped."""

    indices_x: torch.Tensor
    indices_s: torch.Tensor
    grid: tuple[int, int]  # (H/16, W/16)
    codebook_bits: tuple[int, int] | None = None  # (log2 J_x, log2 J_s) when sent with reduced codebooks

    @property
    def keep_x(self) -> torch.Tensor:
        return self.indices_x >= 0

    @property
    def keep_s(self) -> torch.Tensor:
        return self.indices_s >= 0


@dataclass
class StreamOutput:
    """Training-time result of one pipeline's masked quantisation."""

    grid: torch.Tensor  # (B, C, h, w) codes + placeholders, ready for the ADM
    quant: QuantOutput
    keep: torch.Tensor  # (B, K) bool
    scores: torch.Tensor  # (B, K)


class MaskedQuantizer(nn.Module):
    """SAMM + VQ + learned placeholder + ADM for one stream (identical structure in both pipelines)."""

    def __init__(self, cfg: PipelineConfig, label_channels: int) -> None:
        super().__init__()
        c = cfg.z_channels
        self.samm = SAMM(c, label_channels, cfg.spade_hidden)
        self.vq = VectorQuantizerEMA(cfg.codebook_size, c, decay=cfg.ema_decay, beta=cfg.commit_beta)
        self.placeholder = nn.Parameter(torch.randn(c) * 0.02)
        self.adm = ADM(c, cfg.adm_depth, cfg.adm_heads)
        # Entropy-coding prior over code indices, fitted from code usage after training (uniform until then).
        self.register_buffer("index_prior", torch.full((cfg.codebook_size,), 1.0 / cfg.codebook_size))

    def select(self, z: torch.Tensor, seg: torch.Tensor, m: float) -> StreamOutput:
        b, c, h, w = z.shape
        tokens, keep, scores = self.samm(z, seg, m)
        quant = self.vq(tokens, keep)
        return StreamOutput(self.fill(quant.quantized, keep, (h, w)), quant, keep, scores)

    def fill(self, codes: torch.Tensor, keep: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, K, C) codes at kept positions -> (B, C, h, w) with the placeholder everywhere else."""
        b, k, c = codes.shape
        filled = torch.where(keep.unsqueeze(-1), codes, self.placeholder.to(codes.dtype).expand(b, k, c))
        return filled.transpose(1, 2).reshape(b, c, *hw)

    def embed(self, indices: torch.Tensor, hw: tuple[int, int], table: torch.Tensor | None = None) -> torch.Tensor:
        """Received indices (B, K) -> code grid with placeholders (the receiver's first step). `table`:
        the code vectors of a reduced codebook (k-means centroids) instead of the full codebook."""
        n = self.vq.num_codes if table is None else table.shape[0]
        if indices.numel() and (int(indices.max()) >= n or int(indices.min()) < MASKED):
            raise ValueError(f"code index outside -1..{n - 1}")
        codes = self.vq.lookup(indices) if table is None else table.to(self.placeholder.dtype)[indices.clamp(min=0)]
        return self.fill(codes, indices >= 0, hw)


@dataclass
class SoftCodes:
    """Code vectors for positions whose index is not known (batch 1): a concealer's estimate of lost
    tokens, e.g. the expected code vector under its predicted distribution. `as_kept`: the ADM treats
    them as received tokens; otherwise they only replace the placeholder it starts the fill from."""

    positions: torch.Tensor  # (N,) flat token positions
    vectors: torch.Tensor  # (N, C)
    as_kept: bool = False


def _demask(mq: "MaskedQuantizer", indices: torch.Tensor, grid: tuple[int, int], table: torch.Tensor | None,
            soft: SoftCodes | None) -> torch.Tensor:
    zq = mq.embed(indices, grid, table).contiguous()
    keep = indices >= 0
    if soft is not None and soft.positions.numel():
        flat = zq.view(zq.shape[0], zq.shape[1], -1)  # (B, C, K), sharing zq's memory
        flat[0, :, soft.positions] = soft.vectors.to(flat.dtype).T
        if soft.as_kept:
            keep = keep.clone()
            keep[0, soft.positions] = True
    return mq.adm(zq, keep)


class SQGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        s, x = config.semantic, config.image
        lc = NUM_CHANNELS
        # Semantic pipeline
        self.sem_conv_in = nn.Conv2d(lc, s.ch, 3, padding=1)
        self.sem_encoder = Encoder(s.ch, s.ch_mult, s.num_res_blocks, s.attn_levels, s.z_channels, s.heads)
        self.sem_mq = MaskedQuantizer(s, lc)
        self.sem_decoder = SemanticDecoder(s.ch, s.ch_mult, s.num_res_blocks, s.attn_levels, s.z_channels,
                                           s.heads, lc)
        # Image pipeline
        self.input_net = nn.Conv2d(3, x.ch, 3, padding=1)  # InputNet_x: one conv layer
        self.sempe = SemPE(lc, x.ch)
        self.img_encoder = Encoder(x.ch, x.ch_mult, x.num_res_blocks, x.attn_levels, x.z_channels, x.heads)
        self.img_mq = MaskedQuantizer(x, lc)
        self.img_decoder = ImageDecoder(x.ch, x.ch_mult, x.num_res_blocks, x.attn_levels, x.z_channels,
                                        x.heads, lc, x.spade_hidden)

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def downsample(self) -> int:
        return self.config.downsample

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        """(J_x, J_s)"""
        return self.img_mq.vq.num_codes, self.sem_mq.vq.num_codes

    def grid_of(self, height: int, width: int) -> tuple[int, int]:
        f = self.downsample
        if height % f or width % f or height < f or width < f:
            raise ValueError(f"image size {height}x{width} must be a positive multiple of {f}")
        return height // f, width // f

    @staticmethod
    def one_hot(labels: torch.Tensor) -> torch.Tensor:
        """(B, H, W) trainIds (255 = void) -> (B, 20, H, W) float one-hot."""
        idx = torch.where(labels == VOID, torch.full_like(labels, VOID_INDEX), labels).long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) > VOID_INDEX):
            raise ValueError("labels must be trainIds 0..18 or 255")
        return channel_one_hot(idx)

    # ---- stages --------------------------------------------------------------------------------
    def encode_latents(self, x: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [-1, 1] (B, 3, H, W), seg one-hot (B, 20, H, W) -> (z_x, z_s) at 1/16."""
        z_s = self.sem_encoder(self.sem_conv_in(seg))
        z_x = self.img_encoder(self.input_net(x) + self.sempe(seg))
        return z_x, z_s

    def select(self, z_x: torch.Tensor, z_s: torch.Tensor, seg: torch.Tensor, m_x: float, m_s: float) -> Tokens:
        out_x = self.img_mq.select(z_x, seg, m_x)
        out_s = self.sem_mq.select(z_s, seg, m_s)
        return Tokens(out_x.quant.indices, out_s.quant.indices, tuple(z_x.shape[-2:]))

    def demask(self, tokens: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
        hw = tokens.grid
        zq_x = self.img_mq.embed(tokens.indices_x, hw)
        zq_s = self.sem_mq.embed(tokens.indices_s, hw)
        return self.img_mq.adm(zq_x, tokens.keep_x), self.sem_mq.adm(zq_s, tokens.keep_s)

    def decode_semantic(self, zhat_s: torch.Tensor) -> torch.Tensor:
        """-> (B, 20, H, W) logits; channel 19 is void."""
        return self.sem_decoder(zhat_s)

    def decode_image(self, zhat_x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """-> (B, 3, H, W) in about [-1, 1], conditioned on a one-hot (or soft) semantic map."""
        return self.img_decoder(zhat_x, seg)

    def decode_latents(self, zhat_x: torch.Tensor, zhat_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (x_hat in [-1, 1], s_hat channel indices (B, H, W) with 19 = void)."""
        logits = self.decode_semantic(zhat_s)
        s_idx = logits.argmax(1)
        return self.decode_image(zhat_x, channel_one_hot(s_idx, zhat_x.dtype)).clamp(-1, 1), s_idx

    # ---- inference API -------------------------------------------------------------------------
    def prepare_for_inference(self) -> "SQGAN":
        """eval() + channels-last weights: 2-5x faster convolutions on the CPU (oneDNN) and on GPUs."""
        self.eval()
        return self.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, labels: torch.Tensor, m_x: float, m_s: float) -> Tokens:
        """x: (B, 3, H, W) in [-1, 1]; labels: (B, H, W) trainIds. H, W multiples of 16."""
        self.grid_of(*x.shape[-2:])
        if labels.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"labels {tuple(labels.shape[-2:])} and image {tuple(x.shape[-2:])} differ in size")
        seg = self.one_hot(labels)
        z_x, z_s = self.encode_latents(x.contiguous(memory_format=torch.channels_last), seg)
        return self.select(z_x, z_s, seg, m_x, m_s)

    @torch.inference_mode()
    def decode(self, tokens: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
        s_idx = self.decode_semantic_tokens(tokens.indices_s, tokens.grid)
        return self.decode_image_tokens(tokens.indices_x, tokens.grid, s_idx), s_idx

    # The two halves of `decode`, for a receiver that acts between them (the image stream's concealer
    # reads s_hat before the image is decoded).
    @torch.inference_mode()
    def decode_semantic_tokens(self, indices_s: torch.Tensor, grid: tuple[int, int],
                               table: torch.Tensor | None = None, soft: SoftCodes | None = None) -> torch.Tensor:
        """(B, K) semantic indices (MASKED where absent) -> s_hat channel indices (B, H, W), 19 = void."""
        return self.decode_semantic(_demask(self.sem_mq, indices_s, grid, table, soft)).argmax(1)

    @torch.inference_mode()
    def decode_image_tokens(self, indices_x: torch.Tensor, grid: tuple[int, int], s_idx: torch.Tensor,
                            table: torch.Tensor | None = None, soft: SoftCodes | None = None) -> torch.Tensor:
        """(B, K) image indices + s_hat channel indices -> x_hat in [-1, 1] (B, 3, H, W)."""
        zhat_x = _demask(self.img_mq, indices_x, grid, table, soft)
        return self.decode_image(zhat_x, channel_one_hot(s_idx, zhat_x.dtype)).clamp(-1, 1)
