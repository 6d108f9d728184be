"""`openvid` datamodule: exact and resampled epochs over ranks x workers, skips, bad shards, layout checks."""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from vvc_lightning.datamodules.openvid import OpenVidDataModule, ShardWarning, expand_shards
from vvc_lightning.datamodules.skips import SkippedVideoWarning
from vvc_lightning.datamodules.streaming import ShardClipStream
from vvc_lightning.datamodules.synthetic import read_index, write_index_video
from vvc_lightning.datamodules.workers import loader_options
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import DATAMODULES
from vvc_lightning.video.video_io import tensor_to_frames
from vvc_lightning.video.video_sources import ClipSpec

from .conftest import write_shard

SPEC = ClipSpec(9, 3, 32)
PATTERN = "shard-{000000..000005}.tar"


def keys_of(ds: ShardClipStream, num_workers: int) -> list[str]:
    loader = DataLoader(ds, batch_size=None, **loader_options(num_workers, 120))
    return [key for _, key in loader]


def test_every_clip_comes_exactly_once_per_epoch_over_2_ranks_x_2_workers(shard_dir):
    urls = expand_shards(str(shard_dir / PATTERN), "test")
    per_rank = []
    for rank in range(2):
        ds = ShardClipStream(
            urls, SPEC, train=True, resampled=False, shuffle_buffer=4, rank=rank, world_size=2, with_keys=True
        )
        per_rank.append(keys_of(ds, num_workers=2))
    everything = per_rank[0] + per_rank[1]
    assert len(everything) == 16 and len(set(everything)) == 16
    assert not set(per_rank[0]) & set(per_rank[1])


def test_resampled_epoch_gives_the_same_whole_batches_on_every_rank(shard_dir):
    urls = expand_shards(str(shard_dir), "test")
    counts = []
    for rank in range(2):
        ds = ShardClipStream(urls, SPEC, train=True, resampled=True, epoch_length=10, batch_size=2,
                             shuffle_buffer=4, rank=rank, world_size=2)
        batches = list(DataLoader(ds, batch_size=2, **loader_options(2, 120)))
        assert len(batches) == len(DataLoader(ds, batch_size=2)) == 3  # ceil(10 / (2 ranks * 2))
        assert all(b.shape == (2, 3, 9, 32, 32) for b in batches)
        counts.append(len(batches))
    assert counts[0] == counts[1]


def test_datamodule_clips_are_float_in_range_with_stride_3_in_order(shard_dir):
    dm = DATAMODULES.create("openvid", train_shards=str(shard_dir / PATTERN), crop_size=None, epoch_length=8,
                            batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.float32 and batch.shape == (4, 3, 9, 48, 64)
    assert batch.min() >= -1 and batch.max() <= 1
    for clip in batch:
        idx = [read_index(f) for f in tensor_to_frames(clip)]
        assert idx == list(range(idx[0], idx[0] + 25, 3))


def test_validation_clips_and_crops_are_the_same_on_every_run(shard_dir):
    def val_batches():
        dm = OpenVidDataModule(val_shards=str(shard_dir / PATTERN), crop_size=32, batch_size=4, num_workers=2)
        dm.setup("validate")
        return list(dm.val_dataloader())

    a, b = val_batches(), val_batches()
    assert sum(x.shape[0] for x in a) == 16
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_training_clips_differ_between_epochs(shard_dir):
    dm = OpenVidDataModule(train_shards=str(shard_dir), crop_size=16, epoch_length=8, batch_size=8)
    loader = dm.train_dataloader()
    first, second = next(iter(loader)), next(iter(loader))
    assert not torch.equal(first, second)


def test_corrupt_and_short_videos_in_a_shard_are_skipped_and_counted(tmp_path, index_mp4s):
    short = write_index_video(tmp_path / "short.mp4", 10, 48, 64)
    samples = [
        ("good0", index_mp4s[0].read_bytes(), {"frames": 30}),
        ("corrupt", os.urandom(4000), {"frames": 30}),
        ("lying", short.read_bytes(), {"frames": 30}),  # header/metadata says 30, decodes 10
        ("truncated", index_mp4s[1].read_bytes()[:1500], {}),
        ("good1", index_mp4s[2].read_bytes(), {}),  # no frame count: counted by decoding
    ]
    shard = write_shard(tmp_path / "mixed.tar", samples)
    ds = ShardClipStream([str(shard)], SPEC, train=False, resampled=False, with_keys=True)
    with pytest.warns(SkippedVideoWarning, match="skipped"):
        keys = [k for _, k in ds]
    assert keys == ["good0", "good1"]
    assert ds.skips.total == 3 and ds.skips.ok_count == 2


def test_truncated_tar_yields_what_precedes_the_cut_then_goes_on(tmp_path, index_mp4s):
    samples = [(f"v{i}", p.read_bytes(), {"frames": 30 + i}) for i, p in enumerate(index_mp4s[:4])]
    cut = write_shard(tmp_path / "cut.tar", samples)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 5 // 8])
    whole = write_shard(
        tmp_path / "whole.tar", [(f"w{i}", p.read_bytes(), {}) for i, p in enumerate(index_mp4s[4:6])]
    )
    ds = ShardClipStream([str(cut), str(whole)], SPEC, train=False, resampled=False, with_keys=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = [k for _, k in ds]
    assert keys[:2] == ["v0", "v1"] and keys[-2:] == ["w0", "w1"] and len(keys) <= 5
    assert any(issubclass(w.category, SkippedVideoWarning) for w in caught)


def test_missing_shard_fails_at_setup_naming_it(shard_dir):
    dm = OpenVidDataModule(train_shards=str(shard_dir / "shard-{000000..000007}.tar"))
    with pytest.raises(VVCError, match=r"data.train_shards: 2 of 8 shards do not exist: .*shard-000006.tar"):
        dm.setup("fit")
    with pytest.raises(VVCError, match="1 of 1 shards do not exist: .*nowhere"):
        expand_shards(str(shard_dir / "nowhere"), "data.val_shards")


def test_all_bad_data_in_resampled_mode_fails_instead_of_hanging(tmp_path):
    bad = write_shard(tmp_path / "bad.tar", [("x", b"\x00" * 100, {})])
    ds = ShardClipStream([str(bad)], SPEC, train=True, resampled=True, epoch_length=4, shuffle_buffer=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(VVCError, match="all skipped|without one usable clip"):
            next(iter(ds))


def test_fewer_shards_than_readers_warns_with_the_numbers(shard_dir):
    two = [str(shard_dir / "shard-000000.tar"), str(shard_dir / "shard-000001.tar")]
    dm = OpenVidDataModule(train_shards=two, resampled=False, num_workers=2)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    with pytest.warns(ShardWarning, match="2 shards for 2 ranks x 2 workers = 4 readers: 2 readers get no "
                                          "shard"):
        loader = dm.train_dataloader()
    assert (loader.dataset.rank, loader.dataset.world_size) == (1, 2)


def test_fewer_shards_than_ranks_in_exact_training_is_an_error(shard_dir):
    dm = OpenVidDataModule(train_shards=str(shard_dir / "shard-000000.tar"), resampled=False)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=0)
    with pytest.raises(ConfigError, match="1 shards for 2 ranks"):
        dm.train_dataloader()


def test_bad_option_values_fail_naming_the_key():
    with pytest.raises(ConfigError, match="data.epoch_length"):
        OpenVidDataModule(epoch_length=0)
    with pytest.raises(ConfigError, match="data.crop_size"):
        OpenVidDataModule(crop_size=-4)
