"""Transformers that predict the code indices packet loss removed, from the indices that arrived.

Two kinds, one input layout. Every position of a stream's token map is one of
  * a received code index 0..J-1,
  * SAMM_MASKED: dropped by the encoder's SAMM (known at the receiver, never sent: the ADM fills it),
  * LOST: sent, but its packet never arrived (what the concealer predicts).
Both stay apart all the way: the vocabulary has one id for each.

* `BidirectionalConcealer` (MaskGIT style, as ResiComp conceals packet loss): every position attends
  to every other, so a lost token is predicted from received tokens on all sides; inference fills the
  lost positions in a few passes, most confident first.
* `AutoregressiveConcealer` (the seed paper's second stage): a causal transformer over the raster
  order; each lost token is predicted from a sliding window of the tokens before it.

The image stream's concealer is also conditioned on s_hat: per token, the share of each of the 20
label channels in its 16x16 patch of the decoded semantic map (`s_hat_token_histogram`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("bidirectional", "autoregressive")
SEMANTIC_CHANNELS = 20  # 19 trainIds + void, as the decoder's s_hat channels
MAX_SIDE = 256  # the frame format's grid is at most 255 tokens per side


@dataclass(frozen=True)
class ConcealerConfig:
    kind: str = "bidirectional"
    num_codes: int = 1024
    dim: int = 128
    depth: int = 4
    heads: int = 4
    condition_channels: int = 0  # 20 for the image stream (s_hat histogram), 0 for the semantic one
    window: int = 64  # autoregressive only: tokens of context before the predicted one
    dropout: float = 0.0

    def validate(self) -> "ConcealerConfig":
        checks = [
            (self.kind in KINDS, "kind", f"must be one of {', '.join(KINDS)}"),
            (2 <= self.num_codes <= 65536, "num_codes", "must be 2..65536"),
            (self.dim >= 8 and self.dim % self.heads == 0, "dim", "must be >= 8 and a multiple of heads"),
            (1 <= self.depth <= 48, "depth", "must be 1..48"),
            (self.heads >= 1, "heads", "must be >= 1"),
            (self.condition_channels in (0, SEMANTIC_CHANNELS), "condition_channels", f"must be 0 or {SEMANTIC_CHANNELS}"),
            (2 <= self.window <= 4096, "window", "must be 2..4096"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
        ]
        for ok, name, msg in checks:
            if not ok:
                raise ValueError(f"concealer {name}: {msg} (got {getattr(self, name)!r})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConcealerConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown concealer config keys: {', '.join(sorted(unknown))}")
        return cls(**d).validate()


class _ConcealerBase(nn.Module):
    """Token + position (+ condition) embeddings, a transformer encoder and a code-index head."""

    causal = False

    def __init__(self, cfg: ConcealerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.samm_masked_id = cfg.num_codes
        self.lost_id = cfg.num_codes + 1
        self.start_id = cfg.num_codes + 2  # autoregressive only: "no token before this one"
        d = cfg.dim
        self.token = nn.Embedding(cfg.num_codes + 3, d)
        self.row = nn.Embedding(MAX_SIDE, d)
        self.col = nn.Embedding(MAX_SIDE, d)
        self.condition = nn.Linear(cfg.condition_channels, d) if cfg.condition_channels else None
        # autoregressive only: whether the predicted position was sent (its own token is not an input)
        self.sent = nn.Embedding(2, d) if cfg.kind == "autoregressive" else None
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 4 * d, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_codes)
        for emb in (self.token, self.row, self.col):
            nn.init.normal_(emb.weight, std=0.02)

    def embed(self, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
              condition: torch.Tensor | None) -> torch.Tensor:
        h = self.token(ids) + self.row(rows) + self.col(cols)
        if self.condition is not None:
            if condition is None:
                raise ValueError("this concealer is conditioned on s_hat: pass its token histogram")
            h = h + self.condition(condition.to(h.dtype))
        return h

    def logits(self, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
               condition: torch.Tensor | None = None, at: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, L) in 0..J+1, rows/cols (B, L) grid coordinates, condition (B, L, 20) -> (B, L, J):
        at each position, the distribution of the code there. `at` (a bool (B, L) mask) computes the
        head only there and returns (N, J) for those positions (the head is a third of the work)."""
        h = self.blocks(self.embed(ids, rows, cols, condition))
        return self.head(self.norm(h if at is None else h[at]))

    @staticmethod
    def grid_coords(grid: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        gh, gw = grid
        pos = torch.arange(gh * gw, device=device)
        return pos // gw, pos % gw


class BidirectionalConcealer(_ConcealerBase):
    causal = False

    @torch.no_grad()
    def fill(self, ids: torch.Tensor, grid: tuple[int, int], condition: torch.Tensor | None = None,
             passes: int = 3, probs_out: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (K,) with LOST where a token is missing -> (predicted ids (K,), confidence (K,)).

        MaskGIT decoding: each pass predicts every still-lost position and commits the most confident
        share of them (cosine schedule), which the next pass reads as received context; the last pass
        commits the rest. Positions not lost come back unchanged with confidence 1. `probs_out`, when
        given, receives each lost position's distribution at the pass that committed it."""
        ids = ids.clone()
        conf = torch.ones(ids.shape, dtype=torch.float32, device=ids.device)
        todo = ids == self.lost_id
        total = int(todo.sum())
        if total == 0:
            return ids, conf
        rows, cols = self.grid_coords(grid, ids.device)
        cond = None if condition is None else condition[None]
        for t in range(max(1, passes)):
            left = int(todo.sum())
            if left == 0:
                break
            where = torch.nonzero(todo).flatten()
            probs = self.logits(ids[None], rows[None], cols[None], cond, todo[None]).float().softmax(-1)
            p = torch.full(ids.shape, -1.0, device=ids.device)
            pred = ids.clone()
            p[where], pred[where] = probs.max(-1)
            remain_after = int(math.floor(total * math.cos(math.pi / 2 * (t + 1) / max(1, passes))))
            n = left - remain_after if t < passes - 1 else left
            n = max(1, min(left, n))
            pick = p.topk(n).indices  # positions not lost have p = -1: never picked before a lost one
            if probs_out is not None:
                row = {int(w): r for r, w in enumerate(where.tolist())}
                for q in pick.tolist():
                    probs_out[q] = probs[row[q]]
            ids[pick] = pred[pick]
            conf[pick] = p[pick]
            todo[pick] = False
        return ids, conf


class AutoregressiveConcealer(_ConcealerBase):
    causal = True

    def logits(self, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
               condition: torch.Tensor | None = None, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token form over a raster window: the logits at t predict ids[:, t] from ids[:, :t] and
        `prev` (B,), the token just before the window (`start_id` when the window starts the frame).
        Position t embeds the token before it with t's own coordinates and condition, so the model
        knows where it is predicting."""
        b, n = ids.shape
        if prev is None:
            prev = torch.full((b,), self.start_id, dtype=ids.dtype, device=ids.device)
        shifted = torch.cat([prev[:, None].to(ids.dtype), ids[:, :-1]], 1)
        h = self.embed(shifted, rows, cols, condition) + self.sent((ids != self.samm_masked_id).long())
        mask = torch.triu(torch.full((n, n), float("-inf"), device=ids.device), diagonal=1)
        return self.head(self.norm(self.blocks(h, mask=mask, is_causal=True)))

    @torch.no_grad()
    def fill(self, ids: torch.Tensor, grid: tuple[int, int], condition: torch.Tensor | None = None,
             passes: int = 1, probs_out: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raster order, one lost token at a time: the window of `cfg.window` tokens before it (its own
        earlier predictions included) predicts it, as in the seed paper's sliding-window restoration."""
        ids = ids.clone()
        conf = torch.ones(ids.shape, dtype=torch.float32, device=ids.device)
        rows, cols = self.grid_coords(grid, ids.device)
        w = self.cfg.window
        for i in torch.nonzero(ids == self.lost_id).flatten().tolist():
            lo = max(0, i - w)
            sl = slice(lo, i + 1)  # the window ends at the lost token: its logits read only what precedes it
            prev = None if lo == 0 else ids[lo - 1:lo]
            cond = None if condition is None else condition[None, sl]
            logits = self.logits(ids[None, sl], rows[None, sl], cols[None, sl], cond, prev)[0, -1]
            dist = logits.float().softmax(-1)
            if probs_out is not None:
                probs_out[i] = dist
            p, pred = dist.max(-1)
            ids[i] = pred
            conf[i] = p
        return ids, conf


def build_concealer(cfg: ConcealerConfig) -> _ConcealerBase:
    return (BidirectionalConcealer if cfg.kind == "bidirectional" else AutoregressiveConcealer)(cfg.validate())


def s_hat_token_histogram(s_idx: torch.Tensor, downsample: int) -> torch.Tensor:
    """(B, H, W) s_hat channel indices (0..19) -> (B, K, 20): the share of each channel in each token's patch."""
    b, h, w = s_idx.shape
    one_hot = F.one_hot(s_idx.long().clamp(0, SEMANTIC_CHANNELS - 1), SEMANTIC_CHANNELS).permute(0, 3, 1, 2).float()
    pooled = F.avg_pool2d(one_hot, downsample)
    return pooled.flatten(2).transpose(1, 2)


__all__ = ["AutoregressiveConcealer", "BidirectionalConcealer", "ConcealerConfig", "KINDS", "build_concealer",
           "s_hat_token_histogram"]
