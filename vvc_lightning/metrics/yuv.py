"""Metrics of 4:2:0 planes as the field reports them: PSNR of Y, U and V (peak 2^bits - 1), their 6:1:1
combination (6 Y + U + V) / 8, and MS-SSIM of each plane (standard 11x11 window) with the same
combination; per frame, averaged over frames by the caller."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vvc_lightning.metrics.base import chunks
from vvc_lightning.metrics.fidelity import SMALLEST
from vvc_lightning.metrics.functional import MSSSIM_WEIGHTS, MSSSIM_WINDOW, PSNR_CAP, psnr

PSNR_KEYS = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv")
MSSSIM_KEYS = ("ms_ssim_y", "ms_ssim_u", "ms_ssim_v", "ms_ssim_yuv")
LABELS = {"psnr_y": "PSNR-Y (dB)", "psnr_u": "PSNR-U (dB)", "psnr_v": "PSNR-V (dB)",
          "psnr_yuv": "YUV-PSNR 6:1:1 (dB)", "ms_ssim_y": "MS-SSIM-Y", "ms_ssim_u": "MS-SSIM-U",
          "ms_ssim_v": "MS-SSIM-V", "ms_ssim_yuv": "YUV-MS-SSIM 6:1:1"}
WEIGHTS = (6, 1, 1)  # Y, U, V


def keys_for(names: list[str]) -> list[str]:
    """The plane metrics that the metric names ask for: psnr_y -> PSNR of each plane and YUV-PSNR, ms_ssim ->
    MS-SSIM of each plane and YUV-MS-SSIM."""
    return [*(PSNR_KEYS if "psnr_y" in names else ()), *(MSSSIM_KEYS if "ms_ssim" in names else ())]


def info(key: str) -> dict[str, Any]:
    """The protocol of a plane metric (as the report states it)."""
    base = {"name": key, "higher_is_better": True, "planes": "4:2:0 Y, U, V at the source's bit depth",
            "average": "mean of per-frame values"}
    if key.startswith("psnr"):
        out = {**base, "peak": "2^bits - 1 (255 at 8 bits, 1023 at 10)", "cap_db": PSNR_CAP}
    else:
        out = {**base, "window": f"gaussian {MSSSIM_WINDOW}, sigma 1.5; NaN on a plane with a side of "
                                 f"{SMALLEST} px or less", "weights": list(MSSSIM_WEIGHTS),
               "data_range": "2^bits - 1"}
    if key.endswith("_yuv"):
        out["combination"] = "(6 Y + U + V) / 8 per frame"
    return out


def note(key: str, height: int, width: int) -> str:
    """What a user must know about an MS-SSIM plane metric on frames of this size ('' when nothing)."""
    if not key.startswith("ms_ssim"):
        return ""
    side = min(height, width) // (1 if key == "ms_ssim_y" else 2)
    if side > SMALLEST:
        return ""
    what = "the luma plane" if key == "ms_ssim_y" else "the chroma planes"
    return (f"{key}: {what} of {width}x{height} frames are too small for five scales with the 11x11 window "
            f"(each side must exceed {SMALLEST} px); {key} is NaN for them")


def _ms_ssim(a: np.ndarray, b: np.ndarray, peak: float) -> np.ndarray:
    from pytorch_msssim import ms_ssim

    if min(a.shape[-2:]) <= SMALLEST:
        return np.full(a.shape[0], np.nan)
    x, y = (torch.from_numpy(p.astype(np.float32))[:, None] for p in (a, b))
    with torch.no_grad():
        return ms_ssim(x, y, data_range=peak, size_average=False, win_size=MSSSIM_WINDOW,
                       weights=list(MSSSIM_WEIGHTS)).double().numpy()


def plane_scores(ref: tuple, rec: tuple, bit_depth: int, keys: list[str]) -> dict[str, np.ndarray]:
    """Per-frame values of the plane metrics `keys` of reference and decoded planes (Y, U, V), each with a
    leading frame axis, at `bit_depth` (a few frames at a time, as the other metrics)."""
    parts = [_scores(tuple(p[s] for p in ref), tuple(p[s] for p in rec), bit_depth, keys)
             for s in chunks(ref[0].shape[0])]
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in keys}


def _scores(ref: tuple, rec: tuple, bit_depth: int, keys: list[str]) -> dict[str, np.ndarray]:
    peak = float(2**bit_depth - 1)
    out: dict[str, np.ndarray] = {}
    if any(k in PSNR_KEYS for k in keys):
        vals = [psnr(torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64)), peak)
                .numpy() for a, b in zip(ref, rec, strict=True)]
        out.update(zip(PSNR_KEYS, [*vals, sum(w * v for w, v in zip(WEIGHTS, vals, strict=True)) / 8],
                       strict=True))
    if any(k in MSSSIM_KEYS for k in keys):
        vals = [_ms_ssim(a, b, peak) for a, b in zip(ref, rec, strict=True)]
        out.update(zip(MSSSIM_KEYS, [*vals, sum(w * v for w, v in zip(WEIGHTS, vals, strict=True)) / 8],
                       strict=True))
    return {k: out[k] for k in keys}
