"""The `sqgan` command. Subcommands are plugged in through entry points so that the codec package
never imports the simulator or ROS: `sqgan.commands` entries add top-level subcommands, `sqgan.bench`
entries add `sqgan bench <target>`. Each entry point is a `register(subparsers)` function that adds
its parser and sets `func` (a callable taking the parsed args and returning an exit code). A command
may also set `claim_extras(args, extras) -> extras`: argparse fills a positional only from the run
of words where it starts, so words of the positional's form that come after an option (ros2 launch's
`name:=value`) arrive as extras; the command takes its own and what is left is still an error."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Callable, Sequence

from sqgan_core.errors import CommandError, InputError


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
    args, extras = parser.parse_known_args(argv)
    claim = getattr(args, "claim_extras", None)
    if extras and claim is not None:
        extras = claim(args, extras)
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
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
