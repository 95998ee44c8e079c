"""Building blocks shared by the encoders and decoders (taming-transformers style, SPADE variants).

Group counts adapt to the channel width so that narrow configurations (the CPU `small` model) use the
same block structure as the paper's 128-channel one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def num_groups(channels: int, preferred: int = 32) -> int:
    """Largest group count <= `preferred` that divides `channels` with >= 2 channels per group
    (GroupNorm needs an exact split, and a 1x1 token grid with 1-channel groups has nothing to normalise)."""
    return math.gcd(channels, preferred, max(channels // 2, 1))


def normalize(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-6, affine=affine)


class ResnetBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, SiLU, conv3x3) x 2, 1x1 shortcut when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = normalize(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = normalize(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019): a parameter-free GroupNorm whose scale and
    shift are predicted per pixel from the semantic map, so the decoder cannot wash out object shapes.

    The semantic map is resized to the feature size by area averaging (class fractions) rather than
    nearest sampling, so that objects smaller than a feature cell (a distant traffic light) still count.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = normalize(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        # gamma and beta come from one convolution (2 x channels outputs): same function, one pass.
        self.gamma_beta = nn.Conv2d(hidden, 2 * channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor | SemanticPyramid) -> torch.Tensor:
        seg = as_pyramid(seg).at(x.shape[-2:])
        gamma, beta = self.gamma_beta(self.shared(seg)).chunk(2, dim=1)
        return torch.addcmul(beta, self.norm(x), 1 + gamma)


class SemanticPyramid:
    """A semantic map with its resized versions cached by size: every SPADE layer of a decoder at one
    resolution reuses one resize instead of pooling the full-resolution map again."""

    def __init__(self, seg: torch.Tensor) -> None:
        self.full = seg
        self._cache: dict[tuple[int, int], torch.Tensor] = {tuple(seg.shape[-2:]): seg}

    def at(self, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        key = (int(size[0]), int(size[1]))
        if key not in self._cache:
            # Halve from the next finer cached level when possible: 2x2 means of 2x2 means are the
            # exact area average and touch far less memory than pooling the full map again.
            finer = (key[0] * 2, key[1] * 2)
            src = self._cache.get(finer)
            if src is None and finer[0] <= self.full.shape[-2] and finer[1] <= self.full.shape[-1]:
                src = self.at(finer) if self.full.shape[-2] % finer[0] == 0 and self.full.shape[-1] % finer[1] == 0 else None
            self._cache[key] = F.avg_pool2d(src, 2) if src is not None else resize_semantic(self.full, key)
        return self._cache[key]


def resize_semantic(seg: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """One-hot (or soft) semantic map -> class fractions at `size` (area averaging when shrinking)."""
    if tuple(seg.shape[-2:]) == tuple(size):
        return seg
    if seg.shape[-2] >= size[0] and seg.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(seg, size)
    return F.interpolate(seg, size=size, mode="nearest")


def as_pyramid(seg: torch.Tensor | SemanticPyramid) -> SemanticPyramid:
    return seg if isinstance(seg, SemanticPyramid) else SemanticPyramid(seg)


class SPADEResnetBlock(nn.Module):
    """ResnetBlock with every normalisation replaced by SPADE conditioned on the semantic map."""

    def __init__(self, in_ch: int, out_ch: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = SPADE(in_ch, label_channels, hidden)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = SPADE(out_ch, label_channels, hidden)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, seg: torch.Tensor | SemanticPyramid) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, seg)))
        h = self.conv2(F.silu(self.norm2(h, seg)))
        return self.shortcut(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions of a feature map (the paper's MHSA layers).

    `key_bias` (B, N) is added to the attention logits of each key; the ADM uses it to down-weight
    placeholder positions.
    """

    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm = normalize(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))  # B, heads, N, d
        bias = None if key_bias is None else key_bias[:, None, None, :].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Strided 3x3 convolution halving H and W (asymmetric padding as in taming)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x (each value copied into its 2x2 patch, as the paper states) + conv3x3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
