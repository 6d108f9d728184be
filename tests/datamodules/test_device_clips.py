"""`device_clips`: training clips and photos decoded once into a uint8 bank, batches cut with torch ops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vvc_lightning.datamodules.device_clips import ClipBank, DeviceClipLoader, DeviceClipsDataModule
from vvc_lightning.datamodules.device_motion import DRAWS, film
from vvc_lightning.datamodules.motion import Motion, load_image, motion_clip
from vvc_lightning.datamodules.synthetic import read_index
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import DATAMODULES
from vvc_lightning.video.video_sources import ClipSpec

from .conftest import H


class Draws:
    """A random.Random stand-in that hands motion_clip given uniforms in its order of draws."""

    def __init__(self, u: list[float]) -> None:
        self.u = list(u)

    def random(self) -> float:
        return self.u.pop(0)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.u.pop(0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, bikes_frames):
    """Two real photos (frames of bikes.mp4, one at half size) as PNG and JPEG."""
    d = tmp_path_factory.mktemp("bank_photos")
    cv2.imwrite(str(d / "a.png"), bikes_frames[0][..., ::-1])
    cv2.imwrite(str(d / "b.jpg"), bikes_frames[30][::2, ::2, ::-1])
    return d


def build(shard_dir, photos, fraction=0.5, spec=ClipSpec(9, 3, 32)) -> ClipBank:
    return ClipBank.build(sorted(str(p) for p in shard_dir.glob("*.tar")), sorted(photos.iterdir()), spec,
                          Motion(), fraction, "cpu")


@pytest.fixture(scope="module")
def bank(shard_dir, photos) -> ClipBank:
    """The 16 shard videos and 2 photos, T=9 every 3rd frame, 32x32 crops, half the clips from photos."""
    return build(shard_dir, photos)


def test_batches_are_float_clips_in_range_with_t_and_crop(bank):
    b = bank
    assert len(b.videos) == 16 and b.videos[0].dtype == torch.uint8 and len(b.photos) == 2
    x = b.batch(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 9, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    levels = (x + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # 8-bit frames


def test_same_seed_same_batch_other_seed_other_batch(bank):
    b = bank
    a = b.batch(4, torch.Generator().manual_seed(7))
    assert torch.equal(a, b.batch(4, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, b.batch(4, torch.Generator().manual_seed(8)))


def test_video_clips_take_every_stride_th_frame_of_a_real_crop(bank):
    b = ClipBank(bank.videos, bank.photos, ClipSpec(5, 3, 24), Motion(), 1.0)  # video clips only
    x = b.batch(6, torch.Generator().manual_seed(1))
    for clip in x:
        frames = ((clip.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
        idx = [read_index(f) for f in frames]
        assert np.diff(idx).tolist() == [3] * 4, idx  # consecutive clip frames are 3 source frames apart
        ramp = frames[0, :, :, 2].astype(float)  # the blue ramp grows along both axes: a real, unscaled crop
        assert ramp[-1, -1] > ramp[0, 0]


def test_device_camera_films_what_the_stills_camera_films(photos):
    """Given the same draws (no mirror), the batched device camera and motion_clip agree to 1 level."""
    img = load_image(photos / "b.jpg")  # 136x320: every window fits with room to spare
    u8 = img.mul(255).round().to(torch.uint8)
    gen = torch.Generator().manual_seed(3)
    for crop, motion in ((32, Motion()), (40, Motion(pan=1.0, zoom=0.3, rotate=20, brightness=0.3))):
        u = torch.rand(4, DRAWS, generator=gen, dtype=torch.float64)
        u[:, 0] = 0.75  # no mirror
        dev = film([u8], [0] * 4, u, 9, 2, crop, motion)
        ref = torch.stack([motion_clip(u8.float() / 255, 9, 2, crop, motion, Draws(u[i, :10].tolist()))
                           for i in range(4)])
        assert dev.shape == ref.shape == (4, 3, 9, crop, crop)
        assert ((dev - ref).abs() * 127.5).max() <= 1.001
        assert (dev[:, :, 1:] - dev[:, :, :-1]).abs().mean() > 0.01  # the camera moves


def test_loader_epochs_differ_and_repeat_from_the_seed(bank):
    b = bank
    first = list(DeviceClipLoader(b, 2, 2, seed=5))
    loader = DeviceClipLoader(b, 2, 2, seed=5)
    assert len(loader) == 2
    again, second = list(loader), list(loader)
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    assert not torch.equal(first[0], second[0])


def test_registered_datamodule_builds_the_bank_on_its_device(shard_dir, photos):
    assert "device_clips" in DATAMODULES.names()
    dm = DATAMODULES.create(
        "device_clips",
        train_images=str(photos),
        train_shards=str(shard_dir),
        crop_size=32,
        frames=9,
        frame_stride=3,
        batch_size=3,
        epoch_length=7,
        device="cpu",
    )
    assert isinstance(dm, DeviceClipsDataModule)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) == 3  # ceil(7 / 3)
    x = next(iter(loader))
    assert x.shape == (3, 3, 9, 32, 32) and x.device.type == "cpu"


def test_bad_settings_are_one_clear_error(shard_dir, photos):
    with pytest.raises(ConfigError, match="bank_max_gb"):
        DeviceClipsDataModule(train_images=str(photos), bank_max_gb=0)
    dm = DeviceClipsDataModule(
        train_shards=str(shard_dir), crop_size=32, frames=9, bank_max_gb=1e-4, device="cpu"
    )
    with pytest.raises(VVCError, match="bank_max_gb=0.0001 GB"):
        dm.build_bank()
    tiny = ClipSpec(9, 3, H + 1)  # larger than the 48x64 videos: every video is skipped, then nothing is left
    with pytest.warns(UserWarning, match="skipped 16 videos"), pytest.raises(VVCError, match="no training "
                                                                                             "video"):
        ClipBank.build(sorted(str(p) for p in shard_dir.glob("*.tar")), [], tiny, Motion(), 1.0, "cpu")


@pytest.mark.slow
def test_lightning_fit_trains_from_the_bank(tmp_path, shard_dir, photos, tiny_config):
    """A real fit: Lightning takes the loader's batches as they are (already on the device)."""
    from omegaconf import OmegaConf

    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.training.trainer import fit

    cfg = tiny_config.copy()
    cfg.data = OmegaConf.create(
        {
            "name": "device_clips",
            "train_images": str(photos),
            "train_shards": str(shard_dir),
            "crop_size": 32,
            "batch_size": 2,
            "epoch_length": 4,
            "frames": 9,
            "frame_stride": 3,
        }
    )
    cfg = apply_overrides(cfg, [f"run_dir={tmp_path}", "trainer.max_steps=2", "trainer.limit_val_batches=0",
                                "trainer.enable_progress_bar=false", "checkpoint.every_n_train_steps=2"])
    trainer = fit(cfg)
    assert trainer.global_step == 2
    assert (tmp_path / "last.ckpt").is_file()
