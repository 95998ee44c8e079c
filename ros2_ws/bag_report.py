"""The report of `sqgan bag eval`: report.md with rate-distortion plots, the loss comparison and example
strips (PNG), all from the run's summary so the page can be regenerated and never typed by hand."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sqgan_core.labels import colorize

CODEC_LABELS = {"sqgan": "SQ-GAN", "jpeg": "JPEG", "jpeg2000": "JPEG 2000", "webp": "WebP", "avif": "AVIF",
                "hevc": "HEVC intra (x265)", "av1": "AV1 intra (libaom)"}
RD_PANELS = (("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"), ("miou_seg", "segmenter mIoU vs ground truth"),
             ("miou_seg_vs_orig", "segmenter mIoU vs segmenter on the original"))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name)
    _plt().close(fig)
    return name


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _series(result: dict, codec: str, link: str) -> list[dict]:
    return sorted((s for s in result["series"] if s["codec"] == codec and s["link"] == link and s.get("bpp")),
                  key=lambda s: s["bpp"])


def _codecs(result: dict) -> list[str]:
    seen: list[str] = []
    for s in result["series"]:
        if s["codec"] not in seen:
            seen.append(s["codec"])
    return seen


def plot_rd(result: dict, out: Path) -> list[str]:
    """One PNG per metric with every codec's clean-link curve; returns the file names written."""
    plt = _plt()
    clean = result["links"]["clean"]
    names = []
    for key, label in RD_PANELS:
        if all(s.get(key) is None for s in result["series"] if s.get("bpp")):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
        for i, codec in enumerate(_codecs(result)):
            pts = [(s["bpp"], s[key]) for s in _series(result, codec, clean) if s.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o" if codec == "sqgan" else "s", ms=4, lw=2 if codec == "sqgan" else 1,
                        color=f"C{i}", label=CODEC_LABELS.get(codec, codec))
        if key.startswith("miou_seg"):
            pts = [(s["bpp"], s["miou_shat"]) for s in _series(result, "sqgan", clean) if s.get("miou_shat") is not None]
            if pts and key == "miou_seg":
                ax.plot(*zip(*pts), marker="o", ms=4, lw=2, ls="--", color="C0", label="SQ-GAN decoded map (s_hat)")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel on the wire (log)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        ax.set_title(f"{result['frames']} frames of {result['bag']}: clean link", fontsize=8)
        names.append(_save(fig, out, f"rd_{key}.png"))
    return names


def operating_rows(result: dict) -> list[tuple[dict, dict | None]]:
    """(clean, lossy) summary of each codec at the operating point: SQ-GAN there, the classic codecs at
    the rate matched to it."""
    mx, ms = result["operating_point"]
    sq_rate, matched = f"m={mx:g},{ms:g}", f"matched m={mx:g},{ms:g}"
    rows = []
    for codec in _codecs(result):
        rate = sq_rate if codec == "sqgan" else matched
        pick = {s["link"]: s for s in result["series"] if s["codec"] == codec and s["rate"] == rate}
        if result["links"]["clean"] in pick:
            rows.append((pick[result["links"]["clean"]], pick.get(result["links"]["lossy"])))
    return rows


def plot_loss(result: dict, out: Path) -> str:
    """Frames delivered and quality of what is shown, clean vs lossy link, every codec side by side."""
    plt = _plt()
    rows = operating_rows(result)
    labels = [CODEC_LABELS.get(c["codec"], c["codec"]) for c, _ in rows]
    metric = "miou_seg" if any(c.get("miou_seg") is not None for c, _ in rows) else "miou_seg_vs_orig"
    panels = [("delivered_fraction", "frames delivered"), ("psnr", "PSNR (dB) of what is shown"),
              (metric, "segmenter mIoU of what is shown")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=110)
    x = np.arange(len(rows))
    for ax, (key, title) in zip(axes, panels):
        clean = [c.get(key) or 0.0 for c, _ in rows]
        lossy = [(lo or {}).get(key) or 0.0 for _, lo in rows]
        ax.bar(x - 0.2, clean, 0.4, label="clean link")
        ax.bar(x + 0.2, lossy, 0.4, label=result["links"]["lossy"])
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    mx, ms = result["operating_point"]
    fig.suptitle(f"at SQ-GAN ({mx:g}, {ms:g}) and the classic codecs at the same rate; "
                 f"{result['links']['lossy_description']}", fontsize=8)
    return _save(fig, out, "loss.png")


def write_strips(result: dict, series: Sequence[Any], frames: Any, examples: Sequence[int], out: Path) -> list[str]:
    """Per example frame: original | ground truth | SQ-GAN's s_hat, then every codec at the operating point
    on the clean link (top) and on the lossy link (bottom)."""
    plt = _plt()
    mx, ms = result["operating_point"]
    pick = {}
    for s in series:
        if s.examples and s.rate in (f"m={mx:g},{ms:g}", f"matched m={mx:g},{ms:g}"):
            pick[(s.codec, s.link)] = s
    codecs = [c for c in _codecs(result) if (c, result["links"]["clean"]) in pick]
    names = []
    for j, k in enumerate(examples):
        cols = 2 + len(codecs)
        fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 3.2), dpi=110)
        sem = frames.truth[k] if frames.truth is not None else frames.labels[k]
        firsts = [(frames.rgb[k], "original"), (colorize(sem), "ground truth" if frames.truth is not None
                                                else "segmenter on original")]
        sq = pick.get(("sqgan", result["links"]["clean"]))
        for r, link in enumerate((result["links"]["clean"], result["links"]["lossy"])):
            for c, (img, title) in enumerate(firsts if r == 0 else []):
                axes[r, c].imshow(img)
                axes[r, c].set_title(title, fontsize=7)
            if r == 1:
                axes[r, 0].text(0.5, 0.5, f"bottom row:\n{link}", ha="center", va="center", fontsize=8)
                if sq is not None and j < len(sq.example_labels):
                    axes[r, 1].imshow(colorize(sq.example_labels[j]))
                    axes[r, 1].set_title("SQ-GAN decoded map (s_hat),\nclean link", fontsize=6)
            for c, codec in enumerate(codecs):
                s = pick.get((codec, link))
                ax = axes[r, 2 + c]
                if s is not None and j < len(s.examples):
                    ax.imshow(s.examples[j])
                    row = s.rows[k]
                    lost = "" if row["arrived"] else " LOST (held)"
                    ax.set_title(f"{CODEC_LABELS.get(codec, codec)}\n{row['bpp_wire']:.3f} bpp, "
                                 f"{row['psnr']:.1f} dB{lost}", fontsize=6)
        for ax in axes.flat:
            ax.axis("off")
        names.append(_save(fig, out, f"strip_{k:04d}.png"))
    return names


def _bd_table(result: dict) -> list[str]:
    lines = []
    for metric, row in result["bd_rate"].items():
        if not row:
            continue
        names = sorted(row)
        if not lines:
            lines += ["| metric | " + " | ".join(CODEC_LABELS.get(n, n) for n in names) + " |",
                      "| --- |" + " --- |" * len(names)]
        cells = []
        for n in names:
            v = row[n]["bd_rate_pct"]
            cells.append(f"{v:+.1f} %" if v is not None else f"n/a ({row[n].get('reason', '')})")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return lines


def write_report(out: Path, result: dict, series: Sequence[Any], frames: Any, examples: Sequence[int]) -> None:
    rd = plot_rd(result, out)
    loss = plot_loss(result, out)
    strips = write_strips(result, series, frames, examples, out)
    mx, ms = result["operating_point"]
    lossy = result["links"]["lossy"]
    lines = [f"# Bag evaluation: {result['bag']}", "",
             f"{result['frames']} frames of `{result['camera']}`"
             + (f" with ground truth from `{result['semantic']}`" if result.get("semantic") else
                " (no semantic topic: SQ-GAN encodes the segmenter's map, figures against ground truth n/a)")
             + f"; model `{result['model']}` ({result['model_id']}); segmenter `{result.get('segmenter')}`; "
               f"{result['wall_s']} s on {result['machine']['threads']} thread(s).", "",
             f"Every codec's frames cross the same link model in packets of at most {result['packet_bytes']} bytes "
             "with the same per-packet overhead; bpp counts every byte on the wire. A classic frame is lost when any "
             "of its packets is; SQ-GAN loses only the tokens of a lost packet. A lost frame is shown as the last "
             "one that arrived, and the figures are of what is shown. Each codec's packets meet the same loss "
             "draws in send order (seeds listed in summary.json), a paired comparison.", "",
             f"## At the operating point: SQ-GAN ({mx:g}, {ms:g}), the others at the same rate", "",
             "| codec | bpp | PSNR | MS-SSIM | mIoU (seg, GT) | mIoU (seg vs orig) | person | rider | car | light | "
             f"sign | delivered on {lossy} | PSNR on {lossy} | mIoU on {lossy} |",
             "| --- |" + " --- |" * 13]
    for c, lo in operating_rows(result):
        iou = c.get("iou_seg") or {}
        lo = lo or {}
        lines.append("| " + " | ".join([
            CODEC_LABELS.get(c["codec"], c["codec"]), _fmt(c["bpp"], 4), _fmt(c["psnr"], 2), _fmt(c["ms_ssim"]),
            _fmt(c.get("miou_seg")), _fmt(c.get("miou_seg_vs_orig")),
            *[_fmt(iou.get(n)) for n in ("person", "rider", "car", "traffic light", "traffic sign")],
            f"{lo.get('frames_delivered', 'n/a')}/{lo.get('frames', 'n/a')}", _fmt(lo.get("psnr"), 2),
            _fmt(lo.get("miou_seg") if lo.get("miou_seg") is not None else lo.get("miou_seg_vs_orig"))]) + " |")
    sq = [s for s in result["series"] if s["codec"] == "sqgan" and s.get("miou_shat") is not None]
    if sq:
        lines += ["", "SQ-GAN's decoded semantic map (s_hat) against ground truth: " + ", ".join(
            f"{s['rate']} on {s['link']}: mIoU {_fmt(s['miou_shat'])}" for s in sq) + "."]
    lines += ["", f"![loss]({loss})", "", "## Rate-distortion (clean link)", ""]
    lines += [f"![{n}]({n})" for n in rd]
    lines += ["", "## BD-rate of SQ-GAN against each codec", "",
              "Average bit-rate difference at equal quality (negative: SQ-GAN needs fewer bits), piecewise-cubic "
              "over the overlapping quality range of each curve's Pareto front (points a cheaper point beats are "
              "dropped); `miou_shat_vs_miou_seg` puts SQ-GAN's decoded map against the segmenter on each codec's "
              "image. Positive numbers are losses and are reported as they are.", ""]
    lines += _bd_table(result) or ["(no codec has a comparable curve)"]
    lines += ["", "## All series", "", "| codec | rate | link | frames delivered | bpp | PSNR | MS-SSIM | mIoU (seg, GT) "
              "| encode ms p50 | decode ms p50 |", "| --- |" + " --- |" * 9]
    for s in result["series"]:
        if "unavailable" in s:
            lines.append(f"| {s['codec']} | {s['unavailable']} | | | | | | | | |")
            continue
        lines.append(f"| {s['codec']} | {s['rate']} | {s['link']} | {s['frames_delivered']}/{s['frames']} | "
                     f"{_fmt(s['bpp'], 4)} | {_fmt(s['psnr'], 2)} | {_fmt(s['ms_ssim'])} | {_fmt(s.get('miou_seg'))} | "
                     f"{_fmt(s['encode_ms_p50'], 1)} | {_fmt(s['decode_ms_p50'], 1)} |")
    if strips:
        lines += ["", "## Examples", ""] + [f"![{n}]({n})" for n in strips]
    if result.get("unavailable"):
        lines += ["", "## Not measured", ""] + [f"- {k}: {v}" for k, v in result["unavailable"].items()]
    lines += ["", "Per-frame figures: `frames.csv`; everything above: `summary.json`."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def write_stream_report(out: Path, summary: dict, examples: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """A decoded sqgan stream: what the RSU would show, with the stream's rate and decode time."""
    plt = _plt()
    names = []
    for j, (image, labels) in enumerate(examples):
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.4), dpi=110)
        axes[0].imshow(image)
        axes[0].set_title("reconstruction", fontsize=8)
        axes[1].imshow(colorize(labels))
        axes[1].set_title("decoded semantic map", fontsize=8)
        for ax in axes:
            ax.axis("off")
        names.append(_save(fig, out, f"strip_{j}.png"))
    st = summary["stream"]
    lines = [f"# Decoded sqgan stream: {summary['bag']} `{summary['camera']}`", "",
             f"{st['frames_decoded']}/{st['frames']} frames decoded with `{summary['model']}` ({summary['model_id']}); "
             f"mean {_fmt(st['bpp'], 4)} bpp; decode p50 {_fmt(st['decode_ms_p50'], 1)} ms.", ""]
    if summary.get("decode_errors"):
        lines += ["Frames that did not decode, by error:", ""] + [f"- {n} x {e}" for e, n in
                                                                   summary["decode_errors"].items()] + [""]
    lines += [f"![{n}]({n})" for n in names]
    (out / "report.md").write_text("\n".join(lines) + "\n")
