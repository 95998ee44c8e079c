"""Training the lost-token concealers (`sqgan train concealer`).

1. Token maps: the codec whose tokens the RSU will receive encodes every training frame once at
   m = 1, which gives every position's code index and SAMM score in both streams (the index of a token
   does not depend on m; m only decides which tokens are kept: the top-N by score). For the image
   stream's condition, s_hat is decoded once per frame at an m_s drawn from the training mixture.
   The maps are cached in the run folder per codec model id.
2. Each training sample draws m_x and m_s from the rates users run (`sample_keep_fraction`), keeps the
   top-N tokens, packetizes them with the real `Packetizer` (random packet size), drops packets with a
   Bernoulli or Gilbert-Elliott channel (random rate and burst length) and marks as lost the tokens the
   dropped index packets carried: the pipeline's own interleaving, never a synthetic pattern.
3. Both streams' models train together, AdamW with warm-up and cosine decay to the run's own deadline;
   the best by validation (cross-entropy on lost tokens of fixed validation draws) is written
   atomically to OUT/concealer_<kind>.pt after every validation, so stopping at any moment leaves a
   usable file.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.codec import Codec
from sqgan_core.models.concealer import ConcealerConfig, build_concealer, s_hat_token_histogram
from sqgan_core.models.masking import keep_count
from sqgan_core.streaming.concealment import STREAMS, TransformerConcealer, model_input, save_concealer
from sqgan_core.streaming.loss import LossSpec, drop_packets, lost_index_packets, lost_token_mask
from sqgan_core.streaming.packetizer import Packetizer
from sqgan_core.training.augment import sample_keep_fraction

PACKET_SIZES = (128, 192, 256, 384, 512)


@dataclass
class TokenMaps:
    """Every position's code index and SAMM score per stream, for N frames of one grid size."""

    grid: tuple[int, int]
    idx_x: np.ndarray  # (N, K) int16
    idx_s: np.ndarray
    score_x: np.ndarray  # (N, K) float32
    score_s: np.ndarray
    hist: np.ndarray  # (N, K, 20) float16: s_hat channel shares per token (image-stream condition)
    codec_model_id: int

    def __len__(self) -> int:
        return self.idx_x.shape[0]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, grid=np.array(self.grid), idx_x=self.idx_x, idx_s=self.idx_s, score_x=self.score_x,
                 score_s=self.score_s, hist=self.hist, codec_model_id=np.array(self.codec_model_id))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TokenMaps":
        with np.load(path, allow_pickle=False) as z:
            return cls(tuple(int(v) for v in z["grid"]), z["idx_x"], z["idx_s"], z["score_x"], z["score_s"],
                       z["hist"], int(z["codec_model_id"]))


def _top_keep(score: np.ndarray, m: float) -> np.ndarray:
    """The SAMM's keep mask at fraction m: the top-N scores, ties by position (its stable sort)."""
    k = score.size
    keep = np.zeros(k, dtype=bool)
    n = keep_count(m, k)
    if n:
        keep[np.argsort(-score, kind="stable")[:n]] = True
    return keep


@torch.inference_mode()
def extract_token_maps(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0,
                       desc: str = "token maps") -> TokenMaps:
    model = codec.model
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("idx_x", "idx_s", "score_x", "score_s", "hist")}
    grid = None
    for image, labels in tqdm(frames, desc=desc, unit="frame", mininterval=5):
        x, lab, _, _ = codec._prepare(image, labels)
        seg = model.one_hot(lab)
        z_x, z_s = model.encode_latents(x.contiguous(memory_format=torch.channels_last), seg)
        tokens = model.select(z_x, z_s, seg, 1.0, 1.0)
        if grid is None:
            grid = tokens.grid
        elif tokens.grid != grid:
            raise ValueError(f"frames of different sizes ({grid} and {tokens.grid} token grids): train on one size")
        sx = model.img_mq.samm.scores(z_x, seg)[0].float().cpu().numpy()
        ss = model.sem_mq.samm.scores(z_s, seg)[0].float().cpu().numpy()
        ix, is_ = tokens.indices_x[0].cpu().numpy(), tokens.indices_s[0].cpu().numpy()
        m_s = sample_keep_fraction(rng)
        masked_s = np.where(_top_keep(ss, m_s), is_, MASKED)
        s_idx = model.decode_semantic_tokens(torch.from_numpy(masked_s).to(codec.device)[None], tokens.grid)
        hist = s_hat_token_histogram(s_idx, model.downsample)[0].cpu().numpy()
        for k, v in (("idx_x", ix.astype(np.int16)), ("idx_s", is_.astype(np.int16)), ("score_x", sx),
                     ("score_s", ss), ("hist", hist.astype(np.float16))):
            out[k].append(v)
    if grid is None:
        raise ValueError("no frames to extract token maps from")
    return TokenMaps(tuple(grid), *(np.stack(out[k]) for k in ("idx_x", "idx_s", "score_x", "score_s", "hist")),
                     codec_model_id=codec.model_id)


class LossDraws:
    """Samples of (received indices, lost masks) per stream, drawn as the pipeline loses them."""

    def __init__(self, maps: TokenMaps, codec: Codec, seed: int, max_loss: float = 0.5) -> None:
        self.maps = maps
        self.rng = np.random.default_rng(seed)
        self.max_loss = max_loss
        gh, gw = maps.grid
        self.k = gh * gw
        self.packetizers = {b: Packetizer(codec.priors_x, codec.priors_s, codec.model_id, vehicle_id=0, max_packet_bytes=b)
                            for b in PACKET_SIZES}
        self.log2 = (codec.log2_jx, codec.log2_js)

    def _loss(self) -> LossSpec:
        rate = float(self.rng.uniform(0.05, self.max_loss))
        if self.rng.random() < 0.5:
            return LossSpec("bernoulli", rate)
        return LossSpec("gilbert", min(rate, 0.45), float(self.rng.uniform(1.5, 6.0)))

    def draw(self, i: int) -> dict[str, np.ndarray]:
        m = self.maps
        while True:
            keep_x = _top_keep(m.score_x[i], sample_keep_fraction(self.rng))
            keep_s = _top_keep(m.score_s[i], sample_keep_fraction(self.rng))
            if keep_x.any() or keep_s.any():
                break
        ix = np.where(keep_x, m.idx_x[i].astype(np.int64), MASKED)
        is_ = np.where(keep_s, m.idx_s[i].astype(np.int64), MASKED)
        gh, gw = m.grid
        header = FrameHeader(m.codec_model_id, gh, gw, 0, 0, int(keep_x.sum()), int(keep_s.sum()), *self.log2)
        packets = self.packetizers[PACKET_SIZES[int(self.rng.integers(len(PACKET_SIZES)))]].packetize(
            header, ix, is_, seq=0)
        _, lost_pos = drop_packets(packets, self._loss().model(), self.rng)
        p, lost_j = lost_index_packets(packets, lost_pos)
        if not lost_j and p:
            lost_j = {int(self.rng.integers(p))}  # every sample teaches something
        return {"ix": ix, "is": is_, "lost_x": lost_token_mask(keep_x, p, lost_j),
                "lost_s": lost_token_mask(keep_s, p, lost_j)}


def _batch(maps: TokenMaps, draws: LossDraws, frames: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    samples = [draws.draw(int(i)) for i in frames]
    out: dict[str, torch.Tensor] = {}
    for stream, key, lk, true in (("image", "ix", "lost_x", maps.idx_x), ("semantic", "is", "lost_s", maps.idx_s)):
        j = 1 << (draws.log2[0] if stream == "image" else draws.log2[1])
        out[f"{stream}_ids"] = torch.from_numpy(np.stack([model_input(s[key], s[lk], j) for s in samples])).to(device)
        out[f"{stream}_lost"] = torch.from_numpy(np.stack([s[lk] for s in samples])).to(device)
        out[f"{stream}_sent"] = torch.from_numpy(np.stack([s[key] != MASKED for s in samples])).to(device)  # lost ones too
        out[f"{stream}_true"] = torch.from_numpy(true[frames].astype(np.int64)).to(device)
    out["hist"] = torch.from_numpy(maps.hist[frames].astype(np.float32)).to(device)
    return out


def stream_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], stream: str, grid: tuple[int, int],
                rng: np.random.Generator) -> tuple[torch.Tensor, int, int]:
    """(mean cross-entropy, tokens scored, top-1 hits) of one stream's model on a batch.

    Bidirectional: the lost positions. Autoregressive: a random raster window of `window + 1` tokens
    per sample, scored at every sent position (what the sliding window predicts from)."""
    ids, lost, sent, true = (batch[f"{stream}_{k}"] for k in ("ids", "lost", "sent", "true"))
    cond = batch["hist"] if model.cfg.condition_channels else None
    b, k = ids.shape
    rows, cols = model.grid_coords(grid, ids.device)
    rows, cols = rows.expand(b, k), cols.expand(b, k)
    if model.cfg.kind == "bidirectional":
        if not lost.any():
            return ids.new_zeros((), dtype=torch.float32), 0, 0
        logits = model.logits(ids, rows, cols, cond, lost)
        target = true[lost]
    else:
        n = min(model.cfg.window + 1, k)
        starts = torch.from_numpy(rng.integers(0, k - n + 1, size=b)).to(ids.device)
        idx = starts[:, None] + torch.arange(n, device=ids.device)[None]
        take = lambda t: t.gather(1, idx)  # noqa: E731
        prev = torch.where(starts > 0, ids.gather(1, (starts - 1).clamp(min=0)[:, None])[:, 0],
                           torch.full_like(starts, model.start_id))
        c = None if cond is None else cond.gather(1, idx[..., None].expand(-1, -1, cond.shape[-1]))
        out = model.logits(take(ids), take(rows), take(cols), c, prev)
        score = take(sent)
        if not score.any():
            return ids.new_zeros((), dtype=torch.float32), 0, 0
        logits, target = out[score], take(true)[score]
    loss = F.cross_entropy(logits.float(), target)
    return loss, int(target.numel()), int((logits.argmax(-1) == target).sum())


@dataclass
class ConcealerRun:
    kind: str = "bidirectional"
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    steps: int = 100_000
    max_minutes: float | None = None
    val_every: int = 100
    val_batches: int = 8
    seed: int = 0
    dim: int = 128
    depth: int = 4
    heads: int = 4
    window: int = 64


def train_concealers(codec: Codec, train: TokenMaps, val: TokenMaps, out: Path, run: ConcealerRun,
                     init: Path | None = None, device: str = "cpu", log=print, init_label: str | None = None) -> dict[str, Any]:
    """Train both streams' concealers; returns the summary (also OUT/summary.json)."""
    dev = torch.device(device)
    j_x, j_s = codec.model.codebook_sizes
    models: dict[str, torch.nn.Module] = {}
    for stream, j, cond in (("image", j_x, 20), ("semantic", j_s, 0)):
        cfg = ConcealerConfig(kind=run.kind, num_codes=j, dim=run.dim, depth=run.depth, heads=run.heads,
                              condition_channels=cond, window=run.window)
        models[stream] = build_concealer(cfg).to(dev)
    init_note = "fresh"
    if init is not None:
        src = TransformerConcealer.load(init)
        if src.kind != run.kind:
            raise ValueError(f"--init {init} is a {src.kind} concealer, this run trains {run.kind}")
        for stream in STREAMS:
            if src.models[stream].cfg != models[stream].cfg:
                raise ValueError(f"--init {init}: its {stream} model's config {src.models[stream].cfg} differs from "
                                 f"this run's {models[stream].cfg}")
            models[stream].load_state_dict(src.models[stream].state_dict())
        init_note = init_label or str(init)  # "shipped" rather than this machine's path to it
    params = [p for m in models.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=run.lr, weight_decay=run.weight_decay, betas=(0.9, 0.98))
    draws = LossDraws(train, codec, run.seed)
    val_rng = np.random.default_rng(run.seed + 1)
    val_draws = LossDraws(val, codec, run.seed + 2)
    val_batches = [(val_rng.integers(0, len(val), run.batch_size), np.random.default_rng(run.seed + 3 + v))
                   for v in range(run.val_batches)]
    val_data = [(_batch(val, val_draws, f, dev), r) for f, r in val_batches]
    rng = np.random.default_rng(run.seed + 100)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"concealer_{run.kind}.pt"
    t0 = time.monotonic()
    deadline = None if run.max_minutes is None else t0 + 60 * run.max_minutes
    best: dict[str, Any] = {}
    history = []

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, run.warmup))
        frac = step / run.steps
        if deadline is not None:
            frac = max(frac, (time.monotonic() - t0) / (deadline - t0))
        return run.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    def validate(step: int) -> dict[str, float]:
        for m in models.values():
            m.eval()
        fig: dict[str, float] = {}
        with torch.no_grad():
            for stream in STREAMS:
                tot = n = hits = 0.0
                for batch, r in val_data:
                    loss, cnt, h = stream_loss(models[stream], batch, stream, val.grid, np.random.default_rng(r.integers(1 << 30)))
                    tot += float(loss) * cnt
                    n += cnt
                    hits += h
                fig[f"val_ce_{stream}"] = tot / max(1, n)
                fig[f"val_top1_{stream}"] = hits / max(1, n)
        fig["val_ce"] = fig["val_ce_image"] + fig["val_ce_semantic"]
        for m in models.values():
            m.train()
        return fig

    step = 0
    fig = validate(0)
    history.append({"step": 0, **fig})
    best = {"step": 0, **fig}
    meta = lambda: {"kind": run.kind, "steps": step, "best_step": best["step"], "init": init_note,  # noqa: E731
                    "train_frames": len(train), "val_frames": len(val), "grid": list(train.grid),
                    **{k: v for k, v in best.items() if k.startswith("val_")}}
    save_concealer(path, models, codec.model_id, meta())
    bar = tqdm(total=run.steps, desc=f"concealer {run.kind}", unit="step", mininterval=10)
    for m in models.values():
        m.train()
    while step < run.steps and (deadline is None or time.monotonic() < deadline):
        frames = rng.integers(0, len(train), run.batch_size)
        batch = _batch(train, draws, frames, dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for stream in STREAMS:
            loss, _, _ = stream_loss(models[stream], batch, stream, train.grid, rng)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{total:.3f}", refresh=False)
        if step % run.val_every == 0:
            fig = validate(step)
            history.append({"step": step, "minutes": (time.monotonic() - t0) / 60, **fig})
            if fig["val_ce"] < best["val_ce"]:
                best = {"step": step, **fig}
                save_concealer(path, models, codec.model_id, meta())
            log(json.dumps(history[-1]))
    bar.close()
    if step % run.val_every:
        fig = validate(step)
        history.append({"step": step, "minutes": (time.monotonic() - t0) / 60, **fig})
        if fig["val_ce"] < best["val_ce"]:
            best = {"step": step, **fig}
        if best["step"] == step:
            save_concealer(path, models, codec.model_id, meta())
    summary = {"concealer": str(path), "kind": run.kind, "steps": step, "best_step": best["step"],
               "minutes": (time.monotonic() - t0) / 60, "codec_model_id": codec.model_id, "init": init_note,
               **{k: v for k, v in best.items() if k.startswith("val_")}, "first": history[0], "history": history}
    (out / f"summary_{run.kind}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["ConcealerRun", "LossDraws", "TokenMaps", "extract_token_maps", "stream_loss", "train_concealers"]
