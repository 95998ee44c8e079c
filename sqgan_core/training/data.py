"""Training batches from Cityscapes-layout pairs (simulator export or real Cityscapes)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from sqgan_core.data.cityscapes import Pair


def random_crop(image: np.ndarray, labels: np.ndarray, crop: tuple[int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random crop of (H, W) = crop; frames smaller than the crop are edge-padded (labels: void)."""
    h, w = labels.shape
    ch, cw = crop
    if h < ch or w < cw:
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")
        labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=255)
        h, w = labels.shape
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return image[y:y + ch, x:x + cw], labels[y:y + ch, x:x + cw]


def to_tensors(images: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(np.stack(labels).astype(np.int64))
    return x, y


class BatchStream:
    """Endless shuffled batches of random crops; deterministic for a seed (and a rank's shard)."""

    def __init__(self, pairs: Sequence[Pair], batch_size: int, crop: tuple[int, int], seed: int,
                 rank: int = 0, world: int = 1) -> None:
        shard = list(pairs)[rank::world]
        if not shard:
            raise ValueError(f"rank {rank} of {world} has no training frames ({len(pairs)} in total)")
        self.pairs, self.batch_size, self.crop = shard, batch_size, crop
        self.rng = np.random.default_rng([seed, rank])
        self._order: list[int] = []

    def _next_index(self) -> int:
        if not self._order:
            self._order = list(self.rng.permutation(len(self.pairs)))
        return self._order.pop()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        imgs, labs = [], []
        for _ in range(self.batch_size):
            img, lab = self.pairs[self._next_index()].load()
            img, lab = random_crop(img, lab, self.crop, self.rng)
            imgs.append(img)
            labs.append(lab)
        return to_tensors(imgs, labs)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": [int(i) for i in self._order]}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._order = list(state["order"])
