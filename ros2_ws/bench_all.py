"""`sqgan bench all --json`: every benchmark in one run, and docs/results.md generated from it.

Each benchmark runs as its own `sqgan bench TARGET --json` process, one after the other, so a crash or
a leak in one cannot skew the next; its wall time and peak memory (the process's maximum resident set,
from wait4) are recorded beside its JSON. Targets: codec stages, segmenter, streaming core for 1-16
vehicles, ROS 2 pipeline, simulator, classic codecs' encode/decode time, and `sqgan bag eval` on a bag
(default: the shipped sample). CUDA runs are added by each benchmark when a GPU is present. With
`--page`, the results page is written from this run's JSON and the bag report, never typed by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqgan_core.errors import CommandError
from sqgan_core.arguments import positive_float

NAMES = ("codec", "segmenter", "stream", "stream_cuda", "classic", "sim", "pipeline", "bag_eval")

SAMPLE_BAG = Path(__file__).resolve().parent.parent / "tests" / "data" / "bags" / "sim_default_9001"
SAMPLE_CAMERA = "/carla/ego_vehicle/rgb_front/image"
SAMPLE_SEMANTIC = "/carla/ego_vehicle/semantic_segmentation_front/image"


def _targets(args: argparse.Namespace, bag_out: Path) -> list[tuple[str, list[str]]]:
    quick = args.quick
    targets = [
        ("codec", ["bench", "codec", "--iters", "5" if quick else "20"]),
        ("segmenter", ["bench", "segmenter", "--frames", "8" if quick else "24"]),
        ("stream", ["bench", "stream", "--vehicles", "1,2" if quick else "1,2,4,8,16", "--frames", "2" if quick else "4"]),
        ("classic", ["bench", "classic", "--frames", "2" if quick else "6"]),
        ("sim", ["bench", "sim", "--frames", "10" if quick else "40"]),
        ("pipeline", ["bench", "pipeline", "--frames", "5" if quick else "20", "--vehicles", "2" if quick else "4"]),
    ]
    if _cuda():
        targets.insert(3, ("stream_cuda", ["bench", "stream", "--device", "cuda", "--vehicles", "1,2,4,8,16"]))
    if args.bag is not None:
        from sqgan_core.evaluation import model_path_label

        # relative to the repository when inside it: the JSON and page name the bag, not this machine
        targets.append(("bag_eval", ["bag", "eval", model_path_label(args.bag), "--camera", args.camera, "--semantic", args.semantic,
                                     "--no-progress", "-o", str(bag_out)] + (["--frames", "3"] if quick else [])))
    return [(n, a) for n, a in targets if not args.only or n in args.only]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def run_one(name: str, argv: list[str], timeout: float) -> dict[str, Any]:
    """One benchmark process: its JSON, wall time and peak RSS (ru_maxrss from wait4: this process and
    the children it waited for, e.g. the pipeline's nodes), or the error it ended with."""
    import tempfile
    import threading

    cmd = [sys.executable, "-m", "sqgan_core"] + argv + ["--json"]
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped here: keep Popen from waiting on it again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    entry: dict[str, Any] = {"name": name, "command": "sqgan " + " ".join(argv),
                             "wall_s": round(time.monotonic() - t0, 1), "rc": rc,
                             "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    if rc != 0:
        killed = rc == -9 and time.monotonic() - t0 >= timeout
        entry["error"] = f"timed out after {timeout:g} s" if killed else \
            (stderr.strip().splitlines() or ["(no output)"])[-1][:400]
        return entry
    try:
        entry["result"] = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        entry["error"] = "no JSON on stdout"
    return entry


def run(args: argparse.Namespace) -> int:
    import torch

    out_json: Path | None = args.output
    bag_out = args.bag_out or (out_json.parent / "bag_eval" if out_json else Path("out/bench_all/bag_eval"))
    if args.bag is not None and not args.bag.exists():
        raise CommandError(f"--bag {args.bag}: no such bag")
    if bag_out.exists():
        import shutil

        shutil.rmtree(bag_out)  # bag eval writes a fresh report folder
    bag_out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    entries = []
    for name, argv in _targets(args, bag_out):
        print(f"[bench all] {name}: sqgan {' '.join(argv)}", file=sys.stderr, flush=True)
        entry = run_one(name, argv, args.timeout)
        print(f"[bench all] {name}: {'error: ' + entry['error'] if 'error' in entry else 'ok'} "
              f"({entry['wall_s']} s)", file=sys.stderr, flush=True)
        entries.append(entry)
    result = {"benchmark": "all", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                       "torch": torch.__version__, "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "quick": bool(args.quick), "wall_s": round(time.monotonic() - t0, 1), "benchmarks": entries}
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=1) + "\n")
    if args.page:
        from ros2_ws.results_page import write_page

        write_page(args.page, result, bag_out / "summary.json" if args.bag is not None else None)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0 if all("error" not in e for e in entries) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("all", help="every benchmark in one run (JSON), and the results page",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("-o", "--output", type=Path, help="also write the JSON here (e.g. docs/results/bench_all.json)")
    p.add_argument("--page", type=Path, help="write the results page here (e.g. docs/results.md)")
    p.add_argument("--bag", type=Path, default=SAMPLE_BAG if SAMPLE_BAG.exists() else None,
                   help="bag for `sqgan bag eval` (default: the shipped sample bag)")
    p.add_argument("--camera", default=SAMPLE_CAMERA, help="its camera topic")
    p.add_argument("--semantic", default=SAMPLE_SEMANTIC, help="its semantic topic")
    p.add_argument("--bag-out", type=Path, help="bag eval report folder (default: bag_eval/ next to -o)")
    p.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                   help=f"run only these benchmarks ({', '.join(NAMES)})")
    p.add_argument("--quick", action="store_true", help="few iterations and frames: a smoke run, not figures")
    p.add_argument("--timeout", type=positive_float, default=1200.0, help="seconds per benchmark (default 1200)")
    p.add_argument("--json", action="store_true", help="one-line JSON")
    p.set_defaults(func=run)
