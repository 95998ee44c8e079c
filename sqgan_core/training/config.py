"""Training hyper-parameters from YAML (configs/train/*.yaml). Unknown keys are errors."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sqgan_core.config import ConfigError, find_config, load_yaml
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
    warmup_steps: int = 100  # linear learning-rate warm-up, then cosine decay to the run's end
    lr_min_ratio: float = 0.05  # the learning rate at the run's end (its deadline or last step), times lr
    keep_grid: tuple[float, ...] = (0.2, 0.5, 1.0)  # keep fractions: the grid users run at, with mass keep_grid_prob,
    keep_grid_prob: float = 0.5  # else uniform on keep_range (see augment.sample_keep_fraction)
    keep_range: tuple[float, float] = (0.05, 1.0)
    image_weight_floor: float = 0.15  # every class gets at least this l2 weight (the paper's 0 left sky unsupervised)
    semantic_lr_scale: float = 1.0  # joint stage: G_s's learning rate is lr times this (the image part's is lr)
    joint_true_map_prob: float = 0.25  # joint stage: share of steps G_x sees the true map instead of s_hat
    semantic_weights: dict[str, float] = field(default_factory=lambda: dict(SEMANTIC_WEIGHTS))
    image_weights: dict[str, float] = field(default_factory=lambda: dict(IMAGE_WEIGHTS))
    augment: bool = True
    max_paste: int = 25
    val_every: int = 500
    val_frames: int = 64  # spread over every scenario (city) of the validation split
    val_seconds: float = 0.0  # also validate (and keep the best) at least this often; 0 = by steps only
    prior_frames: int = 64  # training frames, spread over scenarios, the best checkpoint's priors are fitted on
    ckpt_every: int = 250
    workers: int = 0
    data_on_device: bool = False  # decode every frame once onto the training device and augment there (GPU)
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
    if "keep_grid" in values:
        v = values["keep_grid"]
        if not isinstance(v, (list, tuple)) or not all(isinstance(g, (int, float)) for g in v):
            raise ConfigError(f"{source}.keep_grid: expected a list of numbers, got {v!r}")
        values["keep_grid"] = tuple(float(g) for g in v)
    for key in ("crop", "betas", "keep_range"):
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
        (all(0 < g <= 1 for g in cfg.keep_grid), "keep_grid", "keep fractions must be in (0, 1]"),
        (0 <= cfg.keep_grid_prob <= 1, "keep_grid_prob", "must be in [0, 1]"),
        (0 < cfg.keep_range[0] <= cfg.keep_range[1] <= 1, "keep_range", "must satisfy 0 < low <= high <= 1"),
        (cfg.warmup_steps >= 0, "warmup_steps", "must be >= 0"),
        (0 <= cfg.lr_min_ratio <= 1, "lr_min_ratio", "must be in [0, 1]"),
        (0 <= cfg.image_weight_floor <= 1, "image_weight_floor", "must be in [0, 1]"),
        (0 <= cfg.joint_true_map_prob <= 1, "joint_true_map_prob", "must be in [0, 1]"),
        (0 < cfg.semantic_lr_scale <= 10, "semantic_lr_scale", "must be in (0, 10]"),
        (cfg.val_frames >= 1, "val_frames", "must be >= 1"),
        (cfg.val_seconds >= 0, "val_seconds", "must be >= 0"),
        (cfg.prior_frames >= 1, "prior_frames", "must be >= 1"),
        (0 <= cfg.max_paste <= 100, "max_paste", "must be 0..100"),
    ]
    for ok, name, msg in checks:
        if not ok:
            raise ConfigError(f"{source}.{name}: {msg} (got {getattr(cfg, name)!r})")
    return cfg


def load_train_config(path: str | Path | None) -> TrainConfig:
    """A training YAML by path, or by name in configs/train/ (e.g. `small_cpu_joint`)."""
    if path is None:
        return TrainConfig()
    p = find_config("train", path)
    try:
        return parse_train_config(load_yaml(p.read_text()), str(p))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
