"""`folder` datamodule: path forms, clip stride/order, seeded validation, whole test sequences, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vvc_lightning.datamodules.folder import FolderDataModule
from vvc_lightning.datamodules.skips import SkippedVideoWarning
from vvc_lightning.datamodules.synthetic import read_index, write_index_video
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import DATAMODULES
from vvc_lightning.video.video_io import tensor_to_frames


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory, index_mp4s):
    """Index videos in mp4, mkv, avi and y4m, one in a sub-folder."""
    d = tmp_path_factory.mktemp("folder")
    shutil.copy(index_mp4s[0], d / "a.mp4")
    write_index_video(d / "b.mkv", 31, 48, 64)
    write_index_video(d / "c.y4m", 27, 48, 64)
    (d / "sub").mkdir()
    shutil.copy(index_mp4s[3], d / "sub" / "d.mp4")
    (d / "notes.txt").write_text("not a video")
    (d / ".e.x1y2.tmp.mp4").write_bytes(b"half-written")  # hidden temp files are never read
    return d


def test_registered_by_name_and_unknown_keys_fail_naming_them():
    assert {"folder", "openvid", "yuv"} <= set(DATAMODULES.names())
    with pytest.raises(ConfigError, match="'trian_dir' .*did you mean 'train_dir'"):
        DATAMODULES.create("folder", trian_dir="x")


@pytest.mark.parametrize("form", ["dir", "file", "glob", "list"])
def test_paths_may_be_a_folder_a_file_a_glob_or_a_list(video_dir, form):
    spec = {
        "dir": str(video_dir),
        "file": str(video_dir / "b.mkv"),
        "glob": str(video_dir / "**" / "*.mp4"),
        "list": [str(video_dir / "a.mp4"), str(video_dir / "sub")],
    }[form]
    dm = FolderDataModule(test_dir=spec)
    expected = {"dir": ["a", "b", "c", "d"], "file": ["b"], "glob": ["a", "d"], "list": ["a", "d"]}[form]
    assert dm.test_names == expected


def test_train_clips_are_float_in_range_with_the_frame_stride_in_order(video_dir):
    dm = FolderDataModule(train_dir=str(video_dir), crop_size=32, batch_size=4, epoch_length=8)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    for batch in batches:
        assert batch.dtype == torch.float32 and batch.shape == (4, 3, 9, 32, 32)
        assert batch.min() >= -1 and batch.max() <= 1
        for clip in batch:
            idx = [read_index(f) for f in tensor_to_frames(clip)]
            assert idx == list(range(idx[0], idx[0] + 25, 3))


def test_validation_is_the_same_on_every_run_and_differs_by_seed(video_dir):
    def val(seed):
        dm = FolderDataModule(
            val_dir=str(video_dir), crop_size=24, batch_size=2, seed=seed, val_clips_per_video=2
        )
        return torch.cat(list(dm.val_dataloader()))

    a, b, c = val(0), val(0), val(1)
    assert a.shape == (8, 3, 9, 24, 24)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_test_loader_gives_whole_sequences_in_order_with_names_and_fps(video_dir):
    dm = FolderDataModule(test_dir=str(video_dir), test_max_frames=28)
    dm.setup("test")
    seqs = [batch[0].frames() for batch in dm.test_dataloader()]  # each batch: one lazy sequence
    assert dm.test_names == ["a", "b", "c", "d"] and dm.test_fps == [25.0] * 4
    assert [len(s) for s in seqs] == [28, 28, 27, 28]  # c.y4m has 27 frames; the others are capped
    for s in seqs:
        assert s.shape[1:] == (48, 64, 3) and s.dtype == np.uint8
        assert [read_index(f) for f in s] == list(range(len(s)))


def test_too_short_or_small_videos_are_skipped_with_a_warning(video_dir, tmp_path):
    write_index_video(tmp_path / "short.mp4", 12, 48, 64)
    shutil.copy(video_dir / "a.mp4", tmp_path / "a.mp4")
    dm = FolderDataModule(train_dir=str(tmp_path), crop_size=32)
    with pytest.warns(SkippedVideoWarning, match=r"short.mp4 \(12 frames < 25 needed\)"):
        dm.setup("fit")
    assert len(dm.train_set) == 1
    with pytest.raises(VVCError, match="no video can give a clip"), pytest.warns(SkippedVideoWarning):
        FolderDataModule(train_dir=str(tmp_path / "short.mp4")).setup("fit")


def test_missing_paths_fail_at_setup_naming_the_key(tmp_path):
    with pytest.raises(VVCError, match=r"data.train_dir: '.*nope' does not exist"):
        FolderDataModule(train_dir=str(tmp_path / "nope")).setup("fit")
    with pytest.raises(VVCError, match="data.val_dir: no .* file matches"):
        FolderDataModule(val_dir=str(tmp_path / "*.mp4")).setup("validate")
    with pytest.raises(ConfigError, match="no test data"):
        FolderDataModule().test_dataloader()


def test_bundled_quickstart_clips_work_as_file_paths():
    dm = FolderDataModule(train_dir="asset:quickstart_train.mp4", test_dir="asset:quickstart_test.mp4",
                          frame_stride=1, crop_size=64, batch_size=2, epoch_length=4)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader())).shape == (2, 3, 9, 64, 64)
    seq = next(iter(dm.test_dataloader()))[0].frames()
    assert seq.shape == (25, 64, 128, 3) and dm.test_names == ["quickstart_test"]
    assert np.isclose(dm.test_fps[0], 25.0)


def test_matrix_option_reads_untagged_bt709_y4m_correctly(tmp_path):
    from vvc_lightning.video.video_io import write_video

    rgb = np.zeros((2, 16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 30
    write_video(tmp_path / "red.y4m", rgb, 25, matrix="bt709")

    def pixel(matrix):
        seq = next(iter(FolderDataModule(test_dir=str(tmp_path), matrix=matrix).test_dataloader()))
        return seq[0].frames()[0, 0, 0].astype(int)

    assert np.abs(pixel("bt709") - [200, 60, 30]).max() <= 2
    assert np.abs(pixel(None) - [200, 60, 30]).max() > 8  # FFmpeg assumes BT.601 for untagged y4m
