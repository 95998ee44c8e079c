"""The model-choice options every codec command shares: --model, --untrained, --config, --device."""
from __future__ import annotations

import argparse
from pathlib import Path

from sqgan_core.checkpoint import CheckpointError, default_checkpoint
from sqgan_core.errors import CommandError
from sqgan_core.arguments import device_name, positive_int
from sqgan_core.codec import DEFAULT_MAX_TOKENS, Codec
from sqgan_core.config import ConfigError


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", type=Path, help="SQ-GAN checkpoint (default: the shipped trained model)")
    g.add_argument("--untrained", action="store_true",
                   help="use a deterministic randomly initialised model of --config (tests and plumbing only: "
                        "its reconstructions are noise)")
    g.add_argument("--config", default="small", help="model config for --untrained: a name in configs/model/ "
                                                      "or a YAML path (default: small)")
    g.add_argument("--device", type=device_name, default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    g.add_argument("--max-tokens", type=positive_int, default=DEFAULT_MAX_TOKENS,
                   help=f"largest token grid encoded or decoded (default {DEFAULT_MAX_TOKENS} = a 512x1024 "
                        "frame): bounds the decoder's time and memory for any frame, forged ones included")


def _max_tokens(args: argparse.Namespace) -> int:
    return int(getattr(args, "max_tokens", None) or DEFAULT_MAX_TOKENS)


def codec_from_args(args: argparse.Namespace) -> Codec:
    if args.model and args.untrained:
        raise CommandError("--model and --untrained exclude each other")
    try:
        if args.untrained:
            return Codec.untrained(args.config, device=args.device, max_tokens=_max_tokens(args))
        path = args.model or default_checkpoint()
        if path is None:
            raise CommandError("no trained model is shipped yet: pass --model PATH, or --untrained to run the "
                               "pipeline with random weights (reconstructions will be noise)")
        return Codec.from_checkpoint(path, device=args.device, max_tokens=_max_tokens(args))
    except (CheckpointError, ConfigError) as exc:
        raise CommandError(str(exc)) from None
