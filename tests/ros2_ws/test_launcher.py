import signal
import sys
import time

import pytest

from ros2_ws.graph import NodeSpec
from ros2_ws.launcher import Supervisor

PY = sys.executable


def spec(name, code, **kw):
    return NodeSpec(name=name, executable=PY, kind="process", arguments=["-c", code], **kw)


@pytest.fixture
def logs():
    return []


def sup(specs, logs, **kw):
    s = Supervisor(specs, log=logs.append, grace=3.0, **kw)
    for p in s.procs:  # executable is an absolute path: run it as given
        p.cmd = [PY, *p.spec.arguments]
    return s


TRAP = ("import signal,sys,time\n"
        "def h(s,f):\n print('got', s, flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGINT,h)\nprint('ready',flush=True)\nwhile True: time.sleep(0.05)\n")


def test_forwards_sigint_and_exits_cleanly(logs, tmp_path):
    out = open(tmp_path / "out.txt", "w+")
    s = sup([spec("a", TRAP), spec("b", TRAP)], logs, output=out)
    t0 = time.monotonic()
    assert s.run(duration=1.5) == 0
    assert time.monotonic() - t0 < 6
    out.seek(0)
    text = out.read()
    assert "[a] got 2" in text and "[b] got 2" in text


def test_stubborn_process_is_killed(logs):
    code = "import signal,time\nsignal.signal(signal.SIGINT,signal.SIG_IGN)\nsignal.signal(signal.SIGTERM,signal.SIG_IGN)\ntime.sleep(60)"
    s = sup([spec("stubborn", code)], logs, capture=False)
    t0 = time.monotonic()
    s.run(duration=0.5)
    assert time.monotonic() - t0 < 10 and s.procs[0].returncode == -signal.SIGKILL
    assert any("SIGKILL" in m for m in logs)


def test_required_node_ends_the_graph_with_its_code(logs):
    s = sup([spec("daemon", TRAP), spec("job", "import time; time.sleep(0.5); raise SystemExit(3)", required=True)],
            logs, capture=False)
    assert s.run(duration=20) == 3
    assert s.procs[0].returncode == 0  # the other node got SIGINT and exited cleanly


def test_failure_is_reported_and_respawn(logs):
    s = sup([spec("crash", "raise SystemExit(5)", respawn=True, respawn_delay=0.2), spec("ok", TRAP)], logs,
            capture=False)
    assert s.run(duration=1.5) == 5
    assert s.procs[0].restarts >= 2 and any("respawning crash" in m for m in logs)


def test_sqgan_launch_dry_run(tmp_path, capsys):
    from sqgan_core.transport.keys import generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "keys", 2)
    assert main(["launch", "pipeline", "--dry-run", "--vehicles", "2", "--keys", str(tmp_path / "keys"),
                 "--param", "vehicle.m_s=0.25"]) == 0
    out = capsys.readouterr().out
    assert '"vehicle_encoder_1"' in out and '"m_s": 0.25' in out


def test_dry_run_refuses_a_graph_its_keys_cannot_run(tmp_path, capsys):
    from sqgan_core.transport.keys import generate, generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "one", 1)  # keys for vehicle 0 only
    assert main(["launch", "pipeline", "--dry-run", "--vehicles", "2", "--keys", str(tmp_path / "one")]) == 2
    assert "vehicle_1.key_secret" in capsys.readouterr().err
    for name, role in (("rsu", "rsu"), ("link", "relay")):  # an allow-list that admits no vehicle
        generate(tmp_path / "none", name, role)
    assert main(["launch", "rsu", "--dry-run", "--keys", str(tmp_path / "none")]) == 2
    assert "admits no vehicle" in capsys.readouterr().err


def test_sqgan_launch_without_keys_says_how(tmp_path, capsys):
    from sqgan_core.cli import main

    assert main(["launch", "rsu", "--keys", str(tmp_path / "none")]) == 2
    assert "sqgan keys" in capsys.readouterr().err


def test_launch_takes_ros2_launch_style_assignments(tmp_path, capsys):
    from sqgan_core.transport.keys import generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "keys", 1)
    for argv in (["pipeline", f"keys_dir:={tmp_path / 'keys'}", "profile:=clean"],
                 ["pipeline", "--set", f"keys_dir:={tmp_path / 'keys'}", "--set", "profile=clean"]):
        assert main(["launch", *argv, "--dry-run"]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert '"clean"' in out and "bursty_15pct" not in out
    assert main(["launch", "pipeline", "profile=clean", "--dry-run"]) == 2
    assert "name:=value" in capsys.readouterr().err


def test_assignments_after_options_are_applied(tmp_path, capsys):
    """ros2 launch takes name:=value anywhere; argparse alone refused them after any option."""
    import json

    from sqgan_core.transport.keys import generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "keys", 1)
    argv = ["launch", "pipeline", "--keys", str(tmp_path / "keys"), "scenario:=dense_urban", "--dry-run",
            "profile:=clean"]
    assert main(argv) == 0, capsys.readouterr().err
    specs = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert specs["sim_publisher"]["parameters"]["scenario"] == "dense_urban"
    assert "clean" in specs["link_emulator"]["arguments"]
    with pytest.raises(SystemExit):  # a stray word that is not name:=value is still an error
        main(["launch", "pipeline", "--keys", str(tmp_path / "keys"), "nonsense", "--dry-run"])
    assert "unrecognized arguments: nonsense" in capsys.readouterr().err


def test_out_of_range_node_parameters_are_refused_by_name(tmp_path, capsys):
    from sqgan_core.transport.keys import generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "keys", 1)
    for param, message in (("vehicle.m_x=7", "vehicle_encoder_0: parameter m_x must be a number in [0, 1]"),
                           ("vehicle.info_copies=0", "vehicle_encoder_0: parameter info_copies must be"),
                           ("vehicle.m_s=x", "vehicle.m_s: 'x' is not a float")):
        assert main(["launch", "pipeline", "--keys", str(tmp_path / "keys"), "--param", param, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_a_bad_profile_scenario_or_model_stops_the_graph_before_it_starts(tmp_path, capsys):
    from sqgan_core.transport.keys import generate_set
    from sqgan_core.cli import main

    generate_set(tmp_path / "keys", 1)
    keys = ["--keys", str(tmp_path / "keys")]
    for extra, message in ((["--profile", "nosuch"], "link_emulator: "),
                           (["--param", "sim.scenario=nosuch"], "sim_publisher: "),
                           (["--model", str(tmp_path / "none.pt")], "does not exist")):
        assert main(["launch", "pipeline", *keys, *extra, "--duration", "5"]) == 2  # nothing started
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
