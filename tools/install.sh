#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make demo`: Debian packages, then a .venv with the pinned
# requirements and this package in editable mode. A stamp keyed on the inputs makes re-runs instant;
# any change to requirements*, setup.py or apt-packages.txt triggers a re-install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.sqgan-install-stamp

# ROS 2 launch/launch_ros/launch_testing are not on PyPI: when the vendored wheels are there
# (../shared/vendor/ros2_launch; .ci/run points SQGAN_ROS2_LAUNCH_WHEELS at it), they are installed
# too and the launch-file tests run; elsewhere those tests skip with the reason.
LAUNCH_WHEELS=${SQGAN_ROS2_LAUNCH_WHEELS:-}
if [ -z "$LAUNCH_WHEELS" ]; then
  for d in ../shared/vendor/ros2_launch shared/vendor/ros2_launch; do
    [ -f "$d/SHA256SUMS" ] && { LAUNCH_WHEELS=$d; break; }
  done
fi

inputs_hash() {
  { cat tools/install.sh requirements.txt requirements-dev.txt setup.py tools/apt-packages.txt 2>/dev/null
    [ -n "$LAUNCH_WHEELS" ] && cat "$LAUNCH_WHEELS/SHA256SUMS" 2>/dev/null; } | sha256sum | cut -d' ' -f1
}

want=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

# Debian packages (headless GL for the simulator, etc.). Only what is missing is installed.
if [ -s tools/apt-packages.txt ]; then
  missing=()
  while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < tools/apt-packages.txt
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install: apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "install: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
LOG=$VENV/install.log
: > "$LOG"
pip_install() {  # quiet unless it fails; the full output stays in .venv/install.log
  if ! "$VENV/bin/python" -m pip install -q "$@" >>"$LOG" 2>&1; then
    grep -v '^WARNING: Location' "$LOG" | tail -30 >&2
    echo "install: pip install $* failed (full log: $LOG)" >&2
    exit 1
  fi
}
pip_install --upgrade pip setuptools wheel
echo "install: pinned requirements (first run ~1 min)"
pip_install -r requirements.txt -r requirements-dev.txt
pip_install --no-deps -e .
if [ -n "$LAUNCH_WHEELS" ]; then
  if [ ! -f "$LAUNCH_WHEELS/SHA256SUMS" ]; then
    echo "install: SQGAN_ROS2_LAUNCH_WHEELS=$LAUNCH_WHEELS has no wheels (SHA256SUMS missing)" >&2
    exit 1
  fi
  echo "install: ROS 2 launch/launch_ros/launch_testing wheels from $LAUNCH_WHEELS"
  (cd "$LAUNCH_WHEELS" && sha256sum --quiet -c SHA256SUMS) || { echo "install: $LAUNCH_WHEELS: checksum mismatch" >&2; exit 1; }
  pip_install osrf-pycommon==2.0.2 packaging
  pip_install --no-index --no-deps --find-links "$LAUNCH_WHEELS" launch==3.7.1 launch_xml==3.7.1 launch_yaml==3.7.1 \
    launch_testing==3.7.1 launch_ros==0.28.0 launch_testing_ros==0.28.0 composition-interfaces-standin==0.0.1
  "$VENV/bin/python" -c "import launch, launch_ros.actions, launch_testing, launch_testing_ros" \
    || { echo "install: the ROS 2 launch wheels do not import" >&2; exit 1; }
fi
# Verify instead of trusting pip's exit status (filtered above): fail loudly if anything is missing.
"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["torch", "numpy", "constriction", "zmq", "PIL", "cv2", "yaml", "tqdm", "rclpy", "sensor_msgs", "moderngl",
        "mmseg", "matplotlib",
        "pytest", "hypothesis", "sqgan_core"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:  # noqa: BLE001 - report every failure, not just the first
        bad.append(f"{m}: {e}")
if bad:
    sys.exit("install: imports failed:\n  " + "\n  ".join(bad))
PY
echo "$want" > "$STAMP"
echo "install: ok"
