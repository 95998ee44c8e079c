"""Model configuration from YAML (taming-style: the network is built from the file, nothing hidden).

A file has a `name`, shared `network` settings, and optional `semantic` / `image` sections that
override them per pipeline. Unknown keys and out-of-range values raise ConfigError naming the field,
because a typo in a YAML file must not silently train or ship the wrong network.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sqgan_core.errors import InputError
from sqgan_core.labels import NUM_CLASSES


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e12` (no dot) is a string; YAML 1.2 and every user's intuition
    make it a number. This loader adds the 1.2 float forms, so `delay_ms: 1e12` is a number that range
    checks can refuse by value, not a string refused for its type."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """yaml.safe_load with YAML 1.2 exponent floats (`1e12`, `5E-3`); the one YAML reader of the project."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(InputError, ValueError):
    """A model configuration that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class PipelineConfig:
    """Widths of one pipeline (semantic: E_s/D_s, image: E_x/D_x)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (4,)
    heads: int = 1
    z_channels: int = 256
    codebook_size: int = 1024
    spade_hidden: int = 128
    adm_depth: int = 8
    adm_heads: int = 8
    ema_decay: float = 0.99
    commit_beta: float = 0.25

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    semantic: PipelineConfig
    image: PipelineConfig
    num_classes: int = NUM_CLASSES
    source: str = field(default="<memory>", compare=False)

    @property
    def downsample(self) -> int:
        return self.semantic.downsample

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d


_PIPELINE_KEYS = {f.name for f in fields(PipelineConfig)}


def _pipeline(section: dict[str, Any], where: str) -> PipelineConfig:
    unknown = set(section) - _PIPELINE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_PIPELINE_KEYS)}")
    values: dict[str, Any] = {}
    for f in fields(PipelineConfig):
        if f.name not in section:
            continue
        v = section[f.name]
        if f.name in ("ch_mult", "attn_levels"):
            if not isinstance(v, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                raise ConfigError(f"{where}.{f.name}: expected a list of integers, got {v!r}")
            v = tuple(v)
        elif isinstance(f.default, float):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ConfigError(f"{where}.{f.name}: expected a number, got {v!r}")
            v = float(v)
        elif not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"{where}.{f.name}: expected an integer, got {v!r}")
        values[f.name] = v
    cfg = PipelineConfig(**values)
    _check(cfg, where)
    return cfg


def _check(c: PipelineConfig, where: str) -> None:
    def need(ok: bool, name: str, msg: str) -> None:
        if not ok:
            raise ConfigError(f"{where}.{name}: {msg} (got {getattr(c, name)!r})")

    need(c.ch >= 4, "ch", "must be >= 4")
    need(len(c.ch_mult) == 5 and all(m >= 1 for m in c.ch_mult), "ch_mult",
         "must list 5 positive multipliers (4 downsamplings give the 1/16 token grid)")
    need(c.num_res_blocks >= 1, "num_res_blocks", "must be >= 1")
    need(all(0 <= lv < len(c.ch_mult) for lv in c.attn_levels), "attn_levels", "levels must index ch_mult")
    need(c.heads >= 1 and all(c.ch * c.ch_mult[lv] % c.heads == 0 for lv in c.attn_levels) and
         c.ch * c.ch_mult[-1] % c.heads == 0, "heads", "must divide the channel width where attention runs")
    need(c.z_channels >= 1, "z_channels", "must be >= 1")
    need(c.codebook_size >= 2 and c.codebook_size & (c.codebook_size - 1) == 0 and c.codebook_size <= 2 ** 15,
         "codebook_size", "must be a power of two in 2..32768")
    need(c.spade_hidden >= 1, "spade_hidden", "must be >= 1")
    need(c.adm_depth >= 0, "adm_depth", "must be >= 0")
    need(c.adm_heads >= 1 and c.z_channels % c.adm_heads == 0, "adm_heads", "must divide z_channels")
    need(0.0 < c.ema_decay < 1.0, "ema_decay", "must lie in (0, 1)")
    need(c.commit_beta >= 0.0, "commit_beta", "must be >= 0")


def parse_config(data: Any, source: str = "<memory>") -> ModelConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a model config must be a mapping, got {type(data).__name__}")
    allowed = {"name", "num_classes", "network", "semantic", "image", "description"}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    num_classes = data.get("num_classes", NUM_CLASSES)
    if num_classes != NUM_CLASSES:
        raise ConfigError(f"{source}.num_classes: only the {NUM_CLASSES} Cityscapes trainId classes are supported, got {num_classes!r}")
    common = data.get("network") or {}
    for key in ("network", "semantic", "image"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{source}.{key}: must be a mapping")
    sem = _pipeline({**common, **(data.get("semantic") or {})}, f"{source}.semantic")
    img = _pipeline({**common, **(data.get("image") or {})}, f"{source}.image")
    if sem.downsample != img.downsample:
        raise ConfigError(f"{source}: both pipelines must use the same token grid (ch_mult lengths differ)")
    return ModelConfig(name=name, semantic=sem, image=img, num_classes=num_classes, source=source)


def config_dirs() -> list[Path]:
    """Every configs/ folder, in the order they are searched: an explicit $SQGAN_CONFIG_DIR, the
    source tree (a checkout, `pip install -e .`, a colcon symlink install), the ROS 2 package's
    share/sqgan/configs found through the ament index (a colcon install), then this Python prefix's
    share/sqgan/configs (`pip install .`). Only folders that exist are listed. Scenarios, link profiles,
    node descriptions, model and training configs and the DDS profile are all found through this one
    list (`find_config`, `config_file`), so an installed package works from any directory."""
    import sys

    dirs = []
    if os.environ.get("SQGAN_CONFIG_DIR"):
        dirs.append(Path(os.environ["SQGAN_CONFIG_DIR"]))
    dirs.append(Path(__file__).resolve().parent.parent / "configs")
    # A ROS 2 install: the ament index is plain files (what ament_index_python reads), looked up here
    # without importing any ROS package into the codec.
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / "sqgan").is_file():
            dirs.append(Path(prefix) / "share" / "sqgan" / "configs")
            break
    dirs.append(Path(sys.prefix) / "share" / "sqgan" / "configs")
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def config_file(relative: str | os.PathLike[str]) -> Path:
    """The first configs/<relative> that exists in config_dirs() (e.g. `dds/fastdds_fast_discovery.xml`)."""
    for d in config_dirs():
        if (d / relative).is_file():
            return d / relative
    tried = ", ".join(str(d / relative) for d in config_dirs()) or "no configs/ folder found"
    raise ConfigError(f"config file {relative} not found; looked in: {tried}")


def configs_of_kind(kind: str) -> dict[str, Path]:
    """name -> file of every configs/<kind>/*.yaml a bare name can select, sorted by name. A name in an
    earlier folder of config_dirs() hides the same name in a later one, exactly as find_config picks."""
    found: dict[str, Path] = {}
    for d in config_dirs():
        for p in sorted((d / kind).glob("*.yaml")):
            found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def known_configs(kind: str) -> list[str]:
    """Names of the configs/<kind>/*.yaml files over every config folder (for error messages, listings)."""
    return list(configs_of_kind(kind))


def find_config(kind: str, name_or_path: str | os.PathLike[str]) -> Path:
    """A path to a YAML file, or a bare name such as `small` looked up in configs/<kind>/ of every
    config_dirs() entry, so commands work from any working directory and from an installed package."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{kind} config file not found: {p}")
        return p
    tried = []
    for d in config_dirs():
        cand = d / kind / f"{name_or_path}.yaml"
        tried.append(str(cand))
        if cand.is_file():
            return cand
    known = ", ".join(known_configs(kind)) or "none"
    raise ConfigError(f"unknown {kind} config {str(name_or_path)!r} (known: {known}); looked in: {', '.join(tried)}")


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A path to a YAML file, or a bare name such as `small` looked up in configs/model/."""
    return find_config("model", name_or_path)


def load_config(name_or_path: str | os.PathLike[str]) -> ModelConfig:
    path = resolve_config_path(name_or_path)
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(data, str(path))
