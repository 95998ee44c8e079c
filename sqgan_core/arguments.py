"""argparse value types shared by every command (sqgan, sim, ros2_ws, the link emulator).

Checked while parsing, so a bad value fails before any model loads and the message names the flag.
They live outside `sqgan_core.cli` so that no module of the codec, the link or the nodes imports the
command line itself.
"""
from __future__ import annotations

import argparse
from typing import Callable


def keep_fraction(text: str) -> float:
    """argparse type for --mx/--ms: checked while parsing, so the error names the flag and comes
    before any model loads."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (the share of tokens kept), got {text}")
    return value


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (--iters, --frames): at least 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type for --warmup, --threads, --workers: 0 or more."""
    return _whole_number(text, 0)


def int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type for a whole number in [low, high] (vehicle counts, image sides)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number in {low}..{high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    parse.__name__ = f"int in {low}..{high}"
    return parse


def positive_float(text: str) -> float:
    """argparse type for durations, rates and learning rates: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def device_name(text: str) -> str:
    """argparse type for --device: a torch device this machine has, checked before any model loads
    (torch's own error comes as a traceback, and a missing GPU only shows at the first tensor)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: only cpu and cuda devices are supported")
    return text
