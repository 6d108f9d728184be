"""PSNR and MS-SSIM as functions on tensors, shared by the training loss and the video metrics."""

from __future__ import annotations

import torch
from torch import Tensor

from vvc_lightning.errors import VVCError

PSNR_CAP = 100.0  # dB for identical frames, so means stay finite
MSE_FLOOR = 1e-10  # an MSE below this counts as this (PSNR 148 dB at peak 255, above the cap)
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, scales 1 to 5
MSSSIM_SCALES = len(MSSSIM_WEIGHTS)
MSSSIM_WINDOW = 11  # Gaussian window (sigma 1.5) where the frame is large enough
MSSSIM_MIN_WINDOW = 3
# The coarsest of 5 scales is 1/16 of the frame; it must be wider than the window.
MSSSIM_DOWNSCALE = 2 ** (MSSSIM_SCALES - 1)
MSSSIM_MIN_SIDE = (MSSSIM_MIN_WINDOW - 1) * MSSSIM_DOWNSCALE  # frames need more pixels than this per side


def psnr_from_mse(mse: Tensor, peak: float = 255.0) -> Tensor:
    """PSNR in dB of a mean squared error on a [0, peak] scale (uncapped)."""
    return 10 * torch.log10(peak**2 / mse.clamp_min(MSE_FLOOR))


def psnr(a: Tensor, b: Tensor, peak: float = 255.0) -> Tensor:
    """Per-image PSNR (n,) of (n,...) tensors on a [0, peak] scale, capped at PSNR_CAP."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return psnr_from_mse(mse, peak).clamp(max=PSNR_CAP)


def msssim_window(height: int, width: int, preferred: int = MSSSIM_WINDOW) -> int:
    """Gaussian window for 5-scale MS-SSIM: the largest odd size up to `preferred` the coarsest scale
    holds."""
    side = min(height, width)
    win = preferred
    while win > MSSSIM_MIN_WINDOW and side <= (win - 1) * MSSSIM_DOWNSCALE:
        win -= 2
    if side <= (win - 1) * MSSSIM_DOWNSCALE:
        raise VVCError(f"MS-SSIM needs frames over {MSSSIM_MIN_SIDE} px on each side, got {width}x{height}")
    return win


def ms_ssim(a: Tensor, b: Tensor, data_range: float) -> Tensor:
    """Per-image 5-scale MS-SSIM (n,) of (n,3,H,W) on a [0, data_range] scale, window from `msssim_window`."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    win = msssim_window(a.shape[-2], a.shape[-1])
    return _ms_ssim(
        a, b, data_range=data_range, size_average=False, win_size=win, weights=list(MSSSIM_WEIGHTS)
    )


def ssim(a: Tensor, b: Tensor, data_range: float) -> Tensor:
    """Per-image single-scale SSIM (n,) with the smallest window, for images too small for MS-SSIM."""
    from pytorch_msssim import ssim as _ssim

    return _ssim(a, b, data_range=data_range, size_average=False, win_size=MSSSIM_MIN_WINDOW)
