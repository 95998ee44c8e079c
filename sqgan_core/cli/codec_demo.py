"""`sqgan codec-demo`: the codec on its own (the first stage of `make demo`). Encode and decode sample frames at several rates,
report sizes against the paper's bound, quality and time, and write a picture strip and a rate plot.

It reads frames in the Cityscapes layout (the Makefile first exports simulator frames there), so the
codec package never depends on the simulator.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sqgan_core.errors import CommandError
from sqgan_core.arguments import positive_int
from sqgan_core.cli.model_options import add_model_options, codec_from_args

DEFAULT_RATES = ((0.2, 0.2), (0.5, 0.5), (1.0, 1.0))


def _rates(text: str) -> list[tuple[float, float]]:
    try:
        pairs = [tuple(float(v) for v in item.split(",")) for item in text.split(";") if item.strip()]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"rates must look like '0.2,0.2;0.5,0.5', got {text!r}")
    bad = [p for p in pairs if not all(0.0 <= v <= 1.0 for v in p)]
    if bad:
        raise argparse.ArgumentTypeError(f"keep fractions must be in [0, 1], got {bad[0][0]:g},{bad[0][1]:g}")
    return pairs  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codec-demo", help="encode + decode sample frames and report sizes against the paper's bound",
                       description="Codec demo: frames from a Cityscapes-layout directory are encoded and decoded "
                                   "at several (m_x, m_s); writes summary.json, strip.png and rate.png to --out.")
    p.add_argument("--data", type=Path, required=True, help="Cityscapes-layout root (e.g. from `sqgan sim export`)")
    p.add_argument("--split", default=None, help="only this split (default: all)")
    p.add_argument("--frames", type=positive_int, default=8, help="how many frames (default 8)")
    p.add_argument("--rates", type=_rates, default=list(DEFAULT_RATES),
                   help="(m_x, m_s) pairs, e.g. '0.2,0.2;0.5,0.5;1,1' (default)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    add_model_options(p)
    p.set_defaults(func=_run)


def _strip_rows(rows: list[np.ndarray], path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def _rate_plot(per_rate: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    labels = [f"({r['mx']:g}, {r['ms']:g})" for r in per_rate]
    x = np.arange(len(per_rate))
    ax.bar(x - 0.2, [r["bound_bpp"] for r in per_rate], 0.4, label="paper bound (10 bits/index + 1 bit/position)")
    ax.bar(x + 0.2, [r["mean_bpp"] for r in per_rate], 0.4, label="coded frame (header included)")
    ax.set_xticks(x, labels)
    ax.set_xlabel("(m_x, m_s)")
    ax.set_ylabel("bits per pixel")
    ax.set_title("SQ-GAN frame size against the paper's bound")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sqgan_core.data import CityscapesPairs, DatasetError
    from sqgan_core.labels import colorize
    from sqgan_core.metrics import confusion, miou_from_confusion, psnr

    try:
        pairs = CityscapesPairs(args.data, args.split).pairs[: max(args.frames, 1)]
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    codec = codec_from_args(args)
    untrained = bool(codec.metadata.get("untrained"))
    args.out.mkdir(parents=True, exist_ok=True)
    per_rate = []
    strip = []
    for mx, ms in args.rates:
        bits, bounds, bpps, bound_bpps, enc_ms, dec_ms, psnrs = [], [], [], [], [], [], []
        cm = np.zeros((19, 20), dtype=np.int64)
        for i, pair in enumerate(tqdm(pairs, desc=f"m=({mx:g},{ms:g})", unit="frame", leave=False)):
            image, labels = pair.load()
            t0 = time.perf_counter()
            try:
                enc = codec.encode(image, labels, mx, ms)
            except ValueError as exc:
                raise CommandError(f"{pair.image}: {exc}") from None
            t1 = time.perf_counter()
            dec = codec.decode(enc.data)
            t2 = time.perf_counter()
            s = enc.stats
            bits.append(s["bits"]), bounds.append(s["bound_bits"])
            bpps.append(s["bpp"]), bound_bpps.append(s["bound_bpp"])
            enc_ms.append(1e3 * (t1 - t0)), dec_ms.append(1e3 * (t2 - t1))
            psnrs.append(psnr(image, dec.image))
            cm += confusion(dec.labels, labels)
            if (mx, ms) == tuple(args.rates[len(args.rates) // 2]) and i < 4:
                strip.append(np.concatenate([image, dec.image, colorize(dec.labels), colorize(labels)], axis=1))
        per_rate.append({
            "mx": mx, "ms": ms, "frames": len(pairs),
            "mean_bits": float(np.mean(bits)), "mean_bound_bits": float(np.mean(bounds)),
            "mean_bpp": float(np.mean(bpps)), "bound_bpp": float(np.mean(bound_bpps)),
            "paper_bpp": (10 * (mx + ms) + 2) / 256,
            "bits_over_bound": float(np.mean(bits) / np.mean(bounds)),
            "max_excess_bits_over_bound": int(max(b - bd for b, bd in zip(bits, bounds))),
            "encode_ms_p50": float(np.percentile(enc_ms, 50)), "decode_ms_p50": float(np.percentile(dec_ms, 50)),
            "psnr": float(np.mean(psnrs)), "miou_shat": miou_from_confusion(cm),
        })
    summary = {
        "model": codec.metadata.get("checkpoint", f"untrained:{codec.config.name}"),
        "model_id": f"{codec.model_id:04x}",
        "untrained": untrained,
        "data": str(args.data),
        "rates": per_rate,
        "note": ("UNTRAINED weights: sizes and timings are real, reconstructions and their PSNR/mIoU are not "
                 "meaningful") if untrained else "",
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if strip:
        _strip_rows(strip, args.out / "strip.png")
    _rate_plot(per_rate, args.out / "rate.png")

    print(f"SQ-GAN codec demo: {len(pairs)} frames from {args.data}, model {summary['model']} ({summary['model_id']})")
    if untrained:
        print("  ! untrained weights: sizes and timings are real; images and mIoU are not meaningful")
    print(f"  {'m_x':>5} {'m_s':>5} {'bpp':>8} {'bound':>8} {'ratio':>6} {'enc ms':>7} {'dec ms':>7} "
          f"{'PSNR':>6} {'mIoU s^':>7}")
    for r in per_rate:
        print(f"  {r['mx']:5.2f} {r['ms']:5.2f} {r['mean_bpp']:8.5f} {r['bound_bpp']:8.5f} {r['bits_over_bound']:6.3f} "
              f"{r['encode_ms_p50']:7.1f} {r['decode_ms_p50']:7.1f} {r['psnr']:6.2f} {r['miou_shat']:7.3f}")
    print(f"  wrote {args.out / 'summary.json'}, {args.out / 'strip.png'} (original | reconstruction | s_hat | labels), "
          f"{args.out / 'rate.png'}")
    return 0
