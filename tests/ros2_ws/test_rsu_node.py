"""End-to-end tests with real rclpy nodes in separate processes (private ROS_DOMAIN_ID, localhost):
RSU decoder + link emulator + vehicle encoders, camera frames published from this process.

One module-scoped pipeline; the tests run in file order and build on each other (flow, refusal of
an unknown key, 10% loss, 5 s outage, RSU restart, vehicle restart, fuzzing, memory).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from ros2_ws.image_conversions import convert, image_to_numpy, numpy_to_image  # noqa: E402
from sqgan_core.labels import colorize  # noqa: E402

pytestmark = pytest.mark.ros

H, W = 100, 150  # odd size: the codec pads to 112 x 160, the RSU must give back 100 x 150
CAM = "/test_cam/image"
SEM = "/test_cam/semantic"
PY = sys.executable


def settled_rss_kb(pid: int) -> int:
    """RSS once the RSU is idle: the lowest of a few samples (a decode in progress is transient)."""
    time.sleep(3.0)
    vals = []
    for _ in range(4):
        vals.append(rss_kb(pid))
        time.sleep(0.5)
    return min(vals)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Proc:
    """A node subprocess whose output is collected (to wait for readiness lines)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name, self.cmd, self.env = name, cmd, env
        self.lines: list[str] = []
        self.start()

    def start(self) -> None:
        self.lines = []
        self.p = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        threading.Thread(target=self._pump, args=(self.p,), daemon=True).start()

    def _pump(self, p: subprocess.Popen) -> None:
        for raw in iter(p.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def wait_for(self, needle: str, timeout: float = 90.0) -> float:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if any(needle in line for line in self.lines):
                return time.monotonic()
            if self.p.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.p.returncode}):\n{''.join(self.lines[-30:])}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: no {needle!r} within {timeout} s:\n{''.join(self.lines[-30:])}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


class Harness:
    def __init__(self, keys: Path, env: dict[str, str], tmp: Path, endpoint) -> None:
        self.keys, self.env, self.tmp = keys, env, tmp
        self.link_ep, self.rsu_ep = endpoint(), endpoint()
        self.procs: dict[str, Proc] = {}
        rclpy.init()
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from ros2_ws.node_common import parse_diagnostics

        self.node = rclpy.create_node("rsu_test_probe")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_cam = self.node.create_publisher(Image, CAM, qos)
        self.pub_sem = self.node.create_publisher(Image, SEM, qos)
        self.outputs: dict[int, dict[int, dict[str, object]]] = defaultdict(dict)  # vid -> stamp sec -> topic -> msg
        self.arrivals: dict[int, list[tuple[float, int]]] = defaultdict(list)
        self.diag: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        for vid in (0, 1, 3, 9):
            for topic in ("image", "semantic", "semantic_color"):
                self.node.create_subscription(Image, f"/rsu/vehicle_{vid}/{topic}",
                                              lambda m, v=vid, t=topic: self._on_out(v, t, m), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.diag.update(parse_diagnostics(m)), 50)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spin = threading.Thread(target=self.executor.spin, daemon=True)
        self.spin.start()
        rng = np.random.default_rng(0)
        self.rgb = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(4)]
        lab = np.zeros((H, W), np.uint8)
        lab[H // 2:] = 0
        lab[: H // 2] = 10
        lab[40:70, 60:90] = 13
        self.labels = lab
        self.seq = 0

    def _on_out(self, vid: int, topic: str, msg) -> None:
        with self.lock:
            self.outputs[vid].setdefault(msg.header.stamp.sec, {})[topic] = msg
            if topic == "image":
                self.arrivals[vid].append((time.monotonic(), msg.header.stamp.sec))

    # -- processes ------------------------------------------------------------------------------
    def ros_cmd(self, module: str, **params) -> list[str]:
        cmd = [PY, "-m", module, "--ros-args"]
        for k, v in params.items():
            cmd += ["-p", f"{k}:={v}"]
        return cmd

    def start_rsu(self) -> Proc:
        from ros2_ws.graph import build

        self.env_rsu = dict(self.env, **build("rsu")[0].env)  # the environment the launch graph gives it
        return self._start("rsu", self.ros_cmd("ros2_ws.rsu_node", model="untrained:small", endpoint=self.rsu_ep,
                                               secret_key=self.keys / "rsu.key_secret",
                                               allow_dir=self.keys / "allowed", diagnostics_period=0.5))

    def start_link(self, profile: dict) -> Proc:
        path = self.tmp / f"{profile['name']}.yaml"
        path.write_text(yaml.safe_dump(profile))
        return self._start("link", [PY, "-m", "sqgan_core.transport.emulator", "--profile", str(path), "--listen",
                                    self.link_ep, "--forward", self.rsu_ep, "--keys", str(self.keys),
                                    "--stats-out", str(self.tmp / "link_stats.json")])

    def start_vehicle(self, vid: int, key: Path, name: str | None = None) -> Proc:
        return self._start(name or f"vehicle_{vid}", self.ros_cmd(
            "ros2_ws.vehicle_node", model="untrained:small", vehicle_id=vid, camera_topic=CAM, semantic_topic=SEM,
            link_endpoint=self.link_ep, secret_key=key, server_key=self.keys / "link.key", info_copies=3,
            camera_qos="reliable",
            diagnostics_period=0.5))

    def _start(self, name: str, cmd: list[str]) -> Proc:
        self.procs[name] = Proc(name, cmd, self.env_rsu if name == "rsu" else self.env)
        return self.procs[name]

    # -- camera ---------------------------------------------------------------------------------
    def publish(self) -> int:
        """Publish the next camera frame and its semantic map; returns its stamp (seconds)."""
        self.seq += 1
        sec = 1000 + self.seq
        img = numpy_to_image(convert(self.rgb[self.seq % 4], "bgra8"), "bgra8")
        sem = numpy_to_image(convert(colorize(self.labels), "bgra8"), "bgra8")
        for m in (img, sem):
            m.header.stamp.sec, m.header.stamp.nanosec = sec, 0
            m.header.frame_id = "ego/rgb_front"
        self.pub_cam.publish(img)
        self.pub_sem.publish(sem)
        return sec

    def stream_until(self, vid: int, timeout: float, after: float | None = None, period: float = 0.1) -> float | None:
        """Publish at 1/period Hz until vehicle `vid` has an output that arrived after `after`."""
        after = time.monotonic() if after is None else after
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            self.publish()
            time.sleep(period)
            with self.lock:
                hits = [t for t, _ in self.arrivals[vid] if t > after]
            if hits:
                return min(hits)
        return None

    def wait_output(self, vid: int, sec: int, timeout: float) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            with self.lock:
                got = self.outputs[vid].get(sec, {})
                if "image" in got and "semantic" in got:
                    return True
            time.sleep(0.02)
        return False

    def logs(self, n: int = 15) -> str:
        return "\n".join(f"--- {k}:\n" + "".join(p.lines[-n:]) for k, p in self.procs.items()) + f"\nprobe executor alive: {self.spin.is_alive()}\n{self.diag}"

    def close(self) -> None:
        for p in self.procs.values():
            p.kill(signal.SIGINT)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


DDS_XML = str(Path(__file__).resolve().parents[2] / "configs" / "dds" / "fastdds_fast_discovery.xml")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "FASTDDS_DEFAULT_PROFILES_FILE": DDS_XML})
    return env


@pytest.fixture(scope="module")
def h(keyset, tmp_path_factory):
    import socket

    def endpoint():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return f"tcp://127.0.0.1:{s.getsockname()[1]}"

    old = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS")
    old_profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"  # this process too: no /dev/shm segments left behind
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = DDS_XML
    hh = Harness(keyset, _env(), tmp_path_factory.mktemp("pipe"), endpoint)
    rsu = hh.start_rsu()
    hh.start_link({"name": "clean", "loss": {"model": "none"}})
    v0 = hh.start_vehicle(0, keyset / "vehicle_0.key_secret")
    rsu.wait_for("RSU listening")
    v0.wait_for("vehicle 0:")
    yield hh
    hh.close()
    for key, value in (("FASTDDS_BUILTIN_TRANSPORTS", old), ("FASTDDS_DEFAULT_PROFILES_FILE", old_profile)):
        if value is None:  # leave the environment as other test modules expect it
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_frames_flow_end_to_end(h):
    assert h.stream_until(0, timeout=60) is not None, "no RSU output for vehicle 0"
    sec = h.publish()
    assert h.wait_output(0, sec, 20)
    with h.lock:
        out = dict(h.outputs[0][sec])
    img, sem = out["image"], out["semantic"]
    assert (img.height, img.width, img.encoding) == (H, W, "rgb8")
    assert (sem.height, sem.width, sem.encoding) == (H, W, "mono8")
    assert img.header.stamp.sec == sec and img.header.frame_id == "ego/rgb_front"
    ids = image_to_numpy(sem)
    assert np.all((ids < 19) | (ids == 255))
    time.sleep(1.2)
    assert int(h.diag["sqgan rsu: vehicle_0"]["frames_decoded"]) >= 1
    assert int(h.diag["sqgan vehicle: vehicle_0"]["frames_encoded"]) >= 1


def test_rates_change_at_run_time(h):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    cli = h.node.create_client(SetParameters, "/vehicle_encoder/set_parameters")
    assert cli.wait_for_service(timeout_sec=10)

    def set_mx(value: float):
        req = SetParameters.Request(parameters=[Parameter(name="m_x", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        fut = cli.call_async(req)
        t_end = time.monotonic() + 10
        while not fut.done() and time.monotonic() < t_end:
            time.sleep(0.02)
        return fut.result().results[0]

    assert not set_mx(1.5).successful  # validated: out of [0, 1]
    assert set_mx(0.25).successful
    t0 = time.monotonic()
    h.stream_until(0, timeout=20, after=t0)
    time.sleep(1.2)
    assert float(h.diag["sqgan vehicle: vehicle_0"]["m_x"]) == 0.25
    assert set_mx(0.5).successful


def test_unsupported_camera_encoding_is_skipped_not_fatal(h):
    from ros2_ws.image_conversions import numpy_to_image as to_msg

    before = int(h.diag["sqgan vehicle: vehicle_0"].get("skipped_unsupported_image", "0"))
    for i in range(3):
        bad = to_msg(np.zeros((H, W), np.uint16), "mono16")
        sem = to_msg(convert(colorize(h.labels), "bgra8"), "bgra8")
        for m in (bad, sem):
            m.header.stamp.sec = 50 + i
        h.pub_cam.publish(bad)
        h.pub_sem.publish(sem)
        time.sleep(0.3)
    time.sleep(1.2)
    diag = h.diag["sqgan vehicle: vehicle_0"]
    assert int(diag.get("skipped_unsupported_image", "0")) > before
    assert h.procs["vehicle_0"].p.poll() is None
    assert any("not supported" in line for line in h.procs["vehicle_0"].lines)
    assert h.stream_until(0, timeout=20) is not None  # and the stream goes on


def test_unknown_vehicle_key_is_refused(h, keyset):
    intruder = h.start_vehicle(9, keyset / "outside" / "intruder.key_secret", name="intruder")
    intruder.wait_for("vehicle 9:")
    t0 = time.monotonic()
    h.stream_until(0, timeout=15, after=t0)  # vehicle 0 keeps flowing (positive control)
    for _ in range(30):
        h.publish()
        time.sleep(0.1)
    with h.lock:
        assert h.outputs[9] == {} and any(t > t0 for t, _ in h.arrivals[0])
    time.sleep(1.0)
    diag = h.diag.get("sqgan vehicle: vehicle_9", {})
    assert int(diag.get("link_dropped_unavailable", "0")) > 0  # never authenticated: nothing ever sent
    intruder.kill(signal.SIGINT)
    assert h.spin.is_alive()


def test_ten_percent_bernoulli_loss_every_frame_decoded(h):
    h.procs["link"].kill()
    h.start_link({"name": "bern10", "seed": 10, "loss": {"model": "bernoulli", "p": 0.1}})
    h.procs["link"].wait_for("profile bern10")
    assert h.stream_until(0, timeout=30) is not None
    missing = []
    for _ in range(20):
        sec = h.publish()
        if not h.wait_output(0, sec, 10):
            missing.append(sec)
    time.sleep(1.5)  # the link rewrites its counters every second
    stats = yaml.safe_load((h.tmp / "link_stats.json").read_text())
    assert stats["profile"] == "bern10" and stats.get("dropped_loss", 0) > 0, "the link dropped nothing: the test would prove nothing"
    assert missing == [], f"frames not decoded under 10% loss: {missing} (link {stats})"


def test_total_loss_for_5s_then_stream_resumes(h):
    h.procs["link"].kill()
    t_down = time.monotonic()
    while time.monotonic() - t_down < 5.0:  # camera keeps running, nothing gets through
        h.publish()
        time.sleep(0.1)
    h.start_link({"name": "clean", "loss": {"model": "none"}})
    ready = h.procs["link"].wait_for("profile clean")
    first = h.stream_until(0, timeout=20, after=ready)
    assert first is not None, f"no output after the link came back: {h.logs()}"
    assert first - ready < 2.0, f"resumed {first - ready:.2f} s after the link came back"


def test_rsu_restart_recovers_within_2s(h):
    h.procs["rsu"].kill()
    rsu = h.start_rsu()
    ready = rsu.wait_for("RSU listening")
    first = h.stream_until(0, timeout=20, after=ready)
    assert first is not None, f"no output after the restart: {h.logs()}"
    print(f"RSU restart: RSU output {first - ready:.2f} s after ready")
    assert first - ready < 2.0, f"resumed {first - ready:.2f} s after the restart"


def test_vehicle_restart_recovers_within_2s(h, keyset):
    h.procs["vehicle_0"].kill()
    v0 = h.start_vehicle(0, keyset / "vehicle_0.key_secret")
    ready = v0.wait_for("vehicle 0:")
    first = h.stream_until(0, timeout=20, after=ready)
    assert first is not None, f"no output after the restart: {h.logs()}"
    print(f"vehicle restart: first frame encoded {v0.wait_for('first frame') - ready:.2f} s after ready, "
          f"RSU output {first - ready:.2f} s after ready")
    assert first - ready < 2.0, f"resumed {first - ready:.2f} s after the restart"


def _fuzz_packets(n: int, seed: int, base: list[bytes]):
    import binascii
    import struct

    rng = np.random.default_rng(seed)
    for i in range(n):
        mode = i % 5
        b = bytearray(base[i % len(base)])
        if mode == 0:
            yield rng.bytes(int(rng.integers(0, 400)))
        elif mode == 1:
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
            yield bytes(b)
        elif mode == 2:
            yield bytes(b[: int(rng.integers(0, len(b)))])
        else:  # hostile but well-formed: valid CRC over mutated fields and bodies
            body = bytearray(b[:-4])
            for _ in range(int(rng.integers(1, 5))):
                body[int(rng.integers(3, len(body)))] = int(rng.integers(0, 256))
            yield bytes(body) + struct.pack(">I", binascii.crc32(bytes(body)))


def _run_fuzz(h, keyset, small_codec, n: int) -> None:
    from sqgan_core.transport.zmq_link import Sender
    from sqgan_core.streaming.stream import StreamEncoder

    enc = StreamEncoder(small_codec, 1, max_packet_bytes=256)
    base = enc.encode(h.rgb[0], h.labels, (5, 0), "fuzz").packets
    # an allowed vehicle (vehicle 1) speaking straight to the RSU: the worst insider
    tx = Sender(h.rsu_ep, keyset / "vehicle_1.key_secret", keyset / "rsu.key", hwm=1000)
    rsu = h.procs["rsu"]
    try:
        t_end = time.monotonic() + 10
        while not tx.send([b"hello"]) and time.monotonic() < t_end:
            time.sleep(0.05)
        # Bounded means: no more than the largest legitimate frame needs. Warm the RSU up with one
        # valid frame of the largest grid it accepts (2048 tokens), then fuzz; RSS must stay within 10 %.
        big = np.random.default_rng(1).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
        enc_big = StreamEncoder(small_codec, 1, max_packet_bytes=1400, max_tokens=2048)
        pk = enc_big.encode(big, np.zeros((512, 1024), np.uint8), (4000, 0), "big").packets
        while tx.send(pk) < len(pk):
            time.sleep(0.01)
        assert h.wait_output(1, 4000, 60), "the largest frame was not decoded"
        rss0 = settled_rss_kb(rsu.p.pid)
        t0 = time.monotonic()
        sent = 0
        for pkt in _fuzz_packets(n, 7, base):
            while not tx.send([pkt]):
                time.sleep(0.001)
                assert time.monotonic() - t0 < 600, "the RSU stopped reading (hang)"
            sent += 1
        assert sent == n
        assert rsu.p.poll() is None, "the RSU crashed"
        rss1 = settled_rss_kb(rsu.p.pid)
        assert rss1 < rss0 * 1.10, f"RSU RSS grew from {rss0} to {rss1} kB after the largest legitimate frame"
        # still serving the real stream
        assert h.stream_until(0, timeout=20) is not None
        time.sleep(1.0)
        rsu_diag = h.diag["sqgan rsu"]
        rejected = sum(int(v) for k, v in rsu_diag.items() if k.startswith("rejected_"))
        assert rejected > n // 2, rsu_diag
    finally:
        tx.close()


def test_fuzzed_packets_through_rsu_receive_path_10k(h, keyset, small_codec):
    _run_fuzz(h, keyset, small_codec, 10_000)


@pytest.mark.slow
def test_fuzzed_packets_through_rsu_receive_path_100k(h, keyset, small_codec):
    _run_fuzz(h, keyset, small_codec, 100_000)


def _run_memory(h, keyset, small_codec, frames: int) -> None:
    """Valid frames from vehicle 3 at ~30 Hz (beyond the RSU's decode rate: stale frames are
    dropped, every frame is assembled); RSU RSS after warm-up vs at the end."""
    from sqgan_core.transport.zmq_link import Sender
    from sqgan_core.streaming.stream import StreamEncoder

    enc = StreamEncoder(small_codec, 3, max_packet_bytes=256)
    packets = [enc.encode(h.rgb[i], h.labels, (2000, 0), "mem").packets for i in range(4)]
    tx = Sender(h.rsu_ep, keyset / "vehicle_3.key_secret", keyset / "rsu.key", hwm=1000)
    rsu = h.procs["rsu"]
    try:
        t_end = time.monotonic() + 10
        while not tx.send([b"hello"]) and time.monotonic() < t_end:
            time.sleep(0.05)
        warm = max(50, frames // 10)
        rss_warm = None
        for i in range(frames):
            pk = _reseq(packets[i % 4], i)  # same tokens, new sequence number and stamp
            while tx.send(pk) < len(pk):
                time.sleep(0.002)
            time.sleep(1 / 30)
            if i == warm:
                time.sleep(1.0)
                rss_warm = rss_kb(rsu.p.pid)
        time.sleep(2.0)
        rss_end = rss_kb(rsu.p.pid)
        assert rsu.p.poll() is None
        assert rss_end < rss_warm * 1.10, f"RSU RSS grew {100 * (rss_end / rss_warm - 1):.1f}% over {frames} frames"
        with h.lock:
            assert len(h.arrivals[3]) > 5
    finally:
        tx.close()


def _reseq(packets: list[bytes], i: int) -> list[bytes]:
    """The same frame as sequence number i with stamp 3000 + i (fields patched, CRC recomputed)."""
    import binascii
    import struct

    out = []
    for p in packets:
        b = bytearray(p[:-4])
        struct.pack_into(">H", b, 5, i % 65536)
        if b[2] & 15 == 1:  # info packet: the stamp's seconds follow grid, padding, N_x, N_s, log2 J
            struct.pack_into(">i", b, 11 + 8, 3000 + i)
        out.append(bytes(b) + struct.pack(">I", binascii.crc32(bytes(b))))
    return out


def test_rss_bounded_over_300_frames(h, keyset, small_codec):
    _run_memory(h, keyset, small_codec, 300)


@pytest.mark.slow
def test_rss_growth_under_10pct_over_2000_frames(h, keyset, small_codec):
    _run_memory(h, keyset, small_codec, 2000)
