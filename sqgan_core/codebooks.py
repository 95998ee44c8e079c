"""Variable bitrate by smaller codebooks: each trained codebook clustered by k-means into 512, 256, 128
and 64 entries (the second seed paper's method), so one set of weights codes at several rates.

A reduced codebook of size J' is
  * `labels` (J,): the cluster of each original code. The encoder quantises as before and sends
    labels[index], so reduction costs nothing at the vehicle;
  * `centroids` (J', C): what the decoder embeds instead of the original code vectors (the usage-
    weighted mean of the codes in the cluster);
  * a prior over J' symbols: the original prior's mass summed per cluster, so every size is entropy
    coded with no extra data.
The k-means is weighted by the codes' usage (the fitted index prior), so often-used codes keep their
own cluster. The result is stored in the checkpoint's metadata (`reduced_codebooks`), never recomputed
at load: vehicle and RSU must hold bit-identical tables, whatever machine computed them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sqgan_core.entropy import IndexPrior

SIZES = (512, 256, 128, 64)
STREAMS = ("image", "semantic")
KEY = "reduced_codebooks"


def weighted_kmeans(x: np.ndarray, w: np.ndarray, k: int, seed: int = 0, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on points x (N, C) with weights w (N,), k-means++ seeding; -> (centroids, labels).
    An emptied cluster is re-seeded at the point with the largest weighted error."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64) + 1e-9
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot cluster {n} codes into {k}")
    rng = np.random.default_rng(seed)
    centers = [x[rng.choice(n, p=w / w.sum())]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = w * d2
        centers.append(x[rng.choice(n, p=p / p.sum())] if p.sum() > 0 else x[rng.integers(n)])
        d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    c = np.stack(centers)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        dist = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None]
        new = dist.argmin(1)
        for j in range(k):
            m = new == j
            if m.any():
                c[j] = (w[m, None] * x[m]).sum(0) / w[m].sum()
            else:
                err = w * dist[np.arange(n), new]
                far = int(err.argmax())
                c[j], new[far] = x[far], j
        if np.array_equal(new, labels):
            break
        labels = new
    return c, labels


def reduce_codebooks(model: Any, sizes: tuple[int, ...] = SIZES, seed: int = 0) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """The metadata entry for `model`: per stream and size, labels and centroids (CPU tensors)."""
    out: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for stream, mq in (("image", model.img_mq), ("semantic", model.sem_mq)):
        emb = mq.vq.embedding.detach().cpu().double().numpy()
        usage = mq.index_prior.detach().cpu().double().numpy()
        out[stream] = {}
        for size in sizes:
            if size >= emb.shape[0]:
                continue
            c, labels = weighted_kmeans(emb, usage, size, seed)
            out[stream][str(size)] = {"centroids": torch.from_numpy(c).float(), "labels": torch.from_numpy(labels).to(torch.int16)}
    return out


@dataclass
class ReducedCodebook:
    size: int
    bits: int
    labels: np.ndarray  # (J,) int64: original code -> cluster
    centroids: torch.Tensor  # (size, C)
    prior: IndexPrior


def parse_reduced(entry: Any, model: Any) -> dict[str, dict[int, ReducedCodebook]]:
    """Checkpoint metadata -> per stream, log2(size) -> ReducedCodebook; {} when the checkpoint has none.
    Raises ValueError naming what is wrong with a malformed entry."""
    out: dict[str, dict[int, ReducedCodebook]] = {"image": {}, "semantic": {}}
    if not entry:
        return out
    if not isinstance(entry, dict):
        raise ValueError(f"{KEY} must be a mapping")
    for stream, mq in (("image", model.img_mq), ("semantic", model.sem_mq)):
        j, c = mq.vq.embedding.shape
        prior = mq.index_prior.detach().cpu().double().numpy()
        for size_text, part in (entry.get(stream) or {}).items():
            size = int(size_text)
            bits = size.bit_length() - 1
            if size != 1 << bits or not 2 <= size < j:
                raise ValueError(f"{KEY}.{stream}: size {size} is not a power of two below {j}")
            labels = np.asarray(part["labels"], dtype=np.int64).reshape(-1)
            cent = torch.as_tensor(part["centroids"], dtype=torch.float32)
            if labels.shape != (j,) or labels.min() < 0 or labels.max() >= size or tuple(cent.shape) != (size, c):
                raise ValueError(f"{KEY}.{stream}.{size}: labels or centroids do not fit a {j}x{c} codebook")
            mass = np.bincount(labels, weights=prior, minlength=size) + 1e-6  # every cluster stays codable
            out[stream][bits] = ReducedCodebook(size, bits, labels, cent, IndexPrior(mass))
    return out


__all__ = ["KEY", "SIZES", "ReducedCodebook", "parse_reduced", "reduce_codebooks", "weighted_kmeans"]
