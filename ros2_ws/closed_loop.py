"""Closed-loop hazard scenarios in lock-step: simulator -> vehicle codec -> lossy link -> RSU ->
hazard detector -> warning back over the lossy link -> the simulated ego brakes.

Everything runs in one process on the simulator's clock (20 Hz ticks, the camera every `camera_hz`),
so no frame is ever dropped for being late: frames are lost only to the link, and the outcome does
not depend on how fast the machine is (CARLA's synchronous mode works the same way). Compute time is
charged in simulated time from `encode_ms` and `rsu_ms` (what a vehicle computer and a GPU RSU take),
not from this machine's clock. The same packets, link model (`LinkShaper`, as the link emulator
applies it), reassembly and decoding as the nodes; classic codecs are coded at a matched rate, sent in
the same packets, and a classic frame is lost with any of its packets.

The ego reacts as sim/brake.py's automatic emergency brake: from a warning to a standstill at the
scenario's `ego.max_decel`, held while warnings keep coming (within `hold_s`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sim.outcome import ScenarioVerdict

SQGAN = "sqgan"
CODECS = (SQGAN, "jpeg2000", "av1", "jpeg", "webp", "avif", "hevc")


@dataclass
class LoopSettings:
    codec: str = SQGAN
    m_x: float = 0.5
    m_s: float = 0.5
    bpp: float | None = None  # classic codecs: target wire bpp (SQ-GAN: set by m_x, m_s)
    profile: str = "clean"
    camera_hz: float = 10.0
    encode_ms: float = 10.0  # charged in simulated time: vehicle encode
    rsu_ms: float = 40.0  # charged in simulated time: RSU decode + concealment + detection
    frame_timeout_ms: float = 150.0  # the RSU's reassembly timeout (simulated time)
    hold_s: float = 0.5  # a standing ego stays stopped until no warning came for this long (sim/brake.py)
    path_half_width: float = 2.5  # m either side of the ego's path: a person or cyclist there is in its path
    second_opinion: bool = True  # SQ-GAN: the segmenter on x_hat as the detector's second opinion
    packet_bytes: int = 256
    seed: int = 0  # link draws (uplink; the downlink uses seed + 1)
    max_seconds: float | None = None  # cut the scenario short (tests)
    camera: tuple[int, int] | None = None  # (height, width) override of the scenario's camera
    source: str | None = None  # embedded | carla: override the scenario's (carla: driven along its route)
    carla: str | None = None  # "HOST:PORT" of the CARLA server (default: the scenario's carla.host/port)

    def check(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}: use one of {', '.join(CODECS)}")
        if self.codec != SQGAN and not (self.bpp and self.bpp > 0):
            raise ValueError(f"codec {self.codec}: a target rate (bpp > 0) is needed to match SQ-GAN's")
        if self.source not in (None, "embedded", "carla"):
            raise ValueError(f"source {self.source!r}: use embedded or carla")
        if self.carla is not None:
            host, _, port = self.carla.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"carla {self.carla!r}: use HOST:PORT, e.g. localhost:2000")
        if not 0 < self.camera_hz <= 20:
            raise ValueError(f"camera_hz must be in (0, 20] (the simulator ticks at 20 Hz), got {self.camera_hz}")


@dataclass
class ScenarioOutcome(ScenarioVerdict):
    """A run's verdict (sim/outcome.py: pass or fail, latency, distance, false warnings and stops) with
    what it ran and what crossed the link."""

    scenario: str
    codec: str
    profile: str
    frames_sent: int = 0
    frames_decoded: int = 0
    frames_lost: int = 0
    bpp_wire: float | None = None
    warnings_sent: int = 0
    warnings_lost: int = 0
    warnings_by_type: dict[str, int] = field(default_factory=dict)  # sent by the RSU
    seconds: float = 0.0
    link: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _classic_frames() -> tuple[Any, Any]:
    from ros2_ws.codec_trials import ClassicEncoder, _classic_seq_index

    return ClassicEncoder, _classic_seq_index


def run_scenario(scenario: Any, settings: LoopSettings, *, codec: Any = None, segmenter: Any = None,
                 concealer: Any = None, progress: bool = False) -> ScenarioOutcome:
    """One closed-loop run. `scenario`: a name, a YAML path or a ScenarioConfig. `codec`, `segmenter`,
    `concealer`: loaded ones to reuse across runs (default: the shipped ones)."""
    from tqdm import tqdm

    from sim import make_source
    from sim.frame import TICK_SECONDS
    from sim.brake import EmergencyBrake
    from sim.outcome import ScenarioJudge
    from sim.scenario import ScenarioConfig, load_scenario
    from sqgan_core.safety import HazardConfig, HazardDetector, HazardWarning
    from sqgan_core.streaming.assembler import FrameAssembler
    from sqgan_core.streaming.stream import StreamDecoder, StreamEncoder
    from sqgan_core.transport.channel import load_profile
    from sqgan_core.transport.shaper import LinkShaper

    settings.check()
    cfg = scenario if isinstance(scenario, ScenarioConfig) else load_scenario(scenario)
    if settings.camera is not None:
        cfg = cfg.replace(**{"camera.height": settings.camera[0], "camera.width": settings.camera[1]})
    if settings.source is not None:
        cfg = cfg.replace(source=settings.source)
    if cfg.source == "carla":
        over: dict[str, Any] = {"carla.drive": "route"} if cfg.hazards else {}  # conflict points lie on the route
        if settings.carla is not None:
            host, _, port = settings.carla.rpartition(":")
            over.update({"carla.host": host, "carla.port": int(port)})
        if over:
            cfg = cfg.replace(**over)
    profile = load_profile(settings.profile)
    up: LinkShaper[bytes] = LinkShaper(profile, seed=settings.seed)
    down: LinkShaper[dict] = LinkShaper(profile, seed=settings.seed + 1)
    detector = HazardDetector(HazardConfig.load())
    use_sqgan = settings.codec == SQGAN
    if use_sqgan:
        if codec is None:
            from sqgan_core.streaming.stream import load_codec

            codec, _ = load_codec("")
        if concealer is None:
            from sqgan_core.streaming.concealment import select_concealer

            concealer = select_concealer("auto", None, codec.model_id).concealer
        encoder = StreamEncoder(codec, 0, m_x=settings.m_x, m_s=settings.m_s, max_packet_bytes=settings.packet_bytes)
        assembler = FrameAssembler(codec.priors_x, codec.priors_s, codec.model_id, max_tokens=codec.max_tokens,
                                   max_packet_bytes=settings.packet_bytes,
                                   frame_timeout=settings.frame_timeout_ms / 1000)
        decoder = StreamDecoder(codec, concealer)
    else:
        ClassicEncoder, seq_index = _classic_frames()
        encoder = ClassicEncoder(settings.codec, settings.packet_bytes)
        classic_got: dict[int, set[int]] = {}
        classic_sent: dict[int, Any] = {}
    if segmenter is None and (settings.second_opinion or not use_sqgan):
        from sqgan_core.segmentation.segmenter import Segmenter

        segmenter = Segmenter.load()

    src = make_source(cfg)
    ticks_per_frame = max(1, int(round(1.0 / (settings.camera_hz * TICK_SECONDS))))
    duration = cfg.duration if settings.max_seconds is None else min(cfg.duration, settings.max_seconds)
    n_ticks = int(round(duration / TICK_SECONDS))
    captured: dict[int, float] = {}  # frame seq -> capture time
    pending: list[tuple[float, int, np.ndarray, np.ndarray | None]] = []  # (ready time, seq, labels, image)
    brake = EmergencyBrake(settings.hold_s)
    judge = ScenarioJudge(float(cfg.ego.speed),
                          float(getattr(getattr(cfg, "pass_criteria", None), "stop_margin_m", 1.0) or 1.0),
                          settings.path_half_width)
    warnings_sent = 0
    by_type: dict[str, int] = {}
    sent = decoded = 0
    bits = pixels = 0

    def rsu_sees(t_ready: float, seq: int, labels: np.ndarray, image: np.ndarray | None) -> None:
        nonlocal warnings_sent
        seg = segmenter(image) if (segmenter is not None and image is not None and
                                   (settings.second_opinion or not use_sqgan)) else None
        s_hat = labels if labels is not None else seg
        if s_hat is None:
            return
        for w in detector.update(s_hat, image, seg if use_sqgan else None, stamp=captured.get(seq, t_ready)):
            warnings_sent += 1
            by_type[w.type] = by_type.get(w.type, 0) + 1
            down.offer(w.to_dict(), 64, t_ready + settings.rsu_ms / 1000)

    try:
        bar = tqdm(range(n_ticks), desc=f"{cfg.name} {settings.codec} {profile.name}", unit="tick",
                   disable=not progress, mininterval=5)
        for tick in bar:
            t = tick * TICK_SECONDS
            # -- the vehicle: camera frame, encode, send -----------------------------------------
            if tick % ticks_per_frame == 0:
                frame = src.step()
                h, w = frame.labels.shape
                t_send = t + settings.encode_ms / 1000
                if use_sqgan:
                    out = encoder.encode(frame.rgb, frame.labels, stamp=(int(t), int(round((t % 1) * 1e9))))
                    packets, seq = out.packets, out.seq
                else:
                    enc = encoder.encode(frame.rgb, settings.bpp)
                    packets = enc.packets
                    seq = seq_index(packets[0])[0]
                    classic_sent[seq] = enc
                captured[seq] = t
                sent += 1
                bits += 8 * sum(map(len, packets))
                pixels += h * w
                for pkt in packets:
                    up.offer(pkt, len(pkt), t_send)
            else:
                src.skip()
            # -- the link and the RSU ----------------------------------------------------------------
            for pkt in up.due(t):
                if use_sqgan:
                    for f in assembler.push(pkt, t):
                        pending.append((t, f.seq, f, None))  # type: ignore[arg-type]
                else:
                    key = seq_index(pkt)
                    if key is not None:
                        s, i, count = key
                        classic_got.setdefault(s, set()).add(i)
                        if len(classic_got[s]) == count and classic_sent.get(s) is not None:
                            enc = classic_sent.pop(s)
                            pending.append((t, s, None, enc.recon))  # type: ignore[arg-type]
            if use_sqgan:
                for f in assembler.poll(t):
                    pending.append((t, f.seq, f, None))  # type: ignore[arg-type]
            for t_ready, seq, item, image in pending:
                if use_sqgan:
                    d = decoder.decode(item)  # type: ignore[arg-type]
                    rsu_sees(t_ready, seq, d.labels, d.image)
                else:
                    rsu_sees(t_ready, seq, None, image)  # type: ignore[arg-type]
                decoded += 1
            pending.clear()
            # -- warnings reach the vehicle ------------------------------------------------------
            hazards = src.hazard_state() if hasattr(src, "hazard_state") else []
            for msg in down.due(t):
                try:
                    HazardWarning.from_dict(msg)
                except ValueError:
                    continue
                brake.warning(t)
                judge.warning(t, hazards)
            src.set_brake(brake.command(t, src.ego_state()["speed"]))
            # -- the outcome -------------------------------------------------------------------------
            judge.tick(t, hazards, src.ego_state())
        bar.close()
    finally:
        getattr(src, "close", lambda: None)()

    v = judge.verdict()
    link = {f"up_{k}": int(v) for k, v in sorted(up.stats.items())}
    link.update({f"down_{k}": int(v) for k, v in sorted(down.stats.items())})
    return ScenarioOutcome(
        scenario=cfg.name, codec=settings.codec, profile=profile.name, **v.to_dict(), frames_sent=sent,
        frames_decoded=decoded,
        frames_lost=sent - decoded, bpp_wire=round(bits / pixels, 5) if pixels else None,
        warnings_sent=warnings_sent, warnings_lost=down.dropped(), warnings_by_type=by_type,
        seconds=round(n_ticks * TICK_SECONDS, 2), link=link)


__all__ = ["CODECS", "LoopSettings", "ScenarioOutcome", "run_scenario"]
