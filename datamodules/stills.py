"""`stills` datamodule: still photographs filmed by a synthetic moving camera, optionally mixed with real
video clips from webdataset shards (as `openvid`), for training when real footage is scarce."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from vvc_lightning.datamodules.base import VideoDataModule
from vvc_lightning.datamodules.clips import process_rng
from vvc_lightning.datamodules.motion import IMAGE_EXTS, Motion, load_image, motion_clip, shrink
from vvc_lightning.datamodules.openvid import OpenVidDataModule, ShardSpec
from vvc_lightning.datamodules.streaming import ShardClipStream, worker_info
from vvc_lightning.datamodules.workers import DEFAULT_TIMEOUT_S
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import register_datamodule

PathSpec = str | list[str] | None


class StillClips(Dataset):
    """Clips (3,T,c,c) in [-1,1] of photos under random camera motion: item i of a training epoch is a
    random photo and motion; validation item i is photo i % n with a motion seeded by (seed, name, i)."""

    def __init__(self, paths: list[Path], frames: int, stride: int, crop: int, motion: Motion, train: bool,
                 seed: int = 0, length: int | None = None) -> None:
        if not paths:
            raise VVCError("stills: no photo given")
        self.names = [p.stem for p in paths]
        self.images = [shrink(load_image(p), 4 * crop) for p in paths]
        self.frames, self.stride, self.crop, self.motion = frames, stride, crop, motion
        self.train, self.seed, self.length = train, seed, length or len(paths)

    def __len__(self) -> int:
        return self.length

    def sample(self, rng: random.Random) -> torch.Tensor:
        """A random photo under a random motion."""
        img = self.images[rng.randrange(len(self.images))]
        return motion_clip(img, self.frames, self.stride, self.crop, self.motion, rng)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.train:
            return self.sample(process_rng(self, self.seed))
        n = len(self.images)
        rng = random.Random(f"{self.seed}:{self.names[i % n]}:{i // n}")
        return motion_clip(self.images[i % n], self.frames, self.stride, self.crop, self.motion, rng)


class MixedClips(IterableDataset):
    """Real video clips (a resampled shard stream) with probability `video_fraction`, else photo clips.
    Epoch length, DDP rank/worker split and reseeding follow the shard stream's rules."""

    def __init__(
        self, stills: StillClips, videos: ShardClipStream, video_fraction: float, seed: int = 0
    ) -> None:
        super().__init__()
        self.stills, self.videos, self.video_fraction, self.seed = stills, videos, video_fraction, seed

    # The datamodule and EpochDataLoader talk to the shard stream through these.
    def __getattr__(self, name: str):
        if name in ("urls", "resampled", "where", "rank", "world_size", "epoch", "skips"):
            return getattr(self.__dict__["videos"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name in ("rank", "world_size", "epoch"):
            setattr(self.videos, name, value)
        else:
            super().__setattr__(name, value)

    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self):
        worker, num_workers = worker_info()
        v = self.videos
        rng = random.Random(f"mix:{self.seed}:{torch.initial_seed()}:{v.rank}:{worker}:{v.epoch}")
        videos = iter(v)
        for _ in range(v.worker_quota(worker, num_workers)):
            clip = next(videos, None) if rng.random() < self.video_fraction else None
            yield clip if clip is not None else self.stills.sample(rng)


@register_datamodule("stills")
class StillsDataModule(OpenVidDataModule):
    """Training clips: photos in `train_images` (folders, files, globs) under synthetic pan, zoom,
    rotation and brightness drift, mixed with real clips from `train_shards` at `video_fraction`.
    Validation: `val_shards` (real clips), else `val_clips` seeded clips of `val_images`. Test: `test_dir`
    videos, as `openvid`."""

    def __init__(
        self,
        train_images: PathSpec = None,
        val_images: PathSpec = None,
        test_dir: PathSpec = None,
        train_shards: ShardSpec = None,
        val_shards: ShardSpec = None,
        video_fraction: float = 0.5,
        val_clips: int = 8,
        pan: float = 0.5,
        zoom: float = 0.15,
        rotate: float = 5.0,
        brightness: float = 0.1,
        epoch_length: int = 10000,
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
        super().__init__(train_shards, val_shards, test_dir, epoch_length, True, shuffle_buffer, frames,
                         frame_stride, crop_size, batch_size, num_workers, seed, test_max_frames, seek,
                         decode_threads, loader_timeout)
        if crop_size is None:
            raise ConfigError("data.crop_size must be set for the stills datamodule (photos differ in size)")
        if not isinstance(video_fraction, int | float) or not 0 <= video_fraction <= 1:
            raise ConfigError(f"data.video_fraction must be within [0, 1], got {video_fraction!r}")
        if not isinstance(val_clips, int) or val_clips < 1:
            raise ConfigError(f"data.val_clips must be an integer >= 1, got {val_clips!r}")
        if train_images is None and train_shards is None:
            raise ConfigError("the stills datamodule needs data.train_images (photos) and/or "
                              "data.train_shards")
        self.train_images, self.val_images = train_images, val_images
        self.video_fraction, self.val_clips = float(video_fraction), val_clips
        self.motion = Motion(pan, zoom, rotate, brightness)
        self.save_hyperparameters()

    def _stills(self, spec: PathSpec, key: str, train: bool) -> StillClips | None:
        from vvc_lightning.datamodules.base import resolve_paths

        paths = resolve_paths(spec, IMAGE_EXTS, f"data.{key}")
        if not paths:
            return None
        length = self.epoch_length if train else self.val_clips
        return StillClips(
            paths,
            self.frames,
            self.frame_stride,
            self.crop_size,
            self.motion,
            train,
            self.seed,
            max(length, len(paths)) if not train else length,
        )

    def build_train(self) -> Dataset | None:
        """Photo clips, mixed with shard clips when `train_shards` is set (`video_fraction` of them)."""
        stills = self._stills(self.train_images, "train_images", True)
        videos = super().build_train()
        if videos is None:
            return stills
        if stills is None or self.video_fraction >= 1:
            return videos
        return MixedClips(stills, videos, self.video_fraction, self.seed)

    def build_val(self) -> Dataset | None:
        """Real clips from `val_shards`, else seeded photo clips."""
        videos = super().build_val()
        return videos if videos is not None else self._stills(self.val_images, "val_images", False)

    def _loader(self, ds, train: bool) -> DataLoader:
        if isinstance(ds, StillClips):
            return VideoDataModule._loader(self, ds, train)
        return super()._loader(ds, train)
