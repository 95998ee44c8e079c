"""RSU hazard node: what the RSU reconstructed -> hazard warnings per vehicle.

Subscribes per vehicle to the RSU decoder's /rsu/vehicle_<id>/image (x_hat, rgb8) and
/rsu/vehicle_<id>/semantic (s_hat, mono8 trainIds), pairs them by stamp and runs the detector of
sqgan_core.safety (thresholds and corridor from `config`, configs/safety/hazards.yaml by default) with
the segmenter on x_hat as a second opinion. Publishes per vehicle and frame:

  /rsu/vehicle_<id>/hazards   std_msgs/String, JSON {"vehicle_id", "stamp", "warnings": [...]}; each
                              warning {"type", "confidence", "region": [x0, y0, x1, y1], "stamp", ...}

One message per judged frame, warnings or not, so a lock-step simulator knows the frame was judged;
the RSU decoder forwards those with warnings to the vehicle over the link's back channel. Counters
(frames judged, warnings by type, bad inputs) go to /diagnostics as "sqgan hazards: vehicle_<id>".
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros2_ws.camera_input import StampSync, UnsupportedImage, rgb_from_image, stamp_key, train_ids_from_semantic
from ros2_ws.node_common import (Rolling, diagnostic_array, diagnostic_status, image_qos, load_segmenter, run_node,
                                 set_torch_threads)
from ros2_ws.worker import LatestSlots, Worker
from sqgan_core.config import ConfigError
from sqgan_core.safety import HazardConfig, HazardDetector, verdict


def hazards_topic(vehicle_id: int) -> str:
    return f"/rsu/vehicle_{vehicle_id}/hazards"


class _Vehicle:
    def __init__(self, detector: HazardDetector) -> None:
        self.detector = detector
        self.sync: StampSync[Image, Image] = StampSync(0.0, max_pending=8)
        self.counts: Counter[str] = Counter()
        self.ms = Rolling()


class RsuHazards(Node):
    def __init__(self) -> None:
        super().__init__("rsu_hazards")
        d = self.declare_parameter
        d("vehicle_ids", [0])
        d("config", "")  # a hazards YAML; "" = configs/safety/hazards.yaml
        d("segmenter", "")  # second opinion on x_hat: "" = the shipped segmenter, "none" = s_hat alone
        d("torch_threads", 1)
        d("diagnostics_period", 1.0)
        p = {n: self.get_parameter(n).value for n in (
            "vehicle_ids", "config", "segmenter", "torch_threads", "diagnostics_period")}
        self.p = p
        if not p["vehicle_ids"]:
            raise ValueError("parameter vehicle_ids: at least one vehicle id")
        cfg = HazardConfig.load(p["config"] or "hazards")  # ConfigError names the file and the field
        set_torch_threads(int(p["torch_threads"]))
        self.segmenter = None
        self.second_opinion = "off (segmenter none)"
        if p["segmenter"] != "none":
            self.segmenter, why = load_segmenter(p["segmenter"])
            if self.segmenter is None:  # the detector still runs on s_hat: warn, count, go on
                self.second_opinion = f"off: {why}"
                self.get_logger().warning(f"no second opinion: {why}; warnings come from s_hat alone")
            else:
                self.second_opinion = "segmenter on x_hat"
        self.lock = threading.Lock()
        self.vehicles = {int(v): _Vehicle(HazardDetector(cfg)) for v in p["vehicle_ids"]}
        self.pubs = {v: self.create_publisher(String, hazards_topic(v), 50) for v in self.vehicles}
        self.slots: LatestSlots[tuple[Image, Image]] = LatestSlots(max_keys=len(self.vehicles))
        self.worker = Worker(self.slots, self._judge, self._on_error, name="hazards").start()
        for v in self.vehicles:
            base = f"/rsu/vehicle_{v}"
            self.create_subscription(Image, f"{base}/image", lambda m, v=v: self._on_msg(v, m, True), image_qos())
            self.create_subscription(Image, f"{base}/semantic", lambda m, v=v: self._on_msg(v, m, False), image_qos())
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(p["diagnostics_period"]), self._publish_diagnostics)
        self.get_logger().info(f"hazards for vehicles {sorted(self.vehicles)} (config {cfg.name}, second opinion: "
                               f"{self.second_opinion}) on /rsu/vehicle_<id>/hazards")

    def _on_msg(self, vid: int, msg: Image, is_image: bool) -> None:
        veh = self.vehicles[vid]
        key = stamp_key(msg.header.stamp)
        with self.lock:
            pair = veh.sync.add_a(key, msg) if is_image else veh.sync.add_b(key, msg)
        if pair is not None:
            self.slots.put(vid, (pair[1], pair[2]))

    def _judge(self, vid: Any, item: tuple[Image, Image]) -> None:
        img_msg, sem_msg = item
        veh = self.vehicles[int(vid)]
        t0 = time.monotonic()
        try:
            x_hat = rgb_from_image(img_msg)
            s_hat = train_ids_from_semantic(sem_msg)
            if s_hat.shape != x_hat.shape[:2]:
                raise UnsupportedImage(f"semantic {s_hat.shape} and image {x_hat.shape[:2]} sizes differ")
        except UnsupportedImage as exc:
            with self.lock:
                veh.counts["bad_input"] += 1
            self.get_logger().warning(f"vehicle {vid}: frame skipped: {exc}", throttle_duration_sec=5.0)
            return
        seg = self.segmenter(x_hat) if self.segmenter is not None else None
        stamp = img_msg.header.stamp.sec + img_msg.header.stamp.nanosec * 1e-9
        warnings = veh.detector.update(s_hat, x_hat, seg, stamp=stamp, vehicle_id=int(vid))
        self.pubs[int(vid)].publish(String(data=json.dumps(verdict(int(vid), stamp, warnings))))
        with self.lock:
            veh.counts["frames_judged"] += 1
            for w in warnings:
                veh.counts[f"warnings_{w.type}"] += 1
            veh.counts["warnings"] += len(warnings)
            veh.ms.add(1000 * (time.monotonic() - t0))

    def _on_error(self, vid: Any, exc: BaseException) -> None:
        with self.lock:
            self.vehicles[int(vid)].counts["errors"] += 1
        self.get_logger().error(f"vehicle {vid}: hazard detection failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=5.0)

    def stats(self) -> dict[int, dict[str, Any]]:
        with self.lock:
            out = {}
            for vid, veh in self.vehicles.items():
                v: dict[str, Any] = dict(veh.counts)
                v.setdefault("frames_judged", 0)
                v.setdefault("warnings", 0)
                v["frames_dropped_busy"] = self.slots.dropped.get(vid, 0)
                v["frames_unpaired"] = veh.sync.dropped
                v["second_opinion"] = self.second_opinion
                v.update(veh.ms.summary("hazard_ms"))
                out[vid] = v
            return out

    def _publish_diagnostics(self) -> None:
        statuses = [diagnostic_status(f"sqgan hazards: vehicle_{vid}", f"vehicle_{vid}", v)
                    for vid, v in sorted(self.stats().items())]
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

    def destroy_node(self) -> None:
        if getattr(self, "worker", None) is not None:
            self.worker.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(RsuHazards, "rsu_hazards", (ConfigError, ValueError), args)


if __name__ == "__main__":
    sys.exit(main())
