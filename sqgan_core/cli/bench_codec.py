"""`sqgan bench codec`: per-stage latency (p50/p95) and parameter counts, on CPU and on CUDA.

Stages follow the data path: encoders (E_s, InputNet_x + SemPE + E_x), SAMM + VQ, entropy coding,
entropy decoding, ADM, decoders (D_s, argmax, D_x). `end_to_end` is Codec.encode + Codec.decode on
uint8 arrays, i.e. what a vehicle plus an RSU spend per frame.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Callable

import numpy as np
import torch

from sqgan_core.arguments import int_in, keep_fraction, non_negative_int, positive_int
from sqgan_core.cli.model_options import add_model_options, codec_from_args
from sqgan_core.codec import Codec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codec", help="codec latency per stage and parameter counts",
                       description="Time each codec stage on CPU (and CUDA when available); prints JSON.")
    p.add_argument("--height", type=int_in(16, 4096), default=256)
    p.add_argument("--width", type=int_in(16, 4096), default=512)
    p.add_argument("--mx", type=keep_fraction, default=0.5, help="fraction of image tokens kept (default 0.5)")
    p.add_argument("--ms", type=keep_fraction, default=0.5, help="fraction of semantic tokens kept (default 0.5)")
    p.add_argument("--iters", type=positive_int, default=30, help="timed iterations per stage (default 30)")
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA run even when a GPU exists")
    p.add_argument("--json", action="store_true", help="print one JSON object (the default output is also JSON, "
                                                       "indented)")
    add_model_options(p)
    p.set_defaults(func=_run, untrained_fallback=True, device=None)  # None: CPU, and CUDA when present


def synthetic_scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A street-like test input: blocky label regions and a textured image that follows them."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 19, size=(max(height // 32, 1), max(width // 32, 1)))
    labels = np.kron(coarse, np.ones((32, 32), dtype=np.int64))[:height, :width]
    labels = np.pad(labels, ((0, height - labels.shape[0]), (0, width - labels.shape[1])), mode="edge")
    base = rng.integers(0, 256, size=(19, 3))
    image = base[labels] + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000.0
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "min": round(float(a.min()), 3)}


def _timer(device: torch.device) -> Callable[[Callable[[], object], int, int], list[float]]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(iters):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t)
        return out

    return run


def parameter_counts(codec: Codec) -> dict[str, int]:
    m = codec.model

    def n(*mods: torch.nn.Module) -> int:
        return sum(p.numel() for mod in mods for p in mod.parameters())

    return {
        "semantic_encoder": n(m.sem_conv_in, m.sem_encoder),
        "image_encoder": n(m.input_net, m.sempe, m.img_encoder),
        "samm": n(m.sem_mq.samm, m.img_mq.samm),
        "codebooks": m.sem_mq.vq.embedding.numel() + m.img_mq.vq.embedding.numel(),
        "adm": n(m.sem_mq.adm, m.img_mq.adm),
        "semantic_decoder": n(m.sem_decoder),
        "image_decoder": n(m.img_decoder),
        "total": n(m) + m.sem_mq.vq.embedding.numel() + m.img_mq.vq.embedding.numel(),
    }


def bench_device(codec: Codec, image: np.ndarray, labels: np.ndarray, mx: float, ms: float, iters: int,
                 warmup: int) -> dict[str, object]:
    m, run = codec.model, _timer(codec.device)
    with torch.inference_mode():
        x, lab, ph, pw = codec._prepare(image, labels)
        x = x.contiguous(memory_format=torch.channels_last)
        seg = m.one_hot(lab)
        z_x, z_s = m.encode_latents(x, seg)
        tokens = m.select(z_x, z_s, seg, mx, ms)
        encoded = codec.write(tokens, ph, pw)
        frame = codec.read(encoded.data)
        zhat = m.demask(tokens)
        stages = {
            "encoders": run(lambda: m.encode_latents(x, m.one_hot(lab)), iters, warmup),
            "samm_vq": run(lambda: m.select(z_x, z_s, seg, mx, ms), iters, warmup),
            "entropy_encode": run(lambda: codec.write(tokens, ph, pw), iters, warmup),
            "entropy_decode": run(lambda: codec.read(encoded.data), iters, warmup),
            "adm": run(lambda: m.demask(codec.tokens_of(frame)), iters, warmup),
            "decoders": run(lambda: m.decode_latents(*zhat), iters, warmup),
        }
    e2e = run(lambda: codec.decode(codec.encode(image, labels, mx, ms).data), iters, warmup)
    return {
        "device": str(codec.device),
        "stages_ms": {k: _percentiles(v) for k, v in stages.items()},
        "end_to_end_ms": _percentiles(e2e),
        "frame": {k: encoded.stats[k] for k in ("bits", "bpp", "bound_bits", "bound_bpp", "mode")},
    }


def _run(args: argparse.Namespace) -> int:
    """Times the codec on `--device` when given (e.g. `--device cuda` alone on a GPU lease, where a
    CPU pass of the `paper` model would cost minutes), else on the CPU and, when present, CUDA.
    Without --model, a --config other than the shipped model's is timed untrained: latency does not
    depend on the weights."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device is not None and args.device.startswith("cuda") and not torch.cuda.is_available():
        from sqgan_core.errors import CommandError

        raise CommandError(f"--device {args.device}: CUDA is not available on this machine")
    if not args.model and not args.untrained:
        from sqgan_core.checkpoint import default_checkpoint, load_checkpoint

        shipped = default_checkpoint()
        # timing does not depend on trained weights; the shipped file only fits its own config
        args.untrained = shipped is None or load_checkpoint(shipped)[0].config.name != args.config
    image, labels = synthetic_scene(args.height, args.width)
    result: dict[str, object] = {
        "benchmark": "codec",
        "height": args.height, "width": args.width, "mx": args.mx, "ms": args.ms,
        "iters": args.iters, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    wanted = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    devices: dict[str, dict] = {}
    for dev in wanted:
        codec = codec_from_args(argparse.Namespace(**{**vars(args), "device": dev}))
        if "config" not in result:
            result.update({"config": codec.config.name, "model_id": f"{codec.model_id:04x}",
                           "untrained": bool(codec.metadata.get("untrained")), "params": parameter_counts(codec)})
        devices[dev] = bench_device(codec, image, labels, args.mx, args.ms, args.iters, args.warmup)
        if dev.startswith("cuda"):
            devices[dev]["name"] = torch.cuda.get_device_name(torch.device(dev))
    if not any(d.startswith("cuda") for d in devices):
        devices["cuda"] = {"available": torch.cuda.is_available(), "measured": False}
    result["devices"] = devices
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
