"""ROS 2 node publishing simulator frames with the CARLA ROS bridge's conventions.

Topics (role = scenario `ego.role_name`, default "ego_vehicle", as the CARLA ROS bridge):
  /carla/<role>/<rgb_sensor>/image             sensor_msgs/Image bgra8
  /carla/<role>/<rgb_sensor>/camera_info       sensor_msgs/CameraInfo
  /carla/<role>/<semantic_sensor>/image        sensor_msgs/Image bgra8, CARLA's CityScapesPalette colours
                                               (from the raw tags on CARLA, as the CARLA ROS bridge sends)
  /carla/<role>/<semantic_sensor>/train_ids    sensor_msgs/Image mono8, the exact trainIds (255 void)
  /carla/<role>/<semantic_sensor>/camera_info
  /clock                                       rosgraph_msgs/Clock (simulation time, 0.05 s ticks)
  /tf_static                                   <role> -> <role>/<sensor>: the camera mounts (optical frames)
  /tf                                          map -> <role>: the ego pose, every frame
frame_id is `<role>/<sensor>`; /tf and /tf_static make it resolve, as the CARLA ROS bridge's do. They
need tf2_msgs, which every ROS 2 install has and PyPI does not: without it the node says so in one log
line and `tf_status`, and publishes the rest. The same topics come from the embedded simulator or a CARLA
server: the `source` parameter (or the scenario's `source`) picks one, through sim.make_source.

Sync modes (`sync_mode`), like CARLA's asynchronous and synchronous modes:
  free      publish at `rate` on the wall clock whatever the pipeline does (measures real time)
  lockstep  publish frame k+1 only once frame k's outcome is in: the RSU's image of that stamp on
            every `/rsu/vehicle_<id>/image` of `lockstep_vehicle_ids`, or `lockstep_timeout` seconds
            (a frame lost on the link; counted). No frame is then dropped for being late, and results
            do not depend on how fast the machine is.
  auto      lockstep paced at `rate`: real time where the pipeline keeps up, waiting where it cannot.
With `lockstep_outcome: hazards` the outcome is the RSU hazard node's verdict on the frame
(/rsu/vehicle_<id>/hazards) instead of the decoded image, and a verdict with warnings also waits (up
to `warning_wait` s) for the warning to come back to the vehicle, so it acts before the next frame.

Closed loop: with `warning_topic` (the vehicle node's /vehicle_<id>/hazard_warnings), the ego reacts as
sim/brake.py's emergency brake: from a warning to a standstill, held while warnings keep coming within
`brake_hold` s of simulated time (EmbeddedSimulator.set_brake; carla.VehicleControl on CARLA). On a scenario with scripted hazards the simulator judges the run
(sim/outcome.py: stop before the conflict point, time from visibility to warning, false warnings and
stops) and reports it on /diagnostics.
Frames published, outcomes awaited, timeouts and the real-time factor (simulated seconds per wall
second) go out on /diagnostics as "sqgan sim".

Run: `sim_publisher --ros-args -p scenario:=rainy_night -p source:=embedded`.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from sqgan_core.labels import colorize
from ros2_ws.image_conversions import convert, numpy_to_image
from ros2_ws.node_common import diagnostic_array, diagnostic_status, image_qos
from sim import SimFrame, make_source
from sim.frame import TICK_SECONDS
from sim.brake import EmergencyBrake
from sim.outcome import ScenarioJudge
from sqgan_core.safety import parse_verdict
from sim.carla_tags import tags_to_palette
from sim.scenario import ScenarioError, load_scenario
from sim.tf_tree import FrameTransform, camera_mount_transforms, ego_transform

SYNC_MODES = ("free", "lockstep", "auto")
OUTCOME_TOPIC = "/rsu/vehicle_{id}/image"  # where the RSU publishes a vehicle's decoded frames
HAZARD_OUTCOME_TOPIC = "/rsu/vehicle_{id}/hazards"  # where the RSU hazard node publishes its verdicts


def _stamp_key(seconds: float) -> tuple[int, int]:
    """A float stamp as the (sec, nanosec) of the header it came from (the microsecond grid of 0.05 s ticks)."""
    t = stamp_of(round(seconds, 6))
    return t.sec, t.nanosec
TF_MISSING = "not published: tf2_msgs is not installed (it has no PyPI wheel; every ROS 2 install has it)"


def stamp_of(seconds: float) -> Any:
    from builtin_interfaces.msg import Time

    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def camera_info(frame: SimFrame, frame_id: str) -> CameraInfo:
    """Pinhole CameraInfo from the frame's intrinsics (no distortion, like CARLA cameras)."""
    cam = frame.camera
    msg = CameraInfo()
    msg.header.stamp = stamp_of(frame.stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = cam.width, cam.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def tf_message_type() -> type | None:
    """tf2_msgs/TFMessage, or None where tf2_msgs cannot be imported (the pip-installed ROS 2 wheels
    this project also runs on have no tf2_msgs; looked up per node so tests can supply one)."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    return TFMessage


def transform_stamped(t: FrameTransform, stamp: Any) -> TransformStamped:
    """A FrameTransform as geometry_msgs/TransformStamped."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = t.parent
    msg.child_frame_id = t.child
    tr, q = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = (float(v) for v in t.translation)
    q.x, q.y, q.z, q.w = (float(v) for v in t.rotation)
    return msg


def semantic_palette(frame: SimFrame) -> np.ndarray:
    """The semantic camera image as the CARLA ROS bridge publishes it: CARLA's CityScapesPalette of
    the raw tags when the frame came from CARLA, else the trainIds in the Cityscapes palette (the same
    colours CARLA >= 0.9.14 gives those 19 classes; void black like CARLA's Unlabeled)."""
    if frame.carla_tags is not None and frame.tag_set is not None:
        return tags_to_palette(frame.carla_tags, frame.tag_set)
    return colorize(frame.labels)

class SimPublisher(Node):
    """Steps a FrameSource on a timer and publishes RGB, semantic, camera_info, /clock and /tf."""

    def __init__(self) -> None:
        super().__init__("sim_publisher")
        # parameters declared up front (ros2/examples style); numbers accept int or float
        # (`-p rate:=10` is an integer to ROS), strings and bools keep their declared type
        defaults: dict[str, Any] = {
            "scenario": "default",
            "source": "",                    # "" keeps the scenario's; embedded | carla
            "seed": -1,                      # -1 keeps the scenario's
            "role_name": "",                 # "" keeps the scenario's ego.role_name
            "rgb_sensor": "rgb_front",
            "semantic_sensor": "semantic_segmentation_front",
            "rate": 20.0,                    # camera Hz: wall-clock pacing, and each frame is 1/rate s of sim time
                                             # (whole 0.05 s ticks, at least one); 0 = as fast as possible
            "frames": 0,                     # 0 = scenario duration, -1 = forever
            "publish_clock": True,
            "wait_for_subscribers": 0,       # hold the first frame until this many on each image topic and /clock
            "wait_timeout": 30.0,
            "reliable": True,                # image_transport default; false = sensor-data QoS
            "carla_host": "",
            "carla_port": 0,
            "sync_mode": "free",             # free | lockstep | auto (module docstring)
            "lockstep_vehicle_ids": [0],     # whose RSU outcome a lockstep frame waits for
            "lockstep_timeout": 5.0,         # s of wall time; then the frame counts as lost and the sim goes on
            "lockstep_outcome": "image",     # image (the RSU's decoded frame) | hazards (the hazard node's verdict)
            "warning_wait": 1.0,             # s of wall time a verdict with warnings waits for them at the vehicle
            "warning_topic": "",             # the vehicle's hazard warnings (std_msgs/String JSON); "" = open loop
            "brake_hold": 0.5,               # s of simulated time without warnings before a stopped ego drives on
            "diagnostics_period": 1.0,
        }
        numeric = {"seed": int, "rate": float, "frames": int, "wait_for_subscribers": int, "wait_timeout": float,
                   "carla_port": int, "lockstep_timeout": float, "diagnostics_period": float, "warning_wait": float,
                   "brake_hold": float}
        p: dict[str, Any] = {}
        for name, default in defaults.items():
            if name in numeric:
                self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
                value = self.get_parameter(name).value
                try:
                    p[name] = numeric[name](value)
                except (TypeError, ValueError):
                    raise ValueError(f"parameter {name}: expected a number, got {value!r}") from None
            else:
                self.declare_parameter(name, default)
                p[name] = self.get_parameter(name).value
        self.params = p
        if p["sync_mode"] not in SYNC_MODES:
            raise ValueError(f"parameter sync_mode={p['sync_mode']!r}: use one of {', '.join(SYNC_MODES)}")
        if p["lockstep_timeout"] <= 0 or p["diagnostics_period"] <= 0 or p["warning_wait"] < 0 or p["brake_hold"] < 0:
            raise ValueError("parameters lockstep_timeout and diagnostics_period must be > 0, warning_wait and "
                             "brake_hold >= 0")
        if p["lockstep_outcome"] not in ("image", "hazards"):
            raise ValueError(f"parameter lockstep_outcome={p['lockstep_outcome']!r}: use image or hazards")
        if p["sync_mode"] != "free" and not p["lockstep_vehicle_ids"]:
            raise ValueError(f"sync_mode {p['sync_mode']} needs lockstep_vehicle_ids (whose outcome to wait for)")
        cfg = load_scenario(p["scenario"])
        over: dict[str, Any] = {}
        if p["source"]:
            over["source"] = p["source"]
        if p["seed"] >= 0:
            over["seed"] = p["seed"]
        if p["role_name"]:
            over["ego.role_name"] = p["role_name"]
        if p["carla_host"]:
            over["carla.host"] = p["carla_host"]
        if p["carla_port"]:
            over["carla.port"] = p["carla_port"]
        self.cfg = cfg.replace(**over) if over else cfg
        # the camera frame rate in simulated time: 10 Hz renders every second 0.05 s tick, like a 10 Hz
        # sensor_tick on a 20 Hz CARLA world, so /clock runs at wall speed when the pipeline keeps up
        self.ticks_per_frame = max(1, int(round(1.0 / (p["rate"] * TICK_SECONDS)))) if p["rate"] > 0 else 1
        self.limit = (-(-self.cfg.frames // self.ticks_per_frame) if p["frames"] == 0 else
                      (None if p["frames"] < 0 else int(p["frames"])))
        role = self.cfg.ego.role_name
        qos = QoSProfile(depth=10 if p["reliable"] else 5, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if p["reliable"] else ReliabilityPolicy.BEST_EFFORT)
        self.frame_ids = {k: f"{role}/{p[k]}" for k in ("rgb_sensor", "semantic_sensor")}
        base = {k: f"/carla/{role}/{p[k]}" for k in ("rgb_sensor", "semantic_sensor")}
        self.pub_img = {k: self.create_publisher(Image, f"{b}/image", qos) for k, b in base.items()}
        # The semantic image is what the CARLA ROS bridge publishes (CityScapesPalette colours, bgra8);
        # the exact trainId map goes out beside it as mono8.
        self.pub_train_ids = self.create_publisher(Image, f"{base['semantic_sensor']}/train_ids", qos)
        self.pub_info = {k: self.create_publisher(CameraInfo, f"{b}/camera_info", qos) for k, b in base.items()}
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if p["publish_clock"] else None
        self._setup_tf(role)
        self.source = make_source(self.cfg)
        self.published = 0
        self.publish_errors = 0
        self.done = False
        self.counts: Counter[str] = Counter()
        self._setup_closed_loop()
        self._setup_sync()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self.get_logger().info(f"publishing {self.cfg.source} scenario '{self.cfg.name}' (seed {self.cfg.seed}) on "
                               f"{base['rgb_sensor']}/image and {base['semantic_sensor']}/image, "
                               f"sync mode {p['sync_mode']}")
        self._wait_subscribers()
        period = 1.0 / p["rate"] if p["rate"] > 0 else 0.0
        if p["sync_mode"] == "lockstep":
            period = 0.005  # the next frame goes out as soon as the last one's outcome is in
        self.timer = self.create_timer(period, self._tick)

    # -- closed loop: warnings brake the ego -----------------------------------------------------------
    def _setup_closed_loop(self) -> None:
        self.warning_sub = None
        self.brake = EmergencyBrake(float(self.params["brake_hold"]))
        self.braking = False
        self.judge = None
        if hasattr(self.source, "hazard_state") and getattr(self.cfg, "hazards", None):
            crit = getattr(self.cfg, "pass_criteria", None)
            self.judge = ScenarioJudge(float(self.cfg.ego.speed), float(getattr(crit, "stop_margin_m", 1.0) or 1.0))
        if not self.params["warning_topic"]:
            return
        if not hasattr(self.source, "set_brake"):
            raise ValueError(f"warning_topic: the {self.cfg.source} source cannot brake its ego")
        self.warning_sub = self.create_subscription(String, self.params["warning_topic"], self._on_warning, 50)

    def _on_warning(self, msg: String) -> None:
        try:
            _vid, stamp, warnings = parse_verdict(msg.data)
        except ValueError as exc:
            self.counts["warnings_malformed"] += 1
            self.get_logger().warning(f"hazard warning refused: {exc}", throttle_duration_sec=5.0)
            return
        self.counts["warnings_received"] += 1
        for w in warnings:
            self.counts[f"warnings_{w.type}"] += 1
        self.warned.add(_stamp_key(stamp))
        self.brake.warning(self.sim_last)  # it acts from the next tick on
        if self.judge is not None:
            self.judge.warning(self.sim_last, self.source.hazard_state())

    def _advance(self) -> SimFrame:
        """The next camera frame: `ticks_per_frame` ticks, the brake command and the judge on each."""
        frame = None
        ticks = self.ticks_per_frame if self.published else 1  # the first frame is the scenario's first tick
        for k in range(ticks):
            if self.warning_sub is not None:
                t_next = self.sim_last + TICK_SECONDS if self.published else 0.0
                brake = self.brake.command(t_next, float(self.source.ego_state()["speed"]))
                if brake != self.braking:
                    self.counts["brake_on" if brake else "brake_off"] += 1
                    self.braking = brake
                self.source.set_brake(brake)
            if k == ticks - 1:
                frame = self.source.step()
                t = frame.stamp
            else:
                self.source.skip()
                t = self.sim_last + TICK_SECONDS
            self.sim_last = t
            if self.braking:
                self.counts["brake_ticks"] += 1
            if self.judge is not None:
                self.judge.tick(t, self.source.hazard_state(), self.source.ego_state())
        assert frame is not None
        return frame

    # -- lock-step ----------------------------------------------------------------------------------
    def _setup_sync(self) -> None:
        """Subscriptions to the outcome topics (lockstep, auto): the RSU's decoded image per vehicle."""
        self.sync = self.params["sync_mode"]
        self.awaiting: tuple[int, int] | None = None  # the stamp whose outcome is still out
        self.await_since = 0.0
        self.outcomes: dict[int, set[tuple[int, int]]] = {}
        self.lockstep_outcomes = self.lockstep_timeouts = 0
        self.wall_start: float | None = None
        self.sim_start: float | None = None
        self.sim_last = 0.0
        self.wait_s = 0.0  # wall time spent waiting for outcomes
        self.expect_warning: set[tuple[int, int]] = set()  # frames whose verdict warned
        self.warned: set[tuple[int, int]] = set()  # frames whose warning reached the vehicle
        self.warning_since: float | None = None
        if self.sync == "free":
            return
        for vid in self.params["lockstep_vehicle_ids"]:
            vid = int(vid)
            self.outcomes[vid] = set()
            if self.params["lockstep_outcome"] == "hazards":
                self.create_subscription(String, HAZARD_OUTCOME_TOPIC.format(id=vid),
                                         lambda m, v=vid: self._on_verdict(v, m), 50)
            else:
                self.create_subscription(Image, OUTCOME_TOPIC.format(id=vid),
                                         lambda m, v=vid: self._on_outcome(v, m), image_qos())

    def _on_verdict(self, vid: int, msg: String) -> None:
        try:
            _vid, stamp, warnings = parse_verdict(msg.data)
        except ValueError as exc:
            self.counts["verdicts_malformed"] += 1
            self.get_logger().warning(f"hazard verdict refused: {exc}", throttle_duration_sec=5.0)
            return
        key = _stamp_key(stamp)
        if warnings and self.warning_sub is not None:
            self.expect_warning.add(key)
        self._seen(vid, key)

    def _on_outcome(self, vid: int, msg: Image) -> None:
        self._seen(vid, (msg.header.stamp.sec, msg.header.stamp.nanosec))

    def _seen(self, vid: int, key: tuple[int, int]) -> None:
        seen = self.outcomes[vid]
        seen.add(key)
        if len(seen) > 256:  # only the newest stamps matter
            for k in sorted(seen)[:-128]:
                seen.discard(k)

    def _outcome_pending(self) -> bool:
        """True while the last frame's outcome is neither in nor timed out."""
        if self.awaiting is None:
            return False
        if all(self.awaiting in seen for seen in self.outcomes.values()):
            if self.awaiting in self.expect_warning and self.awaiting not in self.warned:
                if self.warning_since is None:
                    self.warning_since = time.monotonic()
                if time.monotonic() - self.warning_since <= float(self.params["warning_wait"]):
                    return True  # the verdict warned: let the warning reach the vehicle first
                self.counts["warnings_not_arrived"] += 1
            self.warning_since = None
            self.lockstep_outcomes += 1
        elif time.monotonic() - self.await_since > float(self.params["lockstep_timeout"]):
            self.lockstep_timeouts += 1
            self.get_logger().warning(f"no RSU outcome for the frame at {self.awaiting[0]}.{self.awaiting[1]:09d} "
                                      f"within {self.params['lockstep_timeout']:g} s (lost on the link?); going on; "
                                      f"{self.lockstep_timeouts} so far", throttle_duration_sec=5.0)
        else:
            return True
        self.wait_s += time.monotonic() - self.await_since
        self.awaiting = None
        return False

    def sync_stats(self) -> dict[str, Any]:
        wall = time.monotonic() - self.wall_start if self.wall_start is not None else 0.0
        sim = self.sim_last - self.sim_start if self.sim_start is not None else 0.0
        out: dict[str, Any] = {"frames_published": self.published, "publish_errors": self.publish_errors,
                               "sync_mode": self.sync, "sim_seconds": round(sim, 3), "wall_seconds": round(wall, 3),
                               "real_time_factor": round(sim / wall, 4) if wall > 0 and self.published > 1 else "n/a"}
        if self.sync != "free":
            out.update({"lockstep_outcomes": self.lockstep_outcomes, "lockstep_timeouts": self.lockstep_timeouts,
                        "lockstep_wait_s": round(self.wait_s, 3)})
        out.update(self.counts)
        if self.warning_sub is not None:
            out["braking"] = self.braking
        if hasattr(self.source, "ego_state"):
            out["ego_speed"] = round(float(self.source.ego_state()["speed"]), 3)
        if self.judge is not None:
            v = self.judge.verdict()
            out.update({f"scenario_{k}": ("n/a" if val is None else val) for k, val in v.to_dict().items()})
        return out

    def _publish_diagnostics(self) -> None:
        self._publish(self.pub_diag, diagnostic_array(self.get_clock().now().to_msg(),
                                                      [diagnostic_status("sqgan sim", "sim", self.sync_stats())]))

    def _setup_tf(self, role: str) -> None:
        """Publishers of /tf (the ego pose each frame) and /tf_static (the camera mounts, sent once and kept
        for late subscribers), with tf2_ros' QoS; without tf2_msgs, one line and `tf_status` say why not."""
        self.tf_message = tf_message_type()
        self.pub_tf = self.pub_tf_static = None
        if self.tf_message is None:
            self.tf_status = TF_MISSING
            self.get_logger().warning(f"/tf and /tf_static {TF_MISSING}; the frame_ids "
                                      f"{', '.join(self.frame_ids.values())} do not resolve")
            return
        self.pub_tf = self.create_publisher(self.tf_message, "/tf", QoSProfile(depth=100))
        self.pub_tf_static = self.create_publisher(
            self.tf_message, "/tf_static",
            QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        ego = self.cfg.ego
        mounts = camera_mount_transforms(role, [self.params[k] for k in ("rgb_sensor", "semantic_sensor")],
                                         ego.mount_x, ego.mount_z, ego.pitch)
        self._publish(self.pub_tf_static, self.tf_message(transforms=[transform_stamped(t, stamp_of(0.0))
                                                                      for t in mounts]))
        self.tf_status = "published"

    def _wait_subscribers(self) -> None:
        """Hold the first frame until `wait_for_subscribers` subscribers are on each image topic (and
        /clock), and, in lockstep and auto modes, until the pipeline is up: someone subscribes to the
        camera and the RSU publishes every awaited outcome topic. A first frame sent into a graph still
        loading its models would only time out."""
        need = int(self.params["wait_for_subscribers"])
        pubs = list(self.pub_img.values()) + ([self.pub_clock] if self.pub_clock is not None else [])
        template = HAZARD_OUTCOME_TOPIC if self.params["lockstep_outcome"] == "hazards" else OUTCOME_TOPIC
        outcome_topics = [template.format(id=v) for v in self.outcomes]
        if need <= 0 and not outcome_topics:
            return
        need_subs = max(need, 1 if outcome_topics else 0)
        if self.warning_sub is not None and outcome_topics:  # the closed loop: the warnings' source is up too
            outcome_topics.append(self.params["warning_topic"])
        deadline = time.monotonic() + float(self.params["wait_timeout"])
        while time.monotonic() < deadline:
            if all(pub.get_subscription_count() >= need_subs for pub in pubs) and \
                    all(self.count_publishers(t) >= 1 for t in outcome_topics):
                return
            time.sleep(0.05)
        self.get_logger().warning(f"the pipeline is not up after {self.params['wait_timeout']} s "
                                  f"(subscribers: {[pub.get_subscription_count() for pub in pubs]}, RSU outcome "
                                  f"publishers: {[self.count_publishers(t) for t in outcome_topics]}); publishing anyway")

    def _publish(self, pub, msg) -> None:
        try:
            pub.publish(msg)
        except Exception as exc:  # noqa: BLE001 - Fast DDS can raise on large frames in a tight loop
            self.publish_errors += 1
            self.get_logger().warning(f"publish failed ({exc}); {self.publish_errors} so far",
                                      throttle_duration_sec=5.0)

    def publish_frame(self, frame: SimFrame) -> None:
        stamp = stamp_of(frame.stamp)
        if self.pub_clock is not None:
            self._publish(self.pub_clock, Clock(clock=stamp))
        if self.pub_tf is not None:  # before the images, so a listener can already resolve their frame
            self._publish(self.pub_tf, self.tf_message(
                transforms=[transform_stamped(ego_transform(frame, self.cfg.ego.role_name), stamp)]))
        for key, image in (("rgb_sensor", frame.rgb), ("semantic_sensor", semantic_palette(frame))):
            msg = numpy_to_image(convert(image, "bgra8"), "bgra8")
            msg.header.stamp = stamp
            msg.header.frame_id = self.frame_ids[key]
            self._publish(self.pub_img[key], msg)
            self._publish(self.pub_info[key], camera_info(frame, self.frame_ids[key]))
        ids = numpy_to_image(np.ascontiguousarray(frame.labels, dtype=np.uint8), "mono8")
        ids.header.stamp = stamp
        ids.header.frame_id = self.frame_ids["semantic_sensor"]
        self._publish(self.pub_train_ids, ids)
        self.published += 1
        now = time.monotonic()
        if self.wall_start is None:
            self.wall_start, self.sim_start = now, frame.stamp
        self.sim_last = frame.stamp
        if self.sync != "free":
            self.awaiting, self.await_since = (stamp.sec, stamp.nanosec), now

    def _tick(self) -> None:
        if self.done or self._outcome_pending():
            return
        if self.limit is not None and self.published >= self.limit:
            self.finish()
            return
        self.publish_frame(self._advance())

    def finish(self) -> None:
        """Stop publishing; let reliable subscribers receive what was sent before the node exits."""
        self.done = True
        self.timer.cancel()
        pubs = list(self.pub_img.values()) + list(self.pub_info.values())
        pubs += [pub for pub in (self.pub_clock, self.pub_tf, self.pub_tf_static) if pub is not None]
        for pub in pubs:
            try:
                pub.wait_for_all_acked(rclpy.duration.Duration(seconds=5.0))
            except Exception:  # noqa: BLE001 - best-effort publishers have nothing to wait for
                pass
        self._publish_diagnostics()
        st = self.sync_stats()
        self.get_logger().info(f"published {self.published} frames ({self.publish_errors} publish errors; "
                               f"/tf {self.tf_status}; real-time factor {st['real_time_factor']}"
                               + (f", {self.lockstep_timeouts} lockstep timeouts)" if self.sync != "free" else ")"))
        if self.judge is not None:
            v = self.judge.verdict()
            self.get_logger().info(f"scenario {self.cfg.name}: {'PASS' if v.passed else 'FAIL'}: {v.reason} "
                                   f"(visible -> warning {v.warning_latency_ms} ms, {v.false_warnings} false warnings)")

    def destroy_node(self) -> None:
        src = getattr(self, "source", None)  # absent when __init__ failed
        if src is not None:
            src.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    import signal

    import rclpy.executors
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    # The executor exists before the node (as in node_common.run_node): a Ctrl-C then never meets a
    # half-built executor on a context rclpy's SIGINT handler has already shut down.
    executor = rclpy.executors.SingleThreadedExecutor()
    try:
        node = SimPublisher()
    except (ScenarioError, ConnectionError, ImportError, ValueError) as exc:
        print(f"sim_publisher: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the scenario was still loading: a clean stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        rclpy.try_shutdown()
        return 0
    try:
        executor.add_node(node)
        while rclpy.ok() and not node.done:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy's RCLError: the context was shut down by its SIGINT handler mid-spin
        if rclpy.ok():
            raise
    finally:
        # a second Ctrl-C (a launcher signals the whole process group) must not interrupt the clean-up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
