"""PSNR and MS-SSIM functions: one window rule and one PSNR for the training loss and the video metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import small_clip
from tests.metrics.conftest import add_noise
from vvc_lightning.errors import VVCError
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.metrics.functional import (
    MSSSIM_MIN_SIDE,
    PSNR_CAP,
    ms_ssim,
    msssim_window,
    psnr,
    psnr_from_mse,
    ssim,
)
from vvc_lightning.metrics.lpips import perceptual_net
from vvc_lightning.metrics.perceptual import MSSSIMDistance, build_perceptual
from vvc_lightning.training import losses


def test_psnr_from_mse_is_the_closed_form_and_psnr_caps_it():
    assert float(psnr_from_mse(torch.tensor(25.0))) == pytest.approx(10 * math.log10(255**2 / 25))
    assert float(psnr_from_mse(torch.tensor(0.01), peak=1.0)) == pytest.approx(20.0)
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0] += 5
    np.testing.assert_allclose(psnr(a, b).numpy(), [10 * math.log10(255**2 / 25), PSNR_CAP])


def test_ms_ssim_window_shrinks_on_small_frames_and_is_standard_on_large_ones():
    assert msssim_window(720, 1280) == 11
    assert msssim_window(144, 256) == 9
    assert msssim_window(96, 160) == 5
    assert msssim_window(64, 64) == 3
    assert MSSSIM_MIN_SIDE == 32
    with pytest.raises(VVCError, match="32 px"):
        msssim_window(32, 64)


def test_the_loss_distance_is_one_minus_the_ms_ssim_metric(bikes_frames):
    # frames over 160 px a side: both use the standard 11x11 window (the metric is NaN below, the loss
    # shrinks its window instead, see the test above)
    clip = small_clip(bikes_frames, 3, 176, 192, y0=40, x0=100)
    rec = add_noise(clip, 10)
    metric = build_metric("ms_ssim").scores(frames_to_u8(clip), frames_to_u8(rec))
    to_unit = [torch.from_numpy(f).permute(0, 3, 1, 2).double() / 127.5 - 1 for f in (rec, clip)]
    distance = build_perceptual("ms-ssim")(*to_unit)
    assert np.isfinite(metric.numpy()).all()
    np.testing.assert_allclose(distance.numpy(), 1 - metric.numpy(), atol=1e-5)  # metric in float32


def test_the_ms_ssim_metric_is_nan_where_the_loss_shrinks_its_window(clip):
    metric = build_metric("ms_ssim").scores(frames_to_u8(clip), frames_to_u8(add_noise(clip, 10)))
    assert np.isnan(metric.numpy()).all()  # 96x160: too small for five scales of 11x11


def test_the_loss_distance_falls_back_to_ssim_on_crops_too_small_for_ms_ssim(clip):
    x = torch.from_numpy(clip[:2, :32, :48]).permute(0, 3, 1, 2).double() / 127.5 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    got = MSSSIMDistance()(x, y)
    expected = 1 - ssim((x + 1) / 2, (y + 1) / 2, data_range=1.0)
    np.testing.assert_allclose(got.numpy(), expected.numpy())
    with pytest.raises(VVCError, match="MS-SSIM needs frames over 32 px"):
        ms_ssim(x, y, data_range=2.0)


def test_training_and_the_lpips_metrics_share_one_builder(clip):
    assert losses.build_perceptual is build_perceptual
    x = torch.from_numpy(clip[:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(add_noise(clip[:2], 12)).permute(0, 3, 1, 2).float() / 127.5 - 1
    loss_net = build_perceptual("stlpips", "alex")
    assert not any(p.requires_grad for p in loss_net.parameters()) and not loss_net.training
    torch.testing.assert_close(loss_net(x, y), perceptual_net("st_alex")(x, y))


def test_an_unknown_perceptual_distance_lists_the_known_ones():
    with pytest.raises(VVCError, match="lpips, stlpips, ms-ssim"):
        build_perceptual("dists")
