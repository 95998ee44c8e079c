"""`sqgan eval`: rate/quality of the codec against JPEG 2000 on held-out frames.

Frames come from a Cityscapes-layout directory (`--data`) or are rendered on the fly by a frame
source plugin (entry-point group `sqgan.frame_sources`; the simulator registers `embedded`) from
seeds that training never used: by default from every scenario in configs/scenarios/, scenario k
(sorted by name) from `--seed + k` (9001, 9002, ...), so one weather or town cannot flatter a model.
`--baseline` measures a second checkpoint on the same frames and says whether the candidate is
better by the rule for replacing the shipped weights.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sqgan_core.errors import CommandError
from sqgan_core.arguments import positive_int
from sqgan_core.cli.codec_demo import _rates
from sqgan_core.cli.model_options import add_model_options, codec_from_args
from sqgan_core.evaluation import load_segmenter, model_path_label
from sqgan_core.heldout import ALL_SCENARIOS, held_out_frames, scenario_plan

SHIPPED = "shipped"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="rate/quality against JPEG 2000 on held-out frames (JSON)",
                       description="Evaluate the codec on held-out frames over a grid of (m_x, m_s): bpp, bound, "
                                   "mIoU of s_hat, segmenter mIoU on reconstruction and original, IoU of the "
                                   "safety classes (person, rider, car, traffic light, traffic sign), PSNR, "
                                   "MS-SSIM, JPEG 2000 at the same rate and at 3x, and the acceptance checks at "
                                   "(0.5, 0.5); with --baseline, a second checkpoint on the same frames and "
                                   "whether the candidate (--model) is better.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="Cityscapes-layout root (default: frames rendered by the simulator)")
    src.add_argument("--seed", type=int, default=9001,
                     help="first simulator seed (default 9001): with --scenario all, scenario k in name order is "
                          "rendered from seed + k (9001, 9002, ...); evaluation seeds are 9001 and up, training "
                          "uses 1-500, validation 501-999")
    p.add_argument("--split", default=None, help="split of --data (default: all)")
    add_scenario_option(p)
    p.add_argument("--frames", type=positive_int, default=100,
                   help="frames in all (default 100), split evenly over the scenarios with --scenario all")
    p.add_argument("--stride", type=positive_int, default=5,
                   help="simulator ticks from one kept frame to the next (default 5: 4 Hz); the ticks between "
                        "are advanced without rendering")
    p.add_argument("--grid", type=_rates, default=None, help="(m_x, m_s) pairs, e.g. '0.2,0.2;0.5,0.5'; default "
                                                             "the 3x3 grid of 0.2/0.5/1")
    p.add_argument("--codebooks", type=_sizes, default=None,
                   help="also evaluate each grid point with these codebook sizes (k-means reductions the checkpoint "
                        "carries, e.g. 512,256,128,64; both streams), the variable-bitrate rates")
    p.add_argument("--baseline", metavar="PATH|shipped",
                   help="also evaluate this checkpoint (or `shipped`: sqgan_core/weights/sqgan_small.pt) on the "
                        "same frames, without JPEG 2000, and add `baseline` and `comparison` to the JSON: "
                        "`better` is true only when the candidate (--model) beats it on both mIoU(s_hat) and "
                        "PSNR at (0.5, 0.5), which is added to --grid when missing")
    p.add_argument("--segmenter", type=Path,
                   help="segmenter checkpoint (default: the shipped one; its figures are null with the reason when "
                        "it or mmsegmentation is missing); 'none' skips the segmenter figures")
    p.add_argument("--no-jpeg2000", action="store_true", help="skip the JPEG 2000 references (faster)")
    p.add_argument("--json", action="store_true", help="one-line JSON (default: indented)")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    p.add_argument("--plot", type=Path, help="also draw rate/quality curves (PNG): PSNR, MS-SSIM and mIoU "
                                             "against bpp, SQ-GAN beside JPEG 2000")
    g = p.add_argument_group("packet loss (--loss): quality per concealment method instead of the JPEG 2000 grid")
    g.add_argument("--loss", type=_loss_spec, action="append", metavar="SPEC",
                   help="repeatable: none | bernoulli:P | gilbert:P,BURST (mean loss P, mean burst BURST packets); "
                        "each frame's real packets cross that channel, the RSU's assembler rebuilds them and every "
                        "--concealment method decodes the same frames; lossless figures come with them")
    g.add_argument("--concealment", default="none,bidirectional,autoregressive",
                   help="comma-separated methods (none, bidirectional, autoregressive); default all three. A "
                        "transformer whose file is missing or was trained for other codec weights is reported "
                        "with the reason and left out")
    g.add_argument("--concealer", action="append", default=[], metavar="KIND=PATH",
                   help="concealer file for a kind (default: sqgan_core/weights/concealer_<kind>.pt)")
    g.add_argument("--loss-runs", type=positive_int, default=1, help="loss realisations per spec (default 1)")
    g.add_argument("--packet-bytes", type=positive_int, default=256)
    g.add_argument("--passes", type=positive_int, default=3, help="bidirectional concealer passes (default 3)")
    g.add_argument("--conceal-mode", choices=("soft", "soft_masked", "hard"), default="soft",
                   help="what a transformer hands the decoder for a lost token: soft (default) the expected code "
                        "vector, read as received; soft_masked the same vector as the ADM's starting point; hard "
                        "the most probable index")
    g.add_argument("--threshold", type=float, default=0.0,
                   help="leave lost tokens whose best prediction is less probable than this to the ADM, in every "
                        "mode (default 0: conceal them all)")
    add_model_options(p)
    p.set_defaults(func=_run)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated codebook sizes expected, got {text!r}") from None
    if not sizes or any(s < 2 or s & (s - 1) for s in sizes):
        raise argparse.ArgumentTypeError(f"codebook sizes must be powers of two, got {text!r}")
    return sizes


def _loss_spec(text: str):
    from sqgan_core.streaming.loss import LossSpecError, parse_loss

    try:
        return parse_loss(text)
    except LossSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _concealers(args: argparse.Namespace, codec) -> tuple[dict, dict]:
    """(name -> concealer, name -> why it is left out) for --concealment."""
    from sqgan_core.streaming.concealment import METHODS, select_concealer

    files = {}
    for item in args.concealer:
        kind, sep, path = item.partition("=")
        if not sep or kind not in ("bidirectional", "autoregressive"):
            raise CommandError(f"--concealer {item!r}: use KIND=PATH with KIND bidirectional or autoregressive")
        if not Path(path).is_file():
            raise CommandError(f"--concealer {item!r}: {path} not found")
        files[kind] = path
    chosen, left_out = {}, {}
    for name in [m.strip() for m in args.concealment.split(",") if m.strip()]:
        if name not in METHODS or name == "auto":
            raise CommandError(f"--concealment {name!r}: use none, bidirectional or autoregressive")
        sel = select_concealer(name, files.get(name), codec.model_id, device=args.device, passes=args.passes,
                               threshold=args.threshold, mode=args.conceal_mode)
        if sel.fallback_reason:
            left_out[name] = sel.fallback_reason
        else:
            chosen[name] = sel.concealer
    if not chosen:
        raise CommandError("--concealment: no method is available: " + "; ".join(f"{k}: {v}" for k, v in left_out.items()))
    return chosen, left_out


def _run_loss(args: argparse.Namespace, codec, segmenter, note: str) -> int:
    from sqgan_core.loss_evaluation import evaluate_loss, plot_loss

    methods, left_out = _concealers(args, codec)
    grid = list(args.grid or [(0.5, 0.5)])
    frames, source = held_out_frames(args.data, args.split, args.seed, args.scenario, args.frames, args.stride)
    result = evaluate_loss(codec, frames, grid, args.loss, methods, runs=args.loss_runs, seed=args.seed,
                           packet_bytes=args.packet_bytes, segmenter=segmenter)
    result["source"] = source
    result["concealers"] = {name: {"file": model_path_label(c.source), "mode": c.mode, "passes": c.passes,
                                   "threshold": c.threshold,
                                   **{k: c.metadata.get(k) for k in ("steps", "best_step", "val_top1_image",
                                                                     "val_top1_semantic")}}
                            for name, c in methods.items() if hasattr(c, "source")}
    if left_out:
        result["left_out"] = left_out
    if segmenter is None:
        result["unavailable"] = {"miou_seg_recon": note}
    text = json.dumps(result) if args.json else json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    if args.plot:
        plot_loss(result, args.plot)
    print(text)
    return 0


def add_scenario_option(p: argparse.ArgumentParser) -> None:
    """--scenario, shared with `sqgan bench segmenter` so both measure on the same held-out frames."""
    p.add_argument("--scenario", default=ALL_SCENARIOS,
                   help="simulator scenario for rendered frames: `all` (default) splits --frames evenly over "
                        "every scenario in configs/scenarios/ but the closed-loop hazard_* ones, or one name (e.g. rainy_night) or YAML path, "
                        "rendered from --seed")


def baseline_codec(spec: str, device: str):
    """The codec of `--baseline`: `shipped` (the shipped checkpoint) or a checkpoint path."""
    from sqgan_core.checkpoint import DEFAULT_CHECKPOINT, CheckpointError
    from sqgan_core.codec import Codec

    path = DEFAULT_CHECKPOINT if spec == SHIPPED else Path(spec)
    try:
        return Codec.from_checkpoint(path, device=device)
    except CheckpointError as exc:
        raise CommandError(f"--baseline: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from sqgan_core.evaluation import OPERATING_POINT, PAPER_GRID, compare, evaluate

    from sqgan_core.imageio import check_output_path

    grid = list(args.grid or PAPER_GRID)
    try:  # outputs are checked before minutes of rendering and coding, not after
        for path, kind in ((args.output, "file"), (args.plot, "rgb")):
            if path is not None:
                check_output_path(path, kind)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    codec = codec_from_args(args)  # every model loads before the frames are rendered: a bad path fails fast
    baseline = baseline_codec(args.baseline, args.device) if args.baseline else None
    if baseline is not None and OPERATING_POINT not in grid:
        grid.append(OPERATING_POINT)  # the comparison needs it; the extra row costs one grid point
    if args.segmenter is not None and str(args.segmenter).lower() == "none":
        segmenter, note = None, "segmenter disabled by --segmenter none"
    else:
        segmenter, note = load_segmenter(args.segmenter)
        if segmenter is None and args.segmenter is not None:
            raise CommandError(f"--segmenter: {note}")  # asked for by path: never evaluated without it
    if args.loss:
        if baseline is not None:
            raise CommandError("--baseline compares codecs without loss; run it apart from --loss")
        return _run_loss(args, codec, segmenter, note)
    frames, source = held_out_frames(args.data, args.split, args.seed, args.scenario, args.frames, args.stride)
    if args.codebooks:
        have = codec.codebook_sizes()[0]
        missing = [s for s in args.codebooks if s not in have]
        if missing:
            raise CommandError(f"--codebooks {missing}: the model has {', '.join(map(str, have))} (add reductions "
                               "with `sqgan train codebooks`)")
    result = evaluate(codec, frames, grid, segmenter, note, not args.no_jpeg2000,
                      codebooks=[None] + [s for s in args.codebooks or [] if s != codec.prior_x.num_symbols])
    result["source"] = source
    if not args.data:
        result["held_out"] = {"scenarios": [{k: v for k, v in asdict(s).items() if k != "path"}
                                            for s in scenario_plan(args.scenario, args.seed, args.frames)],
                              "stride": args.stride}
    if baseline is not None:
        base = evaluate(baseline, frames, grid, segmenter, note, with_jpeg2000=False)
        result["baseline"] = {k: base[k] for k in ("model", "model_id", "untrained", "grid")}
        result["comparison"] = compare(result["grid"], base["grid"], OPERATING_POINT)
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
