"""Fit the entropy coder's index priors from code usage, after training.

The bitstream codes each kept index under a fixed categorical prior stored in the model. Counting
which codes the trained encoder actually picks on the training set, at the rates it will run at, and
smoothing the counts (add-1/2, Krichevsky-Trofimov) turns skewed code usage into fewer bits; codes
never seen keep a small probability so every frame stays encodable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from sqgan_core.data.cityscapes import Pair
from sqgan_core.models import SQGAN

DEFAULT_RATES = (0.2, 0.35, 0.5, 0.8)


@torch.no_grad()
def count_code_usage(model: SQGAN, pairs: Sequence[Pair], rates: Sequence[float] = DEFAULT_RATES,
                     device: str = "cpu", progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    jx, js = model.codebook_sizes
    cx, cs = np.zeros(jx, np.int64), np.zeros(js, np.int64)
    model = model.to(device).eval()
    for pair in tqdm(pairs, desc="code usage", unit="frame", disable=not progress):
        img, lab = pair.load()
        h, w = lab.shape[0] // 16 * 16, lab.shape[1] // 16 * 16
        x = torch.from_numpy(img[:h, :w].copy()).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
        y = torch.from_numpy(lab[:h, :w].astype(np.int64))[None].to(device)
        for m in rates:
            t = model.encode(x, y, m, m)
            ix, is_ = t.indices_x[t.keep_x].cpu().numpy(), t.indices_s[t.keep_s].cpu().numpy()
            cx += np.bincount(ix, minlength=jx)
            cs += np.bincount(is_, minlength=js)
    return cx, cs


def smoothed(counts: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    p = counts.astype(np.float64) + alpha
    return p / p.sum()


def apply_priors(model: SQGAN, counts_x: np.ndarray, counts_s: np.ndarray, alpha: float = 0.5) -> dict[str, float]:
    """Store smoothed priors in the model; returns the ideal bits per index under each prior."""
    px, ps = smoothed(counts_x, alpha), smoothed(counts_s, alpha)
    model.img_mq.index_prior.copy_(torch.from_numpy(px).to(model.img_mq.index_prior))
    model.sem_mq.index_prior.copy_(torch.from_numpy(ps).to(model.sem_mq.index_prior))

    def bits(c: np.ndarray, p: np.ndarray) -> float:
        return float(-(c * np.log2(p)).sum() / max(c.sum(), 1))

    return {"bits_per_index_x": bits(counts_x, px), "bits_per_index_s": bits(counts_s, ps),
            "used_codes_x": int((counts_x > 0).sum()), "used_codes_s": int((counts_s > 0).sum())}
