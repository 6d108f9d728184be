"""Map-style datasets over video sources: random or seeded clips (train/val) and whole sequences (test)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vvc_lightning.datamodules.skips import SkipCounter
from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import frames_to_tensor
from vvc_lightning.video.video_sources import ClipError, ClipPos, ClipSpec

MAX_TRIES = 20


def process_rng(owner: Any, seed: int) -> random.Random:
    """An RNG private to this process: differs per DDP rank, dataloader worker and epoch, reproducible."""
    pid = os.getpid()
    if getattr(owner, "_rng_pid", None) != pid:
        info = torch.utils.data.get_worker_info()
        rank = getattr(owner, "rank", 0)
        owner._rng = random.Random(f"{seed}:{rank}:{torch.initial_seed()}:{info.id if info else -1}")
        owner._rng_pid = pid
    return owner._rng


def random_pos(rng: random.Random) -> ClipPos:
    """A uniformly random clip position."""
    return ClipPos(rng.random(), rng.random(), rng.random())


def seeded_pos(seed: int, key: str, k: int = 0) -> ClipPos:
    """The position of clip `k` of video `key`: the same on every run, machine and worker."""
    return random_pos(random.Random(f"{seed}:{key}:{k}"))


class ClipDataset(Dataset):
    """Clips (3,T,h,w) in [-1,1] from (source, decoded frame count) pairs.

    Training: item i is a random clip of video i % n (`length` items per epoch, default one per video);
    a clip that fails is counted, warned about, and replaced by one from another video.
    Validation: `clips_per_video` seeded clips of each video, identical on every run.
    """

    def __init__(
        self,
        items: list[tuple[Any, int]],
        spec: ClipSpec,
        train: bool,
        seed: int = 0,
        length: int | None = None,
        clips_per_video: int = 1,
        seek: bool = True,
        where: str = "clips",
    ) -> None:
        if not items:
            raise VVCError(f"{where}: no usable video")
        self.items, self.spec, self.train, self.seed = items, spec, train, seed
        self.length, self.clips_per_video, self.seek = length, clips_per_video, seek
        self.skips = SkipCounter(where)

    def __len__(self) -> int:
        if self.train:
            return self.length or len(self.items)
        return len(self.items) * self.clips_per_video

    def _read(self, index: int, pos: ClipPos) -> np.ndarray:
        src, n = self.items[index]
        return src.read_clip(pos.start(n, self.spec.span), self.spec, pos, self.seek)

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self.items)
        if not self.train:
            src, _ = self.items[i % n]
            try:
                return frames_to_tensor(self._read(i % n, seeded_pos(self.seed, src.name, i // n)))
            except ClipError as exc:
                raise VVCError(f"validation video {src.label}: {exc}") from exc
        rng = process_rng(self, self.seed)
        index = i % n
        for _ in range(MAX_TRIES):
            try:
                clip = self._read(index, random_pos(rng))
            except ClipError as exc:
                self.skips.skip(self.items[index][0].label, exc.reason, str(exc))
                index = rng.randrange(n)
                continue
            self.skips.ok()
            return frames_to_tensor(clip)
        raise VVCError(f"training clips: {MAX_TRIES} videos in a row gave no clip ({self.skips.describe()})")


class TestSequence:
    """One test sequence, read lazily: `iter_frames()` decodes it again on each call, one frame at a time, so
    `test` never holds the whole sequence (its memory does not grow with the length)."""

    def __init__(self, source: Any, max_frames: int | None = None) -> None:
        self.source, self.max_frames = source, max_frames
        self.name, self.label = source.name, source.label

    def iter_frames(self) -> Iterator[np.ndarray]:
        """RGB uint8 frames (H,W,3) in order, at most `max_frames`; a sequence without frames is an error."""
        empty = True
        for frame in self.source.iter_frames(self.max_frames):
            empty = False
            yield frame
        if empty:
            raise VVCError(f"test video {self.label} holds no decodable frame")

    def frames(self) -> np.ndarray:
        """The whole sequence as uint8 (N,H,W,3) (for small uses and tests; `test` streams instead)."""
        return np.stack(list(self.iter_frames()))


def collate_sequences(batch: list[TestSequence]) -> list[TestSequence]:
    """A test batch is the list of its (lazy) sequences."""
    return list(batch)


class SequenceDataset(Dataset):
    """Whole test sequences, every frame in order (at most `max_frames`), as lazy `TestSequence`s."""

    def __init__(self, sources: list, max_frames: int | None = None) -> None:
        self.sources, self.max_frames = sources, max_frames

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> TestSequence:
        return TestSequence(self.sources[i], self.max_frames)
