"""`sqgan scenario run | suite`: closed-loop hazard scenarios (ros2_ws/closed_loop.py) with a verdict.

`run` plays one scenario over one link profile with one codec and prints its outcome (JSON with
--json): pass or fail and why, the time from hazard visibility to the warning reaching the vehicle,
the closest the ego came to the conflict point while it was blocked, false warnings and stops.
`suite` plays the matrix: every hazard scenario x link profiles x codecs, classic codecs at the rate
SQ-GAN put on the wire in the same scenario and link, and writes suite.json, suite.md and plots.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqgan_core.arguments import keep_fraction, positive_float
from sim.carla_hazards import CarlaHazardError
from sqgan_core.errors import CommandError

DEFAULT_PROFILES = ("clean", "urban_5pct", "bursty_15pct")
# what a run can fail on that the user can fix: bad settings, an unreachable, silent or unfit CARLA
# server (CarlaConnectionError is a ConnectionError, CarlaUnavailable an ImportError; CarlaHazardError
# names the hazard the map cannot stage)
SOURCE_ERRORS = (ValueError, ConnectionError, TimeoutError, ImportError, CarlaHazardError)
DEFAULT_CODECS = ("sqgan", "jpeg2000", "av1")


def hazard_scenarios() -> list[str]:
    """Scenario names with scripted hazards or a hazard-suite control (configs/scenarios/hazard_*.yaml)."""
    from sim.scenario import scenario_names

    return [n for n in scenario_names() if n.startswith("hazard_")]


def _settings(args: argparse.Namespace, codec: str, profile: str, bpp: float | None) -> Any:
    from ros2_ws.closed_loop import LoopSettings

    return LoopSettings(codec=codec, m_x=args.mx, m_s=args.ms, bpp=bpp, profile=profile, seed=args.seed,
                        max_seconds=args.max_seconds, camera=tuple(args.camera) if args.camera else None,
                        second_opinion=not args.no_second_opinion, source=args.source, carla=args.carla)


def _check_inputs(scenarios: list[str], profiles: list[str], codecs: list[str]) -> None:
    from ros2_ws.closed_loop import CODECS
    from sim.scenario import ScenarioError, load_scenario
    from sqgan_core.classic_codecs import available
    from sqgan_core.transport.channel import ProfileError, load_profile

    for s in scenarios:
        try:
            load_scenario(s)
        except ScenarioError as exc:
            raise CommandError(str(exc)) from None
    for p in profiles:
        try:
            load_profile(p)
        except ProfileError as exc:
            raise CommandError(str(exc)) from None
    for c in codecs:
        if c not in CODECS:
            raise CommandError(f"--codec {c!r}: use one of {', '.join(CODECS)}")
        if c != "sqgan":
            ok, why = available(c)
            if not ok:
                raise CommandError(f"--codec {c}: not available here ({why})")


def _run(args: argparse.Namespace) -> int:
    from ros2_ws.closed_loop import run_scenario

    _check_inputs([args.name], [args.link], [args.codec])
    if args.codec != "sqgan" and not args.bpp:
        raise CommandError(f"--codec {args.codec} needs --bpp (the wire rate to match; `sqgan scenario run NAME "
                           "--codec sqgan --json` prints SQ-GAN's as bpp_wire)")
    try:
        out = run_scenario(args.name, _settings(args, args.codec, args.link, args.bpp), progress=not args.json)
    except SOURCE_ERRORS as exc:
        raise CommandError(str(exc)) from None
    d = out.to_dict()
    if args.json:
        print(json.dumps(d))
    else:
        print(f"{d['scenario']} / {d['codec']} / {d['profile']}: {'PASS' if d['passed'] else 'FAIL'} ({d['reason']})")
        for k in ("warning_latency_ms", "min_distance_m", "false_warnings", "frames_sent", "frames_lost", "bpp_wire"):
            print(f"  {k:20s} {d[k]}")
    return 0 if d["passed"] else 1


def _table(rows: list[dict[str, Any]]) -> str:
    head = "| scenario | link | codec | bpp | result | latency ms | min distance m | false warnings | frames lost |"
    lines = [head, "| " + " | ".join(["---"] * 9) + " |"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['profile']} | {r['codec']} | {r['bpp_wire']} | "
                     f"{'pass' if r['passed'] else 'FAIL: ' + r['reason']} | {r['warning_latency_ms']} | "
                     f"{r['min_distance_m']} | {r['false_warnings']} | {r['frames_lost']}/{r['frames_sent']} |")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = sorted({(r["profile"], r["codec"]) for r in rows})
    scen = sorted({r["scenario"] for r in rows})
    grid = np.full((len(scen), len(cols)), np.nan)
    for r in rows:
        grid[scen.index(r["scenario"]), cols.index((r["profile"], r["codec"]))] = 1.0 if r["passed"] else 0.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 1.0 + 0.5 * len(scen)))
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{p}\n{c}" for p, c in cols], fontsize=7)
    ax.set_yticks(range(len(scen)), scen, fontsize=8)
    for i in range(len(scen)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, "pass" if grid[i, j] else "fail", ha="center", va="center", fontsize=7)
    ax.set_title("closed-loop hazard scenarios (lock-step)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _suite(args: argparse.Namespace) -> int:
    from ros2_ws.closed_loop import run_scenario
    from sqgan_core.segmentation.segmenter import Segmenter
    from sqgan_core.streaming.concealment import select_concealer
    from sqgan_core.streaming.stream import load_codec

    scenarios = args.scenarios or hazard_scenarios()
    if not scenarios:
        raise CommandError("no hazard scenarios (configs/scenarios/hazard_*.yaml) found")
    _check_inputs(scenarios, args.links, args.codecs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite_rows.jsonl").write_text("")
    codec, _ = load_codec("")
    concealer = select_concealer("auto", None, codec.model_id).concealer
    segmenter = Segmenter.load()
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for s in scenarios:
        for link in args.links:
            rate = None
            for c in (["sqgan"] if "sqgan" in args.codecs else []) + [c for c in args.codecs if c != "sqgan"]:
                bpp = None if c == "sqgan" else (args.bpp or rate)
                if c != "sqgan" and not bpp:
                    raise CommandError("classic codecs need SQ-GAN in --codecs or a --bpp to match")
                try:
                    r = run_scenario(s, _settings(args, c, link, bpp), codec=codec, segmenter=segmenter,
                                     concealer=concealer).to_dict()
                except SOURCE_ERRORS as exc:
                    raise CommandError(f"{s} / {link} / {c}: {exc}") from None
                if c == "sqgan":
                    rate = r["bpp_wire"]
                rows.append(r)
                print(f"{s} / {link} / {c}: {'pass' if r['passed'] else 'FAIL'} ({r['reason']})", file=sys.stderr)
                # after every run, so a long suite stopped half-way keeps what it measured
                with (out / "suite_rows.jsonl").open("a") as f:
                    f.write(json.dumps(r) + "\n")
    summary: dict[str, Any] = {"rows": rows, "minutes": round((time.monotonic() - t0) / 60, 1),
                               "m": [args.mx, args.ms], "scenarios": scenarios, "links": args.links, "codecs": args.codecs}
    summary["passes"] = {c: sum(r["passed"] for r in rows if r["codec"] == c) for c in args.codecs}
    lat = [r["warning_latency_ms"] for r in rows if r["codec"] == "sqgan" and r["profile"] == "clean"
           and r["warning_latency_ms"] is not None]
    summary["sqgan_clean_latency_ms_p95"] = float(sorted(lat)[max(0, int(round(0.95 * len(lat))) - 1)]) if lat else None
    (out / "suite.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "suite.md").write_text(_table(rows))
    _plot(rows, out / "suite.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}) if args.json else _table(rows))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mx", type=keep_fraction, default=0.5)
    p.add_argument("--ms", type=keep_fraction, default=0.5)
    p.add_argument("--seed", type=int, default=0, help="link draws")
    p.add_argument("--max-seconds", type=positive_float, help="cut each scenario short (simulated s)")
    p.add_argument("--camera", type=int, nargs=2, metavar=("H", "W"), help="camera size override")
    p.add_argument("--no-second-opinion", action="store_true", help="SQ-GAN: no segmenter on x_hat")
    p.add_argument("--source", choices=("embedded", "carla"),
                   help="run on this simulator instead of the scenario's (carla: a server, driven along the route)")
    p.add_argument("--carla", metavar="HOST:PORT", help="the CARLA server (default: the scenario's carla.host/port)")
    p.add_argument("--json", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenario", help="closed-loop hazard scenarios: run one, or the suite",
                       description=__doc__.split("\n\n")[0])
    ssub = p.add_subparsers(dest="scenario_cmd", required=True)
    r = ssub.add_parser("run", help="one scenario, one link, one codec (exit 1 on FAIL)")
    r.add_argument("name", help="scenario name (configs/scenarios/) or YAML path")
    r.add_argument("--link", default="clean", help="link profile (default clean)")
    r.add_argument("--codec", default="sqgan", help="sqgan | jpeg2000 | av1 | jpeg | webp | avif | hevc")
    r.add_argument("--bpp", type=positive_float, help="classic codecs: wire bpp to code at")
    _common(r)
    r.set_defaults(func=_run)
    s = ssub.add_parser("suite", help="scenarios x links x codecs at matched rates (JSON, table, plot)")
    s.add_argument("--scenarios", nargs="+", help="default: every configs/scenarios/hazard_*.yaml")
    s.add_argument("--links", nargs="+", default=list(DEFAULT_PROFILES))
    s.add_argument("--codecs", nargs="+", default=list(DEFAULT_CODECS))
    s.add_argument("--bpp", type=positive_float, help="classic codecs' rate (default: SQ-GAN's in the same run)")
    s.add_argument("--out", default="out/scenario_suite")
    _common(s)
    s.set_defaults(func=_suite)
