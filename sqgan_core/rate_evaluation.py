"""Measuring settings for rate control, and running the controller over a drive (`sqgan bench ratecontrol`).

`FrameOracle` encodes a frame once (every position's code index and SAMM score, as the concealer's
token maps do) and then gives, for any (m_x, m_s, J_x, J_s), the exact packets the vehicle's
StreamEncoder would send (same top-N keep rule, same packetizer) and the decoded s_hat and image,
caching what settings share (s_hat depends only on m_s and J_s). Fixed settings and the controller
are thus compared on the same frames at a fraction of the cost of re-encoding each time.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.codec import Codec
from sqgan_core.labels import from_channel_index
from sqgan_core.metrics import confusion, miou_from_confusion, psnr
from sqgan_core.models.masking import keep_count
from sqgan_core.streaming.packetizer import Packetizer
from sqgan_core.streaming.rate_control import RateController, RateTable, Setting, TableRow


class FrameOracle:
    def __init__(self, codec: Codec, rgb: np.ndarray, labels: np.ndarray, packetizer: Packetizer) -> None:
        self.codec, self.rgb, self.labels, self.packetizer = codec, rgb, labels, packetizer
        model = codec.model
        with torch.inference_mode():
            x, lab, self.ph, self.pw = codec._prepare(rgb, labels)
            seg = model.one_hot(lab)
            z_x, z_s = model.encode_latents(x.contiguous(memory_format=torch.channels_last), seg)
            tokens = model.select(z_x, z_s, seg, 1.0, 1.0)
            # the scores exactly as the SAMM sorts them (float32, stable descending: ties by position)
            self.order_x = torch.sort(model.img_mq.samm.scores(z_x, seg)[0], descending=True, stable=True).indices.cpu().numpy()
            self.order_s = torch.sort(model.sem_mq.samm.scores(z_s, seg)[0], descending=True, stable=True).indices.cpu().numpy()
        self.grid = tokens.grid
        self.idx_x, self.idx_s = tokens.indices_x[0].cpu().numpy(), tokens.indices_s[0].cpu().numpy()
        # Memory stays small over a 500-frame drive: per (m_s, J_s) only the confusion matrix is kept (3 kB);
        # the decoded s_hat itself only for the last key asked for (the image decode of the same setting).
        self._last_s_hat: tuple[tuple[float, int], tuple[torch.Tensor, np.ndarray]] | None = None
        self._confusion: dict[tuple[float, int], np.ndarray] = {}
        self._bits: dict[Setting, int] = {}

    def _indices(self, stream: str, m: float, j: int) -> np.ndarray:
        idx, order = (self.idx_x, self.order_x) if stream == "image" else (self.idx_s, self.order_s)
        out = np.full(idx.shape, MASKED, dtype=np.int64)
        keep = order[:keep_count(m, idx.size)]
        out[keep] = idx[keep]
        bits = j.bit_length() - 1
        if bits != (self.codec.log2_jx if stream == "image" else self.codec.log2_js):
            labels = self.codec.reduced[stream][bits].labels
            out[keep] = labels[out[keep]]
        return out

    def packets(self, s: Setting, seq: int = 0) -> list[bytes]:
        ix, is_ = self._indices("image", s.m_x, s.j_x), self._indices("semantic", s.m_s, s.j_s)
        gh, gw = self.grid
        header = FrameHeader(self.codec.model_id, gh, gw, self.ph, self.pw, int((ix >= 0).sum()), int((is_ >= 0).sum()),
                             s.j_x.bit_length() - 1, s.j_s.bit_length() - 1)
        return self.packetizer.packetize(header, ix, is_, seq=seq, orig_size=self.rgb.shape[:2])

    def bits(self, s: Setting) -> int:
        if s not in self._bits:
            self._bits[s] = 8 * sum(len(p) for p in self.packets(s))
        return self._bits[s]

    def s_hat(self, m_s: float, j_s: int) -> tuple[torch.Tensor, np.ndarray]:
        key = (m_s, j_s)
        if self._last_s_hat is None or self._last_s_hat[0] != key:
            t = torch.from_numpy(self._indices("semantic", m_s, j_s)).to(self.codec.device)[None]
            with torch.inference_mode():
                s_idx = self.codec.decode_semantic(t, self.grid, j_s.bit_length() - 1)
            h, w = self.labels.shape
            self._last_s_hat = (key, (s_idx, from_channel_index(s_idx[0].cpu().numpy())[:h, :w]))
        return self._last_s_hat[1]

    def confusion(self, s: Setting) -> np.ndarray:
        key = (s.m_s, s.j_s)
        if key not in self._confusion:
            self._confusion[key] = confusion(self.s_hat(s.m_s, s.j_s)[1], self.labels)
        return self._confusion[key]

    def psnr(self, s: Setting) -> float:
        s_idx, _ = self.s_hat(s.m_s, s.j_s)
        t = torch.from_numpy(self._indices("image", s.m_x, s.j_x)).to(self.codec.device)[None]
        with torch.inference_mode():
            x_hat = self.codec.decode_image(t, self.grid, s_idx, s.j_x.bit_length() - 1)
        h, w = self.labels.shape
        img = ((x_hat[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()[:h, :w]
        return psnr(self.rgb, img)


def _oracles(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], packet_bytes: int, progress: bool,
             desc: str) -> list[FrameOracle]:
    from tqdm import tqdm

    pk = Packetizer(codec.priors_x, codec.priors_s, codec.model_id, vehicle_id=1, max_packet_bytes=packet_bytes)
    return [FrameOracle(codec, rgb, lab, pk) for rgb, lab in tqdm(frames, desc=desc, disable=not progress, leave=False)]


def measure_table(codec: Codec, frames: Sequence[tuple[np.ndarray, np.ndarray]], settings: Sequence[Setting], *,
                  packet_bytes: int = 256, progress: bool = True, source: str = "") -> RateTable:
    from tqdm import tqdm

    oracles = _oracles(codec, frames, packet_bytes, progress, "rate table: encode")
    rows = []
    for s in tqdm(settings, desc="rate table: settings", disable=not progress, leave=False):
        cm = sum(o.confusion(s) for o in oracles)
        rows.append(TableRow(s, float(np.mean([o.bits(s) for o in oracles])), float(miou_from_confusion(cm)),
                             float(np.mean([o.psnr(s) for o in oracles]))))
    pixels = int(frames[0][0].shape[0] * frames[0][0].shape[1])
    return RateTable(rows, codec.model_id, len(frames), pixels, source)


def run_controller(codec: Codec, table: RateTable, frames: Sequence[tuple[np.ndarray, np.ndarray]], budget_kbps: float,
                   fps: float, *, packet_bytes: int = 256, compare: Sequence[Setting] = (), progress: bool = True,
                   feedback: Sequence[tuple[int, float]] = ()) -> dict[str, Any]:
    """The controller over `frames` in order (a drive), and each `compare` setting fixed on the same
    frames. `feedback`: (frame index, loss share) reports to deliver along the way."""
    from tqdm import tqdm

    ctl = RateController(table, budget_kbps, fps)
    oracles = _oracles(codec, frames, packet_bytes, progress, "drive: encode")
    reports = dict(feedback)
    cm = np.zeros((19, 20), np.int64)
    bits, psnrs, used = [], [], {}
    for k, o in enumerate(tqdm(oracles, desc="drive: controller", disable=not progress, leave=False)):
        if k in reports:
            ctl.feedback(reports[k])
        row = ctl.choose()
        b = o.bits(row.setting)
        ctl.observe(row, b)
        bits.append(b)
        cm += o.confusion(row.setting)
        psnrs.append(o.psnr(row.setting))
        used[row.setting.label] = used.get(row.setting.label, 0) + 1
    n = len(frames)
    out = {"budget_kbps": budget_kbps, "fps": fps, "frames": n, "packet_bytes": packet_bytes,
           "controller": {"kbps": float(np.mean(bits)) * fps / 1000, "miou_shat": float(miou_from_confusion(cm)),
                          "psnr": float(np.mean(psnrs)), "settings_used": dict(sorted(used.items(), key=lambda kv: -kv[1])),
                          "kbps_first_half": float(np.mean(bits[: n // 2])) * fps / 1000 if n > 1 else None,
                          "kbps_second_half": float(np.mean(bits[n // 2:])) * fps / 1000 if n > 1 else None}}
    out["controller"]["rate_error"] = out["controller"]["kbps"] / budget_kbps - 1
    fixed = []
    for s in tqdm(compare, desc="drive: fixed settings", disable=not progress, leave=False):
        c = sum(o.confusion(s) for o in oracles)
        fixed.append({"setting": s.label, "m_x": s.m_x, "m_s": s.m_s, "j_x": s.j_x, "j_s": s.j_s,
                      "kbps": float(np.mean([o.bits(s) for o in oracles])) * fps / 1000,
                      "miou_shat": float(miou_from_confusion(c))})
    out["fixed"] = fixed
    return out


__all__ = ["FrameOracle", "measure_table", "run_controller"]
