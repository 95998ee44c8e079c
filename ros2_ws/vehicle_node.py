"""Vehicle encoder node: camera (+ semantic) -> SQ-GAN packets on the link, and CompressedImage.

Subscribes to `camera_topic` (rgb8, bgr8, rgba8, bgra8, mono8; any size: the codec pads to 16, and
frames beyond `max_tokens` are scaled down — the RSU restores the camera's size) and, with
`semantic_source:=topic`, to `semantic_topic` (mono8 trainIds or Cityscapes/CARLA palette colour),
paired by header stamp. `semantic_source:=segmenter` runs the vehicle's segmenter (issue 4; until
one is installed the frames are skipped with a logged, counted reason). Encoding runs in a worker
thread fed by a one-frame slot (newest wins, drops counted), so the executor never blocks.

Each frame goes out as packets (sqgan_core.streaming) over CurveZMQ, and as a sensor_msgs/
CompressedImage `rgb8; sqgan compressed v1` (the frame bitstream, decodable by `sqgan decode`) on
`<camera_topic>/sqgan` for recording and replay. m_x and m_s can be changed at run time.

With `feedback_endpoint`, the RSU's back channel is read every 10 ms: rate reports go to the rate
controller, hazard warnings (the RSU hazard node's, as the downlink delivered them) are published on
`hazard_topic` (default /vehicle_<id>/hazard_warnings) as std_msgs/String JSON {"vehicle_id", "stamp",
"warnings": [...], "received": wall s} for whatever acts on them (the simulator's ego brakes on them).

Run: `vehicle_encoder --ros-args -p vehicle_id:=0 -p secret_key:=keys/vehicle_0.key_secret
-p server_key:=keys/link.key`
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String
from sensor_msgs.msg import CompressedImage, Image

from ros2_ws.camera_input import StampSync, UnsupportedImage, rgb_from_image, stamp_key, train_ids_from_semantic
from sqgan_core.transport.keys import KeyFileError
from sqgan_core.streaming.rate_control import SHIPPED_RATE_TABLE, RateController, RateTable
from sqgan_core.transport.zmq_link import FeedbackSubscriber, Sender
from ros2_ws.node_common import (Rolling, diagnostic_array, diagnostic_status, image_qos, load_segmenter,  # noqa: F401
                                 run_node, sensor_qos, set_torch_threads)
from ros2_ws.image_conversions import COMPRESSED_FORMAT
from sqgan_core.safety import parse_verdict
from sqgan_core.streaming.stream import UNTRAINED_WARNING, ModelSpecError, StreamEncoder, load_codec, warm_up
from ros2_ws.worker import LatestSlots, Worker

RUNTIME_PARAMS = ("m_x", "m_s")


def load_rate_table(spec: str, codec: Any) -> RateTable:
    """The rate table for `codec`: a path, or "" for the shipped one; it must be for these weights."""
    path = Path(spec) if spec else SHIPPED_RATE_TABLE
    table = RateTable.load(path)
    if table.model_id != codec.model_id:
        raise ValueError(f"rate table {path} was measured for model {table.model_id:04x}, this vehicle runs "
                         f"{codec.model_id:04x}: measure one with `sqgan bench ratecontrol --table-out PATH`")
    return table


class VehicleEncoder(Node):
    def __init__(self) -> None:
        super().__init__("vehicle_encoder")
        d = self.declare_parameter
        d("vehicle_id", 0)
        d("camera_topic", "/carla/ego_vehicle/rgb_front/image")
        d("semantic_source", "topic")  # topic | segmenter
        d("semantic_topic", "/carla/ego_vehicle/semantic_segmentation_front/image")
        d("segmenter", "")
        d("m_x", 0.5)
        d("m_s", 0.5)
        d("model", "")  # checkpoint path, or untrained:<config> (explicitly), "" = shipped default
        d("device", "cpu")
        d("packet_bytes", 256)
        d("info_copies", 2)
        d("max_tokens", 2048)
        d("link_endpoint", "tcp://127.0.0.1:7550")
        d("secret_key", "")  # this vehicle's .key_secret
        d("server_key", "")  # public key of the link (or of the RSU when connecting directly)
        d("send_hwm", 64)
        d("sync_slop", 0.001)
        d("camera_qos", "sensor_data")  # sensor_data (best effort) | reliable
        d("publish_compressed", True)
        d("torch_threads", 1)
        d("diagnostics_period", 1.0)
        d("rate_control_kbps", 0.0)  # > 0: pick (m_x, m_s, codebook) per frame for this budget (m_x, m_s unused)
        d("rate_control_fps", 10.0)  # the camera rate the budget is shared over
        d("rate_table", "")  # "" = the shipped table of the shipped model
        d("feedback_endpoint", "")  # the RSU's back channel ("" = none)
        d("feedback_server_key", "")  # the RSU's public key (the back channel skips the link)
        d("hazard_topic", "")  # where the RSU's hazard warnings are republished ("" = /vehicle_<id>/hazard_warnings)
        p = {name: self.get_parameter(name).value for name in (
            "vehicle_id", "camera_topic", "semantic_source", "semantic_topic", "segmenter", "m_x", "m_s", "model",
            "device", "packet_bytes", "info_copies", "max_tokens", "link_endpoint", "secret_key", "server_key",
            "send_hwm", "sync_slop", "camera_qos", "publish_compressed", "torch_threads", "diagnostics_period",
            "rate_control_kbps", "rate_control_fps", "rate_table", "feedback_endpoint", "feedback_server_key",
            "hazard_topic")}
        self.p = p
        log = self.get_logger()
        if p["semantic_source"] not in ("topic", "segmenter"):
            raise ValueError(f"semantic_source must be 'topic' or 'segmenter', got {p['semantic_source']!r}")
        if not p["secret_key"] or not p["server_key"]:
            raise ValueError("secret_key and server_key are required (generate keys with `sqgan keys`)")
        for name in ("m_x", "m_s"):  # before the model loads: a typo must not cost a model load
            if isinstance(p[name], bool) or not isinstance(p[name], (int, float)) or not 0 <= p[name] <= 1:
                raise ValueError(f"parameter {name} must be a number in [0, 1], got {p[name]!r}")
        for name in ("rate_control_kbps", "rate_control_fps"):
            if isinstance(p[name], bool) or not isinstance(p[name], (int, float)) or p[name] < 0:
                raise ValueError(f"parameter {name} must be a number >= 0, got {p[name]!r}")
        if p["rate_control_kbps"] and not p["rate_control_fps"]:
            raise ValueError("parameter rate_control_fps must be > 0 when rate_control_kbps is set")
        set_torch_threads(p["torch_threads"])
        codec, untrained = load_codec(p["model"], device=p["device"])
        if untrained:
            log.warning(UNTRAINED_WARNING.format(spec=p["model"]))
        self.encoder = StreamEncoder(codec, p["vehicle_id"], m_x=p["m_x"], m_s=p["m_s"],
                                     max_packet_bytes=p["packet_bytes"], info_copies=p["info_copies"],
                                     max_tokens=p["max_tokens"])
        warm_up(codec)
        self.controller = None
        if p["rate_control_kbps"]:
            table = load_rate_table(p["rate_table"], codec)  # ValueError names the file and the mismatch
            self.controller = RateController(table, float(p["rate_control_kbps"]), float(p["rate_control_fps"]))
        self.sender = Sender(p["link_endpoint"], p["secret_key"], p["server_key"], hwm=p["send_hwm"])
        self.feedback = None
        if p["feedback_endpoint"]:
            if not p["feedback_server_key"]:
                raise ValueError("feedback_server_key (the RSU's public key) is required with feedback_endpoint")
            self.feedback = FeedbackSubscriber(p["feedback_endpoint"], p["secret_key"], p["feedback_server_key"],
                                               p["vehicle_id"])
        self.counts: Counter[str] = Counter()
        self.reports: deque[dict] = deque(maxlen=64)  # rate reports for the encode thread
        self.pub_hazard = None
        if self.feedback is not None:
            topic = p["hazard_topic"] or f"/vehicle_{p['vehicle_id']}/hazard_warnings"
            self.pub_hazard = self.create_publisher(String, topic, 50)
            self.create_timer(0.01, self._poll_feedback)
        self.send_span: list[float] = []  # [first send time, last send time, bytes of the first frame]
        self.bpp = Rolling()
        self.encode_ms = Rolling()
        self.lock = threading.Lock()
        self.segmenter = None
        if p["semantic_source"] == "segmenter":
            self.segmenter, why = load_segmenter(p["segmenter"])
            if self.segmenter is None:
                log.error(f"semantic_source=segmenter but {why}; frames are skipped until one is available "
                          "(or use semantic_source:=topic)")
                self.segmenter_error = why
        self.sync: StampSync[Image, Image] = StampSync(p["sync_slop"], max_pending=8)
        self.slots: LatestSlots[tuple[Image, Image | None, float]] = LatestSlots(max_keys=1)
        self.worker = Worker(self.slots, self._encode, self._on_error, name="vehicle-encode").start()
        if p["camera_qos"] not in ("sensor_data", "reliable"):
            raise ValueError(f"camera_qos must be 'sensor_data' or 'reliable', got {p['camera_qos']!r}")
        qos = sensor_qos() if p["camera_qos"] == "sensor_data" else image_qos(5)
        self.create_subscription(Image, p["camera_topic"], self._on_image, qos)
        if p["semantic_source"] == "topic":
            self.create_subscription(Image, p["semantic_topic"], self._on_semantic, qos)
        self.pub_compressed = (self.create_publisher(CompressedImage, p["camera_topic"].rstrip("/") + "/sqgan",
                                                     image_qos()) if p["publish_compressed"] else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        log.info(f"vehicle {p['vehicle_id']}: {p['camera_topic']} (+ semantic from {p['semantic_source']}) -> "
                 f"{p['link_endpoint']}, m_x={p['m_x']} m_s={p['m_s']}, packets <= {p['packet_bytes']} B, "
                 f"model {codec.model_id:04x}")

    # -- callbacks (cheap: no decoding here) ----------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.counts["images_in"] += 1
        t = time.monotonic()
        if self.p["semantic_source"] == "segmenter":
            self.slots.put("camera", (msg, None, t))
            return
        pair = self.sync.add_a(stamp_key(msg.header.stamp), msg)
        if pair is not None:
            self.slots.put("camera", (pair[1], pair[2], t))

    def _on_semantic(self, msg: Image) -> None:
        self.counts["semantic_in"] += 1
        pair = self.sync.add_b(stamp_key(msg.header.stamp), msg)
        if pair is not None:
            self.slots.put("camera", (pair[1], pair[2], time.monotonic()))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        if self.controller is not None and any(prm.name in RUNTIME_PARAMS for prm in params):
            return SetParametersResult(successful=False, reason="rate control chooses m_x and m_s "
                                                                "(rate_control_kbps > 0)")
        new = {"m_x": self.encoder.m_x, "m_s": self.encoder.m_s}
        for prm in params:
            if prm.name not in RUNTIME_PARAMS:
                if prm.name in self.p:
                    return SetParametersResult(successful=False,
                                               reason=f"{prm.name} is fixed at start-up; only m_x and m_s change at run time")
                continue
            if not isinstance(prm.value, (int, float)) or isinstance(prm.value, bool) or not 0.0 <= prm.value <= 1.0:
                return SetParametersResult(successful=False, reason=f"{prm.name} must be a number in [0, 1]")
            new[prm.name] = float(prm.value)
        self.encoder.set_rates(new["m_x"], new["m_s"])
        self.get_logger().info(f"rates now m_x={new['m_x']} m_s={new['m_s']}")
        return SetParametersResult(successful=True)

    # -- worker ---------------------------------------------------------------------------------
    def _encode(self, _key: Any, item: tuple[Image, Image | None, float]) -> None:
        img_msg, sem_msg, _t = item
        try:
            rgb = rgb_from_image(img_msg)
            if sem_msg is not None:
                labels = train_ids_from_semantic(sem_msg)
            elif self.segmenter is not None:
                labels = np.asarray(self.segmenter(rgb), dtype=np.uint8)
            else:
                self._skip("no_segmenter", getattr(self, "segmenter_error", "no semantic source"))
                return
            if labels.shape != rgb.shape[:2]:
                raise UnsupportedImage(f"semantic {labels.shape} and camera {rgb.shape[:2]} sizes differ")
        except UnsupportedImage as exc:
            self._skip("unsupported_image", str(exc))
            return
        stamp = (int(img_msg.header.stamp.sec), int(img_msg.header.stamp.nanosec))
        row = None
        if self.controller is not None:
            while self.reports:
                report = self.reports.popleft()
                self.controller.feedback(float(report.get("loss_share", float("nan"))),
                                         float(report.get("delivered_kbps", float("nan"))), report["_t"])
            row = self.controller.choose()
            s = row.setting
            self.encoder.set_rates(s.m_x, s.m_s, (s.j_x, s.j_s))
        out = self.encoder.encode(rgb, labels, stamp, img_msg.header.frame_id[:63], want_frame=self.pub_compressed is not None)
        sent = self.sender.send(out.packets)
        if row is not None:
            self.controller.observe(row, 8 * out.bytes_total, time.monotonic())
        if not self.counts["frames_encoded"]:
            self.get_logger().info(f"first frame: {len(out.packets)} packets, {sent} sent, encode {out.encode_ms:.0f} ms")
        with self.lock:
            self.counts["frames_encoded"] += 1
            self.counts["packets_sent"] += sent
            self.counts["packets_dropped_link"] += len(out.packets) - sent
            self.counts["bytes_sent"] += out.bytes_total
            now = time.monotonic()
            self.send_span = [now, now, out.bytes_total] if not self.send_span else [self.send_span[0], now, self.send_span[2]]
            self.counts["pixels_sent"] += rgb.shape[0] * rgb.shape[1]
            if out.resized:
                self.counts["frames_resized"] += 1
            self.bpp.add(out.bpp)
            self.encode_ms.add(out.encode_ms)
        if self.pub_compressed is not None and out.frame is not None:
            msg = CompressedImage()
            msg.header = img_msg.header
            msg.format = COMPRESSED_FORMAT
            msg.data = out.frame
            try:
                self.pub_compressed.publish(msg)
            except Exception as exc:  # noqa: BLE001 - Fast DDS may raise under load; count it
                self._skip("publish_error", str(exc))

    # -- the back channel ---------------------------------------------------------------------------
    def _poll_feedback(self) -> None:
        """Route what the RSU sent: hazard warnings out at once (a ROS topic), rate reports to the
        encode thread's controller."""
        now = time.monotonic()
        for report in self.feedback.poll(0):
            if report.get("kind") != "hazard":
                if self.controller is not None:
                    report["_t"] = now
                    self.reports.append(report)
                continue
            try:
                vid, stamp, warnings = parse_verdict(report, vehicle_id=self.p["vehicle_id"])
            except ValueError as exc:
                with self.lock:
                    self.counts["hazard_malformed"] += 1
                self.get_logger().warning(f"hazard warning refused: {exc}", throttle_duration_sec=5.0)
                continue
            msg = {"vehicle_id": vid, "stamp": stamp, "warnings": [w.to_dict() for w in warnings],
                   "received": time.time()}
            self.pub_hazard.publish(String(data=json.dumps(msg)))
            with self.lock:
                self.counts["hazard_warnings_received"] += 1
            self.get_logger().info(f"hazard warning for the frame at {stamp:.2f}: "
                                   + ", ".join(f"{w.type} ({w.confidence:.2f})" for w in warnings),
                                   throttle_duration_sec=1.0)

    def _skip(self, reason: str, detail: str) -> None:
        with self.lock:
            self.counts[f"skipped_{reason}"] += 1
        self.get_logger().warning(f"frame skipped: {detail}", throttle_duration_sec=5.0)

    def _on_error(self, _key: Any, exc: BaseException) -> None:
        with self.lock:
            self.counts["errors"] += 1
        self.get_logger().error(f"encoding failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # -- diagnostics ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self.lock:
            s: dict[str, Any] = dict(self.counts)
            s.update(self.bpp.summary("bpp"))
            s.update(self.encode_ms.summary("encode_ms"))
            if len(self.send_span) == 3 and self.send_span[1] > self.send_span[0]:
                # the rate on the wire between the first and the last frame sent (the first frame's bytes left out)
                t0, t1, first = self.send_span
                s["sent_kbps"] = round(8 * (self.counts["bytes_sent"] - first) / 1000 / (t1 - t0), 3)
        s["frames_dropped_busy"] = self.slots.dropped_total()
        s["frames_unsynced"] = self.sync.dropped
        s["link_dropped_unavailable"] = self.sender.stats["dropped_unavailable"]
        s["m_x"], s["m_s"] = self.encoder.m_x, self.encoder.m_s
        if self.controller is not None:
            c = self.controller
            s.update({"rate_budget_kbps": c.budget_kbps, "rate_effective_kbps": c.effective_kbps,
                      "rate_debt_bits": round(c.debt_bits), "rate_scale": round(c.scale, 3),
                      "rate_congested_reports": c.congested_reports,
                      "codebook": f"{self.encoder.codebook}"})
        if self.feedback is not None:
            s.update(self.feedback.stats)
        return s

    def _publish_diagnostics(self) -> None:
        vid = self.p["vehicle_id"]
        st = diagnostic_status(f"sqgan vehicle: vehicle_{vid}", f"vehicle_{vid}", self.stats())
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), [st]))

    def destroy_node(self) -> None:
        # Also called by rclpy's shutdown on a node whose __init__ failed half-way: close what exists.
        if getattr(self, "worker", None) is not None:
            self.worker.stop()
        if getattr(self, "sender", None) is not None:
            self.sender.close()
        if getattr(self, "feedback", None) is not None:
            self.feedback.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(VehicleEncoder, "vehicle_encoder", (ModelSpecError, KeyFileError, ValueError, zmq.ZMQError), args)


if __name__ == "__main__":
    sys.exit(main())
