"""FID / KID: the patch protocol, analytic values of the statistics, and the real Inception features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.metrics.conftest import blur
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.metrics.distribution import (
    fid_from_features,
    kid_from_features,
    patch_origins,
    patches,
)


def test_a_720p_frame_gives_ten_grid_patches_and_eight_shifted_ones():
    origins = patch_origins(720, 1280)
    assert len(origins) == 10 + 8
    assert (0, 0) in origins and (128, 128) in origins
    assert all(y + 256 <= 720 and x + 256 <= 1280 for y, x in origins)
    assert len(patch_origins(720, 1280, shifted=False)) == 10


def test_frames_smaller_than_a_patch_are_used_whole():
    import torch

    x = torch.zeros(3, 3, 96, 160, dtype=torch.uint8)
    assert patches(x).shape == (3, 3, 96, 160)


def test_fid_of_a_shifted_copy_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0, 0, 0])
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid_from_features(a, a + shift) == pytest.approx(float((shift**2).sum()), rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    assert abs(kid_from_features(a, b, subsets=20, subset_size=100)) < 0.05
    assert kid_from_features(a, b + 1.0, subsets=20, subset_size=100) > 0.5
    assert np.isnan(kid_from_features(a[:1], b[:1]))


class _Given(torch.nn.Module):
    """A 'feature extractor' for torchmetrics that returns the features it is given."""

    num_features = 64  # the statistics do not depend on the width; 2048 makes torchmetrics' eigvals slow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize("n_ref, n_rec, subset", [(60, 60, 1000), (70, 50, 30)])
def test_fid_and_kid_equal_torchmetrics_on_the_same_features(n_ref, n_rec, subset):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(0)
    ref = np.maximum(rng.normal(0.3, 0.5, (n_ref, 64)), 0).astype(np.float32)  # ReLU-like pool features
    rec = np.maximum(rng.normal(0.35, 0.55, (n_rec, 64)), 0).astype(np.float32)
    fid = FrechetInceptionDistance(feature=_Given())
    fid.update(torch.from_numpy(ref).double(), real=True)
    fid.update(torch.from_numpy(rec).double(), real=False)
    assert fid_from_features(ref, rec) == pytest.approx(float(fid.compute()), rel=1e-6)
    size = min(n_ref, n_rec, subset)
    kid = KernelInceptionDistance(feature=_Given(), subsets=10, subset_size=size)
    kid.update(torch.from_numpy(ref).double(), real=True)
    kid.update(torch.from_numpy(rec).double(), real=False)
    torch.manual_seed(0)  # torchmetrics draws subsets from the global generator; ours seeds its own with 0
    theirs = float(kid.compute()[0])
    assert kid_from_features(ref, rec, subsets=10, subset_size=subset) == pytest.approx(theirs, rel=1e-9)


def test_fid_on_inception_features_is_larger_for_blurred_frames(clip):
    fid, kid = build_metric("fid"), build_metric("kid")
    ref = frames_to_u8(clip[:4])
    f_ref = fid.features(ref)
    f_same = fid.features(frames_to_u8(clip[:4].copy()))
    f_blur = fid.features(frames_to_u8(blur(clip[:4], 9)))
    assert f_ref.shape == (4, 2048)
    assert fid.from_features(f_ref, f_same) == pytest.approx(0.0, abs=1e-2)
    assert fid.from_features(f_ref, f_blur) > 1.0
    assert kid.from_features(f_ref, f_blur) > kid.from_features(f_ref, f_same)


def test_frame_stride_subsamples_the_frames_fed_to_inception(clip):
    fid = build_metric("fid", frame_stride=4)
    assert fid.features(frames_to_u8(clip[:5])).shape == (2, 2048)  # frames 0 and 4
