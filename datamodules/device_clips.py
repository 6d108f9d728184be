"""`device_clips` datamodule: the training clips and photos decoded once into uint8 tensors on the model's
device, and every training batch cut there with torch ops (no DataLoader workers, no decoding per step).

Training batches are the `stills` recipe's: with probability `video_fraction` a clip of `frames` frames,
every `frame_stride`-th, at a random time and crop of a decoded training video (from `train_shards`),
else a photo (from `train_images`) filmed by the stills camera (pan, zoom, rotation, brightness drift;
device_motion.py). Validation and test are those of `stills`.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vvc_lightning.datamodules.base import dist_info, resolve_paths
from vvc_lightning.datamodules.device_motion import DRAWS, film
from vvc_lightning.datamodules.motion import IMAGE_EXTS, Motion, load_image, shrink
from vvc_lightning.datamodules.openvid import ShardSpec, expand_shards
from vvc_lightning.datamodules.skips import SkippedVideoWarning
from vvc_lightning.datamodules.stills import PathSpec, StillsDataModule
from vvc_lightning.datamodules.streaming import VIDEO_KEYS
from vvc_lightning.datamodules.workers import DEFAULT_TIMEOUT_S
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import register_datamodule
from vvc_lightning.video.video_sources import AVSource, ClipError, ClipSpec

GB = 2**30


def shard_videos(urls: list[str]) -> list[tuple[str, bytes]]:
    """(label, encoded bytes) of every video sample in the shards, in shard order."""
    import webdataset as wds

    out = []
    for url in urls:
        for sample in wds.tarfile_samples([{"url": url}]):
            key = next((k for k in VIDEO_KEYS if k in sample), None)
            if key is not None:
                out.append((f"{sample.get('__key__', '?')} in {url}", sample[key]))
    return out


class ClipBank:
    """Decoded training videos (N,H,W,3) and photos (3,H,W), uint8 on one device; `batch` cuts clips there."""

    def __init__(self, videos: list[torch.Tensor], photos: list[torch.Tensor], spec: ClipSpec, motion: Motion,
                 video_fraction: float) -> None:
        if not videos and not photos:
            raise VVCError("device_clips: no training video or photo; set data.train_shards and/or "
                           "data.train_images")
        if spec.crop_size is None:
            raise ConfigError("data.crop_size must be set for the device_clips datamodule")
        self.videos, self.photos, self.spec, self.motion = videos, photos, spec, motion
        self.video_fraction = video_fraction if videos and photos else float(bool(videos))
        self.device = (videos or photos)[0].device

    @property
    def nbytes(self) -> int:
        """Bytes the bank holds on its device."""
        return sum(t.numel() for t in self.videos + self.photos)

    @classmethod
    def build(cls, shards: list[str], photo_paths: list[Path], spec: ClipSpec, motion: Motion,
              video_fraction: float, device: torch.device | str, max_gb: float = 24.0) -> ClipBank:
        """Decode every training video in `shards` and load every photo, straight onto `device`."""
        device = torch.device(device)
        limit, used, skipped = max_gb * GB, 0, []
        crop = spec.crop_size or 0

        def take(nbytes: int, what: str) -> None:
            nonlocal used
            used += nbytes
            if used > limit:
                raise VVCError(
                    f"device_clips: the decoded training set passes data.bank_max_gb={max_gb:g} GB at "
                    f"{what}; raise data.bank_max_gb or train with data.name=stills"
                )

        videos = []
        for label, data in shard_videos(shards):
            try:
                frames = list(AVSource(data, label=label).iter_frames())
            except ClipError as exc:
                skipped.append(f"{label} ({exc.reason})")
                continue
            if len(frames) < spec.span or min(frames[0].shape[:2]) < crop:
                h, w = frames[0].shape[:2] if frames else (0, 0)
                skipped.append(f"{label} ({len(frames)} frames of {w}x{h}; a clip needs {spec.span} of "
                               f"{crop}x{crop})")
                continue
            take(len(frames) * frames[0].size, label)
            videos.append(torch.from_numpy(np.stack(frames)).to(device))
        if skipped:
            warnings.warn(f"device_clips: skipped {len(skipped)} videos: {'; '.join(skipped[:20])}",
                          SkippedVideoWarning, stacklevel=2)
        photos = []
        for path in photo_paths:
            img = shrink(load_image(path), 4 * crop)  # as the stills datamodule keeps them
            take(img.numel(), str(path))
            photos.append(img.mul(255).round().to(torch.uint8).to(device))
        return cls(videos, photos, spec, motion, video_fraction)

    def batch(self, size: int, gen: torch.Generator) -> torch.Tensor:
        """(size,3,T,c,c) float clips in [-1,1] on the bank's device; the same `gen` state gives the same
        batch."""
        spec, c = self.spec, int(self.spec.crop_size or 0)
        # a fixed number of draws per clip
        u = torch.rand(size, 4 + DRAWS, generator=gen, dtype=torch.float64)
        is_video = (u[:, 0] < self.video_fraction).tolist()
        out = torch.empty(size, 3, spec.frames, c, c, device=self.device)
        vid = [i for i in range(size) if is_video[i]]
        pho = [i for i in range(size) if not is_video[i]]
        if vid:
            clips = []
            for i in vid:
                v = self.videos[min(int(u[i, 1] * len(self.videos)), len(self.videos) - 1)]
                n, h, w = v.shape[:3]
                start = int(u[i, 2] * (n - spec.span + 1))
                top, left = int(u[i, 3] * (h - c + 1)), int(u[i, 4] * (w - c + 1))
                clips.append(v[start : start + spec.span : spec.stride, top : top + c, left : left + c])
            x = torch.stack(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
            out[torch.tensor(vid, device=self.device)] = x
        if pho:
            which = [min(int(u[i, 1] * len(self.photos)), len(self.photos) - 1) for i in pho]
            x = film(self.photos, which, u[pho, 4:], spec.frames, spec.stride, c, self.motion)
            out[torch.tensor(pho, device=self.device)] = x
        return out


def stream_seed(seed: int, rank: int, epoch: int) -> int:
    """The generator seed of one rank's epoch (reproducible, different per rank and epoch)."""
    return random.Random(f"device_clips:{seed}:{rank}:{epoch}").getrandbits(62)


class DeviceClipLoader:
    """An iterable of `batches` training batches per epoch from a ClipBank; each pass is a new epoch."""

    def __init__(self, bank: ClipBank, batch_size: int, batches: int, seed: int = 0, rank: int = 0) -> None:
        self.bank, self.batch_size, self.batches = bank, batch_size, batches
        self.seed, self.rank, self.epoch = seed, rank, 0

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        gen = torch.Generator().manual_seed(stream_seed(self.seed, self.rank, self.epoch))
        self.epoch += 1
        for _ in range(self.batches):
            yield self.bank.batch(self.batch_size, gen)


@register_datamodule("device_clips")
class DeviceClipsDataModule(StillsDataModule):
    """The `stills` recipe with its training set decoded once onto the training device (`bank_max_gb` at
    most) and batches cut there; `device` overrides the trainer's device. Validation/test as `stills`."""

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
        bank_max_gb: float = 24.0,
        device: str | None = None,
        loader_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(
            train_images,
            val_images,
            test_dir,
            train_shards,
            val_shards,
            video_fraction,
            val_clips,
            pan,
            zoom,
            rotate,
            brightness,
            epoch_length,
            shuffle_buffer,
            frames,
            frame_stride,
            crop_size,
            batch_size,
            num_workers,
            seed,
            test_max_frames,
            seek,
            decode_threads,
            loader_timeout,
        )
        if not isinstance(bank_max_gb, int | float) or bank_max_gb <= 0:
            raise ConfigError(f"data.bank_max_gb must be a number > 0, got {bank_max_gb!r}")
        self.bank_max_gb, self.device_name = float(bank_max_gb), device
        self.bank: ClipBank | None = None
        self.save_hyperparameters()

    def target_device(self) -> torch.device:
        """Where the bank lives: `device` when set, else the trainer's device, else the CPU."""
        if self.device_name:
            return torch.device(self.device_name)
        trainer: Any = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def build_bank(self, device: torch.device | str | None = None) -> ClipBank:
        """Decode the training set onto `device` (default: target_device()); kept for later calls."""
        if self.bank is None:
            shards = expand_shards(self.train_shards, "data.train_shards")
            photos = resolve_paths(self.train_images, IMAGE_EXTS, "data.train_images")
            self.bank = ClipBank.build(shards, photos, self.spec, self.motion, self.video_fraction,
                                       device or self.target_device(), self.bank_max_gb)
        return self.bank

    def setup(self, stage: str | None = None) -> None:
        """Check the training paths (the bank itself is built by train_dataloader, on the device)."""
        if stage in (None, "fit"):
            expand_shards(self.train_shards, "data.train_shards")
            resolve_paths(self.train_images, IMAGE_EXTS, "data.train_images")
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self.build_val()
        if stage in (None, "test", "predict"):
            self._test_sources()

    def train_dataloader(self) -> DeviceClipLoader:  # type: ignore[override]
        """(B,3,T,c,c) float clips in [-1,1], already on the training device."""
        rank, world = dist_info(getattr(self, "trainer", None))
        batches = -(-self.epoch_length // (world * self.batch_size))
        return DeviceClipLoader(self.build_bank(), self.batch_size, batches, self.seed, rank)
