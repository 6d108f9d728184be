"""`yuv` datamodule: sizes from names or options, BT.709/BT.601, full frames in order, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vvc_lightning.datamodules.synthetic import index_video, read_index, write_index_video
from vvc_lightning.datamodules.yuv import YUVDataModule
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.video.colour import rgb_to_yuv420
from vvc_lightning.video.video_io import tensor_to_frames


@pytest.fixture(scope="module")
def yuv_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("yuv")
    write_index_video(d / "BasketballDrive_64x48_50.yuv", 30, 48, 64)
    write_index_video(d / "Beauty_32x32_120fps.yuv", 12, 32, 32)
    return d


def test_sizes_and_fps_come_from_the_names(yuv_dir):
    dm = YUVDataModule(test_dir=str(yuv_dir), test_max_frames=20)
    seqs = [batch[0].frames() for batch in dm.test_dataloader()]  # each batch: one lazy sequence
    assert dm.test_names == ["BasketballDrive_64x48_50", "Beauty_32x32_120fps"]
    assert dm.test_fps == [50.0, 120.0]
    assert [s.shape for s in seqs] == [(20, 48, 64, 3), (12, 32, 32, 3)]
    for s in seqs:
        assert s.dtype == np.uint8
        assert [read_index(f) for f in s] == list(range(len(s)))


def test_explicit_size_and_fps_override_a_plain_name(tmp_path):
    frames = index_video(6, 32, 48)
    with open(tmp_path / "plain.yuv", "wb") as f:
        for fr in frames:
            f.write(b"".join(p.tobytes() for p in rgb_to_yuv420(fr)))
    dm = YUVDataModule(test_dir=str(tmp_path / "plain.yuv"), width=48, height=32, fps=24)
    seq = next(iter(dm.test_dataloader()))[0].frames()
    assert seq.shape == (6, 32, 48, 3) and dm.test_fps == [24.0]
    with pytest.raises(VVCError, match="cannot tell the size"):
        YUVDataModule(test_dir=str(tmp_path / "plain.yuv")).test_dataloader()


def test_matrix_option_changes_the_rgb_and_matches_the_source_matrix(tmp_path):
    rgb = np.zeros((1, 16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 30  # saturated: the two matrices differ clearly
    with open(tmp_path / "red_16x16.yuv", "wb") as f:
        f.write(b"".join(p.tobytes() for p in rgb_to_yuv420(rgb[0], "bt601", "limited")))

    def first_pixel(matrix):
        dm = YUVDataModule(test_dir=str(tmp_path), matrix=matrix)
        return next(iter(dm.test_dataloader()))[0].frames()[0, 0, 0].astype(int)

    right, wrong = first_pixel("bt601"), first_pixel("bt709")
    assert np.abs(right - [200, 60, 30]).max() <= 2
    assert np.abs(wrong - [200, 60, 30]).max() > 8


def test_train_and_validation_crops_from_yuv(yuv_dir):
    dm = YUVDataModule(
        train_dir=str(yuv_dir / "Basket*.yuv"),
        val_dir=str(yuv_dir / "Basket*.yuv"),
        crop_size=32,
        frame_stride=2,
        batch_size=2,
        epoch_length=4,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 3, 9, 32, 32)
    idx = [read_index(f) for f in tensor_to_frames(batch[0])]
    assert idx == list(range(idx[0], idx[0] + 17, 2))
    assert torch.equal(next(iter(dm.val_dataloader())), next(iter(dm.val_dataloader())))


def test_wrong_file_size_and_bad_options_fail_clearly(tmp_path):
    (tmp_path / "odd_64x48.yuv").write_bytes(bytes(1000))
    with pytest.raises(VVCError, match="odd_64x48.yuv' is 1000 bytes"):
        YUVDataModule(test_dir=str(tmp_path)).setup("test")
    with pytest.raises(ConfigError, match="data.matrix"):
        YUVDataModule(matrix="bt2020")
    with pytest.raises(ConfigError, match="data.range"):
        YUVDataModule(range="tv")
    with pytest.raises(ConfigError, match="both data.width and data.height"):
        YUVDataModule(width=64)
