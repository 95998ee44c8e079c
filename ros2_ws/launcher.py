"""`sqgan launch vehicle|rsu|pipeline`: the launch files' node graph, without ROS 2 launch.

ROS 2 `launch` cannot be installed from pip (REFERENCE.md), so this runs the NodeSpecs of
ros2_ws.graph as supervised subprocesses: output prefixed with the node name, SIGINT/SIGTERM
forwarded (then SIGTERM, then SIGKILL after grace periods), optional respawn, a `required` node
ending the whole graph (like launch's on_exit=Shutdown), and a non-zero exit when a node failed.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from ros2_ws.graph import GRAPHS, GraphError, NodeSpec, build, command, context, parse_assignments, parse_params
from sqgan_core.arguments import int_in, positive_float


@dataclass
class _Proc:
    spec: NodeSpec
    cmd: list[str]
    popen: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    restarts: int = 0
    restart_at: float | None = None
    failures: list[int] = field(default_factory=list)  # non-clean exit codes, across respawns
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Start, watch and stop a graph's processes."""

    def __init__(self, specs: list[NodeSpec], *, env: dict[str, str] | None = None, params_dir: Path | None = None,
                 log: Callable[[str], None] | None = None, output: IO[str] | None = None,
                 grace: float = 8.0, capture: bool = True) -> None:
        self._tmp = None
        if params_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sqgan-launch-")
            params_dir = Path(self._tmp.name)
        self.procs = [_Proc(s, command(s, params_dir)) for s in specs]
        self.env = dict(os.environ if env is None else env)
        self.output = output or sys.stdout
        self.log = log or (lambda m: print(f"[launch] {m}", file=sys.stderr, flush=True))
        self.grace = grace
        self.capture = capture
        self.stopping = threading.Event()
        self.required_exit: int | None = None
        self._out_lock = threading.Lock()

    # -- processes ------------------------------------------------------------------------------
    def _start(self, p: _Proc) -> None:
        env = dict(self.env, **p.spec.env)
        p.popen = subprocess.Popen(p.cmd, env=env, start_new_session=True,
                                   stdout=subprocess.PIPE if self.capture else None,
                                   stderr=subprocess.STDOUT if self.capture else None)
        p.returncode = None
        self.log(f"started {p.spec.name} (pid {p.popen.pid}): {' '.join(p.cmd[:1] + p.cmd[1:4])} ...")
        if self.capture:
            t = threading.Thread(target=self._pump, args=(p.spec.name, p.popen.stdout), daemon=True)
            t.start()
            p.threads = [t]

    def _pump(self, name: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._out_lock:
                print(f"[{name}] {line}", file=self.output, flush=True)

    def start(self) -> None:
        for p in self.procs:
            self._start(p)

    def poll(self) -> bool:
        """Reap exits, respawn, honour `required`. Returns False once the graph should stop."""
        now = time.monotonic()
        for p in self.procs:
            if p.popen is None:
                continue
            if p.returncode is None and p.popen.poll() is not None:
                p.returncode = p.popen.returncode
                self.log(f"{p.spec.name} exited with code {p.returncode}")
                if p.returncode != 0:
                    p.failures.append(p.returncode)
                if p.spec.required:
                    self.required_exit = p.returncode
                    return False
                if p.spec.respawn and not self.stopping.is_set():
                    p.restart_at = now + p.spec.respawn_delay
            if p.restart_at is not None and now >= p.restart_at and not self.stopping.is_set():
                p.restart_at = None
                p.restarts += 1
                self.log(f"respawning {p.spec.name} (restart {p.restarts})")
                self._start(p)
        return not self.stopping.is_set()

    def stop(self) -> None:
        """SIGINT to every live node (reverse start order), then SIGTERM, then SIGKILL."""
        self.stopping.set()
        live = [p for p in reversed(self.procs) if p.popen is not None and p.popen.poll() is None]
        for sig, wait in ((signal.SIGINT, self.grace), (signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            live = [p for p in live if p.popen.poll() is None]  # type: ignore[union-attr]
            if not live:
                break
            for p in live:
                try:
                    os.killpg(p.popen.pid, sig)  # type: ignore[union-attr]
                except ProcessLookupError:
                    pass
            if sig != signal.SIGINT:
                self.log(f"sent {sig.name} to {', '.join(p.spec.name for p in live)}")
            t_end = time.monotonic() + wait
            while time.monotonic() < t_end and any(p.popen.poll() is None for p in live):  # type: ignore[union-attr]
                time.sleep(0.05)
        for p in self.procs:
            if p.popen is not None:
                p.popen.wait()
                if p.returncode is None:
                    p.returncode = p.popen.returncode
                for t in p.threads:
                    t.join(1.0)
        if self._tmp is not None:
            self._tmp.cleanup()

    def exit_code(self) -> int:
        """0 when every node ended cleanly (0, or by our SIGINT/SIGTERM), else the first failure."""
        if self.required_exit is not None:
            return self.required_exit
        for p in self.procs:
            for rc in p.failures + [p.returncode]:
                if rc not in (0, None, -signal.SIGINT, -signal.SIGTERM, 130, 143):
                    return rc if rc > 0 else 128 - rc
        return 0

    def run(self, duration: float | None = None) -> int:
        stop_now = threading.Event()

        def handler(signum: int, _frame: Any) -> None:
            self.log(f"received {signal.Signals(signum).name}: shutting down")
            stop_now.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            t_end = None if duration is None else time.monotonic() + duration
            while not stop_now.is_set() and self.poll():
                if t_end is not None and time.monotonic() >= t_end:
                    self.log(f"duration of {duration} s reached")
                    break
                if all(p.returncode is not None and p.restart_at is None for p in self.procs):
                    self.log("every node has exited")
                    break
                time.sleep(0.1)
        finally:
            self.stop()
            for s, h in old.items():
                signal.signal(s, h)
        failed = [f"{p.spec.name}={rc}" for p in self.procs for rc in dict.fromkeys(p.failures + [p.returncode])
                  if rc not in (0, None, -signal.SIGINT, -signal.SIGTERM, 130, 143)]
        if failed:
            self.log(f"nodes that failed: {', '.join(failed)}")
        return self.exit_code()


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", help="key directory from `sqgan keys` (sets {keys_dir})")
    p.add_argument("--profile", help="link profile name or YAML (sets {profile})")
    p.add_argument("--model", help="model for the vehicle and the RSU: checkpoint path or untrained:<config>")
    p.add_argument("--vehicles", type=int_in(1, 64), default=1, help="number of vehicle encoders (ids 0..N-1)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a value of configs/nodes/network.yaml (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node parameter, e.g. vehicle.m_x=0.3 (repeatable)")


def sets_from_args(args: argparse.Namespace) -> dict[str, Any]:
    positional = list(getattr(args, "assignments", []) or [])
    bad = [a for a in positional if ":=" not in a]
    if bad:
        raise GraphError(f"{bad[0]!r}: launch arguments look like name:=value (as for ros2 launch)")
    sets = parse_assignments(args.set + positional, "--set")
    for key, val in (("keys_dir", args.keys), ("profile", args.profile), ("model", args.model)):
        if val is not None:
            sets[key] = val
    return sets


def claim_assignments(args: argparse.Namespace, extras: list[str]) -> list[str]:
    """Take the `name:=value` words that came after an option (argparse leaves them over, since a
    positional is filled only right after the graph name), so they work anywhere on the line as
    with ros2 launch; later ones override earlier ones. Anything else stays unrecognized."""
    mine = [e for e in extras if ":=" in e and not e.startswith("-")]
    args.assignments = list(getattr(args, "assignments", None) or []) + mine
    return [e for e in extras if e not in mine]


def check_keys(keys_dir: str | os.PathLike[str], vehicles: int, specs=()) -> None:
    """Every key file the graph's nodes will open exists, and the allow-list admits at least one
    vehicle: checked before anything starts (and by --dry-run), so a graph never comes up half-keyed."""
    from sqgan_core.transport.keys import KeyFileError, load_allow_list
    from sqgan_core.errors import CommandError

    hint = f"run `sqgan keys --out {keys_dir} --vehicles {max(vehicles, 1)}` first"
    if not (Path(keys_dir) / "allowed").is_dir():
        raise CommandError(f"no keys in {keys_dir}: {hint}")
    for spec in specs:
        for name, value in spec.parameters.items():
            if isinstance(value, str) and name.endswith("_key") and not Path(value).is_file():
                raise CommandError(f"{spec.name}: {name} {value} does not exist ({hint})")
            if name == "allow_dir":
                try:
                    peers = load_allow_list(value)
                except KeyFileError as exc:
                    raise CommandError(f"{spec.name}: {exc}") from None
                if not any(p.role == "vehicle" for p in peers.values()):
                    raise CommandError(f"{spec.name}: the allow-list {value} admits no vehicle ({hint})")


def preflight(specs) -> None:
    """Load what each node will load first (the link profile, the simulator scenario, a model file),
    so a typo stops the whole graph before any node starts instead of one node dying while the rest
    run on."""
    from sqgan_core.transport.channel import ProfileError, load_profile
    from sqgan_core.errors import CommandError

    checked: set[str] = set()
    for spec in specs:
        args = list(spec.arguments)
        if "--profile" in args[:-1]:
            try:
                load_profile(args[args.index("--profile") + 1])
            except (ProfileError, OSError) as exc:
                raise CommandError(f"{spec.name}: {exc}") from None
        scenario = spec.parameters.get("scenario")
        if isinstance(scenario, str) and scenario:
            from sim.scenario import ScenarioError, load_scenario

            try:
                load_scenario(scenario)
            except (ScenarioError, OSError) as exc:
                raise CommandError(f"{spec.name}: {exc}") from None
        model = spec.parameters.get("model")
        if isinstance(model, str) and model and not model.startswith("untrained:") and model not in checked:
            if not Path(model).is_file():
                raise CommandError(f"{spec.name}: model checkpoint {model} does not exist")
            from sqgan_core.checkpoint import CheckpointError, load_checkpoint

            try:  # a file that is not a checkpoint fails here, not in every codec node at once
                load_checkpoint(model)
            except CheckpointError as exc:
                raise CommandError(f"{spec.name}: {exc}") from None
            checked.add(model)


def run(args: argparse.Namespace) -> int:
    from sqgan_core.errors import CommandError

    try:
        sets = sets_from_args(args)
        specs = build(args.graph, vehicles=args.vehicles, sets=sets, params=parse_params(args.param))
        check_keys(context(None, sets)["keys_dir"], args.vehicles, specs)
        preflight(specs)
        if args.dry_run:
            import json

            print(json.dumps([s.to_dict() for s in specs], indent=1))
            return 0
        sup = Supervisor(specs)
    except GraphError as exc:
        raise CommandError(str(exc)) from None
    return sup.run(args.duration)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("launch", help="start a node graph (vehicle, rsu, pipeline) like `ros2 launch`",
                              description="Runs the graph that launch/*.launch.py describe (configs/nodes/) as "
                                          "supervised processes; Ctrl-C shuts everything down cleanly.")
    p.add_argument("graph", choices=[g for g in GRAPHS if not g.startswith("demo")])
    p.add_argument("assignments", nargs="*", metavar="NAME:=VALUE",
                   help="values of configs/nodes/network.yaml as ros2 launch takes them, e.g. profile:=clean "
                        "(the same as --set NAME=VALUE); anywhere on the line")
    add_graph_arguments(p)
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    p.add_argument("--dry-run", action="store_true", help="print the node specs as JSON and exit")
    p.set_defaults(func=run, claim_extras=claim_assignments)
