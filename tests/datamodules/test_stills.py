"""`stills` datamodule: photos under synthetic camera motion, alone or mixed with real clips from shards."""

from __future__ import annotations

import random

import cv2
import pytest
import torch

from vvc_lightning.datamodules.motion import Motion, load_image, motion_clip
from vvc_lightning.datamodules.stills import StillsDataModule
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import DATAMODULES

from ..conftest import bikes_path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, bikes_frames):
    """Two real photos (frames of bikes.mp4, one greyscale) written as PNG and JPEG."""
    d = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(d / "a.png"), bikes_frames[0][..., ::-1])
    cv2.imwrite(str(d / "b.jpg"), cv2.cvtColor(bikes_frames[30], cv2.COLOR_RGB2GRAY))
    return d


def test_clip_shape_range_and_8_bit_levels(photos):
    img = load_image(photos / "a.png")
    clip = motion_clip(img, 5, 3, 48, Motion(), random.Random(1))
    assert clip.shape == (3, 5, 48, 48)
    assert clip.min() >= -1 and clip.max() <= 1
    levels = (clip + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert (clip[:, 1:] - clip[:, :-1]).abs().mean() > 0.01  # the camera moves


def test_no_motion_gives_a_still_and_rng_makes_it_reproducible(photos):
    img = load_image(photos / "a.png")
    still = motion_clip(img, 4, 2, 40, Motion(0, 0, 0, 0), random.Random(3))
    assert torch.equal(still[:, 0], still[:, 3])
    a = motion_clip(img, 4, 2, 40, Motion(), random.Random(5))
    b = motion_clip(img, 4, 2, 40, Motion(), random.Random(5))
    assert torch.equal(a, b)


def test_brightness_drifts_monotonically(photos):
    img = torch.full((3, 120, 160), 0.5)
    for seed in range(4):
        clip = motion_clip(img, 6, 1, 32, Motion(0, 0, 0, 0.4), random.Random(seed))
        means = clip.mean(dim=(0, 2, 3))
        assert means[0] == pytest.approx(0.0, abs=0.01)  # the first frame is the photo as it is
        diffs = means[1:] - means[:-1]
        assert bool((diffs >= -1e-6).all()) or bool((diffs <= 1e-6).all())


def test_the_window_never_leaves_the_photo():
    # A photo whose outer 4 pixels are white and the rest black: reflection padding would bring white
    # into the middle of an edge if a window reached past the photo; the white frame itself may show.
    img = torch.zeros(3, 90, 100)
    img[:, :4], img[:, -4:], img[:, :, :4], img[:, :, -4:] = 1, 1, 1, 1
    for seed in range(20):
        clip = motion_clip(img, 5, 2, 64, Motion(pan=1.0, zoom=0.3, rotate=20), random.Random(seed))
        inner = clip[:, :, 20:44, 20:44]
        assert inner.max() < 1.0, seed  # the middle of every window lies in the black interior


def test_greyscale_photo_becomes_three_channels(photos):
    img = load_image(photos / "b.jpg")
    assert img.shape[0] == 3 and torch.equal(img[0], img[1])


def test_unreadable_photo_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(VVCError, match="cannot be read"):
        load_image(bad)


def test_registered_and_stills_only_batches(photos):
    assert "stills" in DATAMODULES.names()
    dm = DATAMODULES.create(
        "stills",
        train_images=str(photos),
        val_images=str(photos),
        crop_size=32,
        frames=5,
        frame_stride=2,
        batch_size=3,
        epoch_length=6,
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and batches[0].shape == (3, 3, 5, 32, 32)
    val1 = torch.cat(list(dm.val_dataloader()))
    dm2 = StillsDataModule(train_images=str(photos), val_images=str(photos), crop_size=32, frames=5,
                           frame_stride=2, batch_size=3)
    val2 = torch.cat(list(dm2.val_dataloader()))
    assert val1.shape[0] == 8 and torch.equal(val1, val2)  # val_clips seeded clips, the same every run


def test_mixed_with_real_clips_from_shards(photos, shard_dir):
    dm = StillsDataModule(
        train_images=str(photos),
        train_shards=str(shard_dir),
        video_fraction=0.5,
        crop_size=32,
        frames=3,
        frame_stride=2,
        batch_size=2,
        epoch_length=40,
        num_workers=2,
        test_dir=bikes_path(),
    )
    dm.setup("fit")
    clips = torch.cat(list(dm.train_dataloader()))
    assert clips.shape == (40, 3, 3, 32, 32)
    # Index videos have a flat red channel; bikes frames do not: both kinds must appear.
    flat = (clips[:, 0, 0].flatten(1).std(dim=1) < 0.02).sum().item()
    assert 5 <= flat <= 35
    assert dm.test_names == ["bikes"]


def test_bad_options_are_config_errors(photos):
    with pytest.raises(ConfigError, match="crop_size"):
        StillsDataModule(train_images=str(photos), crop_size=None)
    with pytest.raises(ConfigError, match="video_fraction"):
        StillsDataModule(train_images=str(photos), video_fraction=2)
    with pytest.raises(ConfigError, match="rotate"):
        StillsDataModule(train_images=str(photos), rotate=90)
    with pytest.raises(ConfigError, match="train_images"):
        StillsDataModule()
