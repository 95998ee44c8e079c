"""Classic image codecs at a matched rate, so SQ-GAN is compared with what a user would otherwise pick.

A comparison is only fair at equal rate, so `encode_at_rate` returns the highest quality whose size
does not exceed the target: never above it, because a codec allowed a few more bits looks better than
it is. The knob is searched by bisection (about 8 encodes), assuming size grows with quality.

Our targets (0.02-0.2 bpp) lie below what some codecs can reach at all: even JPEG's lowest quality
costs more. Then the frame is downscaled by 2 (4, 8) with Lanczos, coded, and the decoded picture is
upsampled back to the original size, as a user would do; `scale` records it. If no setting fits even
at 1/8 size, the smallest result is returned with `over_target` set, never hidden.

What is counted is exactly the bytes a receiver needs for the frame (`data`), with bpp against the
ORIGINAL pixel count: JPEG and WebP files as Pillow writes them, the raw JPEG 2000 codestream (no JP2
box), the AVIF file (its HEIF boxes cost a few hundred bytes, which matters at these rates), and for
`hevc`/`av1` the raw elementary streams ffmpeg writes (Annex-B HEVC with VPS/SPS/PPS; AV1 low-overhead
OBUs with temporal delimiter and sequence header), no container. HEVC intra (libx265) stands in for
BPG, which is HEVC intra in a small wrapper; `av1` is AV1 intra (libaom, all-intra, still picture),
the bitstream AVIF carries. Both code 4:2:0 and an odd size is padded by edge replication to an even
one (x265 also to at least 16 x 16); the padding is coded and counted, and cropped after decoding.
"""
from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, features

from sqgan_core.errors import InputError

CODEC_NAMES: tuple[str, ...] = ("jpeg", "jpeg2000", "webp", "avif", "hevc", "av1")
SCALES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
FFMPEG_TIMEOUT_S = 60.0
# Pillow feature / ffmpeg encoder behind each codec, for `available`.
_PIL_FEATURE = {"jpeg": "jpg", "jpeg2000": "jpg_2000", "webp": "webp", "avif": "avif"}
_FF_ENCODER = {"hevc": "libx265", "av1": "libaom-av1"}
# The search runs over a quality index q in [0, _Q_MAX], higher = better (see _knob): JPEG quality
# 1..95 (Pillow advises against more), WebP and AVIF quality 0..100, x265 crf 51..0, libaom crf 63..0.
_Q_MAX = {"jpeg": 94, "webp": 100, "avif": 100, "hevc": 51, "av1": 63}
Encode = tuple[bytes, float, float]  # one encode during the search: (data, knob, encode ms)


class ClassicCodecError(InputError, ValueError):
    """A bad request (unknown codec, bad image or target) or a codec that failed; names the codec."""


@dataclass
class Coded:
    """One frame coded at a matched rate."""

    codec: str
    data: bytes  # exactly the bytes that would go on the wire for this frame
    recon: np.ndarray  # H x W x 3 uint8 at the original size
    bpp: float  # 8 * len(data) / (H * W), original size
    scale: float  # 1.0, or the downscale factor used when the codec cannot reach the rate at full size
    param: float  # the codec's knob: quality (jpeg, webp, avif), crf (hevc, av1), ratio (jpeg2000)
    encode_ms: float  # the encode that produced `data` (not the search)
    decode_ms: float
    over_target: bool = False  # True when even the lowest setting at 1/8 size exceeded the target
    encodes: int = 0  # encodes the search used


def _ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=8)
def _ffmpeg_lists(ffmpeg: str) -> str:
    """`ffmpeg -encoders`, `-decoders` and `-muxers` output together (cached per binary)."""
    out = []
    for flag in ("-encoders", "-decoders", "-muxers", "-demuxers"):
        p = subprocess.run([ffmpeg, "-hide_banner", flag], capture_output=True, timeout=FFMPEG_TIMEOUT_S)
        out.append(p.stdout.decode(errors="replace"))
    return "\n".join(out)


def _av1_decoder(lists: str) -> str | None:
    return next((d for d in ("libdav1d", "libaom-av1") if f" {d} " in lists), None)


def available(name: str) -> tuple[bool, str]:
    """(True, "") when `name` can be used here, else (False, why): callers report it, not crash."""
    _check_name(name)
    if name in _PIL_FEATURE:
        ok = bool(features.check(_PIL_FEATURE[name]))
        return ok, "" if ok else f"Pillow built without {name.upper()} support"
    ffmpeg = _ffmpeg()
    if ffmpeg is None:
        return False, "ffmpeg not found on PATH"
    try:
        lists = _ffmpeg_lists(ffmpeg)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"ffmpeg at {ffmpeg} does not run: {e}"
    if f" {_FF_ENCODER[name]} " not in lists:
        return False, f"ffmpeg lacks encoder {_FF_ENCODER[name]}"
    if name == "av1" and _av1_decoder(lists) is None:
        return False, "ffmpeg lacks an AV1 decoder (libdav1d or libaom-av1)"
    return True, ""


def _check_name(name: str) -> None:
    if name not in CODEC_NAMES:
        raise ClassicCodecError(f"unknown codec {name!r}; known: {', '.join(CODEC_NAMES)}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ClassicCodecError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ClassicCodecError(f"image must be H x W x 3 (RGB), got shape {image.shape}")


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == hw:
        return image
    return np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.Resampling.LANCZOS))


# ---- the codecs: encode(scaled image, knob) -> bytes; decode(bytes, scaled (h, w)) -> image ----

def _pil_encode(name: str, image: np.ndarray, knob: float) -> bytes:
    buf, im = io.BytesIO(), Image.fromarray(image)
    if name == "jpeg":
        im.save(buf, "JPEG", quality=int(knob), optimize=True)
    elif name == "webp":
        im.save(buf, "WEBP", quality=int(knob), method=6)
    elif name == "avif":
        im.save(buf, "AVIF", quality=int(knob), speed=6, max_threads=1)
    else:  # jpeg2000: knob is OpenJPEG's compression ratio against 24 bpp; MCT = the colour transform
        levels = min(6, int(math.log2(min(image.shape[:2]))) + 1)
        im.save(buf, "JPEG2000", quality_mode="rates", quality_layers=[knob], irreversible=True, mct=1,
                no_jp2=True, num_resolutions=max(1, levels))
    return buf.getvalue()


def _pil_decode(name: str, data: bytes) -> np.ndarray:
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for a corrupt or foreign file
        raise ClassicCodecError(f"{name}: cannot decode {len(data)} bytes: {e}") from None


def _run_ffmpeg(name: str, args: list[str], stdin: bytes) -> bytes:
    ok, why = available(name)
    if not ok:
        raise ClassicCodecError(f"{name}: not available: {why}")
    cmd = [_ffmpeg() or "ffmpeg", "-hide_banner", "-loglevel", "error", *args]
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=FFMPEG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ClassicCodecError(f"{name}: ffmpeg timed out after {FFMPEG_TIMEOUT_S:g} s") from None
    if p.returncode != 0 or not p.stdout:
        err = p.stderr.decode(errors="replace").strip()[-400:]
        raise ClassicCodecError(f"{name}: ffmpeg failed (exit {p.returncode}): {err or 'no output'}")
    return p.stdout


def _coded_size(name: str, hw: tuple[int, int]) -> tuple[int, int]:
    """The padded size ffmpeg codes: even for 4:2:0, and for x265 at least one 16 x 16 CTU."""
    h, w = hw[0] + hw[0] % 2, hw[1] + hw[1] % 2
    return (max(h, 16), max(w, 16)) if name == "hevc" else (h, w)


def _ff_encode(name: str, image: np.ndarray, knob: float) -> bytes:
    h, w = _coded_size(name, image.shape[:2])
    padded = np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)), mode="edge")
    raw_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "pipe:0", "-frames:v", "1",
              "-sws_flags", "bicubic+accurate_rnd+full_chroma_int", "-pix_fmt", "yuv420p"]
    if name == "hevc":  # x265 refuses a frame smaller than its CTU: take the largest CTU that fits
        ctu = max(c for c in (16, 32, 64) if c <= min(h, w))
        codec = ["-c:v", "libx265", "-preset", "medium", "-crf", f"{int(knob)}",
                 "-x265-params", f"log-level=error:info=0:ctu={ctu}", "-f", "hevc"]
    else:  # usage 2 = libaom's all-intra mode (what avifenc uses for stills)
        codec = ["-c:v", "libaom-av1", "-usage", "2", "-cpu-used", "6", "-crf", f"{int(knob)}", "-b:v", "0",
                 "-still-picture", "1", "-f", "obu"]
    return _run_ffmpeg(name, raw_in + codec + ["pipe:1"], padded.tobytes())


def _ff_decode(name: str, data: bytes, hw: tuple[int, int]) -> np.ndarray:
    h, w = _coded_size(name, hw)
    if name == "hevc":
        dec = ["-f", "hevc"]
    else:
        dec = ["-c:v", _av1_decoder(_ffmpeg_lists(_ffmpeg() or "ffmpeg")) or "libdav1d", "-f", "obu"]
    raw = _run_ffmpeg(name, dec + ["-i", "pipe:0", "-frames:v", "1", "-sws_flags", "bicubic+accurate_rnd+full_chroma_int",
                                   "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], data)
    if len(raw) != h * w * 3:
        raise ClassicCodecError(f"{name}: decoded {len(raw)} bytes, expected {h}x{w}x3 = {h * w * 3}")
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)[: hw[0], : hw[1]].copy()


def _encoder(name: str) -> Callable[[np.ndarray, float], bytes]:
    return functools.partial(_ff_encode if name in _FF_ENCODER else _pil_encode, name)


def _knob(name: str, q: int) -> float:
    """Quality index (higher = better) -> the codec's own knob: crf runs the other way."""
    return float(_Q_MAX[name] - q if name in _FF_ENCODER else q + (name == "jpeg"))


def _index(name: str, knob: float) -> int:
    """The inverse of _knob."""
    return int(round(_Q_MAX[name] - knob if name in _FF_ENCODER else knob - (name == "jpeg")))


def decode(name: str, data: bytes, size: tuple[int, int], scale: float) -> np.ndarray:
    """`data` from encode_at_rate -> H x W x 3 uint8 at the original `size` = (height, width), upsampled
    with Lanczos when it was coded at `scale` < 1 (the same path that made `Coded.recon`)."""
    _check_name(name)
    hw = _scaled_size(size, scale)
    small = _ff_decode(name, data, hw) if name in _FF_ENCODER else _pil_decode(name, data)
    if small.shape[:2] != hw:
        raise ClassicCodecError(f"{name}: decoded size {small.shape[:2]} does not match {hw} (size {size}, scale {scale})")
    return _resize(small, (int(size[0]), int(size[1])))


def _timed(fn: Callable[[], bytes]) -> tuple[bytes, float]:
    t = time.perf_counter()
    data = fn()
    return data, (time.perf_counter() - t) * 1000.0


def _search_int(name: str, image: np.ndarray, max_bytes: int, start: int | None = None) -> tuple[Encode, bool, int]:
    """The highest quality index with len(data) <= max_bytes. Without `start`: the lowest quality first,
    then bisection. With `start` (the previous frame's index: neighbouring frames need nearly the same
    setting) a galloping search from there, 2-4 encodes instead of 8. Returns (the chosen encode, or
    the lowest quality's when none fits; whether it fits; encodes)."""
    enc = _encoder(name)
    n = 0
    cache: dict[int, Encode] = {}

    def at(q: int) -> Encode:
        nonlocal n
        if q not in cache:
            data, ms = _timed(lambda: enc(image, _knob(name, q)))
            cache[q], n = (data, _knob(name, q), ms), n + 1
        return cache[q]

    def fits(q: int) -> bool:
        return len(at(q)[0]) <= max_bytes

    top = _Q_MAX[name]
    if start is None or not 0 <= start <= top:
        if not fits(0):
            return at(0), False, n
        lo, hi = 0, top + 1
    elif fits(start):  # gallop up until a setting is over the budget
        lo, step = start, 1
        while lo + step <= top and fits(lo + step):
            lo, step = lo + step, step * 2
        hi = min(lo + step, top + 1)
    else:  # gallop down until a setting fits
        hi, step = start, 1
        while hi - step > 0 and not fits(hi - step):
            hi, step = hi - step, step * 2
        lo = max(hi - step, 0)
        if not fits(lo):
            return at(0), False, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return at(lo), True, n


def _search_ratio(image: np.ndarray, max_bytes: int, start: float | None = None,
                  steps: int = 6) -> tuple[Encode, bool, int]:
    """JPEG 2000: OpenJPEG's rate control aims at a compression ratio but can land above it; correct
    the ratio (from `start`, the previous frame's, when given) until the size fits, stopping within 3%
    of the budget, or when a higher ratio no longer shrinks the codestream (its headers are the floor).
    Same return as _search_int."""
    h, w = image.shape[:2]
    budget = max(max_bytes, 1)
    ratio = start if start and start > 0 else 24.0 * h * w / (8.0 * budget)
    best: Encode | None = None
    smallest: Encode | None = None
    prev: Encode | None = None
    for n in range(1, steps + 1):
        data, ms = _timed(lambda: _pil_encode("jpeg2000", image, ratio))
        cur = (data, ratio, ms)
        if len(data) <= max_bytes and (best is None or len(data) > len(best[0])):
            best = cur
        if smallest is None or len(data) < len(smallest[0]):
            smallest = cur
        if best is not None and len(best[0]) >= 0.97 * max_bytes:
            break
        if prev is not None and len(data) > max_bytes and ratio > prev[1] and len(data) >= 0.99 * len(prev[0]):
            break
        prev = cur
        ratio *= max(len(data), 1) / budget * (1.02 if len(data) > max_bytes else 1.0)
    if best is not None:
        return best, True, n
    assert smallest is not None
    return smallest, False, n


def encode_at_rate(name: str, image: np.ndarray, target_bpp: float, hint: Coded | None = None) -> Coded:
    """Code `image` (H x W x 3 uint8) with codec `name` at the highest quality with bpp <= target_bpp,
    downscaling by 2, 4, 8 when the lowest quality at full size is still above the target.

    `hint`, the previous frame's result at a similar target, starts the search at its scale and
    setting (after checking whether the next larger scale now fits), which saves most of the encodes
    on a video; the rule (highest fitting quality, never above the target) is the same."""
    _check_name(name)
    _check_image(image)
    if isinstance(target_bpp, bool) or not isinstance(target_bpp, (int, float, np.floating, np.integer)) \
            or not math.isfinite(target_bpp) or target_bpp <= 0:
        raise ClassicCodecError(f"target_bpp must be a positive finite number, got {target_bpp!r}")
    ok, why = available(name)
    if not ok:
        raise ClassicCodecError(f"{name}: not available: {why}")
    size = image.shape[:2]
    max_bytes = int(math.floor(target_bpp * size[0] * size[1] / 8.0 + 1e-9))
    search = _search_ratio if name == "jpeg2000" else functools.partial(_search_int, name)
    scales, start_at = SCALES, None
    if hint is not None and hint.codec == name and not hint.over_target and hint.scale in SCALES:
        i = SCALES.index(hint.scale)
        scales, start_at = SCALES[max(0, i - 1):], hint.scale
    encodes, last, tried_hw = 0, None, set()
    for scale in scales:
        hw = _scaled_size(size, scale)
        # The lowest setting's bytes shrink at most like the pixel count: skip scales that cannot fit,
        # and those that no longer shrink a tiny frame.
        if hw in tried_hw or (last is not None and scale != SCALES[-1]
                              and len(last[0][0]) * (scale / last[1]) ** 2 > max_bytes):
            continue
        tried_hw.add(hw)
        start = None
        if scale == start_at and hint is not None:
            start = hint.param if name == "jpeg2000" else _index(name, hint.param)
        chosen, fits, n = search(_resize(image, hw), max_bytes, start)
        encodes += n
        if fits:
            return _finish(name, chosen, size, scale, encodes, False)
        last = (chosen, scale)
    return _finish(name, last[0], size, last[1], encodes, True)


def _finish(name: str, chosen: Encode, size: tuple[int, int], scale: float, encodes: int,
            over: bool) -> Coded:
    data, knob, enc_ms = chosen
    t = time.perf_counter()
    recon = decode(name, data, size, scale)
    dec_ms = (time.perf_counter() - t) * 1000.0
    return Coded(codec=name, data=data, recon=recon, bpp=8.0 * len(data) / (size[0] * size[1]), scale=scale,
                 param=knob, encode_ms=enc_ms, decode_ms=dec_ms, over_target=over, encodes=encodes)
