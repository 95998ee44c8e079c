"""The `sqgan` command. Subcommands are plugged in through entry points so that the codec package
never imports the simulator or ROS: `sqgan.commands` entries add top-level subcommands, `sqgan.bench`
entries add `sqgan bench <target>`. Each entry point is a `register(subparsers)` function that adds
its parser and sets `func` (a callable taking the parsed args and returning an exit code)."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Callable, Sequence

from sqgan_core.errors import InputError


class CommandError(Exception):
    """An error a user can fix (bad path, bad option); printed without a traceback."""


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


def _load_group(group: str) -> list[tuple[str, Callable[[argparse._SubParsersAction], None]]]:
    loaded = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            loaded.append((ep.name, ep.load()))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the whole CLI down
            print(f"sqgan: warning: subcommand plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                  file=sys.stderr)
    return loaded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqgan",
        description="SQ-GAN semantic image streaming: codec, simulator, ROS 2 pipeline and benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, register in _load_group("sqgan.commands"):
        register(sub)
    bench = sub.add_parser("bench", help="benchmarks printing machine-readable JSON",
                           description="Benchmarks; each prints one JSON object with --json.")
    bench_sub = bench.add_subparsers(dest="target", metavar="TARGET")
    for _name, register in _load_group("sqgan.bench"):
        register(bench_sub)
    bench.set_defaults(func=lambda _args: (bench.print_help(), 2)[1])
    return parser


def _command_name(args: argparse.Namespace) -> str:
    sub = next((v for k in ("target", "sim_command", "stage", "bag_command") if isinstance(v := getattr(args, k, None), str)),
               None)
    return f"{args.command} {sub}" if isinstance(sub, str) else str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `sqgan ... | head`: the reader left; nothing to say, as cat would not
        sys.stderr.close()
        return 141
    except (CommandError, InputError, OSError) as exc:
        # InputError: a bad file, config, frame or key a user can fix; OSError: the file system said no
        # (a path that is a file, no permission, a full disk). Both are one line, never a traceback.
        print(f"sqgan {_command_name(args)}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
