"""The perceptual term: LPIPS when its pretrained weights are available, a documented substitute
otherwise.

LPIPS needs two sets of weights: the linear calibration layers (shipped inside the `lpips` package)
and an ImageNet backbone (AlexNet/VGG from torchvision's model zoo, normally downloaded on first use).
Our machines can download neither, so `load_lpips` only uses a backbone already present in the torch
hub cache (`cache_dir` or $TORCH_HOME) and never tries the network. When it cannot, training uses the
substitute: image-gradient l1 + discriminator feature matching (pix2pixHD). The choice and the reason
are logged and stored in the checkpoint metadata; a random-weight network is never called LPIPS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


@dataclass
class Perceptual:
    kind: str  # "lpips" or "substitute"
    detail: str
    module: nn.Module | None = None

    def metadata(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def load_lpips(net: str = "alex", cache_dir: str | os.PathLike[str] | None = None) -> Perceptual:
    substitute = "substitute: image-gradient l1 + discriminator feature matching"
    if net not in BACKBONE_FILES:
        raise ValueError(f"LPIPS backbone must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    try:
        import lpips
    except ImportError as exc:
        return Perceptual("substitute", f"{substitute} (lpips package not installed: {exc})")
    hub = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir())
    backbone = hub / "checkpoints" / BACKBONE_FILES[net]
    if not backbone.is_file():
        return Perceptual("substitute", f"{substitute} (no pretrained {net} backbone at {backbone})")
    try:
        if cache_dir:
            torch.hub.set_dir(str(hub))
        model = lpips.LPIPS(net=net, verbose=False).eval()
        for p in model.parameters():
            p.requires_grad_(False)
    except Exception as exc:  # noqa: BLE001 - torchvision/lpips raise many kinds
        return Perceptual("substitute", f"{substitute} (LPIPS failed to load: {type(exc).__name__}: {exc})")
    return Perceptual("lpips", f"LPIPS v0.1 ({net}) from {backbone}", model)
