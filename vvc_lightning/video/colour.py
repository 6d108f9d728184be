"""RGB <-> Y'CbCr conversion with an explicit matrix (BT.709 / BT.601) and range (limited / full)."""

from __future__ import annotations

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


def rgb_to_yuv420(rgb: np.ndarray, matrix: str = "bt709", rng: str = "limited"):
    """RGB uint8 (H,W,3), H and W even -> (Y (H,W), U (H/2,W/2), V (H/2,W/2)) uint8 planes."""
    yuv = rgb_to_yuv(rgb, matrix, rng)
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise VVCError(f"4:2:0 needs even width and height, got {w}x{h}")
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    q = lambda a: np.clip(np.round(a), 0, 255).astype(np.uint8)  # noqa: E731
    return q(yuv[..., 0]), q(chroma[..., 0]), q(chroma[..., 1])


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
