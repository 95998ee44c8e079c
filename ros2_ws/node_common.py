"""Small helpers the sqgan nodes share: QoS, diagnostics messages, rolling statistics, torch threads."""
from __future__ import annotations

import os
from collections import deque
from typing import Any, Iterable

import numpy as np


def model_label(spec: str) -> str:
    """The `model` parameter as reports show it: "" means the shipped checkpoint, so say which."""
    return spec or "shipped (sqgan_core/weights/sqgan_small.pt)"


def sensor_qos(depth: int = 5) -> Any:
    """Best-effort keep-last: matches both reliable and best-effort camera publishers."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


def image_qos(depth: int = 10) -> Any:
    """image_transport's default (reliable, keep last 10) for what the RSU publishes."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


def set_torch_threads(n: int) -> None:
    """Several nodes share few cores: one intra-op thread each avoids oversubscription (measured: two
    threads per process made encode+decode 5-10x slower on a loaded 2-core machine)."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
        os.environ.setdefault("OMP_NUM_THREADS", str(n))


class Rolling:
    """The last `n` values of a measurement, for p50/p95/mean in diagnostics."""

    def __init__(self, n: int = 500) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, v: float) -> None:
        self.values.append(float(v))

    def summary(self, prefix: str) -> dict[str, float]:
        if not self.values:
            return {}
        a = np.fromiter(self.values, float)
        return {f"{prefix}_p50": float(np.percentile(a, 50)), f"{prefix}_p95": float(np.percentile(a, 95)),
                f"{prefix}_mean": float(a.mean())}


def diagnostic_status(name: str, hardware_id: str, values: dict[str, Any], *, level: int = 0,
                      message: str = "ok") -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus()
    st.level = bytes([level])
    st.name, st.hardware_id, st.message = name, hardware_id, message
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return st


def diagnostic_array(stamp: Any, statuses: Iterable[Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray

    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = list(statuses)
    return arr


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def parse_diagnostics(msg: Any) -> dict[str, dict[str, str]]:
    """DiagnosticArray -> {status name: {key: value}} (the recorder's view of the nodes)."""
    return {st.name: {kv.key: kv.value for kv in st.values} for st in msg.status}


def load_segmenter(spec: str) -> Any:
    """The vehicle's segmenter: (callable RGB -> trainIds, "") or (None, reason). `spec` is a
    checkpoint path; empty means the shipped one."""
    try:
        from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError
    except ImportError as exc:
        return None, f"mmsegmentation is not installed: {exc}"
    try:
        return Segmenter.load(spec or None), ""
    except (SegmenterError, ImportError) as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported, not fatal
        return None, f"segmenter {spec!r} failed to load: {exc}"


def run_node(make_node: Any, name: str, startup_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C or shutdown, clean up. A start-up error the user
    can fix (bad parameter, key file, model spec) prints one line and exits 2 instead of a traceback."""
    import signal
    import sys

    import rclpy
    import rclpy.executors
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    # The executor exists before the node does: a Ctrl-C right after start-up then interrupts the
    # spin loop, not the executor's constructor (whose half-built object prints a traceback when
    # collected, as rclpy.spin's would).
    executor = rclpy.executors.SingleThreadedExecutor()
    try:
        node = make_node()
    except startup_errors as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the node was still loading (its model, keys): a clean stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        rclpy.try_shutdown()
        return 0
    try:
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy's RCLError
        if rclpy.ok():
            raise
        # rclpy's own SIGINT handler shut the context down while the executor was between two waits
        # (it then fails on the invalid context instead of raising ExternalShutdownException): a clean stop
    finally:
        # Ctrl-C in a terminal reaches every process of the group and `ros2 launch` forwards its own
        # SIGINT too: a second one must not interrupt the clean-up (a traceback and exit -2 under launch).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
