"""The training loop shared by the stages: resumable, logged, validated, DDP- and AMP-aware.

A run directory holds everything: `model.pt` (the latest weights, an SQ-GAN checkpoint any codec
command can load), `best.pt` (the best by validation, with index priors fitted when it was saved: the
file to ship), `train_state.pt` (optimisers, discriminator, step, data order; loaded weights-only),
`val.json` (the latest and the best validation figures), `log.csv` and `val.csv`. Every file is
written to a temporary name and renamed, so a run killed at any moment leaves usable files.
Re-running with `--resume` continues where the last checkpoint left off.

The learning rate warms up linearly, then decays on a cosine to `lr_min_ratio` at the run's end:
its last step or, when a wall-clock budget is given, its deadline, whichever comes first. A run on a
clock therefore ends annealed instead of at an undecayed, noisy point.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from sqgan_core.checkpoint import load_checkpoint, save_checkpoint
from sqgan_core.data.cityscapes import Pair
from sqgan_core.labels import NUM_CHANNELS, from_channel_index
from sqgan_core.metrics import confusion, miou_from_confusion, psnr
from sqgan_core.models import SQGAN
from sqgan_core.models.sqgan import channel_one_hot
from sqgan_core.training import losses as L
from sqgan_core.training.augment import AugmentConfig, sample_keep_fraction
from sqgan_core.training.config import TrainConfig
from sqgan_core.training.data import BatchStream, DeviceBatchStream, to_tensors
from sqgan_core.training.discriminator import PatchDiscriminator, feature_matching
from sqgan_core.training.perceptual import Perceptual, load_lpips
from sqgan_core.training.stages import ImageStage, JointStage, SemanticStage

STAGES = ("semantic", "image", "finetune", "joint")
# Joint validation score: 1 dB of PSNR counts as much as 0.02 of mIoU(s_hat).
JOINT_MIOU_PER_DB = 0.02


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class Trainer:
    def __init__(self, stage: str, model: SQGAN, cfg: TrainConfig, train: Sequence[Pair], val: Sequence[Pair],
                 run_dir: str | os.PathLike[str], device: str = "cpu", metadata: dict[str, Any] | None = None,
                 progress: bool = True) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage, self.cfg, self.val = stage, cfg, list(val)
        self.dist = init_distributed(device)
        if device.startswith("cuda") and self.dist.world > 1:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        self.run_dir = Path(run_dir)
        self.model = model.to(self.device)
        self.metadata = dict(metadata or {})
        self.progress = progress and self.dist.main
        self.amp = self.device.type == "cuda"
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.rng = np.random.default_rng([cfg.seed, self.dist.rank, 1])
        augment = AugmentConfig(max_paste=cfg.max_paste) if cfg.augment else None
        if cfg.data_on_device:
            self.data: BatchStream | DeviceBatchStream = DeviceBatchStream(
                train, cfg.batch_size, tuple(cfg.crop), cfg.seed, self.device, self.dist.rank, self.dist.world, augment)
        else:
            self.data = BatchStream(train, cfg.batch_size, tuple(cfg.crop), cfg.seed, self.dist.rank, self.dist.world,
                                    augment=augment, workers=cfg.workers)

        if stage == "semantic":
            self.module: nn.Module = SemanticStage(model)
        elif stage == "joint":
            self.module = JointStage(model)
        else:
            self.module = ImageStage(model, stage == "finetune")
        if stage == "finetune":
            for p in SemanticStage(model).parameters():
                p.requires_grad_(False)
        self.net = self.module
        if self.dist.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.opt = torch.optim.Adam(self._param_groups(), lr=cfg.lr, betas=tuple(cfg.betas))
        disc_in = NUM_CHANNELS if stage == "semantic" else 3
        self.disc = PatchDiscriminator(disc_in, width=cfg.disc_width).to(self.device)
        self.disc_net: nn.Module = self.disc
        if self.dist.world > 1:
            self.disc = nn.SyncBatchNorm.convert_sync_batchnorm(self.disc) if self.device.type == "cuda" else self.disc
            self.disc_net = nn.parallel.DistributedDataParallel(
                self.disc, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=tuple(cfg.betas))
        self.sem_table = L.class_weight_table(cfg.semantic_weights).to(self.device)
        self.img_table = L.class_weight_table(cfg.image_weights).clamp(min=cfg.image_weight_floor).to(self.device)
        self.img_table[-1] = 0.0  # void stays unsupervised
        self.perceptual: Perceptual = load_lpips(cfg.lpips_net, cfg.lpips_cache) if stage != "semantic" else \
            Perceptual("none", "stage 1 has no perceptual term")
        if self.perceptual.module is not None:
            self.perceptual.module.to(self.device)
        self.step = 0
        self.best: dict[str, float] = {}
        self.best_score = -math.inf
        self.validate_at_start = bool(self.metadata.get("init"))
        self.val_pairs = spread_over_cities(self.val, cfg.val_frames)
        self.prior_pairs = spread_over_cities(train, cfg.prior_frames)
        self._total, self._deadline, self._t0 = cfg.steps, None, time.perf_counter()

    # ---- persistence ----------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.pt"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "train_state.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {**self.metadata, "stage": self.stage, "step": self.step, "train_config": self.cfg.to_dict(),
                "perceptual": self.perceptual.metadata(), "world_size": self.dist.world, **self.best}

    def save(self) -> None:
        if not self.dist.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.model_path, self.model, self.checkpoint_metadata())
        state = {"step": self.step, "stage": self.stage, "opt": self.opt.state_dict(),
                 "disc": self.disc.state_dict(), "disc_opt": self.disc_opt.state_dict(),
                 "data": self.data.state(), "rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "best": self.best, "best_score": self.best_score}
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    def resume(self) -> bool:
        if not self.state_path.is_file() or not self.model_path.is_file():
            return False
        model, _ = load_checkpoint(self.model_path)
        self.model.load_state_dict(model.state_dict())
        state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        if state.get("stage") != self.stage:
            raise ValueError(f"{self.state_path} belongs to stage {state.get('stage')!r}, not {self.stage!r}")
        self.opt.load_state_dict(state["opt"])
        self.disc.load_state_dict(state["disc"])
        self.disc_opt.load_state_dict(state["disc_opt"])
        # The YAML's learning rates win over the saved ones, so a resumed run can be annealed.
        for opt, lr in ((self.opt, self.cfg.lr), (self.disc_opt, self.cfg.disc_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
        self.data.restore(state["data"], default=int(state["step"]))
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        self.best = dict(state.get("best", {}))
        self.best_score = float(state.get("best_score", -math.inf))
        self.step = int(state["step"])
        return True

    def save_best(self, figures: dict[str, float]) -> None:
        """Write `best.pt`: the current weights with index priors fitted on a sample of the training
        frames stratified over scenarios (the coder's priors must match the codes these weights pick)."""
        if not self.dist.main:
            return
        from sqgan_core.training.priors import apply_priors, count_code_usage

        import copy

        model = copy.deepcopy(self.model).eval()  # the priors are fitted on a copy: training state stays as it is
        cx, cs = count_code_usage(model, self.prior_pairs, device=str(self.device), progress=False)
        stats = apply_priors(model, cx, cs)
        from sqgan_core.codebooks import KEY, reduce_codebooks

        meta = {**self.checkpoint_metadata(), "best": figures, "priors": stats,
                "priors_frames": len(self.prior_pairs), KEY: reduce_codebooks(model)}  # weighted by the new priors
        save_checkpoint(self.best_path, model, meta)

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        path = self.run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    def _log(self, name: str, row: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        path = self.run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    # ---- one step ---------------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, lab = next(self.data)
        return x.to(self.device, non_blocking=True), lab.to(self.device, non_blocking=True)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else torch.autocast("cpu", enabled=False)

    def run_fraction(self) -> float:
        """Fraction of the run done: by steps, or by the wall clock when that ends it sooner."""
        p = self.step / max(self._total, 1)
        if self._deadline is not None:
            p = max(p, (time.perf_counter() - self._t0) / self._deadline) if self._deadline > 0 else 1.0
        return min(p, 1.0)

    def _param_groups(self) -> list[dict]:
        """The generator's trainable parameters; in the joint stage G_s gets its own group whose learning
        rate is scaled by semantic_lr_scale. A warm-started G_s is already close to its optimum and its
        cross-entropy is the noisier loss: at the full rate its validation mIoU fell from 0.356 to 0.32
        in the first 400 joint steps while G_x was still improving fast (runs/cpu_s1)."""
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        if self.stage != "joint" or self.cfg.semantic_lr_scale == 1.0:
            return [{"params": trainable, "lr_scale": 1.0}]
        sem = {id(p) for p in self.module.semantic.parameters()}
        return [{"params": [p for p in trainable if id(p) not in sem], "lr_scale": 1.0},
                {"params": [p for p in trainable if id(p) in sem], "lr_scale": self.cfg.semantic_lr_scale}]

    def lr_factor(self) -> float:
        warm = min(1.0, (self.step + 1) / self.cfg.warmup_steps) if self.cfg.warmup_steps else 1.0
        r = self.cfg.lr_min_ratio
        return warm * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * self.run_fraction())))

    def _set_lr(self) -> float:
        f = self.lr_factor()
        for opt, lr in ((self.opt, self.cfg.lr), (self.disc_opt, self.cfg.disc_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * f * group.get("lr_scale", 1.0)
        return self.cfg.lr * f

    def _keep(self) -> float:
        c = self.cfg
        return sample_keep_fraction(self.rng, c.keep_grid, c.keep_grid_prob, *c.keep_range)

    def _image_losses(self, x_hat: torch.Tensor, x: torch.Tensor, lab: torch.Tensor, gan_on: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, l2, perceptual, g_loss, gan weight, the discriminator's fake). Every adversarial term, feature matching
        included, sits under taming's adaptive weight and its cap, so none can outweigh the l2 term."""
        rec = L.weighted_l2(x_hat, x, lab, self.img_table)
        fake = L.relevance_reinjection(x_hat, x, lab)
        if self.perceptual.module is not None:
            perc = self.perceptual.module(x_hat, x).mean()
            nll = rec + self.cfg.lambda_perceptual * perc
        else:
            perc = L.gradient_loss(x_hat, x)
            nll = rec + self.cfg.lambda_gradient * perc
        if not gan_on:
            zero = torch.zeros((), device=self.device)
            return nll, rec, perc, zero, zero, fake
        g_loss = L.hinge_g_loss(self.disc_net(fake))
        if self.perceptual.module is None:
            g_loss = g_loss + self.cfg.lambda_feature_matching * feature_matching(self.disc, fake, x)
        try:
            w = L.adaptive_weight(nll, g_loss, self.module.last_layer, self.cfg.gan_cap)
        except RuntimeError:  # no graph to the last layer (e.g. frozen): fall back to the cap
            w = torch.tensor(self.cfg.gan_cap, device=self.device)
        return nll + w * g_loss, rec, perc, g_loss, w, fake

    def train_step(self) -> dict[str, float]:
        lr = self._set_lr()
        x, lab = self._batch()
        seg = L.one_hot_soft(lab).contiguous(memory_format=torch.channels_last)
        m_x, m_s = self._keep(), self._keep()
        gan_on = self.step >= self.cfg.disc_start
        self.module.train()
        with self._autocast():
            if self.stage == "joint":
                true_map = bool(self.rng.random() < self.cfg.joint_true_map_prob)
                out = self.net(x, seg, m_x, m_s, true_map)
                ce = L.weighted_cross_entropy(out["logits"].float(), lab, self.sem_table)
                x_hat = out["x_hat"].float()
                img_total, rec, perc, g_loss, w, fake = self._image_losses(x_hat, x, lab, gan_on)
                real = x
                loss = ce + img_total + out["commit"]
                logs = {"m": m_x, "m_s": m_s, "ce": float(ce.detach()), "perceptual": float(perc.detach()),
                        "gan_weight": float(w), "true_map": float(true_map)}
            elif self.stage == "semantic":
                out = self.net(seg, m_s)
                rec = L.weighted_cross_entropy(out["logits"].float(), lab, self.sem_table)
                fake = out["logits"].float().softmax(1)
                real = seg
                g_loss = L.hinge_g_loss(self.disc_net(fake)) if gan_on else torch.zeros((), device=self.device)
                loss = rec + out["commit"] + (self.cfg.lambda_gan * g_loss if gan_on else 0.0)
                logs = {"m": m_s}
            else:
                out = self.net(x, seg, m_x, m_s)
                x_hat = out["x_hat"].float()
                img_total, rec, perc, g_loss, w, fake = self._image_losses(x_hat, x, lab, gan_on)
                real = x
                loss = img_total + out["commit"]
                logs = {"m": m_x, "perceptual": float(perc.detach()), "gan_weight": float(w)}
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        d_loss = torch.zeros(())
        if gan_on:
            with self._autocast():
                d_loss = L.hinge_d_loss(self.disc_net(real.detach()), self.disc_net(fake.detach()))
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_opt.step()
        self.step += 1
        def num(t: torch.Tensor | float) -> float:
            return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)

        return {"step": self.step, "loss": num(loss), "rec": num(rec), "commit": num(out["commit"]),
                "g": num(g_loss), "d": num(d_loss), "perplexity": num(out["perplexity"]), "lr": lr, **logs}

    # ---- validation -------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """At m_x = m_s = 0.5 on `val_frames` frames spread over every scenario of the validation split:
        mIoU of s_hat (stages that train or use G_s) and PSNR of x_hat (stages that train G_x; stage 2
        conditioned on the true map, stages 3 and joint on s_hat, i.e. the deployed path)."""
        self.module.eval()
        cm = np.zeros((19, 20), dtype=np.int64)
        psnrs = []
        sem = self.module.semantic if self.stage == "joint" else (
            self.module if self.stage == "semantic" else (self.module._semantic[0] if self.stage == "finetune" else None))
        img = self.module.image if self.stage == "joint" else (None if self.stage == "semantic" else self.module)
        for pair in self.val_pairs:
            image, lab = pair.load()
            h16, w16 = lab.shape[0] // 16 * 16, lab.shape[1] // 16 * 16
            x, y = to_tensors([image[:h16, :w16]], [lab[:h16, :w16]])
            x, y = x.to(self.device), y.to(self.device)
            seg = L.one_hot_soft(y)
            with self._autocast():
                cond = None
                if sem is not None:
                    pred = sem(seg, 0.5)["logits"].float().argmax(1)
                    cm += confusion(from_channel_index(pred[0].cpu().numpy()), lab[:h16, :w16])
                    cond = channel_one_hot(pred, seg.dtype).contiguous()
                if img is not None:
                    out = img(x, seg, 0.5, 0.5, cond=cond if self.stage != "image" else None)
                    x_hat = ((out["x_hat"].float().clamp(-1, 1)[0].permute(1, 2, 0) + 1) * 127.5).round()
                    psnrs.append(psnr(image[:h16, :w16], x_hat.byte().cpu().numpy()))
        self.module.train()
        figures: dict[str, float] = {}
        if sem is not None:
            figures["val_miou_shat_m0.5"] = miou_from_confusion(cm)
        if img is not None:
            figures["val_psnr_m0.5"] = float(np.mean(psnrs)) if psnrs else float("nan")
        return figures

    def score(self, figures: dict[str, float]) -> float:
        """One number to keep the best checkpoint by: the stage's own target (s_hat mIoU for stage 1,
        PSNR for stages 2-3); for the joint stage PSNR + mIoU / JOINT_MIOU_PER_DB."""
        miou, db = figures.get("val_miou_shat_m0.5"), figures.get("val_psnr_m0.5")
        if self.stage == "semantic":
            return float(miou)
        if self.stage == "joint":
            return float(db) + float(miou) / JOINT_MIOU_PER_DB
        return float(db)

    # ---- loop ---------------------------------------------------------------------------------------
    def _validate_and_keep(self) -> dict[str, float]:
        figures = self.validate() if self.dist.main else {}
        if not self.dist.main:
            return figures
        score = self.score(figures)
        improved = math.isfinite(score) and score > self.best_score
        if improved:
            self.best_score = score
            self.best.update({f"best_{k}": v for k, v in figures.items()})
            self.best["best_step"] = self.step
            self.save_best(figures)
        self.best.update({f"last_{k}": v for k, v in figures.items()})
        self._log("val.csv", {"step": self.step, **figures, "score": score, "best": int(improved),
                              "seconds": round(time.perf_counter() - self._t0, 1)})
        self._write_json("val.json", {"stage": self.stage, "step": self.step, "last": figures,
                                      "best": {k[5:]: v for k, v in self.best.items() if k.startswith("best_")},
                                      "best_path": self.best_path.name,
                                      "seconds": round(time.perf_counter() - self._t0, 1)})
        return figures

    def run(self, steps: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
        """Train up to `steps` (default: the config's). `max_seconds` ends the run early, validated and
        checkpointed, and is the deadline the learning-rate schedule decays to, so a job with a
        wall-clock lease (a shared GPU, a CI slot) ends annealed and `--resume` continues it.
        Validation runs every `val_every` steps and, when `val_seconds` is set, at least that often."""
        from tqdm import tqdm

        total = steps if steps is not None else self.cfg.steps
        self._total, self._deadline, self._t0 = total, max_seconds, time.perf_counter()
        bar = tqdm(total=total, initial=min(self.step, total), desc=f"train {self.stage}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        t0 = self._t0
        last: dict[str, float] = {}
        if self.step == 0 and self.validate_at_start:
            # A warm start is validated before its first step: best.pt then holds the starting weights
            # until training beats them, so no run can leave worse weights in the file to ship.
            last = self._validate_and_keep()
        last_val = time.perf_counter()
        while self.step < total:
            row = self.train_step()
            if not all(math.isfinite(v) for v in row.values() if isinstance(v, float)):
                raise FloatingPointError(f"non-finite loss at step {self.step}: {row}")
            row["seconds"] = round(time.perf_counter() - t0, 2)
            self._log("log.csv", row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", rec=f"{row['rec']:.3f}", lr=f"{row['lr']:.1e}")
            out_of_time = max_seconds is not None and time.perf_counter() - t0 >= max_seconds
            if self.dist.world > 1:  # every rank must stop at the same step
                flag = torch.tensor([float(out_of_time)], device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            end = out_of_time or self.step == total
            timed = bool(self.cfg.val_seconds) and time.perf_counter() - last_val >= self.cfg.val_seconds
            if self.dist.world > 1 and self.cfg.val_seconds:
                flag = torch.tensor([float(timed)], device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                timed = bool(flag.item())
            if self.step % self.cfg.val_every == 0 or end or timed:
                last = self._validate_and_keep()
                last_val = time.perf_counter()
                if self.dist.main:
                    bar.write(f"step {self.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last.items())
                              + f" (best {self.best_score:.4f} at step {self.best.get('best_step')})")
            if self.step % self.cfg.ckpt_every == 0 or end:
                self.save()
            if out_of_time:
                bar.write(f"time limit of {max_seconds:.0f} s reached at step {self.step}; checkpoint saved")
                break
        bar.close()
        return last


def spread_over_cities(pairs: Sequence[Pair], count: int) -> list[Pair]:
    """`count` pairs drawn evenly from every city (scenario + seed) in turn, so a small validation or
    prior-fitting sample covers every scenario and every part of each clip, not one clip's start."""
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(Path(p.image).parent.name, []).append(p)
    if not groups or count <= 0:
        return []
    per = -(-count // len(groups))
    picked = []
    for g in groups.values():
        idx = np.unique(np.linspace(0, len(g) - 1, min(per, len(g))).round().astype(int))
        picked.append([g[i] for i in idx])
    out: list[Pair] = []
    for k in range(max(len(p) for p in picked)):  # round robin, so truncation keeps every city
        out.extend(p[k] for p in picked if k < len(p))
    return out[:count]
