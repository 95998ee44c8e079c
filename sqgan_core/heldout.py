"""Held-out frames for evaluation and benchmarks: a Cityscapes-layout directory, or frames rendered by
the simulator plugin from seeds that training never uses.

The simulator is reached only through the `sqgan.frame_sources` entry point, so importing the codec
never imports `sim`. By default the frames are split over every scenario in configs/scenarios/,
scenario k (sorted by name) from seed + k, so one weather or town cannot flatter a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from sqgan_core.config import configs_of_kind
from sqgan_core.errors import CommandError

ALL_SCENARIOS = "all"
Frames = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ScenarioShare:
    """The part of the held-out frames one scenario renders."""

    scenario: str
    seed: int
    frames: int
    path: Path


def scenario_files() -> dict[str, Path]:
    """name -> YAML of every simulator scenario (configs/scenarios/*.yaml through the one config
    resolver). Read from the files rather than from `sim`, which sqgan_core must never import."""
    return configs_of_kind("scenarios")


def open_loop_scenarios() -> dict[str, Path]:
    """The scenarios `all` renders: every one but the closed-loop hazard suite (hazard_*.yaml: scripted
    hazards on one straight drive, made to test warnings, not to measure a codec)."""
    return {n: p for n, p in scenario_files().items() if not n.startswith("hazard_")}


def scenario_plan(scenario: str, seed: int, n: int) -> list[ScenarioShare]:
    """Which scenario renders how many of the n frames from which seed. `all`: n split evenly over every
    scenario sorted by name but the closed-loop hazard_* ones (the first n % k get one more; none with no frame), scenario k from seed + k,
    so no two scenarios share a drive and the seeds stay in the evaluation range. One scenario name or
    YAML path: all n from `seed`."""
    files = scenario_files()
    if scenario != ALL_SCENARIOS:
        path = files.get(scenario) or Path(scenario)
        if not (path.suffix in (".yaml", ".yml") and path.is_file()):
            raise CommandError(f"unknown scenario {scenario!r}: use {ALL_SCENARIOS}, one of "
                               f"{', '.join(files) or '(none found)'}, or a scenario YAML path")
        return [ScenarioShare(path.stem, seed, n, path)]
    if not files:
        raise CommandError("no scenario YAML found in configs/scenarios/ (source tree or installed share dir): "
                           "pass --scenario PATH.yaml or --data DIR")
    files = open_loop_scenarios()
    k = len(files)
    shares = [ScenarioShare(name, seed + i, n // k + int(i < n % k), path)
              for i, (name, path) in enumerate(files.items())]
    return [s for s in shares if s.frames > 0]


def describe_plan(plan: list[ScenarioShare], stride: int) -> str:
    """The JSON's `source` for rendered frames: which scenarios, from which seeds, how many, how spaced."""
    parts = ", ".join(f"{s.scenario} (seed {s.seed}, {s.frames} frames)" for s in plan)
    return (f"simulator scenario{'s' if len(plan) > 1 else ''} {parts}; "
            f"stride {stride} (one frame kept every {stride} ticks)")


def held_out_frames(data: Path | None, split: str | None, seed: int, scenario: str, n: int,
                    stride: int) -> tuple[Frames, str]:
    """(frames, source description): the first n pairs of a Cityscapes-layout `data` root, or n frames
    rendered by the simulator plugin as scenario_plan() splits them, every stride-th tick."""
    if n < 1:
        raise CommandError(f"--frames must be at least 1, got {n}")
    if data:
        from sqgan_core.data import CityscapesPairs, DatasetError

        try:
            return [p.load() for p in CityscapesPairs(data, split).pairs[:n]], str(data)
        except DatasetError as exc:
            raise CommandError(str(exc)) from None
    if stride < 1:
        raise CommandError(f"--stride must be at least 1, got {stride}")
    plan = scenario_plan(scenario, seed, n)
    frames = [f for share in plan for f in _rendered(share.seed, str(share.path), share.frames, stride)]
    return frames, describe_plan(plan, stride)


def _rendered(seed: int, scenario: str, n: int, stride: int) -> Frames:
    """n frames of `scenario` (a name or YAML path) from `seed`, stride ticks apart, the ticks between
    advanced without rendering where the source can (as `sim export --stride` does)."""
    sources = {ep.name: ep for ep in entry_points(group="sqgan.frame_sources")}
    if "embedded" not in sources:
        raise CommandError("no simulator frame source is installed (entry point sqgan.frame_sources:embedded); "
                           "pass --data DIR instead")
    make_source = sources["embedded"].load()
    try:
        source = make_source(scenario, seed=seed)
    except ValueError as exc:  # the simulator's ScenarioError: a bad YAML or seed, named by field
        raise CommandError(f"scenario {scenario}: {exc}") from None
    frames: Frames = []
    with source as src:
        skip = getattr(src, "skip", src.step)
        while len(frames) < n:
            if frames:
                for _ in range(stride - 1):
                    skip()
            f = src.step()
            frames.append((f.rgb, f.labels))
    return frames
