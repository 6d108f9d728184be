"""VideoMetrics: names, defaults, errors on mismatched inputs, checkpoint safety."""

from __future__ import annotations

import numpy as np
import pytest

from tests.metrics.conftest import add_noise
from vvc_lightning.errors import FrameCountError, RegistryError, VVCError
from vvc_lightning.metrics import ALL, DEFAULT, VideoMetrics, metric_names, resolve_names
from vvc_lightning.video.video_io import frames_to_tensor


def test_default_names_are_the_fast_metrics_and_all_adds_the_expensive_ones():
    assert resolve_names(None) == list(DEFAULT) == ["psnr", "psnr_y", "ms_ssim", "lpips"]
    assert resolve_names("all") == list(ALL)
    assert resolve_names("psnr, vmaf,psnr") == ["psnr", "vmaf"]
    assert set(ALL) <= set(metric_names())


def test_an_unknown_metric_name_fails_listing_the_known_ones():
    with pytest.raises(RegistryError, match="Known metrics: .*psnr"):
        resolve_names("psnr,lpipz")


def test_networks_stay_out_of_state_dict_so_checkpoints_do_not_change():
    vm = VideoMetrics(["psnr", "lpips", "tlp"])
    assert list(vm.state_dict()) == []
    assert vm.keys[1] in ("lpips", "stlpips")


def test_decoded_video_with_fewer_frames_is_a_clear_error(clip):
    vm = VideoMetrics(["psnr"])
    with pytest.raises(FrameCountError, match="8 frames but the reference has 9"):
        vm.sequence(clip, clip[:8])


def test_decoded_video_of_another_size_is_a_clear_error(clip):
    vm = VideoMetrics(["psnr"])
    with pytest.raises(VVCError, match="160x94 but the reference is 160x96"):
        vm.sequence(clip, np.ascontiguousarray(clip[:, :94]))
    with pytest.raises(VVCError, match="clips"):
        vm.update(frames_to_tensor(clip), frames_to_tensor(clip))


def test_sequence_gives_per_frame_arrays_and_update_compute_their_mean(clip):
    rec = add_noise(clip, 5)
    vm = VideoMetrics(["psnr", "psnr_y"])  # (ms_ssim is NaN on these 160x96 frames: too small for 5 scales)
    per_frame = vm.sequence(clip, rec)
    assert {k: v.shape for k, v in per_frame.items()} == {"psnr": (9,), "psnr_y": (9,)}
    vm.update(frames_to_tensor(clip)[None], frames_to_tensor(rec)[None])
    out = vm.compute()
    assert out["psnr"] == pytest.approx(per_frame["psnr"].mean())
    assert out["psnr_y"] == pytest.approx(per_frame["psnr_y"].mean(), rel=1e-6)
