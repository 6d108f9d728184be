"""PSNR, PSNR-Y and MS-SSIM: known values, colour protocol, small frames, accumulation over clips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import small_clip
from tests.metrics.conftest import add_noise
from vvc_lightning.errors import VVCError
from vvc_lightning.metrics import VideoMetrics, build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.metrics.functional import PSNR_CAP
from vvc_lightning.video.colour import luma as np_luma
from vvc_lightning.video.video_io import frames_to_tensor


def test_psnr_of_a_constant_offset_is_the_closed_form_value(clip):
    ref = np.clip(clip, 0, 250).astype(np.uint8)
    rec = ref + 5  # MSE 25 on every frame
    values = build_metric("psnr").scores(frames_to_u8(ref), frames_to_u8(rec)).numpy()
    assert values.shape == (9,)
    np.testing.assert_allclose(values, 10 * math.log10(255**2 / 25), atol=1e-9)


def test_psnr_of_identical_frames_is_capped_not_infinite(clip):
    values = build_metric("psnr").scores(frames_to_u8(clip), frames_to_u8(clip)).numpy()
    assert np.all(values == PSNR_CAP)


def test_psnr_y_matches_the_luma_of_the_colour_module(clip):
    rec = add_noise(clip, 8)
    got = build_metric("psnr_y", matrix="bt709", rng="limited").scores(frames_to_u8(clip), frames_to_u8(rec))
    ya, yb = np.round(np_luma(clip, "bt709", "limited")), np.round(np_luma(rec, "bt709", "limited"))
    mse = ((ya - yb) ** 2).reshape(9, -1).mean(1)
    np.testing.assert_allclose(got.numpy(), 10 * np.log10(255**2 / mse), rtol=1e-9)


def test_psnr_y_depends_on_the_matrix_and_differs_from_rgb_psnr(clip):
    rec = add_noise(clip, 8)
    a, b = frames_to_u8(clip), frames_to_u8(rec)
    y709 = build_metric("psnr_y", matrix="bt709").scores(a, b).mean()
    y601 = build_metric("psnr_y", matrix="bt601").scores(a, b).mean()
    rgb = build_metric("psnr").scores(a, b).mean()
    assert abs(y709 - y601) > 1e-3 and abs(y709 - rgb) > 0.5


def test_psnr_y_rejects_an_unknown_matrix():
    with pytest.raises(VVCError, match="matrix"):
        build_metric("psnr_y", matrix="bt2020")


def test_ms_ssim_with_the_standard_window_is_one_for_identical_frames_and_falls_with_noise(bikes_frames):
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

    clip = small_clip(bikes_frames, 3, 176, 192, y0=50)  # a side over 160 px: five scales, 11x11 window
    m = build_metric("ms_ssim")
    same = m.scores(frames_to_u8(clip), frames_to_u8(clip)).numpy()
    light = m.scores(frames_to_u8(clip), frames_to_u8(add_noise(clip, 4))).numpy()
    heavy = m.scores(frames_to_u8(clip), frames_to_u8(add_noise(clip, 30))).numpy()
    np.testing.assert_allclose(same, 1.0, atol=1e-6)
    assert 1.0 > light.mean() > heavy.mean()
    theirs = tm_ms_ssim(frames_to_u8(add_noise(clip, 30)).double(), frames_to_u8(clip).double(),
                        data_range=255.0, kernel_size=11, sigma=1.5, reduction="none")
    np.testing.assert_allclose(heavy, theirs.numpy(), rtol=1e-3)


def test_ms_ssim_on_frames_too_small_for_five_scales_is_nan_and_said_in_one_line(clip, caplog, monkeypatch):
    from vvc_lightning.metrics import base

    monkeypatch.setattr(base, "_SAID", set())  # said once per process: forget what earlier tests said
    m = build_metric("ms_ssim")
    with caplog.at_level("WARNING", logger="vvc_lightning"):
        values = m.scores(frames_to_u8(clip), frames_to_u8(add_noise(clip, 4))).numpy()
        m.scores(frames_to_u8(clip), frames_to_u8(clip))
    assert values.shape == (9,) and np.isnan(values).all()
    said = [r.getMessage() for r in caplog.records if "ms_ssim" in r.getMessage()]
    assert said == [m.note(96, 160)] and "160x96 frames are too small for five scales" in said[0]
    assert m.note(161, 200) == ""


def test_update_over_clips_averages_every_frame_and_rounds_to_8_bits(clip):
    rec = add_noise(clip, 6)
    ref_t, rec_t = frames_to_tensor(clip), frames_to_tensor(rec)
    vm = VideoMetrics(["psnr", "psnr_y"])
    vm.update(ref_t[None, :, :4], rec_t[None, :, :4])
    vm.update(ref_t[None, :, 4:] + 1e-4, rec_t[None, :, 4:])  # sub-LSB difference vanishes in rounding
    direct = build_metric("psnr").scores(frames_to_u8(clip), frames_to_u8(rec)).mean()
    out = vm.compute()
    assert set(out) == {"psnr", "psnr_y"}
    assert out["psnr"] == pytest.approx(float(direct), abs=1e-9)
    vm.reset()
    assert math.isnan(vm.compute()["psnr"])
