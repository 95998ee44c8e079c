"""package.xml names every third-party module the package imports, so `rosdep install` on a ROS 2
machine leaves no node failing at import; modules without a rosdep key are listed here and installed
by the pip step of the README's ROS 2 section."""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"sqgan_core", "sim", "ros2_ws", "__future__"}

# import name -> rosdep key (ROS message/launch packages are their own key)
ROSDEP = {
    "numpy": "python3-numpy", "torch": "python3-torch", "PIL": "python3-pil", "yaml": "python3-yaml",
    "scipy": "python3-scipy",
    "zmq": "python3-zmq", "cv2": "python3-opencv", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
}
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "builtin_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs",
                "rosgraph_msgs", "geometry_msgs", "tf2_msgs", "ament_index_python", "launch", "launch_ros"}
# No rosdep key: installed with pip (README "On a ROS 2 install"); optional ones only where their feature is used.
PIP_ONLY = {"constriction": "constriction", "moderngl": "moderngl", "mmseg": "mmsegmentation",
            "mmengine": "mmengine", "mmcv": "mmcv-lite", "lpips": "lpips", "carla": "carla", "rosbags": "rosbags"}


def third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for root in ("sqgan_core", "sim", "ros2_ws", "launch"):
        for f in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(f.relative_to(REPO)))
    return found


def declared() -> set[str]:
    tree = ET.parse(REPO / "package.xml")
    return {e.text.strip() for tag in ("depend", "exec_depend", "build_export_depend") for e in tree.iter(tag)}


def test_every_third_party_import_is_a_package_xml_dependency_or_a_documented_pip_step():
    deps, readme = declared(), (REPO / "README.md").read_text()
    for module, files in sorted(third_party_imports().items()):
        if module in PIP_ONLY:
            assert PIP_ONLY[module] in readme, f"{module} ({sorted(files)[0]}): README's pip step lacks {PIP_ONLY[module]}"
            continue
        key = ROSDEP.get(module, module if module in ROS_PACKAGES else None)
        assert key is not None, f"{module} (imported by {sorted(files)}) has no rosdep key or pip entry here"
        assert key in deps, f"{module} (imported by {sorted(files)[0]}) needs <exec_depend>{key}</exec_depend>"


# Programs run as subprocesses (no import to find): rosdep key -> the module that runs it.
SYSTEM_TOOLS = {"ffmpeg": "sqgan_core/classic_codecs.py"}


def test_package_xml_declares_nothing_unused():
    used = {ROSDEP.get(m, m) for m in third_party_imports()}
    for key, module in SYSTEM_TOOLS.items():
        assert f'"{key}"' in (REPO / module).read_text(), f"{module} no longer runs {key}"
    extra = declared() - used - {"python3-pytest"} - set(SYSTEM_TOOLS)
    assert not extra, f"package.xml declares {sorted(extra)} but nothing imports them"
