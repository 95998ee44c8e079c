"""Seeded channel models and the link profile format (configs/links/*.yaml).

TCP under ZeroMQ never loses a message, so the link emulator decides per packet what a radio channel
would have done. Everything is drawn from one seeded numpy Generator, so a profile + seed reproduces
the same loss pattern for the same packet sequence.

Loss models:
* none
* bernoulli(p): each packet lost independently with probability p.
* gilbert_elliott(p, r, h, k): a two-state Markov chain, Good -> Bad with probability p and
  Bad -> Good with r per packet; a packet gets through with probability k in Good and h in Bad
  (the Hasslinger-Hohlfeld convention). Mean loss = pi_G (1 - k) + pi_B (1 - h), pi_B = p / (p + r);
  mean burst (Bad sojourn) = 1 / r packets.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sqgan_core.config import load_yaml
from sqgan_core.errors import InputError


class ProfileError(InputError, ValueError):
    """A link profile that does not validate; the message names the file and the field."""


# ---- loss models --------------------------------------------------------------------------------

class LossModel:
    name = "none"

    def lost(self, rng: np.random.Generator) -> bool:
        return False

    def expected_loss(self) -> float:
        return 0.0


@dataclass
class Bernoulli(LossModel):
    p: float
    name = "bernoulli"

    def lost(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.p)

    def expected_loss(self) -> float:
        return self.p


@dataclass
class GilbertElliott(LossModel):
    p: float  # P(Good -> Bad) per packet
    r: float  # P(Bad -> Good) per packet
    h: float = 0.0  # P(delivered | Bad)
    k: float = 1.0  # P(delivered | Good)
    bad: bool = False
    name = "gilbert_elliott"

    def lost(self, rng: np.random.Generator) -> bool:
        u_state, u_loss = rng.random(2)
        self.bad = bool(u_state >= self.r) if self.bad else bool(u_state < self.p)
        return bool(u_loss >= (self.h if self.bad else self.k))

    def expected_loss(self) -> float:
        if self.p + self.r == 0:
            return 0.0 if not self.bad else 1 - self.h
        pi_b = self.p / (self.p + self.r)
        return (1 - pi_b) * (1 - self.k) + pi_b * (1 - self.h)


# ---- profiles -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkProfile:
    """Everything the emulator applies to a packet, in order: loss, duplication, the bandwidth
    bottleneck (token bucket feeding a bounded FIFO), then delay + jitter (+ extra delay for packets
    picked for reordering)."""

    name: str
    loss: dict[str, Any] = field(default_factory=lambda: {"model": "none"})
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_kbps: float = 0.0  # 0: no bandwidth cap
    burst_bytes: int = 4096
    queue_packets: int = 64
    reorder: float = 0.0
    reorder_extra_ms: float = 10.0
    duplicate: float = 0.0
    max_in_flight: int = 4096
    seed: int = 0
    description: str = ""

    def loss_model(self) -> LossModel:
        m = dict(self.loss)
        kind = m.pop("model")
        if kind == "none":
            return LossModel()
        if kind == "bernoulli":
            return Bernoulli(float(m["p"]))
        return GilbertElliott(float(m["p"]), float(m["r"]), float(m.get("h", 0.0)), float(m.get("k", 1.0)))

    def expected_loss(self) -> float:
        return self.loss_model().expected_loss()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_FIELDS = {
    "name": str, "description": str, "seed": int, "loss": dict, "delay_ms": float, "jitter_ms": float,
    "bandwidth": dict, "reorder": dict, "duplicate": float, "max_in_flight": int,
}
_LOSS_PARAMS = {"none": set(), "bernoulli": {"p"}, "gilbert_elliott": {"p", "r", "h", "k"}}


def _number(where: str, value: Any, lo: float, hi: float, integer: bool = False) -> float:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ProfileError(f"{where} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not (lo <= value <= hi) or value != value:
        raise ProfileError(f"{where} must be in [{lo}, {hi}], got {value!r}")
    return value


def parse_profile(data: Any, source: str = "<profile>") -> LinkProfile:
    """Validate a profile mapping (the YAML document) and build a LinkProfile."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a link profile must be a mapping, got {type(data).__name__}")
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ProfileError(f"{source}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                           f"known: {', '.join(sorted(_FIELDS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{source}: name must be a non-empty string")
    kw: dict[str, Any] = {"name": name, "description": str(data.get("description", ""))}
    if "seed" in data:
        kw["seed"] = int(_number(f"{source}: seed", data["seed"], 0, 2 ** 63 - 1, integer=True))

    loss = data.get("loss", {"model": "none"})
    if not isinstance(loss, dict) or "model" not in loss:
        raise ProfileError(f"{source}: loss must be a mapping with a 'model' field")
    model = loss["model"]
    if model not in _LOSS_PARAMS:
        raise ProfileError(f"{source}: loss.model {model!r} must be one of {', '.join(_LOSS_PARAMS)}")
    extra = set(loss) - {"model"} - _LOSS_PARAMS[model]
    if extra:
        raise ProfileError(f"{source}: loss.{sorted(extra)[0]} is not a parameter of {model} "
                           f"(parameters: {', '.join(sorted(_LOSS_PARAMS[model])) or 'none'})")
    need = {"bernoulli": {"p"}, "gilbert_elliott": {"p", "r"}}.get(model, set())
    for key in sorted(need - set(loss)):
        raise ProfileError(f"{source}: loss.{key} is required for {model}")
    clean_loss: dict[str, Any] = {"model": model}
    for key in _LOSS_PARAMS[model] & set(loss):
        clean_loss[key] = float(_number(f"{source}: loss.{key}", loss[key], 0.0, 1.0))
    if model == "gilbert_elliott" and clean_loss["r"] == 0 and clean_loss["p"] > 0:
        raise ProfileError(f"{source}: loss.r = 0 makes the Bad state absorbing (total loss for ever)")
    kw["loss"] = clean_loss

    for key, hi in (("delay_ms", 60_000.0), ("jitter_ms", 60_000.0)):
        if key in data:
            kw[key] = float(_number(f"{source}: {key}", data[key], 0.0, hi))
    if "duplicate" in data:
        kw["duplicate"] = float(_number(f"{source}: duplicate", data["duplicate"], 0.0, 1.0))
    if "max_in_flight" in data:
        kw["max_in_flight"] = int(_number(f"{source}: max_in_flight", data["max_in_flight"], 1, 1 << 20, True))

    bw = data.get("bandwidth", {})
    if not isinstance(bw, dict):
        raise ProfileError(f"{source}: bandwidth must be a mapping (rate_kbps, burst_bytes, queue_packets)")
    extra = set(bw) - {"rate_kbps", "burst_bytes", "queue_packets"}
    if extra:
        raise ProfileError(f"{source}: bandwidth.{sorted(extra)[0]} is unknown (rate_kbps, burst_bytes, queue_packets)")
    if "rate_kbps" in bw:
        kw["rate_kbps"] = float(_number(f"{source}: bandwidth.rate_kbps", bw["rate_kbps"], 0.0, 1e7))
    if "burst_bytes" in bw:
        kw["burst_bytes"] = int(_number(f"{source}: bandwidth.burst_bytes", bw["burst_bytes"], 64, 1 << 30, True))
    if "queue_packets" in bw:
        kw["queue_packets"] = int(_number(f"{source}: bandwidth.queue_packets", bw["queue_packets"], 1, 1 << 20, True))

    ro = data.get("reorder", {})
    if not isinstance(ro, dict):
        raise ProfileError(f"{source}: reorder must be a mapping (probability, extra_delay_ms)")
    extra = set(ro) - {"probability", "extra_delay_ms"}
    if extra:
        raise ProfileError(f"{source}: reorder.{sorted(extra)[0]} is unknown (probability, extra_delay_ms)")
    if "probability" in ro:
        kw["reorder"] = float(_number(f"{source}: reorder.probability", ro["probability"], 0.0, 1.0))
    if "extra_delay_ms" in ro:
        kw["reorder_extra_ms"] = float(_number(f"{source}: reorder.extra_delay_ms", ro["extra_delay_ms"], 0.0, 60_000.0))
    return LinkProfile(**kw)


def known_profiles() -> list[str]:
    """Every link profile a name can select (configs/links/*.yaml over every config folder)."""
    from sqgan_core.config import known_configs

    return known_configs("links")


def resolve_profile(name_or_path: str | os.PathLike[str]) -> Path:
    """A profile name (e.g. bursty_15pct), looked up in every config folder, or a path to a YAML file."""
    from sqgan_core.config import ConfigError, find_config

    p = Path(name_or_path)
    if (p.suffix in (".yaml", ".yml") or p.exists()) and not p.is_file():
        raise ProfileError(f"link profile {p} not found")
    try:
        return find_config("links", name_or_path)
    except ConfigError:
        known = ", ".join(known_profiles()) or "none found"
        raise ProfileError(f"unknown link profile {str(name_or_path)!r}; known: {known}") from None


def load_profile(name_or_path: str | os.PathLike[str]) -> LinkProfile:
    path = resolve_profile(name_or_path)
    try:
        data = load_yaml(path.read_text(encoding="utf8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    return parse_profile(data, str(path))
