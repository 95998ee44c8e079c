"""Quality under packet loss, per concealment method (`sqgan eval --loss`).

Every frame is encoded once per (m_x, m_s) into the stream's real packets; each loss spec drops packets
with one seeded channel (its state carried from frame to frame, as on a radio link); the RSU's real
`FrameAssembler` reassembles what survived, and every concealment method decodes the *same* assembled
frame, so methods differ only by what they do with the lost tokens (paired comparison). A frame whose
frame info never arrived cannot be decoded by any method: the previous frame's output is shown again
(counted as `frames_reused`), as a receiver would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sqgan_core.codec import Codec
from sqgan_core.evaluation import json_safe, model_path_label, safety_iou
from sqgan_core.metrics import confusion, miou_from_confusion, ms_ssim, psnr
from sqgan_core.streaming.assembler import FrameAssembler
from sqgan_core.streaming.loss import LossSpec, drop_packets
from sqgan_core.streaming.stream import StreamDecoder, StreamEncoder

OPERATING_POINT = (0.5, 0.5)
MS_SSIM_MIN_SIDE = 161
Segment = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Acc:
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    shat_cm: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))
    seg_cm: np.ndarray = field(default_factory=lambda: np.zeros((19, 20), np.int64))
    conceal_ms: list[float] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)

    def add(self, rgb: np.ndarray, lab: np.ndarray, image: np.ndarray, labels: np.ndarray,
            segmenter: Segment | None) -> None:
        self.psnr.append(psnr(rgb, image))
        if min(rgb.shape[:2]) >= MS_SSIM_MIN_SIDE:  # 5 scales need it; smaller frames report null
            self.ms_ssim.append(ms_ssim(rgb, image))
        self.shat_cm += confusion(labels, lab)
        if segmenter is not None:
            self.seg_cm += confusion(segmenter(image), lab)

    def figures(self, with_seg: bool) -> dict[str, Any]:
        return {"psnr": float(np.mean(self.psnr)), "ms_ssim": float(np.mean(self.ms_ssim)) if self.ms_ssim else None,
                "miou_shat": miou_from_confusion(self.shat_cm), "iou_shat": safety_iou(self.shat_cm),
                "miou_seg_recon": miou_from_confusion(self.seg_cm) if with_seg else None,
                "conceal_ms_mean": float(np.mean(self.conceal_ms)) if self.conceal_ms else None,
                "decode_ms_mean": float(np.mean(self.decode_ms)) if self.decode_ms else None}


PERIOD_S = 0.1  # frames arrive at 10 Hz
WAIT_S = 0.06  # each frame's packets are all in by then (no delay modelled): release it, complete or not


def _assembler(codec: Codec, packet_bytes: int) -> FrameAssembler:
    return FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id, max_tokens=codec.max_tokens,
                          max_packet_bytes=packet_bytes, frame_timeout=0.05)


def _concealer_ms(decoder: StreamDecoder) -> float:
    stats = getattr(decoder.concealer, "stats", None)
    return float(getattr(stats, "ms_total", 0.0))


def evaluate_loss(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], grid: Sequence[tuple[float, float]],
                  losses: Sequence[LossSpec], methods: Mapping[str, Any], *, runs: int = 1, seed: int = 0,
                  packet_bytes: int = 256, segmenter: Segment | None = None, progress: bool = True) -> dict:
    """Figures per (m_x, m_s) x loss x method, with the lossless figures of the same frames."""
    from tqdm import tqdm

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to evaluate")
    decoders = {name: StreamDecoder(codec, c) for name, c in methods.items()}
    plain = StreamDecoder(codec)
    out_grid = []
    for gi, (mx, ms) in enumerate(grid):
        enc = StreamEncoder(codec, vehicle_id=1, m_x=mx, m_s=ms, max_packet_bytes=packet_bytes, first_seq=0)
        encoded = [enc.encode(rgb, lab) for rgb, lab in tqdm(frames, desc=f"encode m=({mx:g},{ms:g})",
                                                               disable=not progress, leave=False)]
        # lossless: every packet, one decode (identical for every method: nothing to conceal)
        clean, clean_out = _Acc(), []
        asm = _assembler(codec, packet_bytes)
        for k, (e, (rgb, lab)) in enumerate(zip(encoded, frames)):
            got = [f for p in e.packets for f in asm.push(p, PERIOD_S * k)]
            got += asm.poll(PERIOD_S * k + WAIT_S)
            t0 = time.perf_counter()
            dec = plain.decode(got[-1])
            clean.decode_ms.append(1000 * (time.perf_counter() - t0))
            clean.add(rgb, lab, dec.image, dec.labels, segmenter)
            clean_out.append(dec)
        lossless = clean.figures(segmenter is not None)
        lossless["bpp"] = float(np.mean([e.bpp for e in encoded]))
        rows = []
        for li, spec in enumerate(losses):
            accs = {name: _Acc() for name in decoders}
            sent = lost_pkts = tok_sent = tok_lost = reused = partial = 0
            for run in range(runs):
                rng = np.random.default_rng([seed, gi, li, run])
                model = spec.model()
                asm = _assembler(codec, packet_bytes)
                last: dict[str, tuple[np.ndarray, np.ndarray] | None] = {name: None for name in decoders}
                bar = tqdm(list(zip(encoded, frames, clean_out)), desc=f"{spec.label} m=({mx:g},{ms:g}) run {run + 1}",
                           disable=not progress, leave=False)
                for k, (e, (rgb, lab), clean_dec) in enumerate(bar):
                    survivors, lost_at = drop_packets(e.packets, model, rng)
                    sent += len(e.packets)
                    lost_pkts += len(lost_at)
                    tok_sent += e.n_x + e.n_s
                    got = [f for p in survivors for f in asm.push(p, PERIOD_S * k)]
                    got += asm.poll(PERIOD_S * k + WAIT_S)
                    frame = next((f for f in got if f.seq == e.seq), None)
                    if frame is not None:
                        tok_lost += frame.tokens_lost
                        partial += int(not frame.complete)
                    else:
                        tok_lost += e.n_x + e.n_s
                        reused += 1
                    for name, dec in decoders.items():
                        acc = accs[name]
                        if frame is None:
                            prev = last[name]
                            image, labels = prev if prev is not None else (np.full_like(rgb, 128), np.full_like(lab, 255))
                        elif frame.complete:
                            image, labels = clean_dec.image, clean_dec.labels
                        else:
                            before = _concealer_ms(dec)
                            t0 = time.perf_counter()
                            d = dec.decode(frame)
                            acc.decode_ms.append(1000 * (time.perf_counter() - t0))
                            acc.conceal_ms.append(_concealer_ms(dec) - before)
                            image, labels = d.image, d.labels
                        acc.add(rgb, lab, image, labels, segmenter)
                        last[name] = (image, labels)
            n_frames = runs * len(frames)
            row: dict[str, Any] = {
                "loss": spec.label, "kind": spec.kind, "rate": spec.rate, "burst": spec.burst if spec.kind == "gilbert" else None,
                "packets_sent": sent, "packets_lost_share": lost_pkts / max(1, sent),
                "tokens_lost_share": tok_lost / max(1, tok_sent), "frames": n_frames,
                "frames_with_lost_tokens": partial, "frames_reused": reused, "methods": {}}
            for name, acc in accs.items():
                f = acc.figures(segmenter is not None)
                f["miou_shat_vs_lossless"] = (f["miou_shat"] / lossless["miou_shat"]) if lossless["miou_shat"] else None
                f["psnr_drop_db"] = lossless["psnr"] - f["psnr"]
                row["methods"][name] = f
            rows.append(row)
        out_grid.append({"mx": mx, "ms": ms, "frames": len(frames), "lossless": lossless, "losses": rows})
    checkpoint = codec.metadata.get("checkpoint")
    result = {"frames": len(frames), "runs": runs, "packet_bytes": packet_bytes, "model_id": f"{codec.model_id:04x}",
              "model": model_path_label(checkpoint) if checkpoint else f"untrained:{codec.config.name}",
              "methods": list(decoders), "grid": out_grid}
    result["acceptance"] = loss_acceptance(out_grid)
    return json_safe(result)


# (loss label, the least share of lossless miou_shat kept, the most PSNR lost in dB or None)
ACCEPTANCE = (("bernoulli:0.2", 0.95, 1.0), ("bernoulli:0.4", 0.85, None), ("gilbert:0.2,4", 0.90, None))
BASELINE = "none"


def loss_acceptance(grid: Sequence[dict], at: tuple[float, float] = OPERATING_POINT) -> dict[str, Any]:
    """The concealment issue's targets at (0.5, 0.5), for every loss spec measured and every method;
    `beats_baseline`: each transformer against the no-model baseline on miou_shat and PSNR."""
    row = next((r for r in grid if (r["mx"], r["ms"]) == at), None)
    if row is None:
        return {"measured": False, "why": f"(m_x, m_s) = {at} not in the grid"}
    by_loss = {r["loss"]: r for r in row["losses"]}
    out: dict[str, Any] = {"at": list(at), "targets": []}
    for label, ratio, drop in ACCEPTANCE:
        r = by_loss.get(label)
        if r is None:
            continue
        for name, f in r["methods"].items():
            ok = f["miou_shat_vs_lossless"] is not None and f["miou_shat_vs_lossless"] >= ratio
            if drop is not None:
                ok = ok and f["psnr_drop_db"] <= drop
            out["targets"].append({"loss": label, "method": name, "miou_ratio_min": ratio, "psnr_drop_max": drop,
                                   "miou_ratio": f["miou_shat_vs_lossless"], "psnr_drop": f["psnr_drop_db"], "met": ok})
    beats = []
    for r in row["losses"]:
        base = r["methods"].get(BASELINE)
        if base is None:
            continue
        for name, f in r["methods"].items():
            if name == BASELINE:
                continue
            beats.append({"loss": r["loss"], "method": name,
                          "miou_shat_gain": f["miou_shat"] - base["miou_shat"], "psnr_gain_db": f["psnr"] - base["psnr"],
                          "met": f["miou_shat"] > base["miou_shat"] and f["psnr"] > base["psnr"]})
    out["beats_baseline"] = beats
    return out


def plot_loss(result: dict, path) -> None:
    """miou_shat and PSNR against the packet loss rate, one line per method and loss model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = next((r for r in result["grid"] if (r["mx"], r["ms"]) == OPERATING_POINT), result["grid"][0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "miou_shat", "mIoU of s_hat"), (axes[1], "psnr", "PSNR (dB)")):
        ax.axhline(row["lossless"][key], color="k", ls=":", label="lossless")
        for kind, marker in (("bernoulli", "o"), ("gilbert", "s")):
            pts = sorted((r for r in row["losses"] if r["kind"] == kind), key=lambda r: r["rate"])
            if not pts:
                continue
            for name in result["methods"]:
                ys = [r["methods"][name][key] for r in pts]
                ax.plot([r["rate"] for r in pts], ys, marker=marker, label=f"{name} ({kind})")
        ax.set_xlabel("packet loss rate")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Concealment under packet loss, m=({row['mx']:g},{row['ms']:g}), {result['frames']} frames, "
                 f"model {result['model_id']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["evaluate_loss", "loss_acceptance", "plot_loss"]
