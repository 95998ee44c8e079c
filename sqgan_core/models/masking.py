"""SAMM (semantic-conditioned adaptive masking) and ADM (adaptive de-masking).

SAMM scores every latent token in [0, 1] from the latent and the semantic map (through SPADE), keeps
exactly N = floor(m*K) tokens with the highest scores and multiplies them by their score: the scale is
the only gradient path into the scorer, because top-N selection itself is not differentiable.

ADM runs direction-constrained attention: keys at placeholder (dropped) positions start with weight
0.02 and the weight grows as a square root each layer (0.02, 0.14, 0.38, ...), so information first
flows from the kept tokens into the holes and placeholders are trusted only once they are filled.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from sqgan_core.models.layers import SPADE, ResnetBlock, SelfAttention, SemanticPyramid


def keep_count(m: float, num_tokens: int) -> int:
    """N = floor(m * K), computed on the decimal value of m so that 0.29 * 100 gives 29, not 28."""
    if isinstance(m, bool) or not isinstance(m, (int, float, Fraction)):
        raise TypeError(f"masking fraction must be a number, got {type(m).__name__}")
    if not (0.0 <= float(m) <= 1.0) or math.isnan(float(m)):
        raise ValueError(f"masking fraction must lie in [0, 1], got {m}")
    frac = m if isinstance(m, Fraction) else Fraction(str(m))
    return math.floor(frac * num_tokens)


class SAMM(nn.Module):
    """Relevance scorer: SPADE-GN -> conv3x3 -> ReLU -> SPADE-GN -> conv1x1 -> sigmoid."""

    def __init__(self, z_channels: int, label_channels: int, spade_hidden: int) -> None:
        super().__init__()
        self.norm1 = SPADE(z_channels, label_channels, spade_hidden)
        self.conv1 = nn.Conv2d(z_channels, z_channels, 3, padding=1)
        self.norm2 = SPADE(z_channels, label_channels, spade_hidden)
        self.conv2 = nn.Conv2d(z_channels, 1, 1)

    def scores(self, z: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latent + one-hot map -> (B, h*w) relevance in [0, 1]."""
        seg = SemanticPyramid(seg)
        h = F.relu(self.conv1(self.norm1(z, seg)))
        return torch.sigmoid(self.conv2(self.norm2(h, seg))).flatten(1)

    def forward(self, z: torch.Tensor, seg: torch.Tensor, m: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (scaled tokens (B, K, C), keep mask (B, K) bool, scores (B, K)).

        Ties are broken by position (stable sort), so the same input always keeps the same tokens.
        """
        b, c, h, w = z.shape
        k = h * w
        n = keep_count(m, k)
        score = self.scores(z, seg)
        order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :n]
        keep = torch.zeros(b, k, dtype=torch.bool, device=z.device)
        keep.scatter_(1, order, True)
        tokens = z.flatten(2).transpose(1, 2) * score.unsqueeze(-1)
        return tokens, keep, score


class ADM(nn.Module):
    """Adaptive de-masking: `depth` x (ResBlock on the token grid + key-weighted self-attention)."""

    def __init__(self, z_channels: int, depth: int, heads: int, first_weight: float = 0.02) -> None:
        super().__init__()
        if not 0.0 < first_weight <= 1.0:
            raise ValueError(f"ADM first_weight must lie in (0, 1], got {first_weight}")
        self.blocks = nn.ModuleList(ResnetBlock(z_channels, z_channels) for _ in range(depth))
        self.attns = nn.ModuleList(SelfAttention(z_channels, heads) for _ in range(depth))
        weights, w = [], first_weight
        for _ in range(depth):
            weights.append(w)
            w = math.sqrt(w)
        self.register_buffer("log_weights", torch.log(torch.tensor(weights, dtype=torch.float32)), persistent=False)

    def forward(self, z: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """z: (B, C, h, w) with placeholders at dropped positions; keep: (B, h*w) bool."""
        dropped = (~keep).to(z.dtype)
        for i, (block, attn) in enumerate(zip(self.blocks, self.attns)):
            z = attn(block(z), key_bias=dropped * self.log_weights[i])
        return z
