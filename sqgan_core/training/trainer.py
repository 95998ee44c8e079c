"""The training loop shared by the three stages: resumable, logged, validated, DDP- and AMP-aware.

A run directory holds everything: `model.pt` (an SQ-GAN checkpoint any codec command can load),
`train_state.pt` (optimisers, discriminator, step, data order; loaded weights-only), `log.csv` and
`val.csv`. Re-running with `--resume` continues where the last checkpoint left off.
"""
from __future__ import annotations

import csv
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
from sqgan_core.training import losses as L
from sqgan_core.training.augment import AugmentConfig, sample_keep_fraction
from sqgan_core.training.config import TrainConfig
from sqgan_core.training.data import BatchStream, to_tensors
from sqgan_core.training.discriminator import PatchDiscriminator, feature_matching
from sqgan_core.training.perceptual import Perceptual, load_lpips
from sqgan_core.training.stages import ImageStage, SemanticStage

STAGES = ("semantic", "image", "finetune")


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
        self.data = BatchStream(train, cfg.batch_size, tuple(cfg.crop), cfg.seed, self.dist.rank, self.dist.world,
                                augment=AugmentConfig(max_paste=cfg.max_paste) if cfg.augment else None,
                                workers=cfg.workers)

        self.module: nn.Module = SemanticStage(model) if stage == "semantic" else ImageStage(model, stage == "finetune")
        if stage == "finetune":
            for p in SemanticStage(model).parameters():
                p.requires_grad_(False)
        self.net = self.module
        if self.dist.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.opt = torch.optim.Adam([p for p in self.module.parameters() if p.requires_grad], lr=cfg.lr,
                                    betas=tuple(cfg.betas))
        disc_in = NUM_CHANNELS if stage == "semantic" else 3
        self.disc = PatchDiscriminator(disc_in, width=cfg.disc_width).to(self.device)
        self.disc_net: nn.Module = self.disc
        if self.dist.world > 1:
            self.disc = nn.SyncBatchNorm.convert_sync_batchnorm(self.disc) if self.device.type == "cuda" else self.disc
            self.disc_net = nn.parallel.DistributedDataParallel(
                self.disc, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=tuple(cfg.betas))
        self.sem_table = L.class_weight_table(cfg.semantic_weights).to(self.device)
        self.img_table = L.class_weight_table(cfg.image_weights).to(self.device)
        self.perceptual: Perceptual = load_lpips(cfg.lpips_net, cfg.lpips_cache) if stage != "semantic" else \
            Perceptual("none", "stage 1 has no perceptual term")
        if self.perceptual.module is not None:
            self.perceptual.module.to(self.device)
        self.step = 0
        self.best: dict[str, float] = {}

    # ---- persistence ----------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.pt"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "train_state.pt"

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
                 "torch_rng": torch.get_rng_state(), "best": self.best}
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
                group["lr"] = lr
        self.data.restore(state["data"], default=int(state["step"]))
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        self.best = dict(state.get("best", {}))
        self.step = int(state["step"])
        return True

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

    def train_step(self) -> dict[str, float]:
        x, lab = self._batch()
        seg = L.one_hot_soft(lab).contiguous(memory_format=torch.channels_last)
        m_x = sample_keep_fraction(self.rng, self.cfg.keep_mu, self.cfg.keep_sigma)
        m_s = sample_keep_fraction(self.rng, self.cfg.keep_mu, self.cfg.keep_sigma)
        gan_on = self.step >= self.cfg.disc_start
        self.module.train()
        with self._autocast():
            if self.stage == "semantic":
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
                rec = L.weighted_l2(x_hat, x, lab, self.img_table)
                real = x
                fake = L.relevance_reinjection(x_hat, x, lab)
                if self.perceptual.module is not None:
                    perc = self.perceptual.module(x_hat, x).mean()
                    perc_total = self.cfg.lambda_perceptual * perc
                else:
                    perc = L.gradient_loss(x_hat, x)
                    perc_total = self.cfg.lambda_gradient * perc
                    if gan_on:
                        perc_total = perc_total + self.cfg.lambda_feature_matching * feature_matching(self.disc, fake, real)
                nll = rec + perc_total
                if gan_on:
                    g_loss = L.hinge_g_loss(self.disc_net(fake))
                    try:
                        w = L.adaptive_weight(nll, g_loss, self.module.last_layer, self.cfg.gan_cap)
                    except RuntimeError:  # no graph to the last layer (e.g. frozen): fall back to the cap
                        w = torch.tensor(self.cfg.gan_cap, device=self.device)
                else:
                    g_loss, w = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
                loss = nll + w * g_loss + out["commit"]
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
                "g": num(g_loss), "d": num(d_loss), "perplexity": num(out["perplexity"]), **logs}

    # ---- validation -------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Stage 1: mIoU of s_hat at m_s = 0.5. Stages 2-3: PSNR of x_hat at m_x = 0.5 (stage 3
        conditioned on s_hat at m_s = 0.5, i.e. the deployed path)."""
        self.module.eval()
        cm = np.zeros((19, 20), dtype=np.int64)
        psnrs = []
        for pair in self.val[: self.cfg.val_frames]:
            img, lab = pair.load()
            h16, w16 = lab.shape[0] // 16 * 16, lab.shape[1] // 16 * 16
            x, y = to_tensors([img[:h16, :w16]], [lab[:h16, :w16]])
            x, y = x.to(self.device), y.to(self.device)
            seg = L.one_hot_soft(y)
            with self._autocast():
                if self.stage == "semantic":
                    pred = self.module(seg, 0.5)["logits"].argmax(1)
                    cm += confusion(from_channel_index(pred[0].cpu().numpy()), lab[:h16, :w16])
                else:
                    out = self.module(x, seg, 0.5, 0.5)
                    x_hat = ((out["x_hat"].float().clamp(-1, 1)[0].permute(1, 2, 0) + 1) * 127.5).round()
                    psnrs.append(psnr(img[:h16, :w16], x_hat.byte().cpu().numpy()))
        self.module.train()
        if self.stage == "semantic":
            return {"val_miou_shat_m0.5": miou_from_confusion(cm)}
        return {"val_psnr_m0.5": float(np.mean(psnrs)) if psnrs else float("nan")}

    # ---- loop ---------------------------------------------------------------------------------------
    def run(self, steps: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
        """Train up to `steps` (default: the config's). `max_seconds` ends the run early, validated and
        checkpointed, so a job with a wall-clock lease (a shared GPU, a CI slot) stops at a clean point and
        `--resume` continues it."""
        from tqdm import tqdm

        total = steps if steps is not None else self.cfg.steps
        bar = tqdm(total=total, initial=min(self.step, total), desc=f"train {self.stage}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        t0 = time.perf_counter()
        last: dict[str, float] = {}
        while self.step < total:
            row = self.train_step()
            if not all(math.isfinite(v) for v in row.values() if isinstance(v, float)):
                raise FloatingPointError(f"non-finite loss at step {self.step}: {row}")
            row["seconds"] = round(time.perf_counter() - t0, 2)
            self._log("log.csv", row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", rec=f"{row['rec']:.3f}")
            out_of_time = max_seconds is not None and time.perf_counter() - t0 >= max_seconds
            if self.dist.world > 1:  # every rank must stop at the same step
                flag = torch.tensor([float(out_of_time)], device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            end = out_of_time or self.step == total
            if self.step % self.cfg.val_every == 0 or end:
                last = self.validate() if self.dist.main else {}
                if self.dist.main:
                    self.best.update({f"last_{k}": v for k, v in last.items()})
                    self._log("val.csv", {"step": self.step, **last})
                    bar.write(f"step {self.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last.items()))
            if self.step % self.cfg.ckpt_every == 0 or end:
                self.save()
            if out_of_time:
                bar.write(f"time limit of {max_seconds:.0f} s reached at step {self.step}; checkpoint saved")
                break
        bar.close()
        return last
