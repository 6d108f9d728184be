"""Full-reference fidelity: PSNR on RGB, PSNR on luma (Y'), MS-SSIM."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vvc_lightning.errors import VVCError
from vvc_lightning.metrics.base import VideoMetric, say_once
from vvc_lightning.metrics.functional import (
    MSSSIM_DOWNSCALE,
    MSSSIM_SCALES,
    MSSSIM_WEIGHTS,
    MSSSIM_WINDOW,
    PSNR_CAP,
    psnr,
)
from vvc_lightning.metrics.registry import register_metric
from vvc_lightning.video.colour import MATRICES, RANGES

SMALLEST = (MSSSIM_WINDOW - 1) * MSSSIM_DOWNSCALE  # a side must exceed this for 5 scales and the 11x11 window


def luma(x: Tensor, matrix: str = "bt709", rng: str = "limited") -> Tensor:
    """Y' code values (n,H,W) of RGB (n,3,H,W) in [0,255], rounded to 8 bits like a YUV file."""
    if matrix not in MATRICES:
        raise VVCError(f"unknown colour matrix '{matrix}'; use one of {', '.join(MATRICES)}")
    if rng not in RANGES:
        raise VVCError(f"unknown colour range '{rng}'; use one of {', '.join(RANGES)}")
    kr, kb = MATRICES[matrix]
    y = (kr * x[:, 0] + (1 - kr - kb) * x[:, 1] + kb * x[:, 2]) / 255.0
    y = 16 + 219 * y if rng == "limited" else 255 * y
    return y.round()


@register_metric("psnr")
class PSNR(VideoMetric):
    """PSNR over R, G and B together (8-bit, peak 255), averaged over frames."""

    name = "psnr"
    label = "PSNR-RGB (dB)"

    def info(self) -> dict[str, Any]:
        return {"peak": 255, "channels": "RGB", "average": "mean of per-frame PSNR", "cap_db": PSNR_CAP}

    def frame_scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        return psnr(ref, rec)


@register_metric("psnr_y")
class PSNRY(VideoMetric):
    """PSNR of the luma plane Y' computed from RGB with an explicit matrix and range."""

    name = "psnr_y"
    label = "PSNR-Y (dB)"

    def __init__(self, matrix: str = "bt709", rng: str = "limited", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        luma(torch.zeros(1, 3, 1, 1), matrix, rng)  # validates the names
        self.matrix, self.rng = matrix, rng

    def info(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "range": self.rng, "peak": 255, "rounded_to_8bit": True,
                "average": "mean of per-frame PSNR"}

    def frame_scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        return psnr(luma(ref.double(), self.matrix, self.rng), luma(rec.double(), self.matrix, self.rng))


@register_metric("ms_ssim")
class MSSSIM(VideoMetric):
    """5-scale MS-SSIM (Wang et al. 2003) on RGB, mean over channels, with the standard 11x11 Gaussian window
    (sigma 1.5); NaN, said once, on frames too small for it (a side of 160 px or less)."""

    name = "ms_ssim"
    label = "MS-SSIM"

    def info(self) -> dict[str, Any]:
        return {"scales": MSSSIM_SCALES, "weights": list(MSSSIM_WEIGHTS),
                "window": f"gaussian {MSSSIM_WINDOW}, sigma 1.5; NaN on frames with a side of {SMALLEST} px "
                          "or less (too small for five scales)",
                "channels": "RGB mean", "data_range": 255}

    def note(self, height: int, width: int) -> str:
        if min(height, width) > SMALLEST:
            return ""
        return (f"ms_ssim: {width}x{height} frames are too small for five scales with the 11x11 window (each "
                f"side must exceed {SMALLEST} px); ms_ssim is NaN for them")

    def frame_scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        from pytorch_msssim import ms_ssim as _ms_ssim

        note = self.note(*ref.shape[-2:])
        if note:
            say_once(note)
            return torch.full((ref.shape[0],), float("nan"), dtype=torch.float64)
        return _ms_ssim(ref, rec, data_range=255.0, size_average=False, win_size=MSSSIM_WINDOW,
                        weights=list(MSSSIM_WEIGHTS))
