"""Rate / quality evaluation of the codec against JPEG 2000, as `sqgan eval` reports it.

For each (m_x, m_s): bits against the paper's bound, semantic retention of the decoded map (s_hat vs
ground truth), the segmenter on the reconstruction and on the original (task-level retention), PSNR
and MS-SSIM. JPEG 2000 (Pillow/OpenJPEG, rate mode) is measured at SQ-GAN's actual rate and at three
times it. Metrics that need the segmenter are null, with the reason, when it is not available.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from sqgan_core.codec import Codec
from sqgan_core.metrics import confusion, miou_from_confusion, ms_ssim, psnr

PAPER_GRID = tuple((mx, ms) for mx in (0.2, 0.5, 1.0) for ms in (0.2, 0.5, 1.0))
Segment = Callable[[np.ndarray], np.ndarray]


def jpeg2000(image: np.ndarray, target_bpp: float) -> tuple[np.ndarray, float]:
    """Encode at (about, never above) target_bpp with OpenJPEG's rate control; returns (recon, bpp)."""
    h, w = image.shape[:2]
    ratio = 24.0 / max(target_bpp, 1e-4)
    for _ in range(8):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True)
        bpp = 8 * buf.tell() / (h * w)
        if bpp <= target_bpp * 1.001:
            break
        ratio *= bpp / target_bpp * 1.02
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")), bpp


@dataclass
class _Acc:
    """Running sums for one method at one rate."""

    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    seg_cm: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))

    def quality(self, with_seg: bool) -> dict[str, float | None]:
        return {"bpp": float(np.mean(self.bpp)), "psnr": float(np.mean(self.psnr)),
                "ms_ssim": float(np.mean(self.ms_ssim)),
                "miou_seg": miou_from_confusion(self.seg_cm) if with_seg else None}


def evaluate(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], grid: Iterable[tuple[float, float]] = PAPER_GRID,
             segmenter: Segment | None = None, segmenter_note: str = "", with_jpeg2000: bool = True,
             progress: bool = True) -> dict:
    from tqdm import tqdm

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to evaluate")
    orig_cm = np.zeros((19, 20), np.int64)
    orig_pred = []
    if segmenter is not None:
        for rgb, lab in frames:
            pred = segmenter(rgb)
            orig_pred.append(pred)
            orig_cm += confusion(pred, lab)
    miou_seg_orig = miou_from_confusion(orig_cm) if segmenter is not None else None
    results = []
    for mx, ms in grid:
        sq, j1, j3 = _Acc(), _Acc(), _Acc()
        bound, shat_cm = [], np.zeros((19, 20), np.int64)
        for rgb, lab in tqdm(frames, desc=f"eval m=({mx:g},{ms:g})", unit="frame", disable=not progress, leave=False):
            enc = codec.encode(rgb, lab, mx, ms)
            dec = codec.decode(enc.data)
            s = enc.stats
            sq.bpp.append(s["bpp"])
            bound.append(s["bound_bpp"])
            shat_cm += confusion(dec.labels, lab)
            for acc, recon in ((sq, dec.image),) + (
                    ((j1, jpeg2000(rgb, s["bpp"])), (j3, jpeg2000(rgb, 3 * s["bpp"]))) if with_jpeg2000 else ()):
                if acc is not sq:
                    recon, bpp = recon
                    acc.bpp.append(bpp)
                acc.psnr.append(psnr(rgb, recon))
                acc.ms_ssim.append(ms_ssim(rgb, recon))
                if segmenter is not None:
                    acc.seg_cm += confusion(segmenter(recon), lab)
        q = sq.quality(segmenter is not None)
        row = {"mx": mx, "ms": ms, "frames": len(frames), "bpp": q["bpp"], "bound_bpp": float(np.mean(bound)),
               "bits_over_bound": q["bpp"] / float(np.mean(bound)),
               "miou_shat": miou_from_confusion(shat_cm), "miou_seg_recon": q["miou_seg"],
               "miou_seg_orig": miou_seg_orig, "psnr": q["psnr"], "ms_ssim": q["ms_ssim"]}
        if with_jpeg2000:
            row["jpeg2000_matched"] = j1.quality(segmenter is not None)
            row["jpeg2000_3x"] = j3.quality(segmenter is not None)
        results.append(row)
    out: dict = {"frames": len(frames), "model_id": f"{codec.model_id:04x}",
                 "model": codec.metadata.get("checkpoint", f"untrained:{codec.config.name}"),
                 "untrained": bool(codec.metadata.get("untrained")), "grid": results}
    if segmenter is None:
        out["unavailable"] = {"miou_seg_recon": segmenter_note, "miou_seg_orig": segmenter_note}
    out["acceptance"] = acceptance(results)
    return out


def acceptance(rows: Sequence[dict], at: tuple[float, float] = (0.5, 0.5)) -> dict:
    """The training issue's targets checked against measured rows: each {value, target, pass}, with
    pass None when a figure is missing (no segmenter, no JPEG 2000, or `at` not in the grid)."""
    def check(value: float | None, target: float | None, ok) -> dict:
        done = value is not None and target is not None
        return {"value": value, "target": target, "pass": bool(ok(value, target)) if done else None}

    worst = max(rows, key=lambda r: r["bits_over_bound"]) if rows else None
    out = {"bits_over_bound_max": check(worst and worst["bits_over_bound"], 0.8, lambda v, t: v <= t)}
    row = next((r for r in rows if (r["mx"], r["ms"]) == at), None)
    if row is not None:
        recon, orig = row["miou_seg_recon"], row["miou_seg_orig"]
        j3 = (row.get("jpeg2000_3x") or {}).get("miou_seg")
        out["miou_shat"] = check(row["miou_shat"], 0.70, lambda v, t: v >= t)
        out["miou_seg_recon_over_orig"] = check(None if recon is None or not orig else recon / orig, 0.85,
                                                lambda v, t: v >= t)
        out["miou_seg_recon_vs_jpeg2000_3x"] = check(recon, j3, lambda v, t: v > t)
        out["at"] = list(at)
    return out
