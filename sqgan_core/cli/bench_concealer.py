"""`sqgan bench concealer --json`: how long concealment takes per frame, per method and device.

Held-out frames at (m_x, m_s) lose packets on a Bernoulli channel; for every frame that arrives with
lost tokens, each method conceals both streams (the image stream reads the decoded s_hat, as in the
RSU), timed apart from the decoder. Devices: cpu, and cuda when available."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sqgan_core.arguments import keep_fraction, positive_int
from sqgan_core.cli.model_options import add_model_options, codec_from_args
from sqgan_core.errors import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("concealer", help="concealment latency per frame, per method and device (JSON)",
                       description=__doc__)
    p.add_argument("--frames", type=positive_int, default=16)
    p.add_argument("--loss", default="bernoulli:0.2", help="loss spec for the lossy frames (default bernoulli:0.2)")
    p.add_argument("--mx", type=keep_fraction, default=0.5)
    p.add_argument("--ms", type=keep_fraction, default=0.5)
    p.add_argument("--concealment", default="bidirectional,autoregressive")
    p.add_argument("--seed", type=int, default=9001)
    p.add_argument("--json", action="store_true")
    p.add_argument("-o", "--output", type=Path)
    add_model_options(p)
    p.set_defaults(func=_run)


def _lossy_frames(codec, frames, mx: float, ms: float, spec, seed: int):
    from sqgan_core.streaming.assembler import FrameAssembler
    from sqgan_core.streaming.loss import drop_packets
    from sqgan_core.streaming.stream import StreamEncoder

    enc = StreamEncoder(codec, 1, m_x=mx, m_s=ms, first_seq=0)
    asm = FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id, max_tokens=codec.max_tokens, frame_timeout=0.05)
    model, rng, out = spec.model(), np.random.default_rng(seed), []
    for k, (rgb, lab) in enumerate(frames):
        e = enc.encode(rgb, lab)
        survivors, _ = drop_packets(e.packets, model, rng)
        got = [f for p in survivors for f in asm.push(p, 0.1 * k)] + asm.poll(0.1 * k + 0.06)
        out += [f for f in got if f.seq == e.seq and not f.complete]
    return out


def _time(codec, concealer, frames) -> dict:
    import torch

    from sqgan_core.bitstream import DOWNSAMPLE
    from sqgan_core.models.concealer import s_hat_token_histogram

    ms, lost = [], []
    for f in frames:
        grid = (f.header.grid_h, f.header.grid_w)
        t0 = time.perf_counter()
        cs = concealer.semantic(f)
        t1 = time.perf_counter()
        with torch.inference_mode():
            s_idx = codec.decode_semantic(torch.from_numpy(cs.indices).to(codec.device)[None], grid, f.header.log2_js,
                                          codec.soft_codes("semantic", cs))
            hist = s_hat_token_histogram(s_idx, DOWNSAMPLE)[0]
        if codec.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        concealer.image(f, hist)
        if codec.device.type == "cuda":
            torch.cuda.synchronize()
        t3 = time.perf_counter()
        ms.append(1000 * ((t1 - t0) + (t3 - t2)))
        lost.append(f.tokens_lost)
    if not ms:
        return {"frames": 0}
    return {"frames": len(ms), "tokens_lost_mean": float(np.mean(lost)), "ms_p50": float(np.percentile(ms, 50)),
            "ms_p95": float(np.percentile(ms, 95)), "ms_mean": float(np.mean(ms))}


def _run(args: argparse.Namespace) -> int:
    import torch

    from sqgan_core.codec import Codec
    from sqgan_core.heldout import held_out_frames
    from sqgan_core.streaming.concealment import select_concealer
    from sqgan_core.streaming.loss import LossSpecError, parse_loss

    try:
        spec = parse_loss(args.loss)
    except LossSpecError as exc:
        raise CommandError(f"--loss: {exc}") from None
    methods = [m.strip() for m in args.concealment.split(",") if m.strip()]
    if not methods or any(m not in ("bidirectional", "autoregressive") for m in methods):
        raise CommandError(f"--concealment {args.concealment!r}: bidirectional and/or autoregressive")
    codec = codec_from_args(args)
    frames, source = held_out_frames(None, None, args.seed, "all", args.frames, 5)
    lossy = _lossy_frames(codec, frames, args.mx, args.ms, spec, args.seed)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict = {"source": source, "loss": spec.label, "mx": args.mx, "ms": args.ms, "torch_threads": torch.get_num_threads(),
                    "frames_with_lost_tokens": len(lossy), "devices": {}}
    ckpt = codec.metadata.get("checkpoint")
    for dev in devices:
        c = codec if dev == str(codec.device) else (Codec.from_checkpoint(ckpt, device=dev) if ckpt else None)
        if c is None:
            continue
        result["devices"][dev] = {}
        for m in methods:
            sel = select_concealer(m, None, c.model_id, device=dev)
            if sel.fallback_reason:
                result["devices"][dev][m] = {"unavailable": sel.fallback_reason}
                continue
            _time(c, sel.concealer, lossy[:1])  # warm-up
            result["devices"][dev][m] = _time(c, sel.concealer, lossy)
    text = json.dumps(result) if args.json else json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return 0
