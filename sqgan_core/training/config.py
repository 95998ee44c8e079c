"""Training hyper-parameters from YAML (configs/train/*.yaml). Unknown keys are errors."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sqgan_core.config import ConfigError
from sqgan_core.training.losses import IMAGE_WEIGHTS, SEMANTIC_WEIGHTS


@dataclass
class TrainConfig:
    batch_size: int = 8
    crop: tuple[int, int] = (256, 512)  # training crops (H, W), multiples of 16
    steps: int = 20000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    disc_lr: float = 1e-4
    disc_width: int = 64  # PatchGAN base width (paper 64); narrow on CPU, where a 64-wide D costs 3x the generator
    disc_start: int = 2000  # GAN terms switch on after this many steps (taming's discriminator warm-up)
    lambda_gan: float = 0.1  # stage 1 (semantic GAN); stage 2/3 use the adaptive weight capped by gan_cap
    gan_cap: float = 0.2
    lambda_perceptual: float = 0.15
    lambda_gradient: float = 1.0  # substitute perceptual terms when LPIPS weights are absent
    lambda_feature_matching: float = 1.0
    keep_mu: float = -1.15  # log-normal masking fractions: mean ~0.35, clipped to [0.05, 1]
    keep_sigma: float = 0.4
    semantic_weights: dict[str, float] = field(default_factory=lambda: dict(SEMANTIC_WEIGHTS))
    image_weights: dict[str, float] = field(default_factory=lambda: dict(IMAGE_WEIGHTS))
    augment: bool = True
    max_paste: int = 25
    val_every: int = 500
    val_frames: int = 16
    ckpt_every: int = 250
    workers: int = 0
    seed: int = 0
    lpips_net: str = "alex"
    lpips_cache: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_train_config(data: Any, source: str = "<memory>") -> TrainConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a training config must be a mapping")
    names = {f.name: f for f in fields(TrainConfig)}
    unknown = set(data) - set(names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}")
    values = dict(data)
    for key in ("crop", "betas"):
        if key in values:
            v = values[key]
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ConfigError(f"{source}.{key}: expected two numbers, got {v!r}")
            values[key] = tuple(v)
    cfg = TrainConfig(**values)
    checks = [
        (cfg.batch_size >= 1, "batch_size", "must be >= 1"),
        (all(isinstance(c, int) and c >= 16 and c % 16 == 0 for c in cfg.crop), "crop", "must be multiples of 16"),
        (cfg.steps >= 1, "steps", "must be >= 1"),
        (cfg.lr > 0 and cfg.disc_lr > 0, "lr", "learning rates must be > 0"),
        (cfg.disc_width >= 1, "disc_width", "must be >= 1"),
        (cfg.val_every >= 1 and cfg.ckpt_every >= 1, "val_every", "intervals must be >= 1"),
        (cfg.keep_sigma > 0, "keep_sigma", "must be > 0"),
        (0 <= cfg.max_paste <= 100, "max_paste", "must be 0..100"),
    ]
    for ok, name, msg in checks:
        if not ok:
            raise ConfigError(f"{source}.{name}: {msg} (got {getattr(cfg, name)!r})")
    return cfg


def load_train_config(path: str | Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"training config not found: {p}")
    try:
        return parse_train_config(yaml.safe_load(p.read_text()), str(p))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
