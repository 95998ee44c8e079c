"""Training batches from Cityscapes-layout pairs (simulator export or real Cityscapes)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from sqgan_core.data.cityscapes import Pair
from sqgan_core.training.augment import AugmentConfig, augment_batch


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
    """Endless shuffled batches of random crops, augmented; deterministic for a seed and a rank's shard.

    Batch b is a pure function of (seed, rank, b): epoch permutations and each batch's crop and
    augmentation draws come from generators seeded with those numbers. So a resumed run needs only the
    batch counter, and batches can be built by DataLoader worker processes in any order (`workers` > 0)
    without changing what the model sees. On a GPU the loader, not the model, is the bottleneck of the
    small model: PNG decoding and copy-paste run at ~0.1 s per batch of 16 on one core.
    """

    def __init__(self, pairs: Sequence[Pair], batch_size: int, crop: tuple[int, int], seed: int,
                 rank: int = 0, world: int = 1, augment: AugmentConfig | None = None, workers: int = 0) -> None:
        shard = list(pairs)[rank::world]
        if not shard:
            raise ValueError(f"rank {rank} of {world} has no training frames ({len(pairs)} in total)")
        self.batches = _Batches(shard, batch_size, tuple(crop), seed, rank, augment)
        self.workers = workers
        self.count = 0
        self._it: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.workers <= 0:
            batch = self.batches[self.count]
        else:
            if self._it is None:
                from torch.utils.data import DataLoader

                loader = DataLoader(self.batches, batch_size=None, sampler=range(self.count, 2**62),
                                    num_workers=self.workers, prefetch_factor=4, pin_memory=torch.cuda.is_available(),
                                    multiprocessing_context="spawn", persistent_workers=False)
                self._it = iter(loader)
            batch = next(self._it)
        self.count += 1
        return batch

    def state(self) -> dict:
        return {"batches": self.count}

    def restore(self, state: dict, default: int = 0) -> None:
        """`default`: the batch count for states saved before the counter existed (one batch per step)."""
        self.count = int(state.get("batches", default))
        self._it = None


class _Batches:
    """Map-style dataset whose item b is training batch b (see BatchStream)."""

    def __init__(self, pairs: list[Pair], batch_size: int, crop: tuple[int, int], seed: int, rank: int,
                 augment: AugmentConfig | None) -> None:
        self.pairs, self.batch_size, self.crop = pairs, batch_size, crop
        self.seed, self.rank, self.augment = seed, rank, augment
        self._epoch: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return 2**62

    def _index(self, sample: int) -> int:
        epoch, pos = divmod(sample, len(self.pairs))
        if self._epoch[0] != epoch:
            self._epoch = (epoch, np.random.default_rng([self.seed, self.rank, 0, epoch]).permutation(len(self.pairs)))
        return int(self._epoch[1][pos])

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, 1, b])
        imgs, labs = [], []
        for k in range(b * self.batch_size, (b + 1) * self.batch_size):
            img, lab = self.pairs[self._index(k)].load()
            img, lab = random_crop(img, lab, self.crop, rng)
            imgs.append(img)
            labs.append(lab)
        x, y = to_tensors(imgs, labs)
        if self.augment is not None:
            x, y = augment_batch(x, y, rng, self.augment)
        return x, y


class DeviceBatchStream:
    """Training batches built entirely on the training device: every frame is decoded once into one
    uint8 tensor there, and crops, the affine warp and colour jitter run on it per batch. On a GPU the
    CPU loader (PNG decode, warps, ~0.5 s of a core per 16 full frames) cannot keep up with the small
    model; this one costs a few milliseconds per batch. Copy-paste needs connected components on the
    host and is left out here (the CPU stream keeps it).

    Batch b is a pure function of (seed, rank, b), like BatchStream, so resuming needs only the counter.
    """

    def __init__(self, pairs: Sequence[Pair], batch_size: int, crop: tuple[int, int], seed: int,
                 device: torch.device | str, rank: int = 0, world: int = 1, augment: AugmentConfig | None = None,
                 threads: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        shard = list(pairs)[rank::world]
        if not shard:
            raise ValueError(f"rank {rank} of {world} has no training frames ({len(pairs)} in total)")
        with ThreadPoolExecutor(max_workers=threads) as pool:  # PNG decoding releases the GIL
            loaded = list(pool.map(lambda p: p.load(), shard))
        shapes = {lab.shape for _, lab in loaded}
        if len(shapes) != 1:
            raise ValueError(f"frames on the device must share one size, got {sorted(shapes)[:3]}")
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.stack([img for img, _ in loaded])).to(self.device)  # (N, H, W, 3) uint8
        self.labels = torch.from_numpy(np.stack([lab for _, lab in loaded])).to(self.device)  # (N, H, W) uint8
        self.batch_size, self.crop = batch_size, tuple(crop)
        self.seed, self.rank, self.augment = seed, rank, augment
        self.count = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __iter__(self) -> "DeviceBatchStream":
        return self

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, 2, b])
        n, h, w = self.labels.shape
        ch, cw = min(self.crop[0], h), min(self.crop[1], w)
        idx = rng.integers(0, n, self.batch_size)
        ys, xs = rng.integers(0, h - ch + 1, self.batch_size), rng.integers(0, w - cw + 1, self.batch_size)
        imgs = torch.stack([self.images[i, y:y + ch, x:x + cw] for i, y, x in zip(idx, ys, xs)])
        labs = torch.stack([self.labels[i, y:y + ch, x:x + cw] for i, y, x in zip(idx, ys, xs)])
        x = imgs.permute(0, 3, 1, 2).float() / 127.5 - 1
        y = labs.long()
        if self.augment is not None:
            from sqgan_core.training.augment import colour_jitter, geometric

            x, y = geometric(x, y, rng, self.augment)
            x = colour_jitter(x, rng, self.augment)
        return x.contiguous(), y

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.batch(self.count)
        self.count += 1
        return out

    def state(self) -> dict:
        return {"batches": self.count}

    def restore(self, state: dict, default: int = 0) -> None:
        self.count = int(state.get("batches", default))
