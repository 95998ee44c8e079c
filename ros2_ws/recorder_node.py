"""Pipeline recorder: compares what the camera saw with what the RSU published, then summarises.

Subscribes to the camera and its ground-truth semantic topic, to /rsu/vehicle_<id>/{image,semantic}
for each configured vehicle and to /diagnostics. Frames are matched by header stamp (the RSU keeps
the camera's), so the metrics are per frame: PSNR of the reconstruction, the confusion of the RSU's
decoded semantic map against the simulator's exact labels (-> `miou_shat`), and the end-to-end
latency measured at this one observer: arrival of the RSU's image minus arrival of the camera image
with the same stamp (valid whatever clock the stamps use — simulation time included).

Stops after `frames` outputs per vehicle, `timeout` s after the first one or `idle_timeout` s without
output, writes `<out_dir>/summary.json` and `<out_dir>/strip.png` (original | reconstruction |
semantic), prints a table, and exits (the launch graph marks it required, so everything stops).
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from ros2_ws.camera_input import StampSync, rgb_from_image, stamp_key, train_ids_from_semantic
from ros2_ws.image_conversions import image_to_numpy
from ros2_ws.node_common import image_qos, model_label, parse_diagnostics, sensor_qos
from sqgan_core.labels import NUM_CLASSES, colorize
from sqgan_core.metrics import confusion, miou_from_confusion, psnr


SETTLE_S = 3.0  # at most this long after the stop for the nodes' last counters


class _Track:
    def __init__(self) -> None:
        self.sync: StampSync[Image, Image] = StampSync(0.0, max_pending=16)
        self.outputs = 0
        self.unmatched = 0
        self.first: float | None = None
        self.last: float | None = None


class PipelineRecorder(Node):
    def __init__(self) -> None:
        super().__init__("pipeline_recorder")
        d = self.declare_parameter
        d("vehicle_ids", [0])
        d("camera_topic", "/carla/ego_vehicle/rgb_front/image")
        d("semantic_topic", "/carla/ego_vehicle/semantic_segmentation_front/image")
        d("out_dir", "out/pipeline")
        d("frames", 40)
        d("timeout", 240.0)
        d("start_timeout", 180.0)
        d("idle_timeout", 20.0)
        d("strip_frames", 4)
        d("profile", "")
        d("link_stats", "")
        d("model", "")
        # miou_seg_recon: the segmenter runs on up to seg_frames kept (reconstruction, truth) pairs once the
        # run is over, so it does not compete with the vehicle and RSU for the CPU while they stream.
        d("segmenter", "")  # "" = the shipped sqgan_core/weights/segmenter_fastscnn.pt; "none" = skip
        d("seg_frames", 40)
        self.p = {n: self.get_parameter(n).value for n in (
            "vehicle_ids", "camera_topic", "semantic_topic", "out_dir", "frames", "timeout", "start_timeout",
            "idle_timeout", "strip_frames", "profile", "link_stats", "model", "segmenter", "seg_frames")}
        self.vids = [int(v) for v in self.p["vehicle_ids"]]
        self.t_start = time.monotonic()
        self.camera: OrderedDict[int, tuple[float, Image]] = OrderedDict()
        self.truth: OrderedDict[int, Image] = OrderedDict()
        self.tracks = {v: _Track() for v in self.vids}
        self.cm = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
        self.psnrs: list[float] = []
        self.latencies: list[float] = []
        self.strip: list[np.ndarray] = []
        self.seg_pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (original, recon, truth), bounded
        self.diag: dict[str, dict[str, str]] = {}
        self.done = False
        self.stopping: tuple[float, str] | None = None  # (when, why): waiting for the nodes' next /diagnostics
        self.diag_after_stop: set[str] = set()
        self.create_subscription(Image, self.p["camera_topic"], self._on_camera, sensor_qos(10))
        self.create_subscription(Image, self.p["semantic_topic"], self._on_truth, sensor_qos(10))
        for v in self.vids:
            self.create_subscription(Image, f"/rsu/vehicle_{v}/image", lambda m, v=v: self._on_rsu(v, m, True),
                                     image_qos())
            self.create_subscription(Image, f"/rsu/vehicle_{v}/semantic", lambda m, v=v: self._on_rsu(v, m, False),
                                     image_qos())
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.create_timer(0.5, self._check_done)

    @staticmethod
    def _keep(d: OrderedDict, key: int, value: Any, limit: int = 64) -> None:
        d[key] = value
        while len(d) > limit:
            d.popitem(last=False)

    def _on_camera(self, msg: Image) -> None:
        self._keep(self.camera, stamp_key(msg.header.stamp), (time.monotonic(), msg))

    def _on_truth(self, msg: Image) -> None:
        self._keep(self.truth, stamp_key(msg.header.stamp), msg)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        new = parse_diagnostics(msg)
        self.diag.update(new)
        if self.stopping is not None:
            self.diag_after_stop.update(new)

    def _on_rsu(self, vid: int, msg: Image, is_image: bool) -> None:
        now = time.monotonic()
        tr = self.tracks[vid]
        key = stamp_key(msg.header.stamp)
        pair = tr.sync.add_a(key, (now, msg)) if is_image else tr.sync.add_b(key, msg)
        if pair is None:
            return
        _, (t_img, img_msg), sem_msg = pair
        tr.outputs += 1
        tr.first = now if tr.first is None else tr.first
        tr.last = now
        cam = self.camera.get(key)
        truth = self.truth.get(key)
        if cam is None:
            tr.unmatched += 1
            return
        self.latencies.append(1000 * (t_img - cam[0]))
        orig = rgb_from_image(cam[1])
        recon = image_to_numpy(img_msg)
        shat = image_to_numpy(sem_msg)
        if recon.shape != orig.shape:
            self.get_logger().error(f"RSU image {recon.shape} differs from camera {orig.shape}")
            return
        self.psnrs.append(psnr(orig, recon))
        if truth is not None:
            gt = train_ids_from_semantic(truth)
            self.cm += confusion(shat, gt)
            if len(self.seg_pairs) < self.p["seg_frames"]:
                self.seg_pairs.append((orig, recon, gt))
        if len(self.strip) < self.p["strip_frames"]:
            self.strip.append(np.concatenate([orig, recon, colorize(shat)], axis=1))

    def _check_done(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self.stopping is not None:
            # Counters come every diagnostics period: wait (up to SETTLE_S) for one more report from the
            # vehicles and the RSU, so the summary counts what was decoded up to the stop.
            t_stop, reason = self.stopping
            fresh = {p for p in ("sqgan vehicle:", "sqgan rsu:") if any(n.startswith(p) for n in self.diag_after_stop)}
            if len(fresh) == 2 or now - t_stop > SETTLE_S:
                self.done = True
                self.summary = self.write_summary(reason)
            return
        firsts = [t.first for t in self.tracks.values() if t.first is not None]
        lasts = [t.last for t in self.tracks.values() if t.last is not None]
        reason = None
        if all(t.outputs >= self.p["frames"] for t in self.tracks.values()):
            reason = f"{self.p['frames']} frames per vehicle"
        elif firsts and now - min(firsts) > self.p["timeout"]:
            reason = f"timeout of {self.p['timeout']} s"
        elif lasts and now - max(lasts) > self.p["idle_timeout"]:
            reason = f"no RSU output for {self.p['idle_timeout']} s"
        elif not firsts and now - self.t_start > self.p["start_timeout"]:
            reason = f"no RSU output within {self.p['start_timeout']} s of start"
        if reason:
            self.get_logger().info(f"finishing: {reason}")
            self.stopping = (now, reason)

    # -- summary --------------------------------------------------------------------------------
    def _add_frame_accounting(self, summary: dict[str, Any]) -> None:
        """Where every frame went: the share decoded, the rest by cause, and the simulator's sync mode
        and real-time factor (from its "sqgan sim" /diagnostics, when a simulator runs)."""
        sent, decoded = summary["frames_sent"], summary["frames_decoded"]
        if sent:
            lost = sum(float(summary[k] or 0) for k in ("frames_dropped_stale_at_rsu", "frames_lost_on_link"))
            summary["frames_in_flight_at_stop"] = max(0.0, float(sent) - float(decoded or 0) - lost)
            judged = float(decoded or 0) + lost
            summary["decoded_share"] = round(float(decoded or 0) / judged, 4) if judged else None
        sim = self.diag.get("sqgan sim")
        if sim is not None:
            def val(k: str) -> Any:
                v = sim.get(k)
                if v in ("True", "False"):
                    return v == "True"
                try:
                    return round(float(v), 4)
                except (TypeError, ValueError):
                    return v

            summary["frames_camera"] = val("frames_published")
            summary["frames_unsynced_at_vehicle"] = self._diag_sum("sqgan vehicle:", "frames_unsynced")
            summary["sync"] = {k: val(k) for k in ("sync_mode", "real_time_factor", "sim_seconds", "wall_seconds",
                                                  "lockstep_outcomes", "lockstep_timeouts", "lockstep_wait_s")
                               if k in sim}
            scenario = {k[len("scenario_"):]: val(k) for k in sim if k.startswith("scenario_")}
            if scenario:
                summary["scenario"] = scenario
            closed = {k: val(k) for k in sim if k.startswith(("warnings_", "brake_"))}
            if closed:
                summary["closed_loop"] = closed
            done = [summary["sync"].get(k) for k in ("lockstep_outcomes", "lockstep_timeouts")]
            if all(isinstance(v, (int, float)) for v in done) and sum(done) > 0:
                summary["sync"]["outcome_share"] = round(done[0] / sum(done), 4)
        summary["notes"]["frames"] = (
            "frames_sent = frames_decoded + frames_dropped_stale_at_rsu + frames_lost_on_link + "
            "frames_in_flight_at_stop; frames_camera - frames_sent = frames_dropped_at_vehicle + camera frames that "
            "never reached the vehicle (frames_unsynced_at_vehicle: images whose semantic partner never came), "
            "plus any in flight; "
            "decoded_share = frames_decoded / (frames_decoded + frames_dropped_stale_at_rsu + frames_lost_on_link): "
            "of the frames sent whose fate is known at the stop")
        summary["notes"]["sync"] = ("the simulator's sync mode; real_time_factor = simulated s / wall s; "
                                    "lockstep_timeouts: frames whose RSU outcome never came (lost), the simulator went on; "
                                    "outcome_share = lockstep_outcomes / (lockstep_outcomes + lockstep_timeouts)")

    def _diag_sum(self, prefix: str, key: str) -> float | None:
        vals = [float(v[key]) for name, v in self.diag.items() if name.startswith(prefix) and key in v]
        return sum(vals) if vals else None

    def write_summary(self, reason: str) -> dict[str, Any]:
        out = Path(self.p["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        outputs = sum(t.outputs for t in self.tracks.values())
        firsts = [t.first for t in self.tracks.values() if t.first is not None]
        lasts = [t.last for t in self.tracks.values() if t.last is not None]
        span = (max(lasts) - min(firsts)) if firsts and lasts else 0.0
        sent = self._diag_sum("sqgan vehicle:", "packets_sent")
        received = self._diag_sum("sqgan rsu: vehicle_", "packets_arrived")
        bits = self._diag_sum("sqgan vehicle:", "bytes_sent")
        pixels = self._diag_sum("sqgan vehicle:", "pixels_sent")
        lat = np.array(self.latencies) if self.latencies else None
        link = None
        if self.p["link_stats"] and Path(self.p["link_stats"]).is_file():
            link = json.loads(Path(self.p["link_stats"]).read_text())
        miou_shat = miou_from_confusion(self.cm) if self.cm.sum() else None
        seg = segmenter_miou(self.seg_pairs, self.p["segmenter"])
        if seg.get("error"):
            self.get_logger().warning(f"miou_seg_recon unavailable: {seg['error']}")

        def num(v: float | None, nd: int = 4) -> float | int | None:
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return None
            return round(v, nd) if isinstance(v, float) else v

        summary: dict[str, Any] = {
            "frames_sent": num(self._diag_sum("sqgan vehicle:", "frames_encoded")),
            "frames_decoded": num(self._diag_sum("sqgan rsu: vehicle_", "frames_decoded")),
            "frames_recorded": outputs,
            "packets_sent": num(self._diag_sum("sqgan vehicle:", "packets_sent")),
            "packets_arrived": num(received),
            "packets_lost": num(sent - received) if sent is not None and received is not None else None,
            "packets_missing": num(self._diag_sum("sqgan rsu: vehicle_", "packets_missing")),
            "link_packets_dropped": None if link is None else link.get("dropped_total"),
            "link_packets_duplicated": None if link is None else link.get("duplicated", 0),
            "mean_bpp": num(8 * bits / pixels, 5) if bits and pixels else None,
            "miou_seg_recon": num(seg.get("recon")),
            "miou_seg_orig": num(seg.get("orig")),
            "seg_frames": seg.get("frames", 0),
            "miou_shat": num(miou_shat),
            "psnr": num(float(np.mean([p for p in self.psnrs if math.isfinite(p)])) if self.psnrs else None, 3),
            "latency_ms_p50": num(float(np.percentile(lat, 50)), 1) if lat is not None else None,
            "latency_ms_p95": num(float(np.percentile(lat, 95)), 1) if lat is not None else None,
            "fps": num(outputs / span, 3) if span > 0 else None,
            "fps_per_vehicle": num(outputs / span / len(self.vids), 3) if span > 0 else None,
            "vehicles": len(self.vids),
            "frames_dropped_at_vehicle": num(self._diag_sum("sqgan vehicle:", "frames_dropped_busy")),
            "frames_dropped_stale_at_rsu": num(self._diag_sum("sqgan rsu: vehicle_", "frames_dropped_stale")),
            "frames_lost_on_link": num(sum(self._diag_sum("sqgan rsu: vehicle_", k) or 0
                                           for k in ("frames_lost", "frames_unseen"))),
            "frames_decoded_incomplete": num(self._diag_sum("sqgan rsu: vehicle_", "frames_decoded_incomplete")),
            "tokens_lost": num(self._diag_sum("sqgan rsu: vehicle_", "tokens_lost")),
            "encode_ms_p50": num(self._diag_sum("sqgan vehicle:", "encode_ms_p50") / len(self.vids), 1)
            if self._diag_sum("sqgan vehicle:", "encode_ms_p50") is not None else None,
            "rsu_ms_p50": num(self._diag_sum("sqgan rsu: vehicle_", "rsu_ms_p50") / len(self.vids), 1)
            if self._diag_sum("sqgan rsu: vehicle_", "rsu_ms_p50") is not None else None,
            "unavailable": {k: seg["error"] for k in ("miou_seg_recon", "miou_seg_orig") if seg.get("error")},
            "notes": {
                "miou_seg_recon": "segmenter on the RSU's image vs the simulator's exact labels "
                                  "(miou_seg_orig: the same segmenter on the camera image)",
                "miou_shat": "RSU's decoded semantic map vs the simulator's exact labels",
                "latency": "camera image arrival -> RSU image arrival, both at the recorder (same host clock)",
                "mean_bpp": "all packet bytes the vehicles sent (headers, CRCs, redundant info) per camera pixel",
                "packets_lost": "packets_sent - packets_arrived: sent by a vehicle, never reached the RSU "
                                "(link_packets_dropped - link_packets_duplicated, plus any in flight at the stop)",
                "packets_missing": "packets the RSU's closed frames needed and did not get (no spare info copies)",
                "counters": "vehicle and RSU counters come from their last /diagnostics (every diagnostics_period), "
                            "the link's from its stats file (every second): while frames still flow they can differ "
                            "by one period of traffic; they agree exactly once the stream has stopped",
                "frames_lost_on_link": "frames the RSU could not decode: masks never arrived, or no packet did",
            },
            "profile": self.p["profile"],
            "model": model_label(self.p["model"]),
            "untrained": str(self.p["model"]).startswith("untrained:"),
            "stop_reason": reason,
            "link": link,
        }
        def value(v: Any) -> Any:
            try:
                return num(float(v), 3)
            except (TypeError, ValueError):
                return v

        rate = {name.split(":", 1)[1].strip(): {k: value(v.get(k)) for k in (
                    "rate_budget_kbps", "sent_kbps", "rate_effective_kbps", "rate_congested_reports", "feedback_received",
                    "feedback_malformed", "codebook", "m_x", "m_s")}
                for name, v in sorted(self.diag.items()) if name.startswith("sqgan vehicle:") and "rate_budget_kbps" in v}
        if rate:
            summary["rate_control"] = rate
            summary["notes"]["rate_control"] = ("per vehicle, from its last /diagnostics: the budget, the rate it sent "
                                                "between its first and last frame, the budget it holds after the RSU's "
                                                "feedback, and the setting of its last frame")
        self._add_frame_accounting(summary)
        if summary["untrained"]:
            summary["notes"]["untrained"] = "random weights: rates and timings are real, psnr/miou are of noise"
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        if self.strip:
            from PIL import Image as PILImage

            PILImage.fromarray(np.concatenate(self.strip, axis=0)).save(out / "strip.png")
        print(format_table(summary), flush=True)
        return summary


def segmenter_miou(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], spec: str) -> dict[str, Any]:
    """mIoU of the segmenter on reconstructions and on originals against the exact labels, or the reason
    it cannot be computed ({"error": ...}); never a made-up figure."""
    if str(spec).lower() == "none":
        return {"error": "segmenter disabled (segmenter:=none)"}
    if not pairs:
        return {"error": "no decoded frame with ground-truth labels was recorded"}
    from sqgan_core.segmentation.segmenter import Segmenter, SegmenterError

    try:
        model = Segmenter.load(spec or None)
        cm_recon = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
        cm_orig = np.zeros_like(cm_recon)
        for orig, recon, gt in pairs:
            cm_recon += confusion(model(recon), gt)
            cm_orig += confusion(model(orig), gt)
    except SegmenterError as exc:
        return {"error": str(exc)}
    return {"recon": miou_from_confusion(cm_recon), "orig": miou_from_confusion(cm_orig), "frames": len(pairs)}


TABLE_KEYS = ("frames_sent", "frames_decoded", "decoded_share", "packets_sent", "packets_lost", "mean_bpp", "miou_seg_recon",
              "miou_seg_orig",
              "miou_shat", "psnr", "latency_ms_p50", "latency_ms_p95", "fps")


def format_table(summary: dict[str, Any]) -> str:
    rows = [f"  {k:<18} {summary.get(k)!s:>12}" for k in TABLE_KEYS]
    head = f"pipeline summary ({summary.get('profile')}, model {summary.get('model')})"
    sync = summary.get("sync")
    if sync:
        rows.append(f"  {'sync':<18} {sync.get('sync_mode')!s:>12}")
        rows.append(f"  {'real_time_factor':<18} {sync.get('real_time_factor')!s:>12}")
    return "\n".join([head] + rows)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = PipelineRecorder()
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        node.summary = node.write_summary("interrupted")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if getattr(node, "summary", {}).get("frames_recorded") else 1


if __name__ == "__main__":
    sys.exit(main())
