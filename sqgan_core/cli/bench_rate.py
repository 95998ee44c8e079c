"""`sqgan bench ratecontrol --json`: the rate controller on a drive of held-out frames against every
fixed setting near its rate, and the rate table it uses (measured here, or loaded with --table)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sqgan_core.arguments import positive_float, positive_int
from sqgan_core.cli.model_options import add_model_options, codec_from_args
from sqgan_core.errors import CommandError

TABLE_MS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ratecontrol", help="rate controller vs fixed settings at a bit budget",
                       description="Measures a rate table (mean wire bits, mIoU of s_hat and PSNR per (m_x, m_s, J)) "
                                   "on --table-frames held-out frames, then drives --frames other held-out frames at "
                                   "--budget kbit/s and --fps with the controller and with each fixed setting whose "
                                   "table rate lies near the budget, on the same frames.")
    p.add_argument("--budget", type=positive_float, default=25.0, help="kbit/s (default 25)")
    p.add_argument("--fps", type=positive_float, default=10.0, help="frames per second (default 10)")
    p.add_argument("--frames", type=positive_int, default=500, help="frames of the drive (default 500)")
    p.add_argument("--table-frames", type=positive_int, default=16, help="frames the table is measured on (default 16)")
    p.add_argument("--table", type=Path, help="use this rate table instead of measuring one")
    p.add_argument("--table-out", type=Path, help="write the measured table here (JSON)")
    p.add_argument("--sizes", default="1024,256,64", help="codebook sizes in the table (default 1024,256,64)")
    p.add_argument("--seed", type=int, default=9301, help="first simulator seed of the drive (the table uses seed + 100)")
    p.add_argument("--stride", type=positive_int, default=2, help="simulator ticks between drive frames (default 2)")
    p.add_argument("--packet-bytes", type=positive_int, default=256)
    p.add_argument("--json", action="store_true")
    p.add_argument("-o", "--output", type=Path)
    add_model_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sqgan_core.heldout import held_out_frames
    from sqgan_core.rate_evaluation import measure_table, run_controller
    from sqgan_core.streaming.rate_control import RateTable, Setting

    codec = codec_from_args(args)
    have = codec.codebook_sizes()[0]
    if args.table:
        try:
            table = RateTable.load(args.table)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if table.model_id != codec.model_id:
            raise CommandError(f"--table {args.table} was measured for model {table.model_id:04x}, not {codec.model_id:04x}")
    else:
        try:
            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            raise CommandError(f"--sizes {args.sizes!r}: comma-separated codebook sizes expected") from None
        if not sizes or any(s not in have for s in sizes):
            raise CommandError(f"--sizes {args.sizes}: the model has {', '.join(map(str, have))} (reductions: "
                               "`sqgan train codebooks`)")
        frames, source = held_out_frames(None, None, args.seed + 100, "all", args.table_frames, 5)
        settings = [Setting(mx, ms, j, j) for j in sizes for ms in TABLE_MS for mx in TABLE_MS if mx <= ms]
        table = measure_table(codec, frames, settings, packet_bytes=args.packet_bytes, source=source)
        if args.table_out:
            args.table_out.parent.mkdir(parents=True, exist_ok=True)
            table.save(args.table_out)
    budget_bits = 1000 * args.budget / args.fps
    near = [r.setting for r in table.rows if 0.6 * budget_bits <= r.bits <= 1.15 * budget_bits]
    drive, source = held_out_frames(None, None, args.seed, "all", args.frames, args.stride)
    result = run_controller(codec, table, drive, args.budget, args.fps, packet_bytes=args.packet_bytes, compare=near)
    result["source"] = source
    result["table"] = {"frames": table.frames, "source": table.source, "settings": len(table.rows),
                       "pareto": [r.setting.label for r in table.pareto()]}
    ctl = result["controller"]
    at_rate = [f for f in result["fixed"] if f["kbps"] <= ctl["kbps"]]
    best = max(at_rate, key=lambda f: f["miou_shat"], default=None)
    best_full = max((f for f in at_rate if f["j_x"] == f["j_s"] == max(have)), key=lambda f: f["miou_shat"], default=None)
    # The comparison: fixed (m_x, m_s) with the full codebooks, at or below the controller's rate;
    # fixed settings with reduced codebooks are reported beside it (the controller may pick one of them).
    result["acceptance"] = {
        "rate_within_10pct": abs(ctl["rate_error"]) <= 0.10,
        "best_fixed_full_codebook_at_or_below_rate": best_full,
        "beats_every_fixed_full_codebook_at_or_below_rate": best_full is None or ctl["miou_shat"] > best_full["miou_shat"],
        "best_fixed_any_codebook_at_or_below_rate": best,
        "at_least_every_fixed_any_codebook_at_or_below_rate": best is None or ctl["miou_shat"] >= best["miou_shat"]}
    text = json.dumps(result) if args.json else json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return 0
