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

from sqgan_core.labels import VOID
from sqgan_core.segmentation.mmcv_compat import ensure_mmseg

FORMAT = "sqgan-segmenter"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "segmenter_fastscnn.pt"


class SegmenterError(RuntimeError):
    """The segmenter cannot be loaded or run (missing packages, weights or a bad file)."""


def base_config_path() -> Path:
    ensure_mmseg()
    import mmseg

    p = Path(mmseg.__file__).parent / ".mim" / "configs" / "fastscnn" / "fast_scnn_8xb4-160k_cityscapes-512x1024.py"
    if not p.is_file():
        raise SegmenterError(f"mmsegmentation's Fast-SCNN config is missing ({p})")
    return p


def build_config(data_root: str | os.PathLike[str] | None = None, work_dir: str | os.PathLike[str] = "runs/segmenter",
                 iters: int = 8000, batch_size: int = 8, crop: tuple[int, int] = (256, 512), lr: float = 0.05,
                 val_interval: int = 1000, workers: int = 0):
    ensure_mmseg()
    from mmengine import Config

    cfg = Config.fromfile(str(base_config_path()))
    bn = dict(type="BN", requires_grad=True, momentum=0.01)
    cfg.model.backbone.norm_cfg = bn
    cfg.model.decode_head.norm_cfg = bn
    for head in cfg.model.auxiliary_head:
        head.norm_cfg = bn
    cfg.model.data_preprocessor.size = crop
    cfg.data_preprocessor = cfg.model.data_preprocessor
    h, w = crop
    cfg.train_pipeline = [
        dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=(2 * w, 2 * h), ratio_range=(0.25, 1.0), keep_ratio=True),
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
    cfg.param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=iters, by_epoch=False)]
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


class Segmenter:
    """RGB uint8 image -> trainId map (uint8, 255 never produced)."""

    def __init__(self, model: torch.nn.Module, metadata: dict[str, Any]) -> None:
        self.model = model.eval()
        self.metadata = metadata

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, device: str = "cpu") -> "Segmenter":
        path = Path(path) if path else WEIGHTS
        if not path.is_file():
            raise SegmenterError(f"segmenter weights not found: {path} (train them with `sqgan train segmenter`)")
        try:
            ensure_mmseg()
        except ImportError as exc:
            raise SegmenterError(str(exc)) from None
        from mmengine import Config
        from mmseg.apis import init_model

        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise SegmenterError(f"{path}: not a readable segmenter checkpoint ({exc})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise SegmenterError(f"{path}: not an sqgan segmenter checkpoint")
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
        result = inference_model(self.model, np.ascontiguousarray(rgb[..., ::-1]))  # mmseg expects BGR arrays
        labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        labels[labels >= 19] = VOID
        return labels


def train_segmenter(data_root: str | os.PathLike[str], work_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                    iters: int, batch_size: int = 8, val_interval: int = 1000, resume: bool = False,
                    crop: tuple[int, int] = (256, 512), workers: int = 0) -> dict[str, Any]:
    """Train with mmengine's Runner, then export a weights-only checkpoint to `out`."""
    ensure_mmseg()
    from mmengine.runner import Runner

    cfg = build_config(data_root, work_dir, iters=iters, batch_size=batch_size, crop=crop,
                       val_interval=min(val_interval, iters), workers=workers)
    cfg.resume = resume
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Runner.from_cfg(cfg)
        runner.train()
        if iters % cfg.train_cfg["val_interval"] == 0:  # the loop just validated: reuse its figures
            metrics = {"mIoU": runner.message_hub.get_scalar("val/mIoU").current()}
        else:
            metrics = runner.val_loop.run()
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    meta = {"iters": iters, "data": str(data_root), "batch_size": batch_size, "crop": list(crop),
            "val_mIoU": float(metrics.get("mIoU", float("nan"))) / 100.0 if metrics else None}
    save_segmenter(out, model, cfg, meta)
    return meta
