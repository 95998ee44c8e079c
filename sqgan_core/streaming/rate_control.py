"""Rate control on the vehicle: pick (m_x, m_s, codebook sizes) per frame to get the most semantic
quality out of a bit budget (kbit/s at a frame rate).

* `RateTable`: for a set of settings, the mean bits each puts on the wire per frame (headers, CRCs,
  info copies included) and the quality it gives (mIoU of s_hat, PSNR), measured offline on held-out
  frames (`measure_table`, `sqgan bench ratecontrol`). Tied to the codec weights by model id.
* `RateController`: a leaky bucket. Each frame's target is the per-frame budget minus a share of the
  bits over budget so far; it picks the best-quality setting whose expected size (the table's, scaled
  by how this drive's frames compare to the table's) fits the target. Moving between two neighbouring
  settings from frame to frame reaches the rate/quality points between them (time sharing), which no
  fixed setting can. Feedback from the RSU (loss share, delivered rate) lowers the budget while the
  channel loses more than `loss_backoff` of the packets (multiplicative decrease), or while less
  arrives than was sent and not lost (a queue filling at a bottleneck: the budget drops to the
  delivered rate, a little below it so that the queue drains), and brings it back by `recover` per report otherwise.
"""
from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence


SHIPPED_RATE_TABLE = Path(__file__).resolve().parent.parent / "weights" / "rate_table_small.json"


@dataclass(frozen=True)
class Setting:
    m_x: float
    m_s: float
    j_x: int
    j_s: int

    @property
    def label(self) -> str:
        return f"m=({self.m_x:g},{self.m_s:g}) J=({self.j_x},{self.j_s})"


@dataclass(frozen=True)
class TableRow:
    setting: Setting
    bits: float  # mean wire bits per frame
    miou_shat: float
    psnr: float

    def utility(self) -> float:
        """Semantic quality first; PSNR only breaks near-ties (0.1 dB ~ 0.0002 mIoU)."""
        return self.miou_shat + 0.002 * self.psnr


@dataclass
class RateTable:
    rows: list[TableRow]
    model_id: int
    frames: int
    pixels: int  # camera pixels per frame of the frames measured
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"model_id": f"{self.model_id:04x}", "frames": self.frames, "pixels": self.pixels, "source": self.source,
                "rows": [{**asdict(r.setting), "bits": r.bits, "miou_shat": r.miou_shat, "psnr": r.psnr} for r in self.rows]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RateTable":
        try:
            d = json.loads(Path(path).read_text())
            rows = [TableRow(Setting(float(r["m_x"]), float(r["m_s"]), int(r["j_x"]), int(r["j_s"])), float(r["bits"]),
                             float(r["miou_shat"]), float(r["psnr"])) for r in d["rows"]]
            return cls(rows, int(d["model_id"], 16), int(d["frames"]), int(d["pixels"]), str(d.get("source", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"rate table {path}: {exc}") from None

    def pareto(self) -> list[TableRow]:
        """Rows no other row beats on both bits and utility, cheapest first."""
        rows = sorted(self.rows, key=lambda r: (r.bits, -r.utility()))
        out: list[TableRow] = []
        for r in rows:
            if not out or r.utility() > out[-1].utility():
                out.append(r)
        return out


@dataclass
class RateController:
    """Per-frame setting choice for a budget in kbit/s. Without times (`observe(..., t=None)`) every frame
    is taken to come at `fps`; with times, the bucket drains at the budget over the time that really
    passed, so a vehicle that encodes fewer frames than the camera gives (busy CPU) spends the budget on
    the frames it does send, and the delivered rate the RSU reports can be set against what was sent."""

    table: RateTable
    budget_kbps: float
    fps: float
    horizon: float = 8.0  # frames over which an over- or under-spend is paid back
    loss_backoff: float = 0.10
    recover: float = 0.05
    congestion: float = 0.9  # delivered / (sent and not lost) under which the link is taken to be queueing
    drain: float = 0.85  # on congestion, send this share of the delivered rate, so that the queue drains
    window: int = 8  # reports the congestion test sums over (a report covers one RSU diagnostics period)
    probe: float = 0.02  # after congestion, the ceiling (the rate that passed) rises this much per clean report
    ceiling_kbps: float = math.inf  # what the bottleneck passed when congestion was last seen
    scale: float = 1.0  # this drive's frame size / the table's, learned from what was sent
    debt_bits: float = 0.0
    effective_kbps: float = field(default=0.0)
    # the last frames' choices, for inspection: bounded, since a vehicle node runs for days
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1024))
    congested_reports: int = 0
    interval: float = 0.0  # mean seconds between frames sent (0: not measured, 1 / fps is used)
    _last_t: float | None = field(default=None, repr=False)
    _sent_bits: float = field(default=0.0, repr=False)  # bits sent since the last report
    _reports: list[tuple[float, float, float, float]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not (self.budget_kbps > 0 and self.fps > 0):
            raise ValueError("rate control needs a budget (kbit/s) and a frame rate above 0")
        if not self.table.rows:
            raise ValueError("rate table has no rows")
        self.effective_kbps = self.effective_kbps or self.budget_kbps
        self._front = self.table.pareto()

    @property
    def frame_rate(self) -> float:
        """Frames per second actually sent (measured once times are given), else the nominal `fps`."""
        return 1.0 / self.interval if self.interval > 0 else self.fps

    @property
    def frame_budget_bits(self) -> float:
        return 1000.0 * self.effective_kbps / self.frame_rate

    def choose(self) -> TableRow:
        target = self.frame_budget_bits - self.debt_bits / self.horizon
        fits = [r for r in self._front if r.bits * self.scale <= target]
        return fits[-1] if fits else self._front[0]

    def observe(self, row: TableRow, bits_sent: float, t: float | None = None) -> None:
        """After a frame went out (at time `t`, seconds on any monotonic clock): pay its bits into the
        bucket, which drains at the budget over the time since the previous frame, and learn the size scale."""
        drained = self.frame_budget_bits
        if t is not None:
            self._sent_bits += bits_sent
            if self._last_t is not None and t > self._last_t:
                dt = min(t - self._last_t, 2.0 / self.fps + 1.0)  # a pause (no camera) earns no credit
                self.interval = dt if self.interval <= 0 else 0.8 * self.interval + 0.2 * dt
                drained = 1000.0 * self.effective_kbps * dt
            self._last_t = t
        self.debt_bits += bits_sent - drained
        # a lost-cause debt (a budget below the cheapest setting) must not grow without bound
        self.debt_bits = max(min(self.debt_bits, 4 * self.horizon * self.frame_budget_bits),
                             -self.horizon * self.frame_budget_bits)
        if row.bits > 0:
            self.scale = 0.9 * self.scale + 0.1 * (bits_sent / row.bits)
        self.history.append({"setting": row.setting.label, "bits": bits_sent, "debt": self.debt_bits,
                             "scale": self.scale, "kbps": self.effective_kbps})

    def delivery_ratio(self) -> float | None:
        """Over the last `window` reports: the rate that arrived / the rate sent that was not lost. None until
        5 reports with times came in (over fewer, what is in flight weighs too much)."""
        if len(self._reports) < 5:
            return None
        t0 = self._reports[0][0]
        t1 = self._reports[-1][0]
        if t1 <= t0:
            return None
        sent_kbps = sum(r[1] for r in self._reports[1:]) / 1000.0 / (t1 - t0)
        delivered = sum(r[2] for r in self._reports[1:]) / (len(self._reports) - 1)
        loss = sum(r[3] for r in self._reports[1:]) / (len(self._reports) - 1)
        expected = sent_kbps * (1.0 - loss)
        return delivered / expected if expected > 0 else None

    def feedback(self, loss_share: float, delivered_kbps: float | None = None, t: float | None = None) -> None:
        """A report from the RSU over the back channel, received at time `t` (the clock of `observe`)."""
        if not math.isfinite(loss_share) or not 0.0 <= loss_share <= 1.0:
            return
        ratio = None
        if t is not None and delivered_kbps is not None and math.isfinite(delivered_kbps) and delivered_kbps >= 0:
            self._reports.append((t, self._sent_bits, delivered_kbps, loss_share))
            self._sent_bits = 0.0
            del self._reports[:-self.window]
            ratio = self.delivery_ratio()
        if ratio is not None and ratio < self.congestion:
            # less arrived than went out and was not lost: a bottleneck queue is growing. Send less than it
            # passes for a while, so that the queue (and the delay it adds) drains, then probe up by `recover`.
            self.congested_reports += 1
            delivered = sum(r[2] for r in self._reports[1:]) / (len(self._reports) - 1)
            self.ceiling_kbps = max(0.2 * self.budget_kbps, delivered)
            self.effective_kbps = max(0.2 * self.budget_kbps, min(self.effective_kbps, self.drain * delivered))
            self.debt_bits = max(self.debt_bits, 0.0)  # no catching up on what was held back: that is the drain
            self._reports = self._reports[-1:]  # judge the new rate on reports that follow it
        elif loss_share > self.loss_backoff:
            self.effective_kbps = max(0.2 * self.budget_kbps, self.effective_kbps * (1.0 - loss_share / 2))
        elif ((ratio is None and not math.isfinite(self.ceiling_kbps))  # after congestion, wait for a verdict
              or (ratio is not None and ratio >= (1 + self.congestion) / 2)):  # near the line: hold
            # back up by `recover`, but past the rate the bottleneck passed only slowly (probing for more)
            if math.isfinite(self.ceiling_kbps):
                self.ceiling_kbps *= 1.0 + self.probe
                if self.ceiling_kbps >= self.budget_kbps:
                    self.ceiling_kbps = math.inf
            self.effective_kbps = min(self.budget_kbps, self.ceiling_kbps,
                                      self.effective_kbps + self.recover * self.budget_kbps)


def default_settings(sizes: Sequence[int]) -> list[Setting]:
    """The settings a table measures: keep fractions from 0.05 to 1 on both streams, each codebook size
    for both streams together."""
    ms = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
    return [Setting(mx, m_s, j, j) for j in sizes for mx in ms for m_s in ms if mx <= m_s * 2 + 0.05]


__all__ = ["RateController", "RateTable", "Setting", "TableRow", "default_settings"]
