"""Checkpoints: a plain dict of tensors, primitives and the model config, loaded with
`torch.load(weights_only=True)` so that no file can run code on load.

The model id (16 bits, written into every frame) is a digest of the config and every tensor of the
state dict, priors included: a decoder refuses frames made by other weights instead of decoding them
into nonsense.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from sqgan_core.config import ConfigError, ModelConfig, load_config, parse_config
from sqgan_core.errors import InputError
from sqgan_core.models import SQGAN

FORMAT = "sqgan-checkpoint"
FORMAT_VERSION = 1
UNTRAINED_SEED = 0
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "sqgan_small.pt"


class CheckpointError(InputError, ValueError):
    """A checkpoint that is missing, unreadable or not an SQ-GAN checkpoint."""


def model_digest(model: SQGAN) -> str:
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def model_id_of(model: SQGAN) -> int:
    return int(model_digest(model)[:4], 16)


def build_untrained(config: ModelConfig | str, seed: int = UNTRAINED_SEED) -> SQGAN:
    """A deterministic randomly initialised model (for tests and explicit `--untrained` use only)."""
    cfg = load_config(config) if isinstance(config, (str, os.PathLike)) else config
    with torch.random.fork_rng():  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = SQGAN(cfg)
    return model


def save_checkpoint(path: str | os.PathLike[str], model: SQGAN, metadata: dict[str, Any] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[SQGAN, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path}: not a checkpoint: torch.save files are zip archives, this one starts "
                              f"with {magic!r}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: holds Python objects a weights-only load refuses, so it is not an "
                              f"SQ-GAN checkpoint ({first[:160]})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged or truncated: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an SQ-GAN checkpoint (missing format tag {FORMAT!r})")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {blob.get('format_version')} is not supported")
    try:
        cfg = parse_config(blob["config"], f"{path}:config")
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: bad embedded config: {exc}") from None
    model = SQGAN(cfg)
    state = blob.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: has no state_dict of weights")
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {name} (first: {v[0]})" for name, v in
                 (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong)) if v]
        raise CheckpointError(f"{path}: weights do not fit config {cfg.name!r}: " + "; ".join(parts))
    model.load_state_dict(state)
    return model, dict(blob.get("metadata") or {})


def default_checkpoint() -> Path | None:
    """The shipped trained model, if this installation has one."""
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None
