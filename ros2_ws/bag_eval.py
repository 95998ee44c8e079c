"""`sqgan bag eval`: a recorded drive through every codec and the same lossy link, as fast as it runs.

For a bag of camera images (ours, or CARLA's ROS bridge: bgra8 camera, CityScapesPalette semantic):
1. the frames are read as the vehicle node reads them (`bag_frames`), paired with the semantic topic
   when given: that map is both what SQ-GAN encodes and the ground truth. Without one, the segmenter's
   map of the original is encoded (as `semantic_source:=segmenter` does) and the figures against
   ground truth are reported unavailable;
2. SQ-GAN runs at each (m_x, m_s) of `--grid` through the nodes' own packets, link model, assembler and
   decoder on a clean link; each classic codec runs at the rate SQ-GAN took on that frame, and at
   `--extra-rates`: factors below 1 of SQ-GAN's lowest rate and above 1 of its highest, so the
   rate-distortion curves overlap in quality and BD-rates exist;
3. at the operating point every codec crosses `--link` (default 10 % Bernoulli loss) with the same
   packet size: frames delivered and the quality of what is shown, side by side;
4. metrics per frame (bpp on the wire, PSNR, MS-SSIM, segmenter mIoU against ground truth and against
   the segmenter on the original, per-class IoU of the safety classes; for SQ-GAN the decoded map's
   mIoU), BD-rates of SQ-GAN against each codec, and the report (`bag_report`).

A camera topic holding a recorded `sqgan` CompressedImage stream is decoded instead (no original, so
no quality figures): frames, bytes and decode time, and example strips of what the RSU would show.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sqgan_core.errors import CommandError
from sqgan_core.arguments import non_negative_int, positive_int
from sqgan_core.errors import InputError
from sqgan_core.metrics import confusion, miou_from_confusion, ms_ssim, psnr

DEFAULT_LINK = "bernoulli_10pct"
DEFAULT_GRID = ((0.2, 0.2), (0.5, 0.5), (1.0, 1.0))
DEFAULT_EXTRA_RATES = (0.25, 0.5, 2.0)
OPERATING_POINT = (0.5, 0.5)
BD_METRICS = ("psnr", "ms_ssim", "miou_seg", "miou_seg_vs_orig")
FID_NOTE = ("FID compares feature distributions over thousands of images with Inception-v3's pretrained "
            "weights; a bag evaluation of a few hundred frames at most would give a number with no meaning, and the "
            "weights are not installed here: not computed, not approximated")


def lpips_metric() -> tuple[Callable[[np.ndarray, np.ndarray], float] | None, str]:
    """(LPIPS with its standard AlexNet weights, "") when the `lpips` package and its pretrained
    networks load here, else (None, why): never a substitute network."""
    try:
        import lpips  # type: ignore[import-not-found]
        import torch

        net = lpips.LPIPS(net="alex", verbose=False).eval()
    except Exception as exc:  # noqa: BLE001 - missing package, missing torchvision or no weights: say which
        return None, (f"LPIPS needs the `lpips` package with its pretrained AlexNet weights, which do not load here "
                      f"({type(exc).__name__}: {str(exc)[:120]}); reported unavailable, not approximated")

    def metric(a: np.ndarray, b: np.ndarray) -> float:
        def t(x: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 127.5 - 1

        with torch.inference_mode():
            return float(net(t(a), t(b)))

    return metric, ""


@dataclass
class Frames:
    rgb: list[np.ndarray]
    labels: list[np.ndarray]  # what SQ-GAN encodes: ground truth, or the segmenter's map of the original
    truth: list[np.ndarray] | None  # ground truth, when the bag has a semantic topic
    seg_orig: list[np.ndarray] | None  # the segmenter on each original
    times_s: list[float]
    stamps_ns: list[int]


@dataclass
class Series:
    """One codec at one rate on one link: per-frame rows and the summed confusions."""

    codec: str
    rate: str
    link: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    cm_seg: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))
    cm_seg_orig: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))
    cm_shat: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))
    link_stats: dict[str, int] = field(default_factory=dict)
    examples: list[np.ndarray] = field(default_factory=list)  # shown images of the example frames
    example_labels: list[np.ndarray] = field(default_factory=list)  # SQ-GAN: its decoded maps of them

    def summary(self, with_truth: bool, with_seg: bool) -> dict[str, Any]:
        from sqgan_core.evaluation import safety_iou

        def mean(key: str) -> float | None:
            vals = [r[key] for r in self.rows if r.get(key) is not None and np.isfinite(r[key])]
            return float(np.mean(vals)) if vals else None

        def pct(key: str, q: float) -> float | None:
            vals = [r[key] for r in self.rows if r.get(key)]
            return float(np.percentile(vals, q)) if vals else None

        n = len(self.rows)
        out: dict[str, Any] = {
            "codec": self.codec, "rate": self.rate, "link": self.link, "frames": n,
            "frames_delivered": sum(r["arrived"] for r in self.rows),
            "delivered_fraction": sum(r["arrived"] for r in self.rows) / n if n else None,
            "bpp": mean("bpp_wire"), "psnr": mean("psnr"), "ms_ssim": mean("ms_ssim"), "lpips": mean("lpips"),
            "miou_seg": miou_from_confusion(self.cm_seg) if with_truth and with_seg else None,
            "iou_seg": safety_iou(self.cm_seg) if with_truth and with_seg else None,
            "miou_seg_vs_orig": miou_from_confusion(self.cm_seg_orig) if with_seg else None,
            "encode_ms_p50": pct("encode_ms", 50), "decode_ms_p50": pct("decode_ms", 50),
            "packets_sent": sum(r["packets_sent"] for r in self.rows),
            "packets_arrived": sum(r["packets_arrived"] for r in self.rows),
            "link_stats": self.link_stats,
        }
        if self.codec == "sqgan":
            out["miou_shat"] = miou_from_confusion(self.cm_shat) if with_truth else None
            out["iou_shat"] = safety_iou(self.cm_shat) if with_truth else None
            out["tokens_lost"] = sum(r.get("tokens_lost", 0) for r in self.rows)
        else:
            out["min_scale"] = min((r["scale"] for r in self.rows), default=None)
            out["frames_over_target"] = sum(bool(r.get("over_target")) for r in self.rows)
        return out


def _rates_arg(text: str) -> list[tuple[float, float]]:
    from sqgan_core.cli.codec_demo import _rates

    return _rates(text)


def _factors(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated factors, e.g. 0.5,2, got {text!r}") from None
    if any(not (0.05 <= v <= 64.0) or v == 1.0 for v in vals):
        raise argparse.ArgumentTypeError(f"each factor must be in [0.05, 64] and not 1, got {text!r}")
    return vals


def _codecs(text: str) -> list[str]:
    from sqgan_core.classic_codecs import CODEC_NAMES

    known = ("sqgan",) + tuple(CODEC_NAMES)
    names = list(known) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown codec(s) {', '.join(bad) or text!r}; known: all, {', '.join(known)}")
    if "sqgan" not in names:
        names.insert(0, "sqgan")  # the classic codecs are matched to SQ-GAN's rates: it always runs
    return names


# -- frames ------------------------------------------------------------------------------------------
def read_bag_frames(bag: Path, camera: str, semantic: str | None, max_frames: int | None, stride: int,
                    log: Callable[[str], None]) -> tuple[list[Any], Any]:
    from ros2_ws.bag_frames import BagFrameReader

    reader = BagFrameReader(bag, camera, semantic, max_frames=max_frames, stride=stride)
    frames = list(reader)
    if reader.skipped:
        log(f"skipped {dict(reader.skipped)} (last: {reader.last_error})")
    if not frames:
        why = f"; skipped {dict(reader.skipped)}: {reader.last_error}" if reader.skipped else ""
        raise InputError(f"{bag}: no frame could be read from {camera}"
                         f"{' paired with ' + semantic if semantic else ''}{why}")
    return frames, reader


# -- metrics -----------------------------------------------------------------------------------------
class SegmentCache:
    """The segmenter's map of each distinct shown image: a held (lost) frame or a frame that arrived
    whole on the lossy link is the very array the clean link showed, and is not segmented again."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        self.maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (image kept alive, map)
        self.calls = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        hit = self.maps.get(id(image))
        if hit is None or hit[0] is not image:
            self.calls += 1
            hit = (image, self.segmenter(image))
            self.maps[id(image)] = hit
        return hit[1]


_LPIPS: list[Any] = []  # (metric | None, reason), probed once per process


def _lpips() -> tuple[Any, str]:
    if not _LPIPS:
        _LPIPS.append(lpips_metric())
    return _LPIPS[0]


def _measure(series: Series, k: int, shown: Any, enc: Any, frames: Frames, segmenter: Any,
             examples: Sequence[int], run: int = 0) -> None:
    rgb = frames.rgb[k]
    image = shown.image
    row: dict[str, Any] = {"codec": series.codec, "rate": series.rate, "link": series.link, "run": run, "frame": k,
                           "stamp_ns": frames.stamps_ns[k], "arrived": bool(shown.arrived),
                           "bpp_wire": enc.bpp_wire, "packets_sent": shown.packets_sent,
                           "packets_arrived": shown.packets_arrived, "encode_ms": enc.encode_ms,
                           "decode_ms": shown.decode_ms or enc.decode_ms,
                           "psnr": psnr(rgb, image), "ms_ssim": ms_ssim(rgb, image)}
    lp, _why = _lpips()
    if lp is not None:
        row["lpips"] = lp(rgb, image)
    if series.codec == "sqgan":
        row["tokens_lost"] = shown.tokens_lost
        if frames.truth is not None and shown.labels is not None:
            cm = confusion(shown.labels, frames.truth[k])
            series.cm_shat += cm
            row["miou_shat"] = miou_from_confusion(cm)
    else:
        row["scale"], row["over_target"] = enc.scale, enc.over_target
    if segmenter is not None:
        pred = segmenter(image)
        cm = confusion(pred, frames.seg_orig[k])
        series.cm_seg_orig += cm
        row["miou_seg_vs_orig"] = miou_from_confusion(cm)
        if frames.truth is not None:
            cm = confusion(pred, frames.truth[k])
            series.cm_seg += cm
            row["miou_seg"] = miou_from_confusion(cm)
    if k in examples and run == 0:
        series.examples.append(image)
        if shown.labels is not None:
            series.example_labels.append(shown.labels)
    series.rows.append(row)


# -- the evaluation ----------------------------------------------------------------------------------
def evaluate_bag(frames: Frames, codec: Any, codecs: Sequence[str], grid: Sequence[tuple[float, float]],
                 extra_rates: Sequence[float], clean: Any, lossy: Any, segmenter: Any,
                 examples: Sequence[int], log: Callable[[str], None], progress: bool = True,
                 link_runs: int = 4, workers: int = 2) -> list[Series]:
    """Every series of the evaluation. The lossy link runs `link_runs` times with seeds profile.seed,
    +1, ...: a short bag sees few packets, and one loss draw would decide the comparison."""
    from tqdm import tqdm

    from ros2_ws.codec_trials import ClassicEncoder, SqganEncoder, run_classic, run_sqgan
    from sqgan_core.classic_codecs import available

    at = OPERATING_POINT if OPERATING_POINT in grid else grid[len(grid) // 2]
    n = len(frames.rgb)
    series: list[Series] = []
    sq_bpp: dict[tuple[float, float], list[float]] = {}
    sq_encoded = {}
    for mx, ms in grid:
        enc = SqganEncoder(codec, mx, ms)
        encoded = [enc.encode(frames.rgb[k], frames.labels[k], frames.stamps_ns[k])
                   for k in tqdm(range(n), desc=f"sqgan m=({mx:g},{ms:g})", unit="frame", disable=not progress,
                                 leave=False)]
        sq_encoded[(mx, ms)] = encoded
        sq_bpp[(mx, ms)] = [e.bpp_wire for e in encoded]
        result = run_sqgan(codec, encoded, frames.rgb, frames.times_s, clean)
        s = Series("sqgan", enc.rate, clean.name, link_stats=result.link)
        cache = SegmentCache(segmenter) if segmenter is not None else None
        for k in range(n):
            _measure(s, k, result.shown[k], encoded[k], frames, cache, examples)
        series.append(s)
        if (mx, ms) == at:
            series.append(_lossy_series("sqgan", enc.rate, lossy, link_runs, encoded, frames, cache, examples,
                                        lambda seed, shown=result.shown, encoded=encoded: run_sqgan(
                                            codec, encoded, frames.rgb, frames.times_s, lossy, seed=seed,
                                            reuse=shown)))
    top = max(sq_bpp, key=lambda g: float(np.mean(sq_bpp[g])))
    low = min(sq_bpp, key=lambda g: float(np.mean(sq_bpp[g])))
    targets: list[tuple[str, list[float], bool]] = [
        (f"matched m={mx:g},{ms:g}", sq_bpp[(mx, ms)], (mx, ms) == at) for mx, ms in grid]
    for f in extra_rates:
        ref = top if f > 1 else low
        targets.append((f"{f:g}x m={ref[0]:g},{ref[1]:g}", [f * b for b in sq_bpp[ref]], False))
    jobs: list[tuple[str, str, list[float], bool]] = []
    for name in codecs:
        if name == "sqgan":
            continue
        ok, why = available(name)
        if not ok:
            log(f"{name}: unavailable ({why})")
            series.append(Series(name, "unavailable: " + why, clean.name))
            continue
        jobs += [(name, label, bpps, lossy_too) for label, bpps, lossy_too in targets]

    def encode_series(job: tuple[str, str, list[float], bool]) -> list[Any]:
        enc = ClassicEncoder(job[0])  # one per series: each frame's search starts from the previous frame's
        return [enc.encode(frames.rgb[k], job[2][k]) for k in range(n)]

    # The classic encodes (Pillow's C encoders and ffmpeg processes) run `workers` series at a time; the
    # link, the segmenter and the metrics then run in order, so the figures do not depend on scheduling.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        encodings = list(tqdm(pool.map(encode_series, jobs), total=len(jobs), desc="classic codecs", unit="series",
                              disable=not progress, leave=False))
    for (name, label, _bpps, lossy_too), encoded in zip(jobs, encodings):
        result = run_classic(encoded, frames.rgb, frames.times_s, clean)
        s = Series(name, label, clean.name, link_stats=result.link)
        cache = SegmentCache(segmenter) if segmenter is not None else None
        for k in range(n):
            _measure(s, k, result.shown[k], encoded[k], frames, cache, examples)
        series.append(s)
        if lossy_too:
            series.append(_lossy_series(name, label, lossy, link_runs, encoded, frames, cache, examples,
                                        lambda seed, encoded=encoded: run_classic(
                                            encoded, frames.rgb, frames.times_s, lossy, seed=seed)))
    return series


def _lossy_series(codec: str, rate: str, lossy: Any, runs: int, encoded: Sequence[Any], frames: Frames,
                  cache: Any, examples: Sequence[int], run_link: Callable[[int], Any]) -> Series:
    """One series of `runs` realisations of the lossy link (the same encodings each time)."""
    s = Series(codec, rate, lossy.name)
    for r in range(runs):
        result = run_link(lossy.seed + r)
        for key, v in result.link.items():
            s.link_stats[key] = s.link_stats.get(key, 0) + v
        for k in range(len(encoded)):
            _measure(s, k, result.shown[k], encoded[k], frames, cache, examples, run=r)
    return s


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The operational rate-quality curve: by rising rate, only the points that beat every cheaper one.
    A user never picks a setting that a cheaper one beats, and a few frames of segmenter mIoU are noisy
    enough to break monotonicity, which BD-rate's interpolation needs."""
    out: list[tuple[float, float]] = []
    for r, q in sorted(points):
        if not out or q > out[-1][1]:
            out.append((r, q))
    return out


def bd_rates(summaries: list[dict[str, Any]], clean: str) -> dict[str, Any]:
    """BD-rate (and BD-quality) of SQ-GAN against each classic codec on the clean link, per metric, on
    each curve's Pareto front; with ground truth also SQ-GAN's decoded map (miou_shat) against each
    codec's segmented image."""
    from sqgan_core.bdrate import bd_quality, bd_rate_with_reason

    def curve(codec: str, metric: str) -> tuple[list[float], list[float]]:
        pts = [(s["bpp"], s.get(metric)) for s in summaries
               if s["codec"] == codec and s["link"] == clean and s.get("bpp") and s.get(metric) is not None]
        front = pareto_front(pts)
        return [p[0] for p in front], [p[1] for p in front]

    out: dict[str, Any] = {}
    classic = sorted({s["codec"] for s in summaries if s["codec"] != "sqgan" and s.get("bpp")})
    pairs = [(m, m) for m in BD_METRICS] + [("miou_shat", "miou_seg")]
    for test_metric, anchor_metric in pairs:
        key = test_metric if test_metric == anchor_metric else f"{test_metric}_vs_{anchor_metric}"
        r_t, q_t = curve("sqgan", test_metric)
        row = {}
        for name in classic:
            r_a, q_a = curve(name, anchor_metric)
            value, reason = bd_rate_with_reason(r_a, q_a, r_t, q_t)
            row[name] = {"bd_rate_pct": value, "bd_quality": bd_quality(r_a, q_a, r_t, q_t),
                         **({"reason": reason} if value is None else {})}
        out[key] = row
    return out


def _sqgan_stream(bag_frames: list[Any], codec: Any, examples: Sequence[int]) -> dict[str, Any]:
    """A recorded sqgan CompressedImage stream, decoded: what the RSU would show."""
    from sqgan_core.bitstream import FrameError

    rows, shown, errors = [], [], {}
    for k, f in enumerate(bag_frames):
        t0 = time.perf_counter()
        try:
            dec = codec.decode(f.sqgan)
        except (FrameError, ValueError) as exc:
            errors[str(exc)[:120]] = errors.get(str(exc)[:120], 0) + 1
            rows.append({"frame": k, "stamp_ns": f.stamp_ns, "bytes": len(f.sqgan), "decoded": False})
            continue
        ms = 1000 * (time.perf_counter() - t0)
        h, w = dec.image.shape[:2]
        rows.append({"frame": k, "stamp_ns": f.stamp_ns, "bytes": len(f.sqgan), "decoded": True,
                     "bpp": 8 * len(f.sqgan) / (h * w), "decode_ms": ms, "width": w, "height": h})
        if k in examples:
            shown.append((dec.image, dec.labels))
    ok = [r for r in rows if r["decoded"]]
    return {"rows": rows, "examples": shown, "decode_errors": errors,
            "summary": {"frames": len(rows), "frames_decoded": len(ok),
                        "bpp": float(np.mean([r["bpp"] for r in ok])) if ok else None,
                        "decode_ms_p50": float(np.median([r["decode_ms"] for r in ok])) if ok else None}}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ros2_ws import bag_report
    from sqgan_core.evaluation import SAFETY_CLASSES, json_safe, model_path_label
    from sqgan_core.transport.channel import ProfileError, load_profile
    from sqgan_core.evaluation import load_segmenter
    from sqgan_core.cli.model_options import codec_from_args

    def log(msg: str) -> None:
        print(f"[bag eval] {msg}", file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise CommandError(f"-o {out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise CommandError(f"-o {out}: its parent folder {out.parent} does not exist")
    try:
        clean, lossy = load_profile("clean"), load_profile(args.link)
    except ProfileError as exc:
        raise CommandError(f"--link: {exc}") from None
    codec = codec_from_args(args)
    from ros2_ws.bag import BagError

    try:
        bag_frames, reader = read_bag_frames(args.bag, args.camera, args.semantic, args.frames, args.stride, log)
    except (BagError, InputError) as exc:
        raise CommandError(str(exc)) from None
    n = len(bag_frames)
    examples = sorted({0, n // 2, n - 1})[: args.examples] if args.examples else []
    out.mkdir(parents=True, exist_ok=True)
    meta = {"bag": model_path_label(args.bag), "camera": args.camera, "semantic": args.semantic,
            "frames": n, "stride": args.stride, "skipped": dict(reader.skipped),
            "model": model_path_label(codec.metadata.get("checkpoint") or f"untrained:{codec.config.name}"),
            "model_id": f"{codec.model_id:04x}", "machine": {"cpu": platform.processor() or platform.machine(),
                                                             "threads": args.threads}}
    if reader.kind == "sqgan":
        stream = _sqgan_stream(bag_frames, codec, examples)
        _write_csv(out / "frames.csv", stream["rows"])
        summary = {**meta, "kind": "sqgan_stream", "stream": stream["summary"],
                   "decode_errors": stream["decode_errors"], "wall_s": round(time.perf_counter() - t_start, 1)}
        (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
        bag_report.write_stream_report(out, summary, stream["examples"])
        print(json.dumps(json_safe(summary)) if args.json else json.dumps(json_safe(summary), indent=2))
        return 0
    rgb = [f.rgb for f in bag_frames]
    truth = [f.labels for f in bag_frames] if args.semantic else None
    if args.segmenter is not None and str(args.segmenter).lower() == "none":
        segmenter, seg_note = None, "segmenter disabled by --segmenter none"
    else:
        segmenter, seg_note = load_segmenter(args.segmenter)
        if segmenter is None and args.segmenter is not None:
            raise CommandError(f"--segmenter: {seg_note}")
    if truth is None and segmenter is None:
        raise CommandError("without --semantic the segmenter provides the map SQ-GAN encodes, and it is "
                           f"unavailable ({seg_note}): pass --semantic TOPIC")
    seg_orig = [segmenter(x) for x in rgb] if segmenter is not None else None
    t0 = bag_frames[0].time_ns
    frames = Frames(rgb, truth if truth is not None else seg_orig, truth, seg_orig,  # type: ignore[arg-type]
                    [(f.time_ns - t0) / 1e9 for f in bag_frames], [f.stamp_ns for f in bag_frames])
    log(f"{n} frames of {args.camera} ({rgb[0].shape[1]}x{rgb[0].shape[0]}); codecs {', '.join(args.codec)}; "
        f"grid {args.grid}; link {lossy.name}")
    series = evaluate_bag(frames, codec, args.codec, args.grid, args.extra_rates, clean, lossy, segmenter,
                          examples, log, progress=not args.no_progress, link_runs=args.link_runs,
                          workers=args.jobs)
    with_truth, with_seg = truth is not None, segmenter is not None
    summaries = [s.summary(with_truth, with_seg) if s.rows else {"codec": s.codec, "rate": s.rate, "link": s.link,
                                                                  "unavailable": s.rate} for s in series]
    unavailable = {"fid": FID_NOTE}
    if _lpips()[0] is None:
        unavailable["lpips"] = _lpips()[1]
    if not with_truth:
        unavailable.update({k: "no --semantic topic: no ground truth" for k in ("miou_seg", "iou_seg", "miou_shat")})
    if not with_seg:
        unavailable.update({k: seg_note for k in ("miou_seg", "iou_seg", "miou_seg_vs_orig")})
    result = {**meta, "kind": "images", "grid": [list(g) for g in args.grid], "extra_rates": list(args.extra_rates),
              "operating_point": list(OPERATING_POINT if OPERATING_POINT in args.grid else args.grid[len(args.grid) // 2]),
              "links": {"clean": clean.name, "lossy": lossy.name, "lossy_description": lossy.description,
                        "lossy_runs": args.link_runs, "lossy_seeds": [lossy.seed + r for r in range(args.link_runs)]},
              "packet_bytes": 256, "safety_classes": list(SAFETY_CLASSES),
              "segmenter": None if segmenter is None else (
                  model_path_label(args.segmenter) if args.segmenter else "sqgan_core/weights/segmenter_fastscnn.pt"),
              "series": summaries, "bd_rate": bd_rates([s for s in summaries if "bpp" in s], clean.name),
              "unavailable": unavailable, "wall_s": round(time.perf_counter() - t_start, 1)}
    result = json_safe(result)
    _write_csv(out / "frames.csv", [r for s in series for r in s.rows])
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    bag_report.write_report(out, result, series, frames, examples)
    log(f"wrote {out}/report.md, summary.json, frames.csv and plots in {result['wall_s']} s")
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`sqgan bag eval`, added to the `bag` parser's actions."""
    from sqgan_core.cli.model_options import add_model_options

    e = sub.add_parser("eval", help="replay a bag through every codec and a lossy link: CSV, JSON, report",
                       description="Replay a bag's camera frames offline through SQ-GAN (the nodes' packets, link "
                                   "model, assembler, decoder) and the classic codecs at matched rates, on a clean "
                                   "link and on --link, and write frames.csv, summary.json and report.md with "
                                   "plots into -o DIR. A camera topic holding a recorded sqgan CompressedImage "
                                   "stream is decoded instead.")
    e.add_argument("bag", type=Path)
    e.add_argument("--camera", required=True, help="camera topic (sensor_msgs/Image, or a sqgan CompressedImage)")
    e.add_argument("--semantic", help="semantic topic (mono8 trainIds or Cityscapes/CARLA palette colours): "
                                      "encoded by SQ-GAN and the ground truth; without it the segmenter's map is")
    e.add_argument("--codec", type=_codecs, default="all",
                   help="comma-separated codecs (default all): sqgan, jpeg, jpeg2000, webp, avif, hevc, av1")
    e.add_argument("--link", default=DEFAULT_LINK, help=f"link profile for the loss comparison (default {DEFAULT_LINK})")
    e.add_argument("--link-runs", type=positive_int, default=4,
                   help="realisations of the lossy link (seeds from the profile's, default 4)")
    e.add_argument("--grid", type=_rates_arg, default=list(DEFAULT_GRID),
                   help="SQ-GAN (m_x, m_s) points, e.g. '0.2,0.2;0.5,0.5;1,1' (the default)")
    e.add_argument("--extra-rates", type=_factors, default=list(DEFAULT_EXTRA_RATES),
                   help="classic codecs also at these multiples of SQ-GAN's lowest (factors < 1) and highest (> 1) "
                        "rate, so the curves overlap (default 0.25,0.5,2)")
    e.add_argument("--frames", type=positive_int, help="at most this many frames (default: all)")
    e.add_argument("--stride", type=positive_int, default=1, help="keep every STRIDE-th camera frame (default 1)")
    e.add_argument("--segmenter", type=Path, help="segmenter checkpoint (default: the shipped one); 'none' skips it")
    e.add_argument("--examples", type=non_negative_int, default=3, help="example strips in the report (default 3)")
    e.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    e.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                   help="classic-codec series encoded at once (default: the CPU count)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("--json", action="store_true", help="one-line JSON on stdout")
    e.add_argument("-o", "--output", type=Path, required=True, help="report folder (created)")
    add_model_options(e)
    e.set_defaults(func=_run)
