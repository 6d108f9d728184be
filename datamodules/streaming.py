"""Clips streamed from webdataset tar shards: split by rank and worker, shuffled, resampled or exact."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import IterableDataset

from vvc_lightning.datamodules.clips import random_pos, seeded_pos
from vvc_lightning.datamodules.skips import SkipCounter
from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import frames_to_tensor
from vvc_lightning.video.video_sources import AVSource, ClipError, ClipSpec

VIDEO_KEYS = ("mp4", "mkv", "webm", "avi", "mov", "m4v", "y4m", "video")


def split_by_node(urls: list[str], rank: int, world_size: int) -> list[str]:
    """This rank's shards (the same rule as webdataset.split_by_node, with the rank given explicitly)."""
    return urls[rank::world_size]


def split_by_worker(urls: list[str]) -> list[str]:
    """This dataloader worker's shards (webdataset.split_by_worker)."""
    return list(wds.split_by_worker(urls))


def worker_info() -> tuple[int, int]:
    """(worker id, number of workers) of the current dataloader process."""
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class ShardClipStream(IterableDataset):
    """Clips (3,T,h,w) in [-1,1] from shards of video + JSON samples (as written by `vvc_lightning shard`).

    resampled=True: each worker draws shards at random without end; an epoch is `epoch_length` clips in
    total over all ranks (whole batches, the same count on every rank). resampled=False: every sample of
    every shard exactly once per epoch, shards split by rank then worker. Clips that are short, too small
    or do not decode are skipped and counted in warnings.
    """

    def __init__(
        self,
        urls: list[str],
        spec: ClipSpec,
        train: bool,
        resampled: bool = True,
        epoch_length: int | None = None,
        batch_size: int = 1,
        shuffle_buffer: int = 100,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        seek: bool = True,
        decode_threads: int = 0,
        with_keys: bool = False,
        where: str = "shards",
    ) -> None:
        super().__init__()
        if not urls:
            raise VVCError(f"{where}: no shard given")
        if resampled and not epoch_length:
            raise VVCError(f"{where}: resampled streaming needs data.epoch_length (clips per epoch)")
        self.urls, self.spec, self.train, self.resampled = list(urls), spec, train, resampled
        self.epoch_length, self.batch_size, self.shuffle_buffer = epoch_length, batch_size, shuffle_buffer
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.seek, self.decode_threads, self.with_keys, self.where = seek, decode_threads, with_keys, where
        self.epoch = 0  # set by EpochDataLoader before each pass; the same on every rank
        self._iters = 0  # passes over this copy (persistent workers)
        self.skips: SkipCounter | None = None

    # ------------------------------------------------------------------ sizes
    def rank_batches(self) -> int:
        """Batches per rank per epoch in resampled mode."""
        return math.ceil(self.epoch_length / (self.world_size * self.batch_size))

    def worker_quota(self, worker: int, num_workers: int) -> int:
        """Clips this worker yields per epoch in resampled mode (whole batches)."""
        nb = self.rank_batches()
        return (nb // num_workers + (worker < nb % num_workers)) * self.batch_size

    def __len__(self) -> int:
        if not self.resampled:
            raise TypeError("a non-resampled shard stream has no known length")
        return self.rank_batches() * self.batch_size

    # ------------------------------------------------------------------ iteration
    def _shard_order(self, worker: int, num_workers: int, skips: SkipCounter) -> Iterator[dict[str, str]]:
        if self.resampled:
            rng = random.Random(
                f"{self.seed}:{torch.initial_seed()}:{self.rank}:{worker}:{self.epoch}:{self._iters}"
            )
            limit = max(1000, 10 * len(self.urls), 2 * self.shuffle_buffer)
            last_ok, idle = -1, 0
            while True:
                if skips.ok_count != last_ok:
                    last_ok, idle = skips.ok_count, 0
                idle += 1
                if idle > limit:
                    raise VVCError(
                        f"{self.where}: read {limit} shards without one usable clip ({skips.describe()}); "
                        "check the shard paths and contents"
                    )
                yield {"url": rng.choice(self.urls)}
        urls = list(self.urls)
        if self.train:
            random.Random(f"{self.seed}:{self.epoch}:{self._iters}").shuffle(urls)  # same order on every rank
        mine = split_by_node(urls, self.rank, self.world_size)
        for url in mine[worker::num_workers]:
            yield {"url": url}

    def _clip(self, sample: dict[str, Any], rng: random.Random, skips: SkipCounter):
        key = sample.get("__key__", "?")
        label = f"{key} in {sample.get('__url__', '?')}"
        vkey = next((k for k in VIDEO_KEYS if k in sample), None)
        if vkey is None:
            skips.skip(
                label, "no video in sample", f"keys {sorted(k for k in sample if not k.startswith('__'))}"
            )
            return None
        try:
            meta = json.loads(sample["json"]) if "json" in sample else {}
        except (ValueError, UnicodeDecodeError):
            meta = {}
        src = AVSource(sample[vkey], label=label, threads=self.decode_threads)
        try:
            n = int(meta["frames"]) if isinstance(meta.get("frames"), int) else src.count_frames()
            if n < self.spec.span:
                raise ClipError("too short", f"{n} frames < {self.spec.span} needed")
            pos = random_pos(rng) if self.train else seeded_pos(self.seed, key)
            clip = src.read_clip(pos.start(n, self.spec.span), self.spec, pos, self.seek)
        except ClipError as exc:
            skips.skip(label, exc.reason, str(exc))
            return None
        except Exception as exc:  # a damaged file must never stop training
            skips.skip(label, "does not decode", f"{type(exc).__name__}: {exc}")
            return None
        skips.ok()
        tensor = frames_to_tensor(clip)
        return (tensor, key) if self.with_keys else tensor

    def __iter__(self):
        self._iters += 1
        worker, num_workers = worker_info()
        skips = SkipCounter(f"{self.where} (rank {self.rank}, worker {worker})")
        self.skips = skips
        rng = random.Random(
            f"{self.seed}:{torch.initial_seed()}:{self.rank}:{worker}:{self.epoch}:{self._iters}"
        )
        samples = wds.tarfile_samples(self._shard_order(worker, num_workers, skips), handler=skips.handler)
        if self.train and self.shuffle_buffer > 1:
            samples = wds.filters._shuffle(
                samples, self.shuffle_buffer, min(self.shuffle_buffer, 100), rng=rng
            )
        quota = self.worker_quota(worker, num_workers) if self.resampled else None
        if quota == 0:
            return
        done = 0
        for sample in samples:
            clip = self._clip(sample, rng, skips)
            if clip is None:
                continue
            yield clip
            done += 1
            if quota is not None and done >= quota:
                break
        skips.report()
