"""docs/results.md from `sqgan bench all` and `sqgan bag eval` output: every figure on the page comes
from those JSON files, so the page is regenerated, never edited by hand."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ros2_ws.bag_report import CODEC_LABELS, _bd_table, _fmt, operating_rows


def _bench(result: dict, name: str) -> dict | None:
    return next((e for e in result["benchmarks"] if e["name"] == name), None)


def _missing(entry: dict | None, name: str) -> list[str]:
    if entry is None:
        return [f"({name} was not run)"]
    return [f"({name} failed: {entry['error']})"] if "error" in entry else []


def _codec_section(entry: dict | None) -> list[str]:
    lines = ["## Codec stages (`sqgan bench codec`)", ""]
    if _missing(entry, "codec"):
        return lines + _missing(entry, "codec") + [""]
    r = entry["result"]
    lines += [f"{r['config']} model, {r['height']}x{r['width']}, (m_x, m_s) = ({r['mx']:g}, {r['ms']:g}), "
              f"{r['threads']} torch thread(s); ms p50 (p95).", "",
              "| device | " + " | ".join(next(iter(d["stages_ms"] for d in r["devices"].values() if "stages_ms" in d)))
              + " | end to end |", "| --- |" + " --- |" * 7]
    for dev, d in r["devices"].items():
        if "stages_ms" not in d:
            lines.append(f"| {dev} | not measured (CUDA available: {d.get('available')}) |")
            continue
        cells = [f"{v['p50']:.1f} ({v['p95']:.1f})" for v in d["stages_ms"].values()]
        e2e = d["end_to_end_ms"]
        lines.append(f"| {d.get('name', dev)} | " + " | ".join(cells) + f" | {e2e['p50']:.1f} ({e2e['p95']:.1f}) |")
    return lines + [""]


def _segmenter_section(entry: dict | None) -> list[str]:
    lines = ["## Segmenter (`sqgan bench segmenter`)", ""]
    if _missing(entry, "segmenter"):
        return lines + _missing(entry, "segmenter") + [""]
    r = entry["result"]
    lines += [f"{r['frames']} held-out frames ({r['height']}x{r['width']}) of {r['source']}.", "",
              "| device | latency ms p50 | p95 | mIoU | person | car | traffic light | traffic sign |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for dev, d in r["devices"].items():
        if "latency_ms" not in d:
            continue
        iou = d["iou_per_class"]
        lines.append(f"| {dev} | {d['latency_ms']['p50']} | {d['latency_ms']['p95']} | {_fmt(d['miou'])} | "
                     + " | ".join(_fmt(iou.get(n)) for n in ("person", "car", "traffic light", "traffic sign")) + " |")
    return lines + [""]


def _stream_section(entries: list[dict | None]) -> list[str]:
    lines = ["## Streaming core, N vehicles in one process (`sqgan bench stream`)", ""]
    for entry in entries:
        if entry is None:
            continue
        if "error" in entry:
            lines += _missing(entry, entry["name"])
            continue
        r = entry["result"]
        lines += [f"{r['device']}, profile {r['profile']}, (m_x, m_s) = ({r['mx']:g}, {r['ms']:g}), "
                  f"{r['frame_size'][0]}x{r['frame_size'][1]}, {r['host']['torch_threads']} torch thread(s)"
                  + (f", {r['host']['gpu']}" if r["host"].get("gpu") else "") + ".", "",
                  "| vehicles | frames decoded / encoded | fps (all) | fps per vehicle | latency ms p50 | p95 | bpp |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in r["cases"]:
            lines.append(f"| {c['vehicles']} | {c['frames_decoded']}/{c['frames_encoded']} | {c['fps']} | "
                         f"{c['fps_per_vehicle']} | {c['latency_ms_p50']} | {c['latency_ms_p95']} | {c['bpp_sent']} |")
        lines.append("")
    if len(lines) == 2:
        lines += ["(not run)", ""]
    return lines


def _classic_section(entry: dict | None) -> list[str]:
    lines = ["## Encode and decode time, every codec in one run (`sqgan bench classic`)", ""]
    if _missing(entry, "classic"):
        return lines + _missing(entry, "classic") + [""]
    r = entry["result"]
    lines += [f"{r['frames']} simulator frames of {r['frame_size'][0]}x{r['frame_size'][1]}, each classic codec at "
              f"SQ-GAN's rate at ({r['mx']:g}, {r['ms']:g}) on that frame; {r['note']}.", "",
              "| codec | bpp | PSNR | encode ms p50 | decode ms p50 | rate search ms p50 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, c in r["codecs"].items():
        if "unavailable" in c:
            lines.append(f"| {CODEC_LABELS.get(name, name)} | unavailable: {c['unavailable']} | | | | |")
            continue
        lines.append(f"| {CODEC_LABELS.get(name, name)} | {c['bpp']} | {c['psnr']} | {c['encode_ms_p50']} | "
                     f"{c['decode_ms_p50']} | {c.get('rate_search_ms_p50', '')} |")
    return lines + [""]


def _pipeline_section(entry: dict | None) -> list[str]:
    lines = ["## ROS 2 pipeline (`sqgan bench pipeline`)", ""]
    if _missing(entry, "pipeline"):
        return lines + _missing(entry, "pipeline") + [""]
    r = entry["result"]
    lines += [f"Latency: {r['latency']}; one torch thread per node.", "",
              "| vehicles | device | fps per vehicle | latency ms p50 | p95 | encode ms p50 | RSU ms p50 | frames "
              "dropped at vehicle |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in r["cases"]:
        lines.append(f"| {c['vehicles']} | {c['device']} | {c['fps_per_vehicle']} | {c['latency_ms_p50']} | "
                     f"{c['latency_ms_p95']} | {c['encode_ms_p50']} | {c['rsu_ms_p50']} | "
                     f"{c['frames_dropped_at_vehicle']} |")
    return lines + [""]


def _sim_section(entry: dict | None) -> list[str]:
    lines = ["## Embedded simulator (`sqgan bench sim`)", ""]
    if _missing(entry, "sim"):
        return lines + _missing(entry, "sim") + [""]
    r = entry["result"]
    return lines + [f"{r['width']}x{r['height']}, {r['frames']} frames: {r['fps']} fps "
                    f"({r['ms_per_frame_p50']} ms p50, {r['fps_cpu']} fps per core of CPU time), {r['renderer']}.", ""]


def _bag_section(summary: dict | None, page: Path, summary_path: Path | None) -> list[str]:
    lines = ["## A recorded drive through every codec and a lossy link (`sqgan bag eval`)", ""]
    if summary is None:
        return lines + ["(no bag evaluation in this run)", ""]
    rel = Path(os.path.relpath(summary_path.parent, page.parent)).as_posix() if summary_path else "."
    mx, ms = summary["operating_point"]
    lines += [f"{summary['frames']} frames of `{summary['bag']}` ({summary['camera']}), ground truth from "
              f"`{summary.get('semantic')}`; model `{summary['model']}`; {summary['wall_s']} s. "
              f"Full report: [{rel}/report.md]({rel}/report.md).", "",
              f"At SQ-GAN ({mx:g}, {ms:g}) and every other codec at the same rate, on a clean link and on "
              f"{summary['links']['lossy']} ({summary['links']['lossy_description']}, "
              f"{summary['links'].get('lossy_runs', 1)} realisations):", "",
              f"| codec | bpp | PSNR | MS-SSIM | mIoU (seg, GT) | person | car | delivered on {summary['links']['lossy']} "
              "| PSNR there | mIoU there |", "| --- |" + " --- |" * 9]
    for c, lo in operating_rows(summary):
        lo = lo or {}
        iou = c.get("iou_seg") or {}
        lines.append("| " + " | ".join([
            CODEC_LABELS.get(c["codec"], c["codec"]) + (f" (s_hat mIoU {_fmt(c.get('miou_shat'))})"
                                                        if c["codec"] == "sqgan" else ""),
            _fmt(c["bpp"], 4), _fmt(c["psnr"], 2), _fmt(c["ms_ssim"]), _fmt(c.get("miou_seg")),
            _fmt(iou.get("person")), _fmt(iou.get("car")),
            f"{lo.get('frames_delivered', 'n/a')}/{lo.get('frames', 'n/a')}", _fmt(lo.get("psnr"), 2),
            _fmt(lo.get("miou_seg"))]) + " |")
    lines += ["", f"![loss]({rel}/loss.png)", "", "BD-rate of SQ-GAN against each codec (negative: SQ-GAN needs "
              "fewer bits for the same quality; positive numbers are losses):", ""]
    lines += _bd_table(summary) or ["(no comparable curves)"]
    lines += [""] + [f"![{k}]({rel}/rd_{k}.png)" for k in ("psnr", "ms_ssim", "miou_seg")
                     if summary_path and (summary_path.parent / f"rd_{k}.png").exists()]
    return lines + [""]


def write_page(page: Path, result: dict, bag_summary: Path | None) -> None:
    summary = json.loads(bag_summary.read_text()) if bag_summary and bag_summary.is_file() else None
    host = result["host"]
    lines = ["# Results", "",
             f"Generated by `sqgan bench all --json -o docs/results/bench_all.json --page docs/results.md` on "
             f"{result['date']}: {host['cpus']} CPU(s), {host['machine']}, Python {host['python']}, torch "
             f"{host['torch']}, GPU: {host['gpu'] or 'none'}; load average at the end {host['load_avg_1m_at_end']}"
             f"{' (QUICK run: smoke figures, not results)' if result.get('quick') else ''}. Every figure below comes "
             "from that run's JSON (docs/results/bench_all.json) and the bag report; do not edit by hand.", ""]
    lines += _bag_section(summary, page, bag_summary)
    lines += _codec_section(_bench(result, "codec"))
    lines += _segmenter_section(_bench(result, "segmenter"))
    lines += _stream_section([_bench(result, "stream"), _bench(result, "stream_cuda")])
    lines += _classic_section(_bench(result, "classic"))
    lines += _pipeline_section(_bench(result, "pipeline"))
    lines += _sim_section(_bench(result, "sim"))
    lines += ["## Wall time and memory of each benchmark", "", "| benchmark | wall s | peak RSS MB | status |",
              "| --- | --- | --- | --- |"]
    for e in result["benchmarks"]:
        lines.append(f"| {e['name']} | {e['wall_s']} | {e.get('peak_rss_mb', 'n/a')} | "
                     f"{'error: ' + e['error'] if 'error' in e else 'ok'} |")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines) + "\n")
