"""Vector quantiser with an EMA codebook (decay 0.99), restart of dead codes and a commitment loss.

Only kept tokens are quantised and only they update the codebook; dropped positions carry index -1
on the wire (alphabet J + 1, as in the paper).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -1


@dataclass
class QuantOutput:
    quantized: torch.Tensor  # (B, K, C) straight-through codes at kept positions, 0 elsewhere
    indices: torch.Tensor  # (B, K) int64, MASKED at dropped positions
    commit_loss: torch.Tensor  # scalar: beta * ||z - sg[e]||^2 over kept tokens
    perplexity: torch.Tensor  # scalar: codebook usage in this batch


class VectorQuantizerEMA(nn.Module):
    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, beta: float = 0.25,
                 eps: float = 1e-5, dead_threshold: float = 1e-3) -> None:
        super().__init__()
        if num_codes < 2 or num_codes & (num_codes - 1):
            raise ValueError(f"codebook size must be a power of two >= 2 (log2 J goes in the header), got {num_codes}")
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.beta, self.eps, self.dead_threshold = decay, beta, eps, dead_threshold
        embed = torch.randn(num_codes, dim) / dim ** 0.5
        self.register_buffer("embedding", embed)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", embed.clone())

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for indices >= 0 (others give zeros); indices must already be range-checked."""
        safe = indices.clamp(min=0)
        return F.embedding(safe, self.embedding) * (indices >= 0).unsqueeze(-1).to(self.embedding.dtype)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """l2-nearest code index for each row of `flat` (N, C)."""
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embedding.t()
                + self.embedding.pow(2).sum(1)[None, :])
        return dist.argmin(1)

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor) -> QuantOutput:
        # Nearest-code search and the EMA update in float32 even under bf16 autocast: bf16 distances
        # tie between close codes and pick arbitrary indices, and the index must not depend on whether
        # the encoder ran under autocast (training on a GPU) or not (the codec).
        with torch.autocast(tokens.device.type, enabled=False):
            return self._forward(tokens.float(), keep)

    def _forward(self, tokens: torch.Tensor, keep: torch.Tensor) -> QuantOutput:
        b, k, c = tokens.shape
        kept = tokens[keep]  # (N_total, C)
        idx_kept = self.nearest(kept.detach()) if kept.numel() else torch.zeros(0, dtype=torch.long, device=tokens.device)
        codes = self.embedding[idx_kept]
        if self.training and kept.numel():
            self._ema_update(kept.detach(), idx_kept)
        commit = self.beta * F.mse_loss(kept, codes.detach()) if kept.numel() else tokens.sum() * 0
        quant = torch.zeros_like(tokens)
        quant[keep] = kept + (codes - kept).detach()  # straight-through estimator
        indices = torch.full((b, k), MASKED, dtype=torch.long, device=tokens.device)
        indices[keep] = idx_kept
        counts = torch.bincount(idx_kept, minlength=self.num_codes).float()
        probs = counts / counts.sum().clamp(min=1)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return QuantOutput(quant, indices, commit, perplexity)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.num_codes).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.embed_sum / size.unsqueeze(1))
        # Restart codes nobody has used lately on random encoder outputs of this batch.
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
            self.embedding[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0
