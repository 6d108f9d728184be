"""Bjøntegaard delta rate / delta quality with piecewise cubic Hermite interpolation (PCHIP).

As in the JCT-VC / JVET common-test-condition sheets (JCTVC-E137, JVET-T2010) and the `bjontegaard`
package's 'pchip' method: log10(rate) is interpolated as a function of quality with PCHIP, integrated
exactly over the quality interval both curves cover, and the mean difference turned into a percentage.
Works for metrics where lower is better (LPIPS, FID, ...) too: the curve must be strictly monotonic in
the metric's better direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vvc_lightning.errors import VVCError


class BDRateError(VVCError):
    """RD curves that a Bjøntegaard delta cannot be computed on (too few points, no overlap, ...)."""


def _curve(rate: Sequence[float], quality: Sequence[float], higher_is_better: bool, what: str,
           min_points: int = 2):
    r, q = np.asarray(rate, np.float64), np.asarray(quality, np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise BDRateError(f"{what}: rates and qualities differ in length ({r.shape} vs {q.shape})")
    if len(r) < max(2, min_points):
        raise BDRateError(f"{what}: needs at least {max(2, min_points)} rate points, got {len(r)}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise BDRateError(f"{what}: a rate or quality is not finite")
    if (r <= 0).any():
        raise BDRateError(f"{what}: rates must be positive")
    order = np.argsort(r)
    r, q = r[order], q[order]
    dq = np.diff(q) if higher_is_better else -np.diff(q)
    if (np.diff(r) <= 0).any() or (dq <= 0).any():
        better = "rise" if higher_is_better else "fall"
        raise BDRateError(f"{what}: not monotonic (quality must {better} strictly with rate)")
    return r, q


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise BDRateError("the two curves do not overlap")
    return float(lo), float(hi)


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
            quality_test: Sequence[float], higher_is_better: bool = True, min_points: int = 2) -> float:
    """Average rate difference of test against anchor at equal quality, in percent (negative = saving)."""
    from scipy.interpolate import PchipInterpolator

    ra, qa = _curve(rate_anchor, quality_anchor, higher_is_better, "anchor", min_points)
    rt, qt = _curve(rate_test, quality_test, higher_is_better, "test", min_points)
    lo, hi = _overlap(qa, qt)
    ia, it = np.argsort(qa), np.argsort(qt)
    fa = PchipInterpolator(qa[ia], np.log10(ra[ia]))
    ft = PchipInterpolator(qt[it], np.log10(rt[it]))
    avg = (ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)
    return float((10**avg - 1) * 100)


def bd_quality(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
               quality_test: Sequence[float], higher_is_better: bool = True) -> float:
    """Average quality difference (test minus anchor, in the metric's units) at equal rate (BD-PSNR)."""
    from scipy.interpolate import PchipInterpolator

    ra, qa = _curve(rate_anchor, quality_anchor, higher_is_better, "anchor")
    rt, qt = _curve(rate_test, quality_test, higher_is_better, "test")
    la, lt = np.log10(ra), np.log10(rt)
    lo, hi = _overlap(la, lt)
    fa, ft = PchipInterpolator(la, qa), PchipInterpolator(lt, qt)
    return float((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def try_bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
                quality_test: Sequence[float], higher_is_better: bool = True,
                min_points: int = 2) -> tuple[float, str]:
    """(BD-rate %, '') or (NaN, the reason it cannot be computed)."""
    try:
        return bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, higher_is_better, min_points), ""
    except BDRateError as exc:
        return float("nan"), str(exc)
