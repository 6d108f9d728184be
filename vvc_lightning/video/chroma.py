"""4:2:0 Y'CbCr planes <-> RGB with stated, standard chroma filters: how the evaluation makes the RGB a
neural codec sees from a 4:2:0 source, and the 4:2:0 planes its RGB output is measured as.

Planes are (Y (n,H,W), U (n,H/2,W/2), V (n,H/2,W/2)) of integer code values at a bit depth of 8 (uint8)
or more (uint16, little-endian in files). Chroma siting is 'left' (ITU-T H.273 ChromaSampleLocType 0, the
MPEG-2 / H.264 / HEVC default and that of the standard test sequences): a chroma sample sits on every
even luma column, midway between two luma rows. Upsampling is bilinear at that siting; downsampling is
its counterpart, [1,2,1]/4 across columns and [1,1]/2 across rows. Matrix and range: `video.colour`'s
(BT.709 limited by default); code values at n bits are the 8-bit ones scaled as H.273 says.
"""

from __future__ import annotations

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.video.colour import rgb_to_yuv, yuv_to_rgb

SITING = "left (H.273 ChromaSampleLocType 0, as MPEG-2/H.264/HEVC): chroma on even luma columns, between rows"
UPSAMPLE = ("bilinear at left siting: even columns take the chroma sample, odd columns the mean of their two "
            "neighbours; each luma row 3/4 of its chroma row and 1/4 of the next-nearest; edges repeated")
DOWNSAMPLE = ("[1,2,1]/4 across columns centred on even columns, [1,1]/2 across each pair of rows (left "
              "siting, the counterpart of the upsampling); edges repeated; rounded to the bit depth")

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def conversion(matrix: str = "bt709", rng: str = "limited") -> dict[str, str]:
    """The conversion as the report and anchor files state it."""
    return {"matrix": matrix, "range": rng, "chroma_siting": SITING, "chroma_upsampling": UPSAMPLE,
            "chroma_downsampling": DOWNSAMPLE}


def check_even(width: int, height: int, what: str) -> None:
    """4:2:0 planes need an even width and height (one line naming `what` otherwise)."""
    if width % 2 or height % 2:
        raise VVCError(f"{what}: 4:2:0 needs an even width and height, got {width}x{height}")


def upsample_chroma(c: np.ndarray) -> np.ndarray:
    """Chroma (..., h, w) -> (..., 2h, 2w) float64, bilinear at left siting."""
    c = c.astype(np.float64)
    above = np.concatenate([c[..., :1, :], c[..., :-1, :]], axis=-2)
    below = np.concatenate([c[..., 1:, :], c[..., -1:, :]], axis=-2)
    rows = np.empty(c.shape[:-2] + (2 * c.shape[-2], c.shape[-1]))
    rows[..., 0::2, :] = 0.75 * c + 0.25 * above
    rows[..., 1::2, :] = 0.75 * c + 0.25 * below
    right = np.concatenate([rows[..., 1:], rows[..., -1:]], axis=-1)
    out = np.empty(rows.shape[:-1] + (2 * rows.shape[-1],))
    out[..., 0::2] = rows
    out[..., 1::2] = 0.5 * (rows + right)
    return out


def downsample_chroma(c: np.ndarray) -> np.ndarray:
    """Chroma (..., 2h, 2w) -> (..., h, w) float64: [1,1]/2 over row pairs, [1,2,1]/4 on even columns."""
    rows = 0.5 * (c[..., 0::2, :].astype(np.float64) + c[..., 1::2, :])
    even, odd = rows[..., 0::2], rows[..., 1::2]
    left = np.concatenate([even[..., :1], odd[..., :-1]], axis=-1)
    return 0.25 * left + 0.5 * even + 0.25 * odd


def _scale(bit_depth: int, rng: str) -> float:
    return 2.0 ** (bit_depth - 8) if rng == "limited" else (2**bit_depth - 1) / 255.0


def to_8bit_scale(code: np.ndarray, bit_depth: int, rng: str, chroma: bool) -> np.ndarray:
    """Code values at `bit_depth` -> float code values on the 8-bit scale `video.colour` takes."""
    s = _scale(bit_depth, rng)
    if chroma and rng == "full":
        return (code.astype(np.float64) - 2 ** (bit_depth - 1)) / s + 128.0
    return code.astype(np.float64) / s


def from_8bit_scale(v: np.ndarray, bit_depth: int, rng: str, chroma: bool) -> np.ndarray:
    """Float code values on the 8-bit scale -> integer code values at `bit_depth`, rounded and clipped."""
    s = _scale(bit_depth, rng)
    out = (v - 128.0) * s + 2 ** (bit_depth - 1) if chroma and rng == "full" else v * s
    return np.clip(np.round(out), 0, 2**bit_depth - 1).astype(np.uint8 if bit_depth <= 8 else np.uint16)


def planes_to_rgb(planes: Planes, bit_depth: int, matrix: str = "bt709", rng: str = "limited") -> np.ndarray:
    """4:2:0 planes of n frames -> RGB uint8 (n,H,W,3): chroma upsampled bilinear (left siting); a frame at a
    time (the float intermediates of a 1080p frame are 100 MB)."""
    y, u, v = planes
    out = np.empty((*y.shape, 3), np.uint8)
    for i in range(y.shape[0]):
        yuv = np.stack([to_8bit_scale(y[i], bit_depth, rng, False),
                        upsample_chroma(to_8bit_scale(u[i], bit_depth, rng, True)),
                        upsample_chroma(to_8bit_scale(v[i], bit_depth, rng, True))], -1)
        out[i] = np.clip(np.round(yuv_to_rgb(yuv, matrix, rng)), 0, 255)
    return out


def rgb_to_planes(rgb: np.ndarray, bit_depth: int, matrix: str = "bt709", rng: str = "limited") -> Planes:
    """RGB uint8 (n,H,W,3), H and W even -> 4:2:0 planes at `bit_depth`, chroma [1,2,1]x[1,1] (left
    siting)."""
    check_even(rgb.shape[-2], rgb.shape[-3], "RGB to 4:2:0")
    n, h, w = rgb.shape[:3]
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    y, u, v = (np.empty(shape, dtype) for shape in ((n, h, w), (n, h // 2, w // 2), (n, h // 2, w // 2)))
    for i in range(n):  # a frame at a time, as planes_to_rgb
        yuv = rgb_to_yuv(rgb[i], matrix, rng)
        y[i] = from_8bit_scale(yuv[..., 0], bit_depth, rng, False)
        u[i] = from_8bit_scale(downsample_chroma(yuv[..., 1]), bit_depth, rng, True)
        v[i] = from_8bit_scale(downsample_chroma(yuv[..., 2]), bit_depth, rng, True)
    return y, u, v


def change_depth(planes: Planes, src: int, dst: int) -> Planes:
    """Planes at `src` bits as `dst` bits: x 2^(dst-src) up, rounded ((v + half) >> s) down."""
    if src == dst:
        return planes
    dtype = np.uint8 if dst <= 8 else np.uint16
    if dst > src:
        return tuple(p.astype(dtype) << (dst - src) for p in planes)  # type: ignore[return-value]
    s = src - dst
    return tuple(np.minimum((p.astype(np.uint32) + (1 << (s - 1))) >> s, 2**dst - 1).astype(dtype)
                 for p in planes)  # type: ignore[return-value]
