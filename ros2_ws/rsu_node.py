"""RSU decoder node: packets from many vehicles -> reconstructed image and semantic map per vehicle.

A receiver thread reads the CurveZMQ socket (allow-listed keys only; a vehicle may only send as the
vehicle id in its certificate) into a FrameAssembler; released frames go to a per-vehicle one-frame
slot (newest wins, stale ones dropped and counted) that a decode thread serves round-robin, so a slow
decode never backs up the socket and one vehicle cannot starve another. Lost tokens go through the
concealer the `concealment` parameter selects (sqgan_core.streaming.concealment): `auto` (default) is
the shipped bidirectional transformer when it was trained for the loaded codec weights, else the
no-model baseline (lost tokens left to the ADM), with the reason logged and counted.

Publishes per vehicle, with the camera's header stamp and frame_id:
  /rsu/vehicle_<id>/image            sensor_msgs/Image rgb8 (at the camera's original size)
  /rsu/vehicle_<id>/semantic         sensor_msgs/Image mono8 trainIds (255 = void)
  /rsu/vehicle_<id>/semantic_color   sensor_msgs/Image rgb8, Cityscapes palette
and per-vehicle statistics on /diagnostics (frames, packets lost, bpp, latency).

With `hazard_forwarding`, it subscribes to /rsu/vehicle_<id>/hazards (the RSU hazard node's verdicts,
ros2_ws/hazard_node.py) and sends those with warnings to that vehicle over the back channel, through
the link model of `downlink_profile` (loss, delay, bandwidth as configs/links/<profile>.yaml), so a
warning reaches the vehicle as the radio would deliver it. Counted: verdicts, warnings forwarded,
lost on the downlink, malformed verdicts.
"""
from __future__ import annotations

import os

# Senders choose the token grid (up to max_tokens), so a hostile but allowed one can make every frame a
# new shape; oneDNN caches kernels per shape (1024 by default). A small cache bounds that memory.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
os.environ.setdefault("DNNL_PRIMITIVE_CACHE_CAPACITY", "16")  # the older name of the same setting

import sys  # noqa: E402
import threading
import time
from collections import Counter
from typing import Any

import zmq
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros2_ws.image_conversions import numpy_to_image
from sqgan_core.transport.keys import KeyFileError
from sqgan_core.transport.zmq_link import FeedbackPublisher, Receiver
from ros2_ws.node_common import (Rolling, diagnostic_array, diagnostic_status, image_qos, run_node,
                                 set_torch_threads)
from sqgan_core.streaming.stream import UNTRAINED_WARNING, ModelSpecError, StreamDecoder, load_codec, warm_up
from ros2_ws.worker import LatestSlots, Worker
from sqgan_core.labels import colorize
from sqgan_core.safety import parse_verdict
from sqgan_core.streaming.assembler import AssembledFrame, FrameAssembler
from sqgan_core.streaming.concealment import METHODS, MODES, select_concealer

# Camera stamps within this much of the RSU's wall clock are taken as wall time (real cameras,
# use_sim_time off); simulation-time stamps (CARLA sync mode, the embedded simulator) are not.
WALL_STAMP_TOLERANCE_S = 30.0


def trim_memory() -> None:
    """Give freed heap back to the OS (glibc keeps it otherwise, so RSS would only ever grow after a
    large frame, e.g. a hostile sender's maximal grid)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def topic_prefix(vehicle_id: int) -> str:
    return f"/rsu/vehicle_{vehicle_id}"


class _VehicleOut:
    def __init__(self, node: Node, vid: int) -> None:
        base = topic_prefix(vid)
        qos = image_qos()
        self.image = node.create_publisher(Image, f"{base}/image", qos)
        self.semantic = node.create_publisher(Image, f"{base}/semantic", qos)
        self.semantic_color = node.create_publisher(Image, f"{base}/semantic_color", qos)
        self.frames_decoded = 0
        self.frames_incomplete = 0
        self.publish_errors = 0
        self.bits = 0
        self.pixels = 0
        self.latency_ms = Rolling()
        self.rsu_ms = Rolling()
        self.sim_stamps = False


class RsuDecoder(Node):
    def __init__(self) -> None:
        super().__init__("rsu_decoder")
        d = self.declare_parameter
        d("endpoint", "tcp://127.0.0.1:7560")
        d("secret_key", "")
        d("allow_dir", "")
        d("model", "")
        d("device", "cpu")
        d("max_vehicles", 16)
        d("max_frames_in_flight", 4)
        d("frame_timeout", 0.15)
        d("idle_reset", 1.0)
        d("max_packet_bytes", 1400)
        d("max_tokens", 2048)  # bounds decoder memory (attention over the token grid); vehicles resize to fit
        d("publish_semantic_color", True)
        d("torch_threads", 1)
        d("diagnostics_period", 1.0)
        d("concealment", "auto")  # auto | none | bidirectional | autoregressive
        d("concealer", "")  # a concealer file; "" = the shipped one of the chosen kind
        d("conceal_passes", 3)
        d("conceal_threshold", 0.0)
        d("conceal_mode", "soft")  # soft | soft_masked | hard (docs/concealment.md)
        d("feedback_endpoint", "")  # the back channel to the vehicles' rate controllers ("" = none)
        d("hazard_forwarding", False)  # forward /rsu/vehicle_<id>/hazards warnings over the back channel
        d("downlink_profile", "")  # link profile the warnings cross ("" = delivered at once)
        p = {n: self.get_parameter(n).value for n in (
            "endpoint", "secret_key", "allow_dir", "model", "device", "max_vehicles", "max_frames_in_flight",
            "frame_timeout", "idle_reset", "max_packet_bytes", "max_tokens", "publish_semantic_color",
            "torch_threads", "diagnostics_period", "concealment", "concealer", "conceal_passes", "conceal_threshold", "conceal_mode", "feedback_endpoint",
            "hazard_forwarding", "downlink_profile")}
        self.p = p
        if not p["secret_key"] or not p["allow_dir"]:
            raise ValueError("secret_key and allow_dir are required (generate keys with `sqgan keys`)")
        set_torch_threads(p["torch_threads"])
        codec, untrained = load_codec(p["model"], device=p["device"])
        if untrained:
            self.get_logger().warning(UNTRAINED_WARNING.format(spec=p["model"]))
        if p["concealment"] not in METHODS:
            raise ValueError(f"parameter concealment={p['concealment']!r}: use one of {', '.join(METHODS)}")
        if not 1 <= int(p["conceal_passes"]) <= 16 or not 0.0 <= float(p["conceal_threshold"]) <= 1.0:
            raise ValueError("parameters conceal_passes (1..16) and conceal_threshold (0..1) out of range")
        if p["conceal_mode"] not in MODES:
            raise ValueError(f"parameter conceal_mode={p['conceal_mode']!r}: use one of {', '.join(MODES)}")
        self.counts: Counter[str] = Counter()
        if p["hazard_forwarding"] and not p["feedback_endpoint"]:
            raise ValueError("hazard_forwarding needs feedback_endpoint (the back channel the warnings go over)")
        self.downlink = None
        if p["hazard_forwarding"] and p["downlink_profile"]:
            from sqgan_core.transport.channel import load_profile
            from sqgan_core.transport.shaper import LinkShaper

            self.downlink = LinkShaper(load_profile(p["downlink_profile"]))  # ProfileError names the file
        sel = select_concealer(p["concealment"], p["concealer"] or None, codec.model_id, device=p["device"],
                               passes=int(p["conceal_passes"]), threshold=float(p["conceal_threshold"]),
                               mode=p["conceal_mode"])
        if sel.fallback_reason:
            self.counts["concealer_fallbacks"] += 1
            log = self.get_logger().info if p["concealment"] == "auto" else self.get_logger().warning
            log(f"concealment {p['concealment']}: using the no-model baseline: {sel.fallback_reason}")
        self.concealer = sel.concealer
        self.decoder = StreamDecoder(codec, self.concealer)
        warm_up(codec)
        if hasattr(self.concealer, "warm_up"):
            self.concealer.warm_up()
        self.assembler = FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id,
                                        max_tokens=min(p["max_tokens"], codec.max_tokens),
                                        max_packet_bytes=p["max_packet_bytes"],
                                        max_frames_in_flight=p["max_frames_in_flight"],
                                        frame_timeout=p["frame_timeout"], idle_reset=p["idle_reset"],
                                        max_vehicles=p["max_vehicles"])
        self.receiver = Receiver(p["endpoint"], p["secret_key"], p["allow_dir"], log=self.get_logger().warning)
        self.feedback = FeedbackPublisher(p["feedback_endpoint"], self.receiver, p["secret_key"]) if p["feedback_endpoint"] else None
        self._fb_last: dict[int, tuple[int, int, int]] = {}  # vehicle -> (received, missing, bytes) at the last report
        self._fb_time: float | None = None  # when the last reports went out (a busy node's timer fires late)
        self.lock = threading.Lock()  # guards assembler stats snapshots and self.out
        self.out: dict[int, _VehicleOut] = {}
        self.slots: LatestSlots[AssembledFrame] = LatestSlots(max_keys=p["max_vehicles"])
        self.worker = Worker(self.slots, self._decode, self._on_error, name="rsu-decode").start()
        self._stop = threading.Event()
        self.rx_thread = threading.Thread(target=self._receive_loop, name="rsu-receive", daemon=True)
        self.rx_thread.start()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        if self.downlink is not None:
            self.create_timer(0.005, self._release_downlink)
        # Publishers for every vehicle the allow-list names, up front: subscribers discover them while
        # the RSU starts, so a restarted RSU's first frames are not lost to discovery.
        for peer in self.receiver.peers.values():
            if peer.vehicle_id is not None and len(self.out) < p["max_vehicles"]:
                self._vehicle_out(peer.vehicle_id)
        self.get_logger().info(f"RSU listening on {self.receiver.endpoint}, {len(self.receiver.peers)} allowed keys, "
                               f"model {codec.model_id:04x}, concealment {self.concealer.name}")

    # -- receive path (thread) ------------------------------------------------------------------
    def receive_batch(self, timeout_ms: int = 20) -> None:
        """One step of the receive path: socket -> assembler -> decode slots (also used by tests)."""
        msgs = self.receiver.recv(timeout_ms=timeout_ms)
        now = time.monotonic()
        with self.lock:
            ready = []
            for m in msgs:
                ready += self.assembler.push(m.data, now, sender=m.peer.name, expect_vehicle=m.expect_vehicle)
            ready += self.assembler.poll(now)
        for frame in ready:
            self.slots.put(frame.vehicle_id, frame)

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.receive_batch()
            except Exception as exc:  # noqa: BLE001 - the receive path must survive anything
                self.counts["receive_errors"] += 1
                self.get_logger().error(f"receive path: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # -- decode path (worker thread) ------------------------------------------------------------
    def _vehicle_out(self, vid: int) -> _VehicleOut:
        with self.lock:
            out = self.out.get(vid)
            if out is None:
                out = self.out[vid] = _VehicleOut(self, vid)
                if self.p["hazard_forwarding"]:
                    self.create_subscription(String, f"{topic_prefix(vid)}/hazards",
                                             lambda m, v=vid: self._on_verdict(v, m), 50)
                self.get_logger().info(f"new vehicle {vid}: publishing on {topic_prefix(vid)}/...")
            return out

    def _decode(self, vid: Any, frame: AssembledFrame) -> None:
        dec = self.decoder.decode(frame)
        trim_memory()  # ~1 ms against a decode of 100+ ms
        out = self._vehicle_out(int(vid))
        sec, nsec = frame.stamp
        msgs = []
        for arr, enc, pub in ((dec.image, "rgb8", out.image), (dec.labels, "mono8", out.semantic)) + (
                ((colorize(dec.labels), "rgb8", out.semantic_color),) if self.p["publish_semantic_color"] else ()):
            msg = numpy_to_image(arr, enc)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            msg.header.frame_id = frame.info.frame_id
            msgs.append((pub, msg))
        for pub, msg in msgs:
            try:
                pub.publish(msg)
            except Exception:  # noqa: BLE001 - Fast DDS can raise under load: count, keep going
                out.publish_errors += 1
        now_wall, now = time.time(), time.monotonic()
        with self.lock:
            out.frames_decoded += 1
            out.frames_incomplete += 0 if frame.complete else 1
            out.bits += 8 * frame.bytes_received
            out.pixels += frame.info.orig_height * frame.info.orig_width
            out.rsu_ms.add(1000 * (now - frame.first_arrival))
            lat = now_wall - (sec + nsec * 1e-9)
            if abs(lat) < WALL_STAMP_TOLERANCE_S:
                out.latency_ms.add(1000 * lat)
            else:
                out.sim_stamps = True

    def _on_error(self, vid: Any, exc: BaseException) -> None:
        self.counts["decode_errors"] += 1
        self.get_logger().error(f"vehicle {vid}: decode failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # -- hazard warnings back to the vehicles -----------------------------------------------------
    def _on_verdict(self, vid: int, msg: String) -> None:
        """A hazard node's verdict on one of this vehicle's frames: those with warnings go back to it."""
        self.counts["hazard_verdicts"] += 1
        try:
            _, stamp, warnings = parse_verdict(msg.data, vehicle_id=vid)
        except ValueError as exc:
            self.counts["hazard_malformed"] += 1
            self.get_logger().warning(f"hazard verdict refused: {exc}", throttle_duration_sec=5.0)
            return
        if not warnings:
            return
        report = {"kind": "hazard", "vehicle_id": vid, "stamp": stamp, "warnings": [w.to_dict() for w in warnings]}
        self.counts["hazard_warnings_forwarded"] += 1
        if self.downlink is None:
            self._send_warning(vid, report)
        else:
            self.downlink.offer((vid, report), len(msg.data), time.monotonic())

    def _release_downlink(self) -> None:
        for vid, report in self.downlink.due(time.monotonic()):
            self._send_warning(vid, report)

    def _send_warning(self, vid: int, report: dict[str, Any]) -> None:
        self.feedback.publish(vid, report)
        self.counts["hazard_warnings_sent"] += 1

    # -- diagnostics ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per-vehicle and RSU-wide counters (what /diagnostics carries)."""
        with self.lock:
            rsu: dict[str, Any] = {f"rejected_{k}": v for k, v in self.assembler.rejected.items()}
            rsu.update({k: v for k, v in self.receiver.stats.items()})
            rsu.update(self.counts)
            rsu["frames_in_flight"] = self.assembler.in_flight()
            rsu["concealment"] = self.concealer.name
            if self.feedback is not None:
                rsu.update(self.feedback.stats)
            if self.downlink is not None:
                rsu["hazard_downlink_lost"] = self.downlink.dropped()
            rsu.update({f"conceal_{k}": v for k, v in self.concealer.stats.as_dict().items() if v is not None})
            vehicles = {}
            for vid in set(self.out) | set(self.assembler.vehicles):
                v: dict[str, Any] = {}
                st = self.assembler.stats(vid)
                if st is not None:
                    v.update(st.as_dict())
                o = self.out.get(vid)
                if o is not None:
                    v["frames_decoded"] = o.frames_decoded
                    v["frames_decoded_incomplete"] = o.frames_incomplete
                    v["publish_errors"] = o.publish_errors
                    # bits that arrived for the frames decoded, per pixel: below the vehicle's bpp (bits
                    # sent) when packets are lost, so it has its own name (docs/pipeline.md)
                    v["bpp_received"] = o.bits / o.pixels if o.pixels else 0.0
                    v.update(o.latency_ms.summary("latency_ms"))
                    v.update(o.rsu_ms.summary("rsu_ms"))
                    if o.sim_stamps:
                        v["latency_note"] = "camera stamps are simulation time: latency measured by the recorder"
                v["frames_dropped_stale"] = self.slots.dropped.get(vid, 0)
                vehicles[vid] = v
        return {"rsu": rsu, "vehicles": vehicles}

    def _send_feedback(self, vehicles: dict[int, dict[str, Any]]) -> None:
        """Per vehicle, over the last period: the share of needed packets that never came, and the rate
        that did arrive (what its rate controller adapts to)."""
        t = time.monotonic()
        period = self.p["diagnostics_period"] if self._fb_time is None else max(1e-3, t - self._fb_time)
        self._fb_time = t
        for vid, v in vehicles.items():
            now = (int(v.get("packets_received", 0)), int(v.get("packets_missing", 0)), int(v.get("bytes_received", 0)))
            last = self._fb_last.get(vid, (0, 0, 0))
            self._fb_last[vid] = now
            got, miss, nbytes = (a - b for a, b in zip(now, last))
            if got + miss <= 0:
                continue
            self.feedback.publish(int(vid), {"loss_share": miss / (got + miss),
                                             "delivered_kbps": 8 * nbytes / 1000 / period})

    def _publish_diagnostics(self) -> None:
        s = self.stats()
        if self.feedback is not None:
            self._send_feedback(s["vehicles"])
        statuses = [diagnostic_status("sqgan rsu", "rsu", s["rsu"])]
        statuses += [diagnostic_status(f"sqgan rsu: vehicle_{vid}", f"vehicle_{vid}", v)
                     for vid, v in sorted(s["vehicles"].items())]
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown on a node whose __init__ failed half-way: close what exists.
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        if getattr(self, "rx_thread", None) is not None:
            try:
                self.rx_thread.join(2.0)
            except KeyboardInterrupt:  # a second Ctrl-C while the receive thread winds down
                pass
        if getattr(self, "worker", None) is not None:
            self.worker.stop()
        if getattr(self, "feedback", None) is not None:
            self.feedback.close()
        if getattr(self, "receiver", None) is not None:
            self.receiver.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from sqgan_core.transport.channel import ProfileError

    return run_node(RsuDecoder, "rsu_decoder", (ModelSpecError, KeyFileError, ValueError, ProfileError, zmq.ZMQError),
                    args)


if __name__ == "__main__":
    sys.exit(main())
