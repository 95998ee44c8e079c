"""Packet loss on a frame's packets, and which tokens it removes: the loss the concealer is trained on
and `sqgan eval --loss` measures, drawn with the link's own channel models and the packetizer's own
interleaving (index packet j of P carries kept tokens j, j+P, ... of each stream, in scan order).

Loss specs (`--loss`): `none`, `bernoulli:P` (each packet lost with probability P), `gilbert:P,BURST`
(Gilbert-Elliott with mean loss P and mean bursts of BURST packets: every packet in the Bad state is
lost, none in the Good one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sqgan_core.errors import InputError
from sqgan_core.streaming.wire import KIND_INDEX, parse_packet
from sqgan_core.transport.channel import Bernoulli, GilbertElliott, LossModel


class LossSpecError(InputError, ValueError):
    """A --loss value that does not parse; the message shows the accepted forms."""


@dataclass(frozen=True)
class LossSpec:
    kind: str  # none | bernoulli | gilbert
    rate: float = 0.0
    burst: float = 1.0

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "bernoulli":
            return f"bernoulli:{self.rate:g}"
        return f"gilbert:{self.rate:g},{self.burst:g}"

    def model(self) -> LossModel:
        """A fresh channel model (its state, for Gilbert-Elliott, carries over the packets of a run)."""
        if self.kind == "none" or self.rate == 0:
            return LossModel()
        if self.kind == "bernoulli":
            return Bernoulli(self.rate)
        r = 1.0 / self.burst  # mean Bad sojourn = 1 / r packets
        p = self.rate * r / (1.0 - self.rate)  # pi_B = p / (p + r) = rate
        return GilbertElliott(p=min(1.0, p), r=r, h=0.0, k=1.0)


FORMS = "none, bernoulli:P (0 <= P < 1) or gilbert:P,BURST (0 <= P < 1, BURST >= 1 packets)"


def parse_loss(text: str) -> LossSpec:
    s = text.strip().lower()
    if s in ("none", "0", "clean"):
        return LossSpec("none")
    kind, _, args = s.partition(":")
    try:
        nums = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        raise LossSpecError(f"loss {text!r}: numbers expected after ':'; use {FORMS}") from None
    if kind == "bernoulli" and len(nums) == 1 and 0.0 <= nums[0] < 1.0:
        return LossSpec("bernoulli", nums[0])
    if kind in ("gilbert", "gilbert_elliott", "ge") and len(nums) == 2 and 0.0 <= nums[0] < 1.0 and nums[1] >= 1.0:
        return LossSpec("gilbert", nums[0], nums[1])
    raise LossSpecError(f"loss {text!r}: use {FORMS}")


def drop_packets(packets: list[bytes], model: LossModel, rng: np.random.Generator) -> tuple[list[bytes], list[int]]:
    """The packets that survive, in send order, and the send positions of those lost."""
    kept: list[bytes] = []
    lost: list[int] = []
    for i, p in enumerate(packets):
        if model.lost(rng):
            lost.append(i)
        else:
            kept.append(p)
    return kept, lost


def lost_index_packets(packets: list[bytes], lost_positions: list[int]) -> tuple[int, set[int]]:
    """(P, the index-packet numbers among the lost send positions) of one frame's packets."""
    p, lost = 0, set()
    lost_at = set(lost_positions)
    for i, data in enumerate(packets):
        h = parse_packet(data).header
        if h.kind == KIND_INDEX:
            p += 1
            if i in lost_at:
                lost.add(h.index)
    return p, lost


def lost_token_mask(keep: np.ndarray, p: int, lost_packets: set[int]) -> np.ndarray:
    """(K,) bool: the kept tokens (scan order) that index packets `lost_packets` of `p` carried."""
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    out = np.zeros(keep.shape, dtype=bool)
    if p <= 0 or not lost_packets:
        return out
    pos = np.flatnonzero(keep)
    rank = np.arange(pos.size)
    out[pos[np.isin(rank % p, sorted(lost_packets))]] = True
    return out


__all__ = ["FORMS", "LossSpec", "LossSpecError", "drop_packets", "lost_index_packets", "lost_token_mask",
           "parse_loss"]
