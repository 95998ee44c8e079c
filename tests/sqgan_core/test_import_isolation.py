"""The codec package stands alone: it never imports the simulator, ROS or its own command line.

`sqgan_core` is what a user embeds (and what runs on the GPU machine, where neither ROS nor the
simulator exists); a lazy import of rclpy in a helper would only show there, at the worst moment.
"""
import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "sqgan_core"
FORBIDDEN = ("sim", "rclpy", "ament_index_python", "ros2_ws", "launch", "launch_ros", "rosbags")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in `path` names, at any depth (functions included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_no_module_of_sqgan_core_imports_ros_or_the_simulator_not_even_lazily():
    bad = [f"{p.relative_to(PKG.parent)}:{line} imports {name}"
           for p in sorted(PKG.rglob("*.py")) for line, name in _imports(p)
           if name.split(".")[0] in FORBIDDEN]
    assert not bad, "\n".join(bad)


def test_nothing_outside_the_command_line_imports_it():
    cli = PKG / "cli"
    bad = [f"{p.relative_to(PKG.parent)}:{line} imports {name}"
           for p in sorted(PKG.rglob("*.py")) if cli not in p.parents and p.name != "__main__.py"
           for line, name in _imports(p) if name == "sqgan_core.cli" or name.startswith("sqgan_core.cli.")]
    assert not bad, "\n".join(bad)


def test_importing_sqgan_core_and_its_streaming_core_loads_no_ros_and_no_simulator():
    code = ("import sys, sqgan_core, sqgan_core.codec, sqgan_core.streaming.stream, sqgan_core.streaming.assembler, "
            "sqgan_core.transport.zmq_link, sqgan_core.transport.emulator, sqgan_core.heldout, sqgan_core.evaluation\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]", p.stdout
