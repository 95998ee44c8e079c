"""Fast-SCNN (mmsegmentation) for 19 Cityscapes classes: configuration, training, loading, inference.

The model is built and run through mmseg's own API (`init_model`, `inference_model`, mmengine's
Runner for training), from mmseg's shipped Fast-SCNN config with three changes for our use: plain BN
instead of SyncBN (CPU and single-GPU runs), crops and resizes for 256x512 simulator frames, and a test
pipeline at native resolution (the Cityscapes config resizes to 2048x1024, 10-50x slower).

Shipped checkpoints are plain dicts (state_dict + config text + metadata) loaded with
`torch.load(weights_only=True)`; mmengine's own loader is not used for them.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sqgan_core.errors import InputError
from sqgan_core.labels import VOID
from sqgan_core.segmentation.mmcv_compat import ensure_mmseg

FORMAT = "sqgan-segmenter"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "segmenter_fastscnn.pt"


class SegmenterError(InputError, RuntimeError):
    """The segmenter cannot be loaded or run (missing packages, weights or a bad file)."""


def base_config_path() -> Path:
    ensure_mmseg()
    import mmseg

    p = Path(mmseg.__file__).parent / ".mim" / "configs" / "fastscnn" / "fast_scnn_8xb4-160k_cityscapes-512x1024.py"
    if not p.is_file():
        raise SegmenterError(f"mmsegmentation's Fast-SCNN config is missing ({p})")
    return p


# Cross-entropy class weights: sqrt(median frequency / frequency), capped at 4, from the simulator's
# class fractions over 1,000 frames (docs/simulator.md); the same table as stage 1 of SQ-GAN
# (configs/train/small_cpu_semantic.yaml). Unweighted, 2,500 CPU iterations left people, cars,
# lights and signs at IoU 0.
CLASS_WEIGHTS = (0.22, 0.44, 0.28, 0.79, 1.0, 1.33, 3.04, 4.0, 0.65, 0.92, 0.27, 1.66, 4.0, 0.64, 0.94, 2.51,
                 1.23, 4.0, 4.0)
FRAME_SIZE = (256, 512)  # (H, W) the vehicle runs the segmenter at


def register_losses() -> None:
    """Register ClassWeightedBCELoss with mmseg (idempotent); configs that name it need this first."""
    ensure_mmseg()
    from mmseg.registry import MODELS

    if "ClassWeightedBCELoss" in MODELS.module_dict:
        return

    class ClassWeightedBCELoss(torch.nn.Module):
        """Per-class sigmoid BCE (Fast-SCNN's loss) with every pixel weighted by the weight of its true
        class: class-weighted cross-entropy in the form the shipped weights were trained with."""

        def __init__(self, class_weight: list[float], loss_weight: float = 1.0, loss_name: str = "loss_ce") -> None:
            super().__init__()
            self.register_buffer("class_weight", torch.tensor(class_weight, dtype=torch.float32), persistent=False)
            self.loss_weight, self._loss_name = loss_weight, loss_name

        def forward(self, cls_score: torch.Tensor, label: torch.Tensor, weight=None, ignore_index: int = 255,
                    **kwargs) -> torch.Tensor:
            import torch.nn.functional as F

            valid = label != ignore_index
            idx = torch.where(valid, label, torch.zeros_like(label)).long()
            target = F.one_hot(idx, cls_score.shape[1]).permute(0, 3, 1, 2).to(cls_score.dtype)
            bce = F.binary_cross_entropy_with_logits(cls_score, target, reduction="none").mean(1)
            w = self.class_weight.to(cls_score.device)[idx] * valid
            if weight is not None:
                w = w * weight
            return self.loss_weight * (bce * w).sum() / w.sum().clamp(min=1e-6)

        @property
        def loss_name(self) -> str:
            return self._loss_name

    MODELS.register_module(module=ClassWeightedBCELoss)


def build_config(data_root: str | os.PathLike[str] | None = None, work_dir: str | os.PathLike[str] = "runs/segmenter",
                 iters: int = 8000, batch_size: int = 8, crop: tuple[int, int] = (256, 512), lr: float = 0.05,
                 val_interval: int = 1000, workers: int = 0, frame_size: tuple[int, int] = FRAME_SIZE,
                 ratio_range: tuple[float, float] = (0.75, 1.5), class_weights: tuple[float, ...] | None = CLASS_WEIGHTS):
    """mmseg's Fast-SCNN config for our frames. Training resizes whole frames to `ratio_range` x
    `frame_size` (1x is what the vehicle runs at, so it lies inside the range; the old 0.25-1x range of
    a 2x base trained mostly on shrunken objects), then takes `crop`."""
    register_losses()
    from mmengine import Config

    cfg = Config.fromfile(str(base_config_path()))
    bn = dict(type="BN", requires_grad=True, momentum=0.01)
    cfg.model.backbone.norm_cfg = bn
    cfg.model.decode_head.norm_cfg = bn
    for head in cfg.model.auxiliary_head:
        head.norm_cfg = bn
    if class_weights is not None:
        if len(class_weights) != 19:
            raise SegmenterError(f"class_weights needs 19 entries, got {len(class_weights)}")
        for head in [cfg.model.decode_head, *cfg.model.auxiliary_head]:
            losses = head.loss_decode if isinstance(head.loss_decode, list) else [head.loss_decode]
            for loss in losses:
                if loss.get("type") == "CrossEntropyLoss" and loss.get("use_sigmoid"):
                    # Fast-SCNN's config trains per-class sigmoid BCE. mmseg's class_weight cannot weight it
                    # (it becomes BCE's pos_weight, broadcast over the image width), and switching a
                    # warm start to softmax CE wiped the shipped model out (val mIoU 15% -> 3-6% in
                    # 40-80 iterations at lr 0.005-0.02). So: the same BCE, each pixel weighted by its class.
                    loss["type"] = "ClassWeightedBCELoss"
                    loss.pop("use_sigmoid", None)
                    loss["class_weight"] = list(class_weights)
    cfg.model.data_preprocessor.size = crop
    cfg.data_preprocessor = cfg.model.data_preprocessor
    h, w = crop
    cfg.train_pipeline = [
        dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=(frame_size[1], frame_size[0]), ratio_range=tuple(ratio_range), keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5), dict(type="PhotoMetricDistortion"), dict(type="PackSegInputs"),
    ]
    cfg.test_pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")]
    root = str(data_root) if data_root else "data/sim"
    for name, split, pipeline in (("train_dataloader", "train", cfg.train_pipeline),
                                  ("val_dataloader", "val", cfg.test_pipeline),
                                  ("test_dataloader", "val", cfg.test_pipeline)):
        dl = cfg[name]
        dl.dataset.data_root = root
        dl.dataset.data_prefix = dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}")
        dl.dataset.pipeline = pipeline
        dl.num_workers = workers
        dl.persistent_workers = workers > 0
    cfg.train_dataloader.batch_size = batch_size
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=val_interval)
    # The learning rate follows PolyLR (power 0.9 to 1e-4) over the run's progress, set by DeadlineHook
    # so that a run on a clock decays to its deadline rather than to an iteration count it never reaches.
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=val_interval, max_keep_ckpts=2)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=50, log_metric_by_epoch=False)
    cfg.default_hooks.visualization = dict(type="SegVisualizationHook", draw=False)
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                       dist_cfg=dict(backend="nccl"))
    cfg.launcher = "none"
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    return cfg


def save_segmenter(path: str | os.PathLike[str], model: torch.nn.Module, cfg, metadata: dict[str, Any]) -> None:
    blob = {"format": FORMAT, "config": cfg.pretty_text, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metadata": dict(metadata)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_segmenter_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict of a segmenter checkpoint (state_dict, config text, metadata), loaded weights-only."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise SegmenterError(f"{path}: not a readable segmenter checkpoint ({exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SegmenterError(f"{path}: not an sqgan segmenter checkpoint")
    return blob


# Fast-SCNN's time and memory grow with the pixels: an 8000x4000 image took 97 s and 6.2 GB on 2 cores.
# 2048x1024 (a full Cityscapes frame, 8x the 256x512 camera) is the default bound; callers may raise it.
DEFAULT_MAX_PIXELS = 2048 * 1024


class Segmenter:
    """RGB uint8 image -> trainId map (uint8, 255 never produced). Images above `max_pixels` are
    refused with a ValueError naming the size, before any work."""

    def __init__(self, model: torch.nn.Module, metadata: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.model = model.eval()
        self.metadata = metadata
        self.max_pixels = max_pixels

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, device: str = "cpu") -> "Segmenter":
        path = Path(path) if path else WEIGHTS
        if not path.is_file():
            raise SegmenterError(f"segmenter weights not found: {path} (train them with `sqgan train segmenter`)")
        try:
            register_losses()
        except ImportError as exc:
            raise SegmenterError(str(exc)) from None
        from mmengine import Config
        from mmseg.apis import init_model

        blob = read_segmenter_file(path)
        cfg = Config.fromstring(blob["config"], ".py")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = init_model(cfg, None, device=device)
        try:
            model.load_state_dict(blob["state_dict"])
        except RuntimeError as exc:
            raise SegmenterError(f"{path}: weights do not fit the stored config: {exc}") from None
        return cls(model, dict(blob.get("metadata") or {}))

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from mmseg.apis import inference_model

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"segmenter input must be H x W x 3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if rgb.shape[0] * rgb.shape[1] > self.max_pixels:
            raise ValueError(f"image {rgb.shape[1]}x{rgb.shape[0]} has {rgb.shape[0] * rgb.shape[1]:,} pixels, above "
                             f"the segmenter's limit of {self.max_pixels:,} (--max-pixels); scale it down first")
        result = inference_model(self.model, np.ascontiguousarray(rgb[..., ::-1]))  # mmseg expects BGR arrays
        labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        labels[labels >= 19] = VOID
        return labels


class DeadlineHook:
    """mmengine hook: PolyLR over max(iterations done / iters, time used / budget), a stop at the
    deadline, and the best model by validation mIoU exported (atomically) after every validation, so
    that a run killed at any moment leaves a usable segmenter file."""

    priority = "VERY_HIGH"

    def __init__(self, out: Path, iters: int, max_seconds: float | None, base_lr: float, cfg, meta: dict[str, Any],
                 eta_min: float = 1e-4, power: float = 0.9, val_seconds: float | None = None) -> None:
        self.out, self.iters, self.max_seconds, self.val_seconds = Path(out), iters, max_seconds, val_seconds
        self.init_state: dict[str, torch.Tensor] | None = None  # weights to start from (loaded in before_train)
        self.last_val = 0.0
        self.base_lr, self.eta_min, self.power, self.cfg, self.meta = base_lr, eta_min, power, cfg, meta
        self.t0 = 0.0
        self.best = -1.0
        self.best_iter = 0
        self.timed_out = False

    def progress(self, it: int) -> float:
        import time

        p = it / max(self.iters, 1)
        if self.max_seconds:
            p = max(p, (time.perf_counter() - self.t0) / self.max_seconds)
        return min(p, 1.0)

    # mmengine calls hooks by method name; the unused ones are inherited from Hook in _as_mmengine_hook.
    def before_train(self, runner) -> None:
        import time

        self.t0 = self.last_val = time.perf_counter()
        if self.init_state is not None and runner.iter == 0:
            # Here, not before runner.train(): train() re-initialises every weight (init_cfg) first.
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            model.load_state_dict(self.init_state)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        lr = (self.base_lr - self.eta_min) * (1 - self.progress(runner.iter)) ** self.power + self.eta_min
        for group in runner.optim_wrapper.optimizer.param_groups:
            group["lr"] = lr

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        import time

        now = time.perf_counter()
        if self.max_seconds and now - self.t0 >= self.max_seconds:
            self.timed_out = True
            runner.train_loop.stop_training = True
        elif self.val_seconds and now - self.last_val >= self.val_seconds and runner.val_loop is not None:
            runner.val_loop.run()  # calls after_val_epoch, which exports the best so far

    def after_val_epoch(self, runner, metrics=None) -> None:
        import json
        import time

        self.last_val = time.perf_counter()
        miou = float((metrics or {}).get("mIoU", float("nan"))) / 100.0
        if miou == miou and miou > self.best:
            self.best, self.best_iter = miou, runner.iter
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            save_segmenter(self.out, model, self.cfg, {**self.meta, "iters_done": runner.iter, "val_mIoU": miou})
        figures = {"iters_done": runner.iter, "last_val_mIoU": miou if miou == miou else None,
                   "best_val_mIoU": self.best if self.best >= 0 else None, "best_iter": self.best_iter,
                   "seconds": round(self.last_val - self.t0, 1), "model": self.out.name}
        side = self.out.with_suffix(".json")
        tmp = side.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self.meta, **figures}, indent=2))
        os.replace(tmp, side)


def _as_mmengine_hook(obj: DeadlineHook):
    from mmengine.hooks import Hook

    class _Hook(DeadlineHook, Hook):  # type: ignore[misc]
        pass

    obj.__class__ = _Hook
    return obj


def train_segmenter(data_root: str | os.PathLike[str], work_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                    iters: int, batch_size: int = 8, val_interval: int = 1000, resume: bool = False,
                    crop: tuple[int, int] = (256, 512), workers: int = 0, init: str | os.PathLike[str] | None = None,
                    max_minutes: float | None = None, lr: float = 0.05, val_seconds: float | None = None,
                    init_label: str | None = None) -> dict[str, Any]:
    """Train with mmengine's Runner; `out` always holds the best model by validation mIoU so far, and
    `out` with the suffix .json its validation figures.

    `init`: start from a segmenter checkpoint (e.g. the shipped one) instead of random weights;
    `max_minutes`: stop on a clock, with the learning rate decayed to that deadline; `resume`: continue
    the work dir's last mmengine checkpoint; `val_seconds`: also validate (and export) at least this often."""
    ensure_mmseg()
    from mmengine.runner import Runner

    cfg = build_config(data_root, work_dir, iters=iters, batch_size=batch_size, crop=crop, lr=lr,
                       val_interval=min(val_interval, iters), workers=workers)
    cfg.resume = resume
    meta = {"iters": iters, "data": str(data_root), "batch_size": batch_size, "crop": list(crop),
            "init": init_label or (str(init) if init else None), "max_minutes": max_minutes,
            "class_weights": "sqrt median frequency", "ratio_range": [0.75, 1.5]}
    hook = _as_mmengine_hook(DeadlineHook(Path(out), iters, max_minutes * 60 if max_minutes else None, lr, cfg, meta,
                                          val_seconds=val_seconds))
    if Path(out).is_file() and resume:  # keep the best of the earlier part of this run
        try:
            prev = torch.load(out, map_location="cpu", weights_only=True)
            hook.best = float((prev.get("metadata") or {}).get("val_mIoU") or -1.0)
        except Exception:  # noqa: BLE001 - an unreadable earlier export is simply replaced
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
        if init and not resume:
            blob = read_segmenter_file(init)
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            try:
                model.load_state_dict(blob["state_dict"])  # checks the fit now; before_train loads it again
            except RuntimeError as exc:
                raise SegmenterError(f"{init}: weights do not fit Fast-SCNN: {exc}") from None
            hook.init_state = blob["state_dict"]
        runner.register_hook(hook)
        runner.train()
        if runner.iter != hook.best_iter:  # the end was not validated yet (deadline or odd interval)
            hook.after_val_epoch(runner, runner.val_loop.run())
    return {**meta, "iters_done": runner.iter, "val_mIoU": hook.best, "best_iter": hook.best_iter,
            "timed_out": hook.timed_out}
