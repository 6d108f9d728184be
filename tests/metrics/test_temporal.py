"""tOF and tLP: zero for a perfect copy, positive for temporal flicker, one value per frame pair."""

from __future__ import annotations

import numpy as np
import torch

from tests.metrics.conftest import add_noise
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.metrics.lpips import to_unit


def flicker(frames: np.ndarray) -> np.ndarray:
    """Every other frame shifted by 3 px: a temporally unstable copy."""
    out = frames.copy()
    out[1::2] = np.roll(frames[1::2], 3, axis=2)
    return out


def test_tof_is_zero_for_a_perfect_copy_and_positive_for_flicker(clip):
    m = build_metric("tof")
    a = frames_to_u8(clip)
    same = m.scores(a, a)
    bad = m.scores(a, frames_to_u8(flicker(clip)))
    assert same.shape == (8,) and float(same.abs().max()) == 0.0
    assert float(bad.mean()) > 1.0  # flow of the copy jumps by 3 px


def test_tlp_is_zero_for_a_perfect_copy_and_grows_with_flicker(clip):
    m = build_metric("tlp")
    short = clip[:5]
    a = frames_to_u8(short)
    same = m.scores(a, a)
    noisy = m.scores(a, frames_to_u8(add_noise(short, 3)))
    bad = m.scores(a, frames_to_u8(flicker(short)))
    assert same.shape == (4,) and float(same.abs().max()) < 1e-6
    assert float(bad.mean()) > float(noisy.mean())


def test_tlp_across_chunk_boundaries_equals_the_pairwise_definition(clip):
    m = build_metric("tlp")
    ref = clip[:6]  # chunks of 4 frames: pairs inside and across a chunk boundary
    rec = add_noise(ref, 10)
    got = m.scores(frames_to_u8(ref), frames_to_u8(rec)).numpy()
    net = m._net

    def lp(frames):  # LP(x_{t-1}, x_t) for every pair, in one batch
        x = to_unit(torch.from_numpy(frames).permute(0, 3, 1, 2).float())
        with torch.no_grad():
            return net(x[:-1], x[1:]).numpy()

    np.testing.assert_allclose(got, np.abs(lp(rec) - lp(ref)), rtol=1e-4, atol=1e-7)


def test_lpips_and_tlp_together_share_one_pass_and_equal_the_separate_values(clip):
    from vvc_lightning.metrics import VideoMetrics

    ref = clip[:5]
    rec = add_noise(ref, 8)
    vm = VideoMetrics(["lpips", "tlp"])
    lp_key, tlp_key = vm.keys
    joint = vm.sequence(ref, rec)
    a, b = frames_to_u8(ref), frames_to_u8(rec)
    np.testing.assert_allclose(joint[lp_key], vm.metrics["lpips"].scores(a, b).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(joint[tlp_key], vm.metrics["tlp"].scores(a, b).numpy(), rtol=1e-5, atol=1e-7)
