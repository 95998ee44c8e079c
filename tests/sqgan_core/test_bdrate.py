import numpy as np
import pytest

from sqgan_core.bdrate import bd_quality, bd_quality_with_reason, bd_rate, bd_rate_with_reason

RATES = [0.05, 0.1, 0.2, 0.4]
PSNR = [27.0, 29.5, 31.8, 33.6]


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)
    assert bd_quality(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_half_the_rate_at_every_quality_is_minus_50_percent():
    half = [r / 2 for r in RATES]
    assert bd_rate(RATES, PSNR, half, PSNR) == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(half, PSNR, RATES, PSNR) == pytest.approx(100.0, abs=0.5)


def test_quality_shifted_by_one_db():
    assert bd_quality(RATES, PSNR, RATES, [p + 1 for p in PSNR]) == pytest.approx(1.0, abs=1e-9)
    # a better test curve also needs fewer bits at equal quality
    assert bd_rate(RATES, PSNR, RATES, [p + 1 for p in PSNR]) < 0


def test_order_and_exact_duplicates_do_not_matter():
    half = [r / 2 for r in RATES]
    shuffled = list(zip(half, PSNR))[::-1] + [(half[0], PSNR[0])]
    r, q = zip(*shuffled)
    assert bd_rate(RATES, PSNR, r, q) == pytest.approx(-50.0, abs=0.5)


def test_undefined_cases_return_none_with_reason():
    value, why = bd_rate_with_reason(RATES, PSNR, RATES, [p + 20 for p in PSNR])
    assert value is None and "do not overlap" in why
    value, why = bd_quality_with_reason(RATES, PSNR, [r * 100 for r in RATES], PSNR)
    assert value is None and "do not overlap" in why
    value, why = bd_rate_with_reason([0.1], [30.0], RATES, PSNR)
    assert value is None and "anchor" in why and "fewer than 2" in why
    value, why = bd_rate_with_reason(RATES, PSNR, [0.1, 0.2, 0.3], [30.0, 31.0, 31.0])
    assert value is None and "test" in why and "strictly" in why
    value, why = bd_rate_with_reason(RATES, PSNR, [0.1, 0.0], [30.0, 31.0])
    assert value is None and "positive" in why
    value, why = bd_rate_with_reason(RATES, PSNR, [0.1, 0.2], [30.0, float("nan")])
    assert value is None and "finite" in why
    assert bd_rate(RATES, PSNR, [0.1, 0.2], [30.0]) is None


def test_matches_sampled_pchip_reference():
    """The JCTVC-A106 pchip variant as CompressAI computes it (trapezoid over 100 samples)."""
    from scipy.interpolate import pchip_interpolate

    ra, qa = [9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851]
    rt, qt = [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987]
    lo, hi = max(min(qa), min(qt)), min(max(qa), max(qt))
    s = np.linspace(lo, hi, 100)
    ia = np.trapezoid(pchip_interpolate(qa[::-1], np.log(ra[::-1]), s), s)
    it = np.trapezoid(pchip_interpolate(qt[::-1], np.log(rt[::-1]), s), s)
    ref = (np.exp((it - ia) / (hi - lo)) - 1) * 100
    assert bd_rate(ra, qa, rt, qt) == pytest.approx(ref, abs=0.01)
