"""PatchGAN discriminator (conv, BN, LeakyReLU x 3, final conv), as the paper describes [Isola et al.].

`features()` exposes the intermediate activations for feature matching (part of the perceptual
substitute used when LPIPS weights are absent).
"""
from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True))]
        ch = width
        for i in range(1, layers):
            nxt = width * min(2 ** i, 8)
            blocks.append(nn.Sequential(nn.Conv2d(ch, nxt, 4, 2, 1, bias=False), nn.BatchNorm2d(nxt),
                                        nn.LeakyReLU(0.2, True)))
            ch = nxt
        nxt = width * min(2 ** layers, 8)
        blocks.append(nn.Sequential(nn.Conv2d(ch, nxt, 4, 1, 1, bias=False), nn.BatchNorm2d(nxt),
                                    nn.LeakyReLU(0.2, True)))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(nxt, 1, 4, 1, 1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1])


def feature_matching(disc: PatchDiscriminator, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """l1 between discriminator features of fake and real images (pix2pixHD / SPADE)."""
    with torch.no_grad():
        real_feats = disc.features(real)
    return sum((f - r).abs().mean() for f, r in zip(disc.features(fake), real_feats)) / len(real_feats)
