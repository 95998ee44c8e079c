"""Losses of the three stages, with the paper's class weights.

Stage 1 (G_s): weighted cross-entropy (1.0 traffic light/sign, 0.85 person/rider, 0.2 sky/vegetation,
0.5 other) + GAN + VQ commitment. Stages 2-3 (G_x): weighted l2 (1.0 light/sign, 0.55 person/rider,
0 sky/vegetation, 0.15 other) + perceptual + GAN + commitment. The semantic-aware discriminator sees
x_hat + w_rel * (x - x_hat) with w_rel 0.9 sky, 0.8 vegetation, 0.4 road, 0 elsewhere, so it cannot
reward detail in regions nobody needs.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from sqgan_core.labels import CLASS_NAMES, NUM_CHANNELS, VOID, VOID_INDEX, class_id

SEMANTIC_WEIGHTS = {"traffic light": 1.0, "traffic sign": 1.0, "person": 0.85, "rider": 0.85,
                    "sky": 0.2, "vegetation": 0.2, "_other": 0.5}
IMAGE_WEIGHTS = {"traffic light": 1.0, "traffic sign": 1.0, "person": 0.55, "rider": 0.55,
                 "sky": 0.0, "vegetation": 0.0, "_other": 0.15}
RELEVANCE_REINJECTION = {"sky": 0.9, "vegetation": 0.8, "road": 0.4, "_other": 0.0}


def class_weight_table(weights: Mapping[str, float], void_weight: float = 0.0) -> torch.Tensor:
    """Per-channel weights (20 entries, void last) from a {class name: weight, '_other': w} mapping."""
    unknown = set(weights) - set(CLASS_NAMES) - {"_other"}
    if unknown:
        raise ValueError(f"unknown class names in weights: {sorted(unknown)}")
    other = float(weights.get("_other", 0.0))
    table = torch.tensor([float(weights.get(n, other)) for n in CLASS_NAMES] + [void_weight])
    if (table < 0).any():
        raise ValueError("class weights must be >= 0")
    return table


def channel_index(labels: torch.Tensor) -> torch.Tensor:
    return torch.where(labels == VOID, torch.full_like(labels, VOID_INDEX), labels).long()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Mean of per-pixel CE times the pixel's class weight; void pixels (weight 0) do not count."""
    idx = channel_index(labels)
    w = table.to(logits.device)[idx]
    ce = F.cross_entropy(logits, idx, reduction="none")
    return (ce * w).sum() / w.sum().clamp(min=1e-6)


def weighted_l2(x_hat: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    w = table.to(x.device)[channel_index(labels)].unsqueeze(1)
    return ((x_hat - x) ** 2 * w).sum() / (w.sum() * x.shape[1]).clamp(min=1e-6)


def relevance_reinjection(x_hat: torch.Tensor, x: torch.Tensor, labels: torch.Tensor,
                          table: torch.Tensor | None = None) -> torch.Tensor:
    """The discriminator's 'fake': x_hat + w_rel * (x - x_hat) (residual re-injected where irrelevant)."""
    if table is None:
        table = class_weight_table(RELEVANCE_REINJECTION)
    w = table.to(x.device)[channel_index(labels)].unsqueeze(1)
    return x_hat + w * (x - x_hat).detach()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    cap: float = 0.2) -> torch.Tensor:
    """taming's balance: ||grad rec|| / ||grad gan|| at the decoder's last layer, capped (reference: 0.2)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0, cap).detach()


def gradient_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """l1 between image gradients: an edge-sharpness term used, with discriminator feature matching,
    as the documented substitute for LPIPS when its pretrained weights are absent."""
    def grads(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return t[..., 1:, :] - t[..., :-1, :], t[..., :, 1:] - t[..., :, :-1]

    (ay, ax), (by, bx) = grads(x_hat), grads(x)
    return (ay - by).abs().mean() + (ax - bx).abs().mean()


def one_hot_soft(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(channel_index(labels), NUM_CHANNELS).permute(0, 3, 1, 2).float()


__all__ = [name for name in dir() if not name.startswith("_")] + ["class_id"]
