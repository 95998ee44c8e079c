"""Convolutional encoder and decoders of both pipelines.

E_s and E_x share one trunk (`Encoder`): ResBlocks per level, a strided downsample between levels
(len(ch_mult) - 1 of them, so 5 levels give the paper's 1/16 grid), self-attention at the levels
listed in `attn_levels`, then a mid block and a projection to C channels. `SemanticDecoder` mirrors it
(D_s); `ImageDecoder` is the same mirror with every normalisation replaced by SPADE on s_hat (D_x).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sqgan_core.models.layers import (
    SPADE,
    Downsample,
    ResnetBlock,
    SelfAttention,
    SemanticPyramid,
    SPADEResnetBlock,
    Upsample,
    normalize,
)


def build_stages(levels: Sequence[int], ch: int, ch_mult: Sequence[int], blocks_per_level: int,
                 attn_levels: Sequence[int], heads: int, block_in: int,
                 make_block: Callable[[int, int], nn.Module], make_resample: Callable[[int, int], nn.Module]
                 ) -> tuple[nn.ModuleList, int]:
    """Resolution stages in `levels` order: `blocks_per_level` blocks (each followed by attention at
    `attn_levels`) and a resampling layer; returns the stages and the final width."""
    stages = nn.ModuleList()
    for level in levels:
        out_ch = ch * ch_mult[level]
        stage = nn.Module()
        stage.blocks, stage.attns = nn.ModuleList(), nn.ModuleList()
        for _ in range(blocks_per_level):
            stage.blocks.append(make_block(block_in, out_ch))
            block_in = out_ch
            if level in attn_levels:
                stage.attns.append(SelfAttention(out_ch, heads))
        stage.resample = make_resample(level, out_ch)
        stages.append(stage)
    return stages, block_in


def run_stages(stages: nn.ModuleList, h: torch.Tensor, *cond: object) -> torch.Tensor:
    """Forward through `build_stages` output; `cond` (the semantic map) goes to every block."""
    for stage in stages:
        for i, block in enumerate(stage.blocks):
            h = block(h, *cond)
            if len(stage.attns):
                h = stage.attns[i](h)
        h = stage.resample(h)
    return h


class Encoder(nn.Module):
    """Trunk from `ch` feature channels at full resolution to `z_channels` at 1/2^(levels-1)."""

    def __init__(self, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_levels: Sequence[int],
                 z_channels: int, heads: int) -> None:
        super().__init__()
        last = len(ch_mult) - 1
        self.down, in_ch = build_stages(range(len(ch_mult)), ch, ch_mult, num_res_blocks, attn_levels, heads, ch,
                                        ResnetBlock, lambda lv, c: Downsample(c) if lv < last else nn.Identity())
        self.mid1 = ResnetBlock(in_ch, in_ch)
        self.mid_attn = SelfAttention(in_ch, heads)
        self.mid2 = ResnetBlock(in_ch, in_ch)
        self.norm_out = normalize(in_ch)
        self.conv_out = nn.Conv2d(in_ch, z_channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = run_stages(self.down, h)
        h = self.mid2(self.mid_attn(self.mid1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


def _upsample(level: int, channels: int) -> nn.Module:
    return Upsample(channels) if level > 0 else nn.Identity()


class SemanticDecoder(nn.Module):
    """D_s: attention first, then ResBlock-Up stages back to full resolution; outputs class logits."""

    def __init__(self, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_levels: Sequence[int],
                 z_channels: int, heads: int, out_channels: int) -> None:
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.in_attn = SelfAttention(block_in, heads)
        self.mid1 = ResnetBlock(block_in, block_in)
        self.mid2 = ResnetBlock(block_in, block_in)
        self.up, block_in = build_stages(reversed(range(len(ch_mult))), ch, ch_mult, num_res_blocks + 1, attn_levels,
                                         heads, block_in, ResnetBlock, _upsample)
        self.norm_out = normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid2(self.mid1(self.in_attn(self.conv_in(z))))
        return self.conv_out(F.silu(self.norm_out(run_stages(self.up, h))))


class ImageDecoder(nn.Module):
    """D_x: the mirror of E_x with every normalisation a SPADE conditioned on s_hat (one-hot)."""

    def __init__(self, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_levels: Sequence[int],
                 z_channels: int, heads: int, label_channels: int, spade_hidden: int) -> None:
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.in_attn = SelfAttention(block_in, heads)
        self.mid1 = SPADEResnetBlock(block_in, block_in, label_channels, spade_hidden)
        self.mid2 = SPADEResnetBlock(block_in, block_in, label_channels, spade_hidden)
        self.up, block_in = build_stages(
            reversed(range(len(ch_mult))), ch, ch_mult, num_res_blocks + 1, attn_levels, heads, block_in,
            lambda i, o: SPADEResnetBlock(i, o, label_channels, spade_hidden), _upsample)
        self.norm_out = SPADE(block_in, label_channels, spade_hidden)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = SemanticPyramid(seg)
        h = self.in_attn(self.conv_in(z))
        h = run_stages(self.up, self.mid2(self.mid1(h, seg), seg), seg)
        return self.conv_out(F.silu(self.norm_out(h, seg)))


class SemPE(nn.Module):
    """Semantic positional embedding: a 2-layer CNN over the one-hot map (3x3 sees adjacent classes)."""

    def __init__(self, label_channels: int, ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(label_channels, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1)
        )

    def forward(self, seg: torch.Tensor) -> torch.Tensor:
        return self.net(seg)
