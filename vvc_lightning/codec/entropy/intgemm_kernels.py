"""Numba kernels of the int8 path (`intgemm`): one pass each where torch would take a dozen.

Each does the same float64 / integer operations, in the same order per element, as the torch code it
replaces (no fastmath: no reassociation; a contraction of x * 4096 + 0.5 into one fused multiply-add
rounds the same, as x * 4096 is exact), so the results are bit-identical:
- `quantize_digits`: x -> clamp(floor(x * 2**12 + 0.5), -2**22, 2**22), written as its two lowest
  balanced base-128 digits (int8) into a zero-padded channels-last buffer, the rest beyond them into a
  map that is touched only where it is non-zero; also whether a NaN was seen (the caller then keeps
  float64, which propagates it); `quantize_pixels`: the same, faster, for channels-last input;
- `karatsuba`: three int32 GEMM products of two-digit operands -> their exact float64 sum;
- `horner`: int32 digit products -> the exact float64 sums (each step an integer below 2**53);
- `scatter_transposed`: a transposed convolution's per-position contributions added into its output
  (what F.fold does; integers with partial sums below 2**53, so exact in any order);
- `finish`: acc -> clamp(floor((acc + b) / 2**14 + 0.5) / 2**12, lo, 1024), intnet's rescaling;
  `rescale_rows`: the same on (m, o) rows;
- `quantize_values` / `quantize_planes`: x -> the same integers as `quantize_digits`, whole, in float64
  (the float64 GEMM path, where int8 products are not faster).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vvc_lightning.codec.entropy.grid import ACT_BITS, WEIGHT_BITS

DIGIT_BITS = 7  # int8 GEMM operands are balanced base-2**7 digits
BASE = 1 << DIGIT_BITS  # 128
HALF = BASE // 2  # 64: a digit lies in [-HALF, HALF - 1]
DIGIT_MASK = BASE - 1  # 127: v & DIGIT_MASK is v mod BASE
ACT_SCALE = float(1 << ACT_BITS)  # 4096.0: an activation times this is an integer
# 16384.0: acc sits on the grid 2**-(ACT_BITS + WEIGHT_BITS); acc / WEIGHT_SCALE is on the activation grid
WEIGHT_SCALE = float(1 << WEIGHT_BITS)
TWO_DIGIT_MAX = (HALF - 1) * (BASE + 1)  # 8127 = 63 * (128**2 - 1) / 127: the largest value two digits hold
BASE_F = float(BASE)  # 128.0: a digit's weight over the one below it
BASE2_F = float(BASE * BASE)  # 16384.0: the weight of X1 W1, the product of the two upper digits
# acc = 128 S - 127 P00 + 16256 P11 (Karatsuba, S = (X0 + X1)(W0 + W1)): the factors of P00 and P11
KARATSUBA_P00 = float(BASE - 1)  # 127.0
KARATSUBA_P11 = float(BASE * BASE - BASE)  # 16256.0


@njit(cache=True, nogil=True)
def _quantize_one(v: float, limit: float) -> np.int32:
    q = math.floor(v * ACT_SCALE + 0.5)
    return np.int32(min(max(q, -limit), limit))


@njit(cache=True, nogil=True)
def _split(q: int) -> tuple[int, int, int]:
    """An integer q -> its two lowest balanced base-128 digits and the rest beyond them."""
    s = q + HALF
    low = (s & DIGIT_MASK) - HALF
    s = (s >> DIGIT_BITS) + HALF
    return low, (s & DIGIT_MASK) - HALF, s >> DIGIT_BITS


@njit(cache=True, nogil=True)
def quantize_digits(
    x: np.ndarray,
    buf: np.ndarray,
    ph: int,
    pw: int,
    rest: np.ndarray,
    limit: float,
    first: int = 0,
    last: int = -1,
) -> tuple[int, int, bool]:
    """x (n, c, h, w) float64 -> clamp(floor(x * 2**12 + 0.5), +-limit) as two int8 digits in buf (2, n, ., .,
    c) at (i + ph, j + pw), the rest beyond them in rest (n, h, w, c) (only where non-zero: rest starts
    zeroed).

    A third plane of buf, if there is one, gets the sum of the two digits (in [-128, 126]: `karatsuba`).
    Returns (max |rest|, count of non-zero rests, NaN seen). Visits the image rows [first, last) of the n * h
    (all by default; disjoint ranges may run on parallel threads: the kernel holds no GIL), channel by
    channel along the row (x's memory order; channels-last input goes to `quantize_pixels`)."""
    n, c, h, w = x.shape
    last = n * h if last < 0 else last
    sums = buf.shape[0] > 2
    top, wide, nan = 0, 0, False
    for g in range(first, last):
        a, i = g // h, g % h
        y = i + ph
        for k in range(c):
            src = x[a, k, i]
            for j in range(w):
                value = src[j]
                nan |= value != value
                d0, d1, r = _split(_quantize_one(value, limit))
                buf[0, a, y, j + pw, k] = d0
                buf[1, a, y, j + pw, k] = d1
                if sums:
                    buf[2, a, y, j + pw, k] = d0 + d1
                if r != 0:
                    rest[a, i, j, k] = r
                    wide += 1
                    top = max(top, abs(r))
    return top, wide, nan


@njit(cache=True, nogil=True)
def quantize_pixels(
    xl: np.ndarray, w: int, buf: np.ndarray, ph: int, pw: int, rest: np.ndarray, limit: float, first: int = 0,
    last: int = -1,
) -> tuple[int, int, bool]:
    """`quantize_digits` of channels-last activations, faster: xl (n, h, W, c) C-contiguous, of which the
    pixels j < w are the image (W > w: a convolution's output on its padded-width grid, read in place).

    Same digits, rests and statistics as `quantize_digits`. A pixel's channels are quantised into a
    contiguous row first; where none of them needs more than the two digits (the usual case), its digits
    are written by a loop without branches (vectorised)."""
    n, h, _, c = xl.shape
    last = n * h if last < 0 else last
    sums = buf.shape[0] > 2
    q = np.empty(c, np.int32)
    top, wide, nan = 0, 0, False
    for g in range(first, last):
        a, i = g // h, g % h
        for j in range(w):
            src = xl[a, i, j]
            largest, seen = 0, False
            for k in range(c):
                value = src[k]
                seen |= value != value
                q[k] = _quantize_one(value, limit)
                largest = max(largest, abs(q[k]))
            nan |= seen
            b0, b1 = buf[0, a, i + ph, j + pw], buf[1, a, i + ph, j + pw]
            for k in range(c):
                b0[k], b1[k], _ = _split(q[k])
            if largest > TWO_DIGIT_MAX:  # some channel needs more than the two digits: its rest
                for k in range(c):
                    r = _split(q[k])[2]
                    if r != 0:
                        rest[a, i, j, k] = r
                        wide += 1
                        top = max(top, abs(r))
            if sums:
                b2 = buf[2, a, i + ph, j + pw]
                for k in range(c):
                    b2[k] = b0[k] + b1[k]
    return top, wide, nan


@njit(cache=True, nogil=True)
def quantize_values(
    xl: np.ndarray, w: int, buf: np.ndarray, ph: int, pw: int, limit: float, first: int = 0, last: int = -1
) -> bool:
    """xl (n, h, W, c) float64, channels innermost (of which the pixels j < w are the image, as in
    `quantize_pixels`) -> clamp(floor(x * 2**12 + 0.5), +-limit) in float64 into buf (n, ., ., c) at (i + ph,
    j + pw). Image rows [first, last) of the n * h; returns whether a NaN was seen."""
    n, h, _, c = xl.shape
    last = n * h if last < 0 else last
    nan = False
    for g in range(first, last):
        a, i = g // h, g % h
        for j in range(w):
            src, dst = xl[a, i, j], buf[a, i + ph, j + pw]
            for k in range(c):
                value = src[k]
                nan |= value != value
                dst[k] = _quantize_one(value, limit)
    return nan


@njit(cache=True, nogil=True)
def quantize_planes(
    x: np.ndarray, buf: np.ndarray, ph: int, pw: int, limit: float, first: int = 0, last: int = -1
) -> bool:
    """`quantize_values` of channels-first x (n, c, h, w), visited in its memory order."""
    n, c, h, w = x.shape
    last = n * h if last < 0 else last
    nan = False
    for g in range(first, last):
        a, i = g // h, g % h
        for k in range(c):
            src = x[a, k, i]
            for j in range(w):
                value = src[j]
                nan |= value != value
                buf[a, i + ph, j + pw, k] = _quantize_one(value, limit)
    return nan


@njit(cache=True, nogil=True)
def _finish_one(v: float, b: float, lo: float, hi: float) -> float:
    r = math.floor((v + b) / WEIGHT_SCALE + 0.5) / ACT_SCALE
    return min(max(r, lo), hi)


@njit(cache=True, nogil=True)
def _rescale(row: np.ndarray, bias: np.ndarray, lo: float, hi: float) -> None:
    """One output row in place: intnet's clamp(floor((acc + bias) / 2**14 + 0.5) / 2**12, lo, hi)."""
    for k in range(row.shape[0]):
        row[k] = _finish_one(row[k], bias[k], lo, hi)


@njit(cache=True, nogil=True)
def rescale_rows(
    out: np.ndarray, bias: np.ndarray, lo: float, hi: float, first: int = 0, last: int = -1
) -> None:
    """Rows [first, last) of out (m, o) in place: intnet's clamp(floor((acc + bias) / 2**14 + 0.5) / 2**12,
    lo, hi)."""
    last = out.shape[0] if last < 0 else last
    for r in range(first, last):
        _rescale(out[r], bias, lo, hi)


@njit(cache=True, nogil=True)
def horner(
    p: np.ndarray, nx: int, nw: int, out: np.ndarray, bias: np.ndarray, lo: float, hi: float, rescale: bool,
    first: int = 0, last: int = -1,
) -> None:
    """p (nx, m, nw * o) int32 digit products -> out (m, o) = sum_ij 128**(i + j) p[i, :, j] (exact).

    With `rescale`, out gets intnet's output clamp(floor((acc + bias) / 2**14 + 0.5) / 2**12, lo, hi)
    instead. Two digits each (the usual case): p00 + 128 * (p01 + p10) + 16384 * p11 in one pass, every
    partial sum an integer below 2**44; otherwise Horner from the top digit pair (see `intgemm`).
    Rows [first, last) only (all by default): disjoint ranges may run on parallel threads."""
    _, m, wide = p.shape
    o = wide // nw
    last = m if last < 0 else last
    for r in range(first, last):
        row = out[r]
        if nx == 2 and nw == 2:
            p0, p1 = p[0, r], p[1, r]
            for k in range(o):
                row[k] = (p0[k] + BASE_F * (np.float64(p0[o + k]) + p1[k])) + BASE2_F * p1[o + k]
        else:
            row[:] = 0.0
            for s in range(nx + nw - 2, -1, -1):
                for k in range(o):
                    row[k] *= BASE_F
                for i in range(max(0, s - nw + 1), min(s, nx - 1) + 1):
                    terms = p[i, r, (s - i) * o : (s - i + 1) * o]
                    for k in range(o):
                        row[k] += terms[k]
        if rescale:
            _rescale(row, bias, lo, hi)


@njit(cache=True, nogil=True)
def karatsuba(
    p: np.ndarray, out: np.ndarray, bias: np.ndarray, lo: float, hi: float, rescale: bool, first: int = 0,
    last: int = -1,
) -> None:
    """p (3, m, o) int32: X0 W0, X1 W1, (X0 + X1)(W0 + W1) -> out (m, o) = X0 W0 + 128 (X0 W1 + X1 W0) + 16384
    X1 W1.

    The middle product is the third minus the first two, so acc = 128 p2 - 127 p0 + 16256 p1: integers whose
    every partial sum is below 2**53 (|p2| < 2**31), so exact in float64. `rescale`, rows: as `horner`."""
    _, m, o = p.shape
    last = m if last < 0 else last
    for r in range(first, last):
        row, p0, p1, p2 = out[r], p[0, r], p[1, r], p[2, r]
        for k in range(o):
            row[k] = (BASE_F * p2[k] - KARATSUBA_P00 * p0[k]) + KARATSUBA_P11 * p1[k]
        if rescale:
            _rescale(row, bias, lo, hi)


@njit(cache=True, nogil=True)
def scatter_transposed(
    acc: np.ndarray, first: int, h: int, w: int, stride: tuple, padding: tuple, kernel: tuple, out: np.ndarray
) -> None:
    """Add each input position's row acc[r] ((kh, kw, o) contributions) into out (n, ho, wo, o) (transposed
    conv).

    Row r is input position first + r (image, y, x); tap (i, j) lands on (y * sh - ph + i, x * sw - pw +
    j)."""
    m = acc.shape[0]
    _, ho, wo, o = out.shape
    kh, kw = kernel
    for r in range(m):
        g = first + r
        img, y, x = g // (h * w), (g // w) % h, g % w
        for i in range(kh):
            oy = y * stride[0] - padding[0] + i
            if oy < 0 or oy >= ho:
                continue
            for j in range(kw):
                ox = x * stride[1] - padding[1] + j
                if ox < 0 or ox >= wo:
                    continue
                src = acc[r, (i * kw + j) * o : (i * kw + j + 1) * o]
                dst = out[img, oy, ox]
                for k in range(o):
                    dst[k] += src[k]


@njit(cache=True, nogil=True)
def finish(acc: np.ndarray, bias: np.ndarray, lo: float, hi: float, channels_last: bool) -> None:
    """acc (n, o, h, w) in place: clamp(floor((acc + bias[o]) / 2**14 + 0.5) / 2**12, lo, hi)."""
    n, o, h, w = acc.shape
    for a in range(n):
        if channels_last:
            for i in range(h):
                for j in range(w):
                    for k in range(o):
                        acc[a, k, i, j] = _finish_one(acc[a, k, i, j], bias[k], lo, hi)
        else:
            for k in range(o):
                for i in range(h):
                    for j in range(w):
                        acc[a, k, i, j] = _finish_one(acc[a, k, i, j], bias[k], lo, hi)
