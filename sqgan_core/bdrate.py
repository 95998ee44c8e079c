"""Bjøntegaard delta rate and quality: one number for how far apart two rate-quality curves are.

BD-rate is the average difference in bitrate, in percent, of a test codec against an anchor at equal
quality (negative: the test needs fewer bits); BD-quality (BD-PSNR when quality is PSNR) the average
quality difference at equal rate. Both are computed the standard way (VCEG-M33, with the
piecewise-cubic variant of JCTVC-A106 that CompressAI and the `bjontegaard` package use): log rate as
a function of quality (or quality as a function of log rate), interpolated with a monotone PCHIP,
integrated exactly over the interval where both curves have points, divided by its length. A cubic
fit is not used because it overshoots on the few points a codec comparison has.

Nothing is extrapolated: when a curve has fewer than two distinct points, when rate and quality do
not both rise strictly along it, or when the two curves share no quality (rate) interval, there is
no meaningful number and the result is None; the `*_with_reason` forms say why.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

Curve = Sequence[float]


def _curve(rate: Curve, quality: Curve, label: str) -> tuple[np.ndarray, np.ndarray] | str:
    """(log rate, quality), sorted by rate with exact duplicate points dropped, or why it is unusable."""
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        return f"{label}: {r.size} rates but {q.size} qualities"
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        return f"{label}: non-finite rate or quality"
    if np.any(r <= 0):
        return f"{label}: rates must be positive"
    pts = sorted(set(zip(r.tolist(), q.tolist())))
    if len(pts) < 2:
        return f"{label}: fewer than 2 distinct points"
    r, q = np.array(pts).T
    if np.any(np.diff(r) <= 0) or np.any(np.diff(q) <= 0):
        return f"{label}: quality is not strictly increasing with rate"
    return np.log(r), q


def _delta(x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray, what: str) -> tuple[float | None, str]:
    """Mean of (y_t - y_a) over the common x interval, both interpolated with PCHIP in x."""
    from scipy.interpolate import PchipInterpolator

    lo, hi = max(x_a.min(), x_t.min()), min(x_a.max(), x_t.max())
    if not hi > lo:
        return None, f"the {what} ranges of the two curves do not overlap"
    area_a = PchipInterpolator(x_a, y_a).integrate(lo, hi)
    area_t = PchipInterpolator(x_t, y_t).integrate(lo, hi)
    return float((area_t - area_a) / (hi - lo)), ""


Pair = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _curves(rate_anchor: Curve, quality_anchor: Curve, rate_test: Curve, quality_test: Curve) -> Pair | str:
    """((log rate, quality) of the anchor, of the test), or why one of them is unusable."""
    a = _curve(rate_anchor, quality_anchor, "anchor")
    t = _curve(rate_test, quality_test, "test")
    return a if isinstance(a, str) else t if isinstance(t, str) else (a, t)


def bd_rate_with_reason(rate_anchor: Curve, quality_anchor: Curve, rate_test: Curve,
                        quality_test: Curve) -> tuple[float | None, str]:
    """(BD-rate in percent, "") or (None, why it is undefined)."""
    curves = _curves(rate_anchor, quality_anchor, rate_test, quality_test)
    if isinstance(curves, str):
        return None, curves
    (lr_a, q_a), (lr_t, q_t) = curves
    mean_log_ratio, why = _delta(q_a, lr_a, q_t, lr_t, "quality")  # log rate as a function of quality
    if mean_log_ratio is None:
        return None, why
    return float((np.exp(mean_log_ratio) - 1.0) * 100.0), ""


def bd_quality_with_reason(rate_anchor: Curve, quality_anchor: Curve, rate_test: Curve,
                           quality_test: Curve) -> tuple[float | None, str]:
    """(BD-quality in the quality's unit, e.g. dB for PSNR, "") or (None, why it is undefined)."""
    curves = _curves(rate_anchor, quality_anchor, rate_test, quality_test)
    if isinstance(curves, str):
        return None, curves
    (lr_a, q_a), (lr_t, q_t) = curves
    return _delta(lr_a, q_a, lr_t, q_t, "rate")


def bd_rate(rate_anchor: Curve, quality_anchor: Curve, rate_test: Curve, quality_test: Curve) -> float | None:
    """Average rate difference of test vs anchor at equal quality, in percent (negative = test needs
    fewer bits); None when undefined (fewer than 2 distinct points on a curve, rate and quality not
    both strictly increasing along it, or no overlapping quality interval)."""
    return bd_rate_with_reason(rate_anchor, quality_anchor, rate_test, quality_test)[0]


def bd_quality(rate_anchor: Curve, quality_anchor: Curve, rate_test: Curve, quality_test: Curve) -> float | None:
    """Average quality difference of test vs anchor at equal rate (BD-PSNR in dB when quality is PSNR;
    positive = test is better); None under the same conditions as bd_rate, with overlapping rates."""
    return bd_quality_with_reason(rate_anchor, quality_anchor, rate_test, quality_test)[0]
