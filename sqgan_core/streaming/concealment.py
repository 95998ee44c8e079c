"""Concealment: what the RSU puts in place of tokens that packet loss removed.

Lost tokens (sent, missing) are flagged in `frame.lost_*`; SAMM-masked tokens (never sent) are MASKED
and not flagged. A concealer keeps the two apart: it predicts lost tokens only, and the ADM still
fills the SAMM-masked ones (and any lost token a concealer leaves MASKED) from their neighbours.

Decoding runs in two halves so that the image stream's concealer can read s_hat:
    semantic indices -> concealer.semantic() -> s_hat -> concealer.image(s_hat) -> image.

* `NoModelConcealer` ("none"): the baseline; lost tokens stay MASKED and the ADM fills them like
  SAMM-masked ones.
* `TransformerConcealer` ("bidirectional" or "autoregressive"): one transformer per stream
  (`sqgan_core.models.concealer`), loaded from a concealer checkpoint that names the codec weights it
  was trained for by model id. `select_concealer` falls back to the baseline, with the reason, when the
  ids differ or the file is missing, so the RSU can log and count it and keep decoding.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from sqgan_core.bitstream import MASKED
from sqgan_core.errors import InputError
from sqgan_core.models.concealer import KINDS, ConcealerConfig, build_concealer
from sqgan_core.streaming.assembler import AssembledFrame

FORMAT = "sqgan-concealer"
FORMAT_VERSION = 1
STREAMS = ("image", "semantic")
METHODS = ("auto", "none") + KINDS  # what the RSU's `concealment` parameter and `eval --concealment` take
# What a transformer hands the decoder for a lost token: `soft` (default) the expected code vector under
# its predicted distribution, which the ADM reads as a received token; `soft_masked` the same vector as
# the starting point of the ADM's fill (still treated as masked); `hard` the most probable index.
MODES = ("soft", "soft_masked", "hard")


@dataclass
class Concealed:
    """One stream after concealment: indices (MASKED where nothing was decided) and, for soft modes,
    the predicted distributions of the lost positions, which the decoder turns into code vectors."""

    indices: np.ndarray
    positions: np.ndarray | None = None
    probs: torch.Tensor | None = None  # (len(positions), J)
    as_kept: bool = False
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_concealer(kind: str = "bidirectional") -> Path:
    return WEIGHTS_DIR / f"concealer_{kind}.pt"


class ConcealerError(InputError, ValueError):
    """A concealer file that does not load (missing, not a concealer, wrong version or shapes)."""


class Concealer(Protocol):
    name: str
    needs_s_hat: bool

    def semantic(self, frame: AssembledFrame) -> Concealed: ...

    def image(self, frame: AssembledFrame, s_hat_histogram: torch.Tensor | None) -> Concealed: ...


@dataclass
class ConcealStats:
    """What concealment did, per concealer (summed over frames): reported on /diagnostics and by eval."""

    frames: int = 0
    tokens_lost: int = 0
    tokens_predicted: int = 0
    tokens_left_masked: int = 0  # predicted below `threshold`, or of a codebook size it was not trained on: left to the ADM
    frames_other_codebook: int = 0  # frames sent with a reduced codebook: concealed by the baseline
    ms_total: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ms_mean"] = self.ms_total / self.frames if self.frames else None
        return d


class NoModelConcealer:
    """Lost tokens stay MASKED: the ADM fills them as it fills SAMM-masked ones."""

    name = "none"
    needs_s_hat = False

    def __init__(self) -> None:
        self.stats = ConcealStats()

    def semantic(self, frame: AssembledFrame) -> Concealed:
        if frame.tokens_lost:
            self.stats.frames += 1
            self.stats.tokens_lost += frame.tokens_lost
            self.stats.tokens_left_masked += frame.tokens_lost
        return Concealed(frame.indices_s)

    def image(self, frame: AssembledFrame, s_hat_histogram: torch.Tensor | None = None) -> Concealed:
        return Concealed(frame.indices_x)


def conceal_as_masked(frame: AssembledFrame) -> tuple[np.ndarray, np.ndarray]:  # noqa: D103
    """The baseline on both streams at once (for callers without a decoder in between)."""
    return frame.indices_x, frame.indices_s


def model_input(indices: np.ndarray, lost: np.ndarray, num_codes: int) -> np.ndarray:
    """Received indices -> the concealer's vocabulary: codes as they are, SAMM-masked -> num_codes,
    lost -> num_codes + 1."""
    ids = np.where(indices == MASKED, num_codes, indices).astype(np.int64)
    ids[np.asarray(lost, dtype=bool)] = num_codes + 1
    return ids


class TransformerConcealer:
    """Predicts lost indices with one transformer per stream. `threshold`: lost tokens whose most probable
    code is less probable than this are left MASKED for the ADM, in every mode (0 conceals them all)."""

    needs_s_hat = True

    def __init__(self, models: dict[str, torch.nn.Module], kind: str, codec_model_id: int, *,
                 device: str | torch.device = "cpu", passes: int = 3, threshold: float = 0.0, mode: str = "soft",
                 metadata: dict[str, Any] | None = None, source: str = "") -> None:
        if mode not in MODES:
            raise ValueError(f"concealment mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.models = {k: m.to(device).eval() for k, m in models.items()}
        self.name = kind
        self.kind = kind
        self.codec_model_id = codec_model_id
        self.device = torch.device(device)
        self.passes = passes
        self.threshold = threshold
        self.metadata = dict(metadata or {})
        self.source = source
        self.stats = ConcealStats()

    # ---- files ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu", **kwargs: Any) -> "TransformerConcealer":
        path = Path(path)
        if not path.is_file():
            raise ConcealerError(f"concealer {path}: no such file")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
            raise ConcealerError(f"concealer {path}: not a loadable checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ConcealerError(f"concealer {path}: not a concealer checkpoint (format {FORMAT!r} expected)")
        if blob.get("version") != FORMAT_VERSION:
            raise ConcealerError(f"concealer {path}: version {blob.get('version')!r}, this code reads {FORMAT_VERSION}")
        models = {}
        kind = None
        for stream in STREAMS:
            part = blob.get(stream)
            if not isinstance(part, dict) or "config" not in part or "state_dict" not in part:
                raise ConcealerError(f"concealer {path}: the {stream} stream's model is missing")
            try:
                cfg = ConcealerConfig.from_dict(dict(part["config"]))
                m = build_concealer(cfg)
                m.load_state_dict(part["state_dict"])
            except (ValueError, RuntimeError, TypeError) as exc:
                raise ConcealerError(f"concealer {path} ({stream}): {exc}") from None
            kind = kind or cfg.kind
            if cfg.kind != kind:
                raise ConcealerError(f"concealer {path}: the streams' models are of different kinds")
            models[stream] = m
        return cls(models, kind, int(blob.get("codec_model_id", -1)), device=device,
                   metadata=dict(blob.get("metadata") or {}), source=str(path), **kwargs)

    def warm_up(self) -> None:
        """One small concealment per stream, so the first lossy frame does not pay for lazy start-up
        (kernel selection, allocator) on top of its own work."""
        for m in self.models.values():
            ids = torch.zeros(32, dtype=torch.long, device=self.device)
            ids[::2] = m.lost_id
            cond = torch.full((32, m.cfg.condition_channels), 0.05, device=self.device) if m.cfg.condition_channels else None
            with torch.inference_mode():
                m.fill(ids, (4, 8), cond, passes=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        save_concealer(path, self.models, self.codec_model_id, self.metadata)

    # ---- concealment ---------------------------------------------------------------------------
    def _fill(self, stream: str, frame: AssembledFrame, indices: np.ndarray, lost: np.ndarray,
              condition: torch.Tensor | None) -> Concealed:
        if not lost.any():
            return Concealed(indices)
        m = self.models[stream]
        j = m.cfg.num_codes
        h = frame.header
        if 1 << (h.log2_jx if stream == "image" else h.log2_js) != j:
            self.stats.frames_other_codebook += stream == "semantic"
            self.stats.tokens_lost += int(lost.sum())
            self.stats.tokens_left_masked += int(lost.sum())
            return Concealed(indices)
        t0 = time.perf_counter()
        ids = torch.from_numpy(model_input(indices, lost, j)).to(self.device)
        cond = condition.to(self.device) if (condition is not None and m.cfg.condition_channels) else None
        probs: dict[int, torch.Tensor] | None = {} if self.mode != "hard" else None
        passes = 1 if (self.mode != "hard" and m.cfg.kind == "bidirectional") else self.passes
        with torch.inference_mode():
            pred, conf = m.fill(ids, (h.grid_h, h.grid_w), cond, passes=passes, probs_out=probs)
        pred, conf = pred.cpu().numpy(), conf.cpu().numpy()
        n_lost = int(lost.sum())
        self.stats.tokens_lost += n_lost
        if probs is not None:  # soft: each lost token gets its expected code vector (the confident ones, with a threshold)
            pos = np.flatnonzero(lost & (conf >= self.threshold))
            if pos.size:
                out = Concealed(indices, pos, torch.stack([probs[int(q)] for q in pos]), as_kept=self.mode == "soft")
            else:
                out = Concealed(indices)
            self.stats.tokens_predicted += int(pos.size)
            self.stats.tokens_left_masked += int(n_lost - pos.size)
        else:
            take = lost & (conf >= self.threshold) & (pred < j)
            hard = indices.copy()
            hard[take] = pred[take]
            out = Concealed(hard)
            self.stats.tokens_predicted += int(take.sum())
            self.stats.tokens_left_masked += int(n_lost - take.sum())
        self.stats.ms_total += 1000 * (time.perf_counter() - t0)
        return out

    def semantic(self, frame: AssembledFrame) -> Concealed:
        if frame.tokens_lost:
            self.stats.frames += 1
        return self._fill("semantic", frame, frame.indices_s, frame.lost_s, None)

    def image(self, frame: AssembledFrame, s_hat_histogram: torch.Tensor | None = None) -> Concealed:
        return self._fill("image", frame, frame.indices_x, frame.lost_x, s_hat_histogram)


def save_concealer(path: str | os.PathLike[str], models: dict[str, torch.nn.Module], codec_model_id: int,
                   metadata: dict[str, Any] | None = None) -> None:
    """Both streams' models in one file (atomically: a reader never sees half a file)."""
    blob = {"format": FORMAT, "version": FORMAT_VERSION, "codec_model_id": int(codec_model_id),
            "metadata": dict(metadata or {})}
    for stream in STREAMS:
        m = models[stream]
        blob[stream] = {"config": m.cfg.to_dict(),
                        "state_dict": {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


@dataclass
class Selection:
    """What `select_concealer` chose, and why it fell back when it did."""

    concealer: Any
    method: str  # what was asked for
    fallback_reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def select_concealer(method: str, path: str | os.PathLike[str] | None, codec_model_id: int, *,
                     device: str | torch.device = "cpu", passes: int = 3, threshold: float = 0.0,
                     mode: str = "soft") -> Selection:
    """The concealer for `method` (auto | none | bidirectional | autoregressive) and an optional file.

    auto: the shipped bidirectional concealer if it was trained for these codec weights, else the
    baseline. A named kind: that file (or the shipped one of that kind); a missing, unreadable or
    mismatched file falls back to the baseline with the reason in `fallback_reason`."""
    if method not in METHODS:
        raise ValueError(f"concealment {method!r}: use one of {', '.join(METHODS)}")
    if method == "none":
        return Selection(NoModelConcealer(), method)
    kind = "bidirectional" if method == "auto" else method
    p = Path(path) if path else shipped_concealer(kind)
    try:
        c = TransformerConcealer.load(p, device=device, passes=passes, threshold=threshold, mode=mode)
    except ConcealerError as exc:
        return Selection(NoModelConcealer(), method, str(exc))
    if path and c.kind != kind and method != "auto":
        return Selection(NoModelConcealer(), method, f"concealer {p} is {c.kind}, {kind} was asked for")
    if c.codec_model_id != codec_model_id:
        return Selection(NoModelConcealer(), method,
                         f"concealer {p} was trained for codec model id {c.codec_model_id:#06x}, the codec loaded "
                         f"is {codec_model_id:#06x}: lost tokens go to the ADM instead")
    return Selection(c, method, details={"file": str(p), "kind": c.kind})


__all__ = ["Concealed", "MODES", "ConcealStats", "Concealer", "ConcealerError", "METHODS", "NoModelConcealer", "Selection", "STREAMS",
           "TransformerConcealer", "conceal_as_masked", "model_input", "save_concealer", "select_concealer",
           "shipped_concealer"]
