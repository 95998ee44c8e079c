"""`sqgan sim ...`: export Cityscapes-layout data, draw the sample grid, inspect scenarios."""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from sqgan_core.errors import CommandError
from sqgan_core.arguments import int_in, positive_int


def _scenario(args: argparse.Namespace):
    from sim.scenario import ScenarioError, load_scenario

    try:
        cfg = load_scenario(args.scenario)
        over = {}
        if getattr(args, "seed", None) is not None:
            over["seed"] = args.seed
        for name in ("width", "height", "fov"):
            if getattr(args, name, None) is not None:
                over[f"camera.{name}"] = getattr(args, name)
        if getattr(args, "source", None):
            over["source"] = args.source
        return cfg.replace(**over) if over else cfg
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None


def _make(cfg):
    from sim import make_source
    from sim.renderer import RendererUnavailable

    try:
        return make_source(cfg)
    except RendererUnavailable as exc:
        raise CommandError(str(exc)) from None
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None


def cmd_export(args: argparse.Namespace) -> int:
    from sim.export import export_frames

    for flag, value in (("--split", args.split), ("--city", args.city)):
        # one plain folder name: '../x', 'a/b' or an absolute path would write outside --out
        if value is not None and (not value or value in (".", "..") or "/" in value or "\\" in value):
            raise CommandError(f"{flag} must be one folder name inside --out, got {value!r}")
    cfg = _scenario(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a directory")
    city = args.city or f"{cfg.name.replace('_', '')}{cfg.seed}"
    with _make(cfg) as src:
        def strided():
            while True:
                yield src.step()
                for _ in range(args.stride - 1):
                    src.skip()

        frames = itertools.islice(strided(), args.frames)
        stats = export_frames(frames, out, split=args.split, city=city, seq=cfg.seed, total=args.frames,
                              progress=not args.quiet)
    stats.update({"scenario": cfg.name, "seed": cfg.seed, "source": cfg.source, "stride": args.stride,
                  "width": cfg.camera.width, "height": cfg.camera.height})
    print(json.dumps(stats, indent=None if args.compact else 2))
    return 0


GRID_SHOTS = (("default", 1, 40), ("default", 5, 150), ("dense_urban", 3, 60), ("dense_urban", 4, 220),
              ("rainy_night", 7, 120), ("foggy_morning", 11, 90), ("default", 9, 260), ("rainy_night", 12, 180))


def cmd_grid(args: argparse.Namespace) -> int:
    """8 frames from different scenarios and seeds, RGB beside the colour labels."""
    import cv2

    from sim.scenario import load_scenario
    from sqgan_core.labels import colorize

    tiles = []
    for name, seed, idx in GRID_SHOTS[: args.frames]:
        cfg = load_scenario(name).replace(seed=seed)
        with _make(cfg) as src:
            for _ in range(idx + 1):
                frame = src.step()
        tiles.append(np.concatenate([frame.rgb, np.full((frame.rgb.shape[0], 4, 3), 255, np.uint8),
                                     colorize(frame.labels)], 1))
        if not args.quiet:
            print(f"grid: {name} seed {seed} frame {idx}")
    sep = np.full((4, tiles[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([np.concatenate([t, sep], 0) for t in tiles], 0)[:-4]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(json.dumps({"out": str(out), "frames": len(tiles), "size": [grid.shape[1], grid.shape[0]]}))
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from sim.scenario import load_scenario, scenario_names

    out = {}
    for name in scenario_names():
        cfg = load_scenario(name)
        out[name] = {"seed": cfg.seed, "frames": cfg.frames, "source": cfg.source,
                       "time_of_day": cfg.weather.time_of_day, "rain": cfg.weather.rain, "fog": cfg.weather.fog,
                       "hazards": [h.type for h in cfg.hazards]}
    print(json.dumps(out, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="driving simulator: export data, sample grid, scenarios",
                              description="Embedded driving simulator and CARLA bridge.")
    sub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])

    e = sub.add_parser("export", help="write N frames in the Cityscapes layout and print JSON statistics")
    e.add_argument("--frames", type=positive_int, required=True)
    e.add_argument("--seed", type=int, default=None, help="overrides the scenario seed")
    e.add_argument("--stride", type=positive_int, default=1,
                   help="keep every N-th tick (20 Hz): N frames apart cover N times the drive at the same cost "
                        "in PNGs; the embedded simulator skips rendering the others")
    e.add_argument("--out", required=True)
    e.add_argument("--scenario", default="default", help="name in configs/scenarios or a YAML path")
    e.add_argument("--split", default="train")
    e.add_argument("--city", default=None, help="city folder name (default: <scenario><seed>)")
    e.add_argument("--source", choices=("embedded", "carla"), default=None)
    e.add_argument("--width", type=int_in(16, 8192), default=None)
    e.add_argument("--height", type=int_in(16, 8192), default=None)
    e.add_argument("--fov", type=float, default=None)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--compact", action="store_true", help="one-line JSON")
    e.set_defaults(func=cmd_export)

    g = sub.add_parser("grid", help="PNG grid of sample frames (RGB beside colour labels)")
    g.add_argument("--out", default="docs/sim_grid.png")
    g.add_argument("--frames", type=int, default=8, choices=range(1, len(GRID_SHOTS) + 1), metavar="N")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_grid)

    s = sub.add_parser("scenarios", help="list the scenario YAML files")
    s.set_defaults(func=cmd_scenarios)
