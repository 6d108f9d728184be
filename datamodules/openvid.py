"""`openvid` datamodule: OpenVid-1M (or any) video clips streamed from webdataset tar shards."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from torch.utils.data import DataLoader

from vvc_lightning.datamodules.base import (
    VIDEO_EXTS,
    EpochDataLoader,
    VideoDataModule,
    collate_clips,
    dist_info,
    resolve_paths,
)
from vvc_lightning.datamodules.streaming import ShardClipStream
from vvc_lightning.datamodules.workers import DEFAULT_TIMEOUT_S
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import register_datamodule
from vvc_lightning.video.video_sources import AVSource

ShardSpec = str | list[str] | None
REMOTE = ("://", "pipe:")


class ShardWarning(UserWarning):
    """The shard layout wastes readers or risks an uneven DDP epoch."""


def expand_shards(spec: ShardSpec, what: str) -> list[str]:
    """Shard paths/URLs from a brace pattern ('a-{000..009}.tar', '::'-joined), a folder, or a list."""
    from webdataset.shardlists import expand_urls

    if spec is None:
        return []
    items = list(spec) if not isinstance(spec, str | Path) else [str(spec)]
    urls: list[str] = []
    for item in items:
        item = str(item)
        if not any(r in item for r in REMOTE) and Path(os.path.expanduser(item)).is_dir():
            found = sorted(
                str(p) for p in Path(os.path.expanduser(item)).glob("*.tar") if not p.name.startswith(".")
            )
            if not found:
                raise VVCError(f"{what}: folder '{item}' holds no .tar shard")
            urls += found
        else:
            urls += [os.path.expanduser(u) for u in expand_urls(item)]
    missing = [u for u in urls if not any(r in u for r in REMOTE) and not Path(u).is_file()]
    if missing:
        raise VVCError(
            f"{what}: {len(missing)} of {len(urls)} shards do not exist: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + "; check the path or brace pattern (e.g. shards/shard-{000000..000009}.tar)"
        )
    return urls


@register_datamodule("openvid")
class OpenVidDataModule(VideoDataModule):
    """Training clips streamed from shards (`vvc_lightning shard` output); validation from a fixed,
    ordered shard set with seeded clips; testing on a folder of videos (as `folder`)."""

    def __init__(
        self,
        train_shards: ShardSpec = None,
        val_shards: ShardSpec = None,
        test_dir: str | list[str] | None = None,
        epoch_length: int = 10000,
        resampled: bool = True,
        shuffle_buffer: int = 100,
        frames: int = 9,
        frame_stride: int = 3,
        crop_size: int | None = 256,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        test_max_frames: int | None = None,
        seek: bool = True,
        decode_threads: int = 0,
        loader_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(frames, frame_stride, crop_size, batch_size, num_workers, seed, test_max_frames,
                         loader_timeout)
        if not isinstance(epoch_length, int) or epoch_length < 1:
            raise ConfigError(f"data.epoch_length must be a positive integer, got {epoch_length!r}")
        if not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ConfigError(f"data.shuffle_buffer must be an integer >= 0, got {shuffle_buffer!r}")
        self.train_shards, self.val_shards, self.test_dir = train_shards, val_shards, test_dir
        self.epoch_length, self.resampled, self.shuffle_buffer = epoch_length, resampled, shuffle_buffer
        self.seek, self.decode_threads = seek, decode_threads
        self.save_hyperparameters()

    def _stream(self, spec: ShardSpec, key: str, train: bool) -> ShardClipStream | None:
        urls = expand_shards(spec, f"data.{key}")
        if not urls:
            return None
        resampled = self.resampled and train
        return ShardClipStream(
            urls, self.spec, train,
            resampled=resampled,
            epoch_length=self.epoch_length if resampled else None,
            batch_size=self.batch_size,
            shuffle_buffer=self.shuffle_buffer if train else 0,
            seed=self.seed,
            seek=self.seek,
            decode_threads=self.decode_threads,
            where=f"data.{key}",
        )

    def build_train(self) -> ShardClipStream | None:
        """Random clips from randomly drawn shards (resampled) or each sample once per epoch."""
        return self._stream(self.train_shards, "train_shards", train=True)

    def build_val(self) -> ShardClipStream | None:
        """Every validation sample once, in shard order, with seeded clip positions and crops."""
        return self._stream(self.val_shards, "val_shards", train=False)

    def build_test_sources(self) -> list[AVSource]:
        """Test videos from `test_dir` (folder, file, glob or list)."""
        return [AVSource(p, label=str(p)) for p in resolve_paths(self.test_dir, VIDEO_EXTS, "data.test_dir")]

    def _loader(self, ds, train: bool) -> DataLoader:
        ds.rank, ds.world_size = dist_info(self.trainer)
        check_shard_layout(len(ds.urls), ds.world_size, self.num_workers, ds.resampled, train, ds.where)
        return EpochDataLoader(
            ds,
            batch_size=self.batch_size,
            collate_fn=collate_clips,
            **self.loader_options(),
        )


def check_shard_layout(
    num_shards: int, world_size: int, num_workers: int, resampled: bool, train: bool, what: str
) -> None:
    """Fail when a DDP rank would get no shard; warn when readers (ranks x workers) would sit idle."""
    if resampled:
        return
    readers = world_size * max(1, num_workers)
    if train and num_shards < world_size:
        raise ConfigError(
            f"{what}: {num_shards} shards for {world_size} ranks: a rank with no shard has no batch and "
            "hangs the DDP epoch; write more, smaller shards (shard --max-shard-size) or set "
            "data.resampled=true"
        )
    if num_shards < readers:
        warnings.warn(
            f"{what}: {num_shards} shards for {world_size} ranks x {max(1, num_workers)} workers = {readers} "
            f"readers: {readers - num_shards} readers get no shard and sit idle"
            + (" and ranks may get unequal batch counts" if world_size > 1 else "")
            + "; write more, smaller shards (shard --max-shard-size) or lower data.num_workers",
            ShardWarning,
            stacklevel=2,
        )
    elif train and world_size > 1 and num_shards % world_size:
        warnings.warn(
            f"{what}: {num_shards} shards do not split evenly over {world_size} ranks; unequal batch counts "
            "can stall DDP at the end of an epoch; use data.resampled=true or a multiple of the rank count",
            ShardWarning,
            stacklevel=2,
        )
