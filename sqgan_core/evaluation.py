"""Rate / quality evaluation of the codec against JPEG 2000, as `sqgan eval` reports it.

For each (m_x, m_s): bits against the paper's bound, semantic retention of the decoded map (s_hat vs
ground truth), the segmenter on the reconstruction and on the original (task-level retention), PSNR
and MS-SSIM, and the IoU of the safety-relevant classes (a good mIoU can hide a codec that erases
pedestrians). JPEG 2000 (Pillow/OpenJPEG, `classic_codecs`) is measured at SQ-GAN's actual rate and at three
times it. Metrics that need the segmenter are null, with the reason, when it is not available.
`compare` puts a candidate checkpoint beside a baseline by the rule that decides whether shipped
weights are replaced.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from sqgan_core.codec import Codec
from sqgan_core.labels import CLASS_NAMES
from sqgan_core.metrics import confusion, iou_per_class, miou_from_confusion, ms_ssim, psnr

PAPER_GRID = tuple((mx, ms) for mx in (0.2, 0.5, 1.0) for ms in (0.2, 0.5, 1.0))
# Where acceptance is checked and where a candidate is compared with a baseline: the middle rate.
OPERATING_POINT = (0.5, 0.5)
# Classes whose loss matters most on the road; reported one by one beside every mIoU.
SAFETY_CLASSES = ("person", "rider", "car", "traffic light", "traffic sign")
COMPARED = ("miou_shat", "psnr", "ms_ssim", "bpp")
# The project's rule for replacing shipped weights (issue 11): better on both, at OPERATING_POINT.
REPLACE_IF_BETTER_ON = ("miou_shat", "psnr")
REPO_ROOT = Path(__file__).resolve().parent.parent
Segment = Callable[[np.ndarray], np.ndarray]


def safety_iou(cm: np.ndarray) -> dict[str, float | None]:
    """IoU of each SAFETY_CLASSES entry from a confusion(); None (JSON null) for a class absent from the
    ground truth of every frame, as iou_per_class's NaN says, because 0 would claim it was missed."""
    iou = iou_per_class(cm)
    return {name: _finite(iou[CLASS_NAMES.index(name)]) for name in SAFETY_CLASSES}


def model_path_label(path: str | os.PathLike[str]) -> str:
    """`path` relative to the repository root when the file lies inside it, so that a JSON committed to
    docs/ names the checkpoint rather than the machine it was measured on; other paths as given."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except (ValueError, OSError):
        return str(path)


def _finite(value: Any) -> float | None:
    """A float, or None for NaN and infinities, which JSON cannot carry (json.dumps would write NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, so the report is valid JSON (a frame decoded
    losslessly has infinite PSNR; a set of frames with no labelled pixel has mIoU NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _finite(obj)
    return obj


def jpeg2000(image: np.ndarray, target_bpp: float) -> tuple[np.ndarray, float]:
    """JPEG 2000 at the highest quality whose bpp does not exceed target_bpp (classic_codecs: the raw
    codestream counted, OpenJPEG's rate control corrected until it fits); returns (recon, bpp)."""
    from sqgan_core.classic_codecs import encode_at_rate

    coded = encode_at_rate("jpeg2000", image, target_bpp)
    return coded.recon, coded.bpp


@dataclass
class _Acc:
    """Running sums for one method at one rate."""

    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    seg_cm: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))

    def quality(self, with_seg: bool) -> dict[str, Any]:
        return {"bpp": float(np.mean(self.bpp)), "psnr": float(np.mean(self.psnr)),
                "ms_ssim": float(np.mean(self.ms_ssim)),
                "miou_seg": miou_from_confusion(self.seg_cm) if with_seg else None,
                "iou_seg": safety_iou(self.seg_cm) if with_seg else None}


def evaluate(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], grid: Iterable[tuple[float, float]] = PAPER_GRID,
             segmenter: Segment | None = None, segmenter_note: str = "", with_jpeg2000: bool = True,
             progress: bool = True, codebooks: Sequence[int | None] | None = None) -> dict:
    """Every figure of `sqgan eval` for `codec` on `frames` at each (m_x, m_s) of `grid` and each codebook
    size of `codebooks` (None: the full codebook only), with its acceptance (on full-codebook rows); the
    result is valid JSON (no NaN or infinity: those become null)."""
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
    iou_seg_orig = safety_iou(orig_cm) if segmenter is not None else None
    results = []
    full = codec.prior_x.num_symbols
    for (mx, ms), size in [(g, s) for g in grid for s in (codebooks or [None])]:
        book = None if size in (None, full) else (size, size)
        sq, j1, j3 = _Acc(), _Acc(), _Acc()
        bound, shat_cm = [], np.zeros((19, 20), np.int64)
        for rgb, lab in tqdm(frames, desc=f"eval m=({mx:g},{ms:g})" + (f" J={size}" if book else ""), unit="frame", disable=not progress, leave=False):
            enc = codec.encode(rgb, lab, mx, ms, book)
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
        row = {"mx": mx, "ms": ms, "codebook": size or full, "frames": len(frames), "bpp": q["bpp"], "bound_bpp": float(np.mean(bound)),
               "bits_over_bound": q["bpp"] / float(np.mean(bound)),
               "miou_shat": miou_from_confusion(shat_cm), "miou_seg_recon": q["miou_seg"],
               "miou_seg_orig": miou_seg_orig, "psnr": q["psnr"], "ms_ssim": q["ms_ssim"],
               "iou_shat": safety_iou(shat_cm), "iou_seg_recon": q["iou_seg"], "iou_seg_orig": iou_seg_orig}
        if with_jpeg2000:
            row["jpeg2000_matched"] = j1.quality(segmenter is not None)
            row["jpeg2000_3x"] = j3.quality(segmenter is not None)
        results.append(row)
    results = json_safe(results)
    checkpoint = codec.metadata.get("checkpoint")
    out: dict = {"frames": len(frames), "model_id": f"{codec.model_id:04x}",
                 "model": model_path_label(checkpoint) if checkpoint else f"untrained:{codec.config.name}",
                 "untrained": bool(codec.metadata.get("untrained")), "grid": results}
    if segmenter is None:
        out["unavailable"] = {key: segmenter_note for key in ("miou_seg_recon", "miou_seg_orig", "iou_seg_recon",
                                                              "iou_seg_orig")}
    out["acceptance"] = acceptance(results)
    return out


def _row_at(rows: Sequence[dict], at: tuple[float, float]) -> dict | None:
    """The grid row measured at (m_x, m_s) = `at`, or None when the grid skipped it."""
    full = max((r.get("codebook", 0) for r in rows), default=0)
    return next((r for r in rows if (r["mx"], r["ms"]) == tuple(at) and r.get("codebook", 0) == full), None)


def acceptance(rows: Sequence[dict], at: tuple[float, float] = OPERATING_POINT) -> dict:
    """Issue 11's acceptance checked at `at` on measured rows: each check {value, target, pass}, with
    value and pass None when a figure is missing (no segmenter, no JPEG 2000, or `at` not in the grid),
    so that a missing figure never reads as a pass.

    SQ-GAN at least as good as JPEG 2000 at the same rate in PSNR and MS-SSIM; mIoU(s_hat) >= 0.50
    and above the segmenter on JPEG 2000 at 3x the rate; the segmenter itself usable (mIoU >= 0.50 on
    the original frames, IoU > 0.2 on each safety class that it must see)."""
    def check(value: float | None, target: float | None, ok: Callable[[float, float], bool]) -> dict:
        done = value is not None and target is not None
        return {"value": value, "target": target, "pass": bool(ok(value, target)) if done else None}

    def at_least(v: float, t: float) -> bool:
        return v >= t

    def above(v: float, t: float) -> bool:
        return v > t

    row = _row_at(rows, at) or {}
    same_rate, triple = row.get("jpeg2000_matched") or {}, row.get("jpeg2000_3x") or {}
    iou_orig = row.get("iou_seg_orig") or {}
    out = {"psnr_vs_jpeg2000": check(row.get("psnr"), same_rate.get("psnr"), at_least),
           "ms_ssim_vs_jpeg2000": check(row.get("ms_ssim"), same_rate.get("ms_ssim"), at_least),
           "miou_shat": check(row.get("miou_shat"), 0.50, at_least),
           "miou_shat_vs_jpeg2000_3x": check(row.get("miou_shat"), triple.get("miou_seg"), above),
           "miou_seg_orig": check(row.get("miou_seg_orig"), 0.50, at_least)}
    for name in ("person", "car", "traffic light", "traffic sign"):
        out[f"iou_seg_orig_{name.replace(' ', '_')}"] = check(iou_orig.get(name), 0.2, above)
    out["at"] = list(at)
    return out


def compare(candidate: Sequence[dict], baseline: Sequence[dict], at: tuple[float, float] = OPERATING_POINT) -> dict:
    """Candidate beside baseline at `at` (grid rows of two evaluate() runs on the same frames): for each
    COMPARED figure its two values and candidate - baseline; `better` is True only when the candidate is
    strictly better on every REPLACE_IF_BETTER_ON figure, the rule for replacing shipped weights (a
    higher PSNR bought with a worse semantic map, or the reverse, does not count)."""
    cand, base = _row_at(candidate, at), _row_at(baseline, at)
    if cand is None or base is None:
        raise ValueError(f"compare: (m_x, m_s) = {tuple(at)} is not in both grids")
    out: dict = {"at": list(at)}
    for key in COMPARED:
        c, b = cand.get(key), base.get(key)
        out[key] = {"candidate": c, "baseline": b, "delta": None if c is None or b is None else c - b}
    out["better"] = all(out[k]["delta"] is not None and out[k]["delta"] > 0 for k in REPLACE_IF_BETTER_ON)
    out["rule"] = f"better: candidate above baseline on both {' and '.join(REPLACE_IF_BETTER_ON)} at {tuple(at)}"
    return out


def load_segmenter(path: Path | None):
    """(segmenter, "") or (None, why not): segmenter figures are reported null with the reason, never
    guessed, when mmsegmentation or the weights are missing."""
    try:
        from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError
    except ImportError as exc:
        return None, f"mmsegmentation unavailable: {exc}"
    try:
        return Segmenter.load(path), ""
    except SegmenterError as exc:
        return None, str(exc)
    except ImportError as exc:
        return None, f"mmsegmentation unavailable: {exc}"
