"""`sqgan eval`: rate/quality of the codec against JPEG 2000 on held-out frames.

Frames come from a Cityscapes-layout directory (`--data`) or are rendered on the fly by a frame
source plugin (entry-point group `sqgan.frame_sources`; the simulator registers `embedded`) from a
seed that training never used (`--seed 9001`).
"""
from __future__ import annotations

import argparse
import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from sqgan_core.cli import CommandError
from sqgan_core.cli.codec_demo import _rates
from sqgan_core.cli.model_options import add_model_options, codec_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="rate/quality against JPEG 2000 on held-out frames (JSON)",
                       description="Evaluate the codec on held-out frames over a grid of (m_x, m_s): bpp, bound, "
                                   "mIoU of s_hat, segmenter mIoU on reconstruction and original, PSNR, MS-SSIM, "
                                   "and JPEG 2000 at the same rate and at 3x.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="Cityscapes-layout root")
    src.add_argument("--seed", type=int, default=9001, help="simulator seed for rendered frames (default 9001; "
                                                            "training uses seeds 1-500, validation 501-502)")
    p.add_argument("--split", default=None)
    p.add_argument("--scenario", default="default", help="simulator scenario for --seed")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--stride", type=int, default=5, help="keep every n-th rendered frame (default 5: 4 Hz)")
    p.add_argument("--grid", type=_rates, default=None, help="(m_x, m_s) pairs; default the 3x3 grid of 0.2/0.5/1")
    p.add_argument("--segmenter", type=Path, help="segmenter checkpoint (default: the shipped one, if any)")
    p.add_argument("--no-jpeg2000", action="store_true")
    p.add_argument("--json", action="store_true", help="one-line JSON (default: indented)")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    p.add_argument("--plot", type=Path, help="also draw rate/quality curves (PNG): PSNR, MS-SSIM and mIoU "
                                             "against bpp, SQ-GAN beside JPEG 2000")
    add_model_options(p)
    p.set_defaults(func=_run)


def held_out_frames(data: Path | None, split: str | None, seed: int, scenario: str, n: int,
                    stride: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(frames, source description): the first n pairs of a Cityscapes-layout `data` root, or every
    stride-th frame rendered by the simulator plugin from `seed`."""
    if data:
        from sqgan_core.data import CityscapesPairs, DatasetError

        try:
            return [p.load() for p in CityscapesPairs(data, split).pairs[:n]], str(data)
        except DatasetError as exc:
            raise CommandError(str(exc)) from None
    stride = max(stride, 1)
    return _rendered(seed, scenario, n, stride), f"simulator scenario {scenario} seed {seed} (every {stride}th frame)"


def _rendered(seed: int, scenario: str, n: int, stride: int):
    sources = {ep.name: ep for ep in entry_points(group="sqgan.frame_sources")}
    if "embedded" not in sources:
        raise CommandError("no simulator frame source is installed (entry point sqgan.frame_sources:embedded); "
                           "pass --data DIR instead")
    make_source = sources["embedded"].load()
    frames = []
    with make_source(scenario, seed=seed) as src:
        i = 0
        while len(frames) < n:
            f = src.step()
            if i % stride == 0:
                frames.append((f.rgb, f.labels))
            i += 1
    return frames


def _run(args: argparse.Namespace) -> int:
    from sqgan_core.evaluation import PAPER_GRID, evaluate

    frames, source = held_out_frames(args.data, args.split, args.seed, args.scenario, args.frames, args.stride)
    codec = codec_from_args(args)
    segmenter, note = None, ""
    try:
        from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError

        try:
            segmenter = Segmenter.load(args.segmenter)
        except SegmenterError as exc:
            note = str(exc)
    except ImportError as exc:
        note = f"mmsegmentation unavailable: {exc}"
    result = evaluate(codec, frames, args.grid or PAPER_GRID, segmenter, note, not args.no_jpeg2000)
    result["source"] = source
    text = json.dumps(result) if args.json else json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    if args.plot:
        plot_rate_quality(result, args.plot)
    print(text)
    return 0


def plot_rate_quality(result: dict, path: Path) -> None:
    """Rate/quality panels: SQ-GAN at each (m_x, m_s) against JPEG 2000 at the same and 3x the rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["grid"]
    panels = [("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"), ("miou_seg", "segmenter mIoU on the decoded image")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=110)
    for ax, (key, label) in zip(axes, panels):
        sq_key = "miou_seg_recon" if key == "miou_seg" else key
        ax.scatter([r["bpp"] for r in rows], [r[sq_key] if r[sq_key] is not None else np.nan for r in rows],
                   label="SQ-GAN", color="C0", zorder=3)
        for r in rows:
            if r[sq_key] is not None:
                ax.annotate(f"({r['mx']:g},{r['ms']:g})", (r["bpp"], r[sq_key]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
        for jkey, name, colour in (("jpeg2000_matched", "JPEG 2000, same rate", "C1"),
                                   ("jpeg2000_3x", "JPEG 2000, 3x rate", "C2")):
            pts = [(r[jkey]["bpp"], r[jkey][key]) for r in rows if jkey in r and r[jkey][key] is not None]
            if pts:
                ax.scatter(*zip(*pts), label=name, color=colour, marker="s", s=14)
        if key == "miou_seg" and rows and rows[0].get("miou_seg_orig") is not None:
            ax.axhline(rows[0]["miou_seg_orig"], color="k", lw=0.8, ls="--", label="segmenter on the original")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result.get('model', '')}: {result['frames']} frames of {result.get('source', '')}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
