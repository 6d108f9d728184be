"""RGB <-> Y'CbCr conversion with an explicit matrix (BT.709 / BT.601) and range (limited / full)."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from vvc_lightning.errors import VVCError

# (Kr, Kb) luma coefficients of each matrix.
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}
RANGES = ("limited", "full")


def _coeffs(matrix: str) -> tuple[float, float, float]:
    if matrix not in MATRICES:
        raise VVCError(f"unknown colour matrix '{matrix}'; use one of {', '.join(MATRICES)}")
    kr, kb = MATRICES[matrix]
    return kr, 1.0 - kr - kb, kb


def _check_range(rng: str) -> None:
    if rng not in RANGES:
        raise VVCError(f"unknown colour range '{rng}'; use 'limited' (16-235) or 'full' (0-255)")


def rgb_to_yuv(rgb: np.ndarray, matrix: str = "bt709", rng: str = "limited") -> np.ndarray:
    """RGB (...,3) in [0,255] -> Y'CbCr (...,3) as float code values in [0,255] (8-bit scale)."""
    kr, kg, kb = _coeffs(matrix)
    _check_range(rng)
    x = rgb.astype(np.float64) / 255.0
    y = kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]
    cb = (x[..., 2] - y) / (2 * (1 - kb))
    cr = (x[..., 0] - y) / (2 * (1 - kr))
    if rng == "limited":
        out = np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], -1)
    else:
        out = np.stack([255 * y, 128 + 255 * cb, 128 + 255 * cr], -1)
    return out


def yuv_to_rgb(yuv: np.ndarray, matrix: str = "bt709", rng: str = "limited") -> np.ndarray:
    """Y'CbCr (...,3) 8-bit code values -> RGB float (...,3) in [0,255] (not clipped)."""
    kr, kg, kb = _coeffs(matrix)
    _check_range(rng)
    v = yuv.astype(np.float64)
    if rng == "limited":
        y, cb, cr = (v[..., 0] - 16) / 219, (v[..., 1] - 128) / 224, (v[..., 2] - 128) / 224
    else:
        y, cb, cr = v[..., 0] / 255, (v[..., 1] - 128) / 255, (v[..., 2] - 128) / 255
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return np.stack([r, g, b], -1) * 255.0


def _yuv420_float(rgb: np.ndarray, matrix: str, rng: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rgb_to_yuv420` through float64 (`rgb_to_yuv`, the 2x2 chroma mean, round half to even)."""
    yuv = rgb_to_yuv(rgb, matrix, rng)
    h, w = rgb.shape[:2]
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    q = lambda a: np.clip(np.round(a), 0, 255).astype(np.uint8)  # noqa: E731
    return q(yuv[..., 0]), q(chroma[..., 0]), q(chroma[..., 1])


@functools.lru_cache(maxsize=8)
def _integer_plan(matrix: str, rng: str) -> tuple[tuple[int, int, int, int, int, type], ...]:
    """Per plane (Y, U, V): integers (r, g, b, k, d) and a dtype that holds their sums, such that
    m = r R + g G + b B summed over the pixels of one output value (a pixel for Y, a 2x2 block for U and V),
    plus k, is d (value + 1/2); `value` is exact (the matrix's decimal coefficients as fractions), d even."""
    kr, kb = (Fraction(repr(k)) for k in MATRICES[matrix])
    kg = 1 - kr - kb
    luma_off, luma_scale, chroma_scale = (16, 219, 224) if rng == "limited" else (0, 255, 255)
    # per plane: the offset, the coefficients of R, G, B on [0, 255] codes, and pixels per output value
    planes = (
        (luma_off, [luma_scale * k / 255 for k in (kr, kg, kb)], 1),
        (128, [chroma_scale * c / (2 * (1 - kb) * 255) for c in (-kr, -kg, 1 - kb)], 4),
        (128, [chroma_scale * c / (2 * (1 - kr) * 255) for c in (1 - kr, -kg, -kb)], 4),
    )
    out = []
    for offset, coeffs, pixels in planes:
        d = math.lcm(*(c.denominator for c in coeffs)) * pixels  # value = offset + sum(coeffs . rgb) / pixels
        d *= 1 + d % 2
        r, g, b = (int(c * d / pixels) for c in coeffs)
        k = offset * d + d // 2
        bound = pixels * 255 * (abs(r) + abs(g) + abs(b)) + abs(k)
        out.append((r, g, b, k, d, np.int32 if bound < 2**31 else np.int64))
    return tuple(out)


def rgb_to_yuv420(rgb: np.ndarray, matrix: str = "bt709", rng: str = "limited"):
    """RGB uint8 (H,W,3), H and W even -> (Y (H,W), U (H/2,W/2), V (H/2,W/2)) uint8 planes: Y of each pixel,
    U and V of each 2x2 block's mean, rounded to the nearest code.

    uint8 frames are converted exactly in integers; a value exactly halfway between two codes (that of a few
    hundred colours in limited range, of 0.5 % in full range) takes the float64 route (`_yuv420_float`) on
    its two rows, so every code equals that of the float64 conversion (which other dtypes take)."""
    _coeffs(matrix)
    _check_range(rng)
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise VVCError(f"4:2:0 needs even width and height, got {w}x{h}")
    if rgb.dtype != np.uint8:
        return _yuv420_float(rgb, matrix, rng)
    codes = [rgb[..., i] for i in range(3)]
    planes, ties, buffers = [], [], {}
    for plane, (r, g, b, k, d, dtype) in enumerate(_integer_plan(matrix, rng)):
        m, part = buffers.setdefault(dtype, (np.empty((h, w), dtype), np.empty((h, w), dtype)))
        np.multiply(codes[0], r, out=m, dtype=dtype)
        for code, weight in ((codes[1], g), (codes[2], b)):
            m += np.multiply(code, weight, out=part, dtype=dtype)
        if plane:  # U, V: the sum over each 2x2 block
            m = m[0::2, 0::2] + m[0::2, 1::2] + m[1::2, 0::2] + m[1::2, 1::2]
        m += k
        q = m // d
        planes.append(np.clip(q, 0, 255).astype(np.uint8))
        ties.append(np.flatnonzero((q * d == m).any(axis=1)) // (1 if plane else 2))  # strip indexes
    rows = np.unique(np.concatenate(ties))
    if rows.size:  # the two-row strips holding a halfway value, converted together through float64
        y, u, v = _yuv420_float(rgb.reshape(h // 2, 2, w, 3)[rows].reshape(-1, w, 3), matrix, rng)
        planes[0].reshape(h // 2, 2, w)[rows] = y.reshape(-1, 2, w)
        planes[1][rows], planes[2][rows] = u, v
    return planes[0], planes[1], planes[2]


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt709", rng: str = "limited"):
    """8-bit 4:2:0 planes -> RGB uint8 (H,W,3); chroma upsampled by pixel repetition."""
    uu = np.repeat(np.repeat(u, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    vv = np.repeat(np.repeat(v, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    rgb = yuv_to_rgb(np.stack([y, uu, vv], -1), matrix, rng)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray, matrix: str = "bt709", rng: str = "full") -> np.ndarray:
    """Y' plane (float, 8-bit scale) of RGB frames (...,3); used for PSNR-Y."""
    kr, kg, kb = _coeffs(matrix)
    y = (kr * rgb[..., 0].astype(np.float64) + kg * rgb[..., 1] + kb * rgb[..., 2]) / 255.0
    return 16 + 219 * y if rng == "limited" else 255 * y
