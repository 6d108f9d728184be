"""Bjøntegaard delta (PCHIP): published reference values, analytic cases, and refusals."""

from __future__ import annotations

import math

import pytest

from vvc_lightning.metrics.bdrate import BDRateError, bd_quality, bd_rate, try_bd_rate

# JCTVC-E137 data as used by Netflix VMAF's tests (python/test/bd_rate_calculator_test.py,
# BDrateCalculatorJCTVCTest): expected fractions -0.00465215420752807 and -0.018779823450567612
# (the CTC sheet's PCHIP); the `bjontegaard` package (method='pchip') gives the same to 1e-12.
JCTVC_E137 = [
    ([(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)],
     [(108061.2784, 43.6768), (61299.9936, 40.4232), (33928.7472, 37.2761), (18910.912, 34.3147)],
     -0.465215420752807),
    ([(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)],
     [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)],
     -1.8779823450567612),
]
# The `bjontegaard` package's README / example_usage.py test data (x265 presets); values it returns
# with method='pchip' (bjontegaard 1.3.0): BD-rate % and BD-PSNR dB.
FAU_TEST_1 = ([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851],
              [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987])
FAU_TEST_2 = ([82472.76, 26875.24, 9487.76, 4593.6], [43.825, 41.404, 40.037, 38.615],
              [99896.96, 33952.04, 9787.8, 4469.0], [44.731, 41.875, 40.121, 38.651])


@pytest.mark.parametrize("anchor,test,expected", JCTVC_E137)
def test_bd_rate_matches_the_jctvc_e137_reference_values(anchor, test, expected):
    got = bd_rate([r for r, _ in anchor], [q for _, q in anchor], [r for r, _ in test], [q for _, q in test])
    assert got == pytest.approx(expected, abs=1e-6)


def test_bd_rate_and_bd_psnr_match_the_bjontegaard_package():
    assert bd_rate(*FAU_TEST_1) == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bd_quality(*FAU_TEST_1) == pytest.approx(0.11969278542479489, abs=1e-9)
    assert bd_rate(*FAU_TEST_2) == pytest.approx(-4.47218200276197, abs=1e-9)
    assert bd_quality(*FAU_TEST_2) == pytest.approx(0.08887484704747745, abs=1e-9)


def test_a_constant_rate_factor_gives_exactly_that_bd_rate():
    rate, psnr = [100.0, 200.0, 400.0, 800.0], [30.0, 33.0, 35.5, 37.0]
    assert bd_rate(rate, psnr, [r * 0.8 for r in rate], psnr) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-12)


def test_a_constant_quality_shift_gives_exactly_that_bd_quality():
    rate, psnr = [100.0, 200.0, 400.0, 800.0], [30.0, 33.0, 35.5, 37.0]
    assert bd_quality(rate, psnr, rate, [q + 0.5 for q in psnr]) == pytest.approx(0.5, abs=1e-12)


def test_swapping_anchor_and_test_inverts_the_rate_ratio():
    fwd = bd_rate(*FAU_TEST_1)
    back = bd_rate(FAU_TEST_1[2], FAU_TEST_1[3], FAU_TEST_1[0], FAU_TEST_1[1])
    assert fwd < 0 < back


def test_lower_is_better_metrics_work_and_keep_the_sign_convention():
    rate, lpips = [0.01, 0.02, 0.04, 0.08], [0.30, 0.22, 0.15, 0.10]
    assert bd_rate(rate, lpips, [r * 1.25 for r in rate], lpips, higher_is_better=False) == pytest.approx(
        25.0
    )
    with pytest.raises(BDRateError, match="must rise"):
        bd_rate(rate, lpips, rate, lpips, higher_is_better=True)


def test_curves_that_do_not_overlap_or_are_too_short_are_refused():
    with pytest.raises(BDRateError, match="do not overlap"):
        bd_rate([1, 2, 3], [30, 31, 32], [1, 2, 3], [40, 41, 42])
    with pytest.raises(BDRateError, match="at least 2"):
        bd_rate([1], [30], [1, 2], [30, 31])
    with pytest.raises(BDRateError, match="positive"):
        bd_rate([0, 2], [30, 31], [1, 2], [30, 31])


def test_try_bd_rate_gives_nan_and_the_reason_instead_of_raising():
    value, why = try_bd_rate([1, 2, 3], [30, 29, 32], [1, 2, 3], [30, 31, 32])
    assert math.isnan(value) and "not monotonic" in why
