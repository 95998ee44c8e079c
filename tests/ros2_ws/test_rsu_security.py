"""The RSU node's refusals as an operator sees them: every kind of refused connection and a spoofed
vehicle id is a counter by reason on its /diagnostics (issue 12's security acceptance), and a refused
handshake is logged with the peer's address.

One RSU process (no link, no vehicle node); the bad clients connect straight to its endpoint from
this process, one kind at a time, so each counter's rise is that client's doing.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.ros

DDS_XML = str(Path(__file__).resolve().parents[2] / "configs" / "dds" / "fastdds_fast_discovery.xml")


def _endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Rsu:
    """The RSU node in a subprocess, its output collected, and its /diagnostics read by a probe node."""

    def __init__(self, keys: Path, allow_dir: Path) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from ros2_ws.graph import build
        from ros2_ws.node_common import parse_diagnostics

        self.endpoint = _endpoint()
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", FASTDDS_BUILTIN_TRANSPORTS="UDPv4",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", FASTDDS_DEFAULT_PROFILES_FILE=DDS_XML)
        env.update(build("rsu")[0].env)  # the environment the launch graph gives it
        cmd = [sys.executable, "-m", "ros2_ws.rsu_node", "--ros-args"]
        for k, v in dict(model="untrained:small", endpoint=self.endpoint, secret_key=keys / "rsu.key_secret",
                         allow_dir=allow_dir, diagnostics_period=0.3).items():
            cmd += ["-p", f"{k}:={v}"]
        self.lines: list[str] = []
        self.p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        self.diag: dict[str, dict[str, str]] = {}
        rclpy.init()
        self.node = rclpy.create_node("rsu_security_probe")
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.diag.update(parse_diagnostics(m)), 50)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _pump(self) -> None:
        for raw in iter(self.p.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def counter(self, name: str) -> int:
        return int(self.diag.get("sqgan rsu", {}).get(name, "0"))

    def wait(self, what, timeout: float = 60.0, during=None) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if what():
                return True
            assert self.p.poll() is None, "the RSU exited:\n" + "".join(self.lines[-30:])
            if during is not None:
                during()
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture(scope="module")
def rsu(keyset, tmp_path_factory):
    import zmq.auth

    # the allow-list as generated, plus a certificate pyzmq writes itself (no role, no vehicle_id)
    tmp = tmp_path_factory.mktemp("rsu_security")
    allowed = tmp / "allowed"
    shutil.copytree(keyset / "allowed", allowed)
    bare_pub, _ = zmq.auth.create_certificates(tmp, "bare")
    shutil.copy(bare_pub, allowed / "bare.key")
    old = {k: os.environ.get(k) for k in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")}
    os.environ.update(FASTDDS_BUILTIN_TRANSPORTS="UDPv4", FASTDDS_DEFAULT_PROFILES_FILE=DDS_XML)
    r = Rsu(keyset, allowed)
    try:
        assert r.wait(lambda: any("RSU listening" in ln for ln in r.lines), 120), "".join(r.lines[-30:])
        assert r.wait(lambda: "sqgan rsu" in r.diag, 30), "no /diagnostics from the RSU"
        yield r
    finally:
        r.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_refusals_and_spoofing_are_counted_by_reason_on_diagnostics(rsu, keyset, small_codec):
    from sqgan_core.streaming.stream import StreamEncoder
    from sqgan_core.transport.zmq_link import Sender

    assert rsu.counter("allow_list_refused") == 1  # bare.key, refused when the list was loaded
    assert any("bare.key" in ln for ln in rsu.lines)
    ctx = zmq.Context.instance()

    def refused(client_open, counters: tuple[str, ...]) -> None:
        """Open one bad client, hold it (it keeps retrying) until a counter of `counters` rises."""
        before = sum(rsu.counter(c) for c in counters)
        client = client_open()
        try:
            assert rsu.wait(lambda: sum(rsu.counter(c) for c in counters) > before, 30,
                            during=lambda: client.send([b"x"]) if isinstance(client, Sender) else None), \
                f"{counters} did not rise: {rsu.diag.get('sqgan rsu')}"
        finally:
            client.close() if isinstance(client, Sender) else client.close(0)

    # a key that is not on the allow-list: refused by the ZAP handler
    refused(lambda: Sender(rsu.endpoint, keyset / "outside" / "intruder.key_secret", keyset / "rsu.key"),
            ("refused_unlisted_key",))

    # a plain, unencrypted client (it may hang up first, which libzmq reports without detail)
    def plain():
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(rsu.endpoint)
        return s

    refused(plain, ("refused_handshake_protocol", "refused_handshake_other"))
    # an allowed vehicle key, but the wrong server key (the link's, not the RSU's)
    refused(lambda: Sender(rsu.endpoint, keyset / "vehicle_1.key_secret", keyset / "link.key"),
            ("refused_handshake_protocol", "refused_handshake_other"))
    assert rsu.counter("refused_handshake_protocol") >= 1

    # vehicle 1's key, packets that claim vehicle 2: authenticated, yet refused by the assembler
    packets = StreamEncoder(small_codec, 2, max_packet_bytes=256).encode(
        np.zeros((64, 128, 3), np.uint8), np.zeros((64, 128), np.uint8), (7, 0), "spoof").packets
    spoofer = Sender(rsu.endpoint, keyset / "vehicle_1.key_secret", keyset / "rsu.key")
    try:
        assert rsu.wait(lambda: rsu.counter("rejected_spoofed_vehicle") > 0, 30,
                        during=lambda: spoofer.send(packets)), rsu.diag.get("sqgan rsu")
    finally:
        spoofer.close()
    v2 = rsu.diag.get("sqgan rsu: vehicle_2", {})  # (listed from the start: its key is on the allow-list)
    assert int(v2.get("packets_arrived", "0")) == 0 and int(v2.get("frames_decoded", "0")) == 0, v2
    assert rsu.counter("refused_unlisted_key") >= 1 and rsu.counter("allow_list_refused") == 1
    # the operator's log: the refused key with its address, each refused handshake with its reason and
    # its peer's address, or the plain statement that the peer had gone before it could be read
    log = "".join(rsu.lines)
    assert any("not on the allow-list" in ln and "from 127.0.0.1:" in ln for ln in rsu.lines), log
    handshakes = [ln for ln in rsu.lines if "refused a connection from" in ln and "allow-list" not in ln]
    assert handshakes and all("from 127.0.0.1:" in ln or "closed before its address could be read" in ln
                              for ln in handshakes), log
    assert "Traceback" not in log
