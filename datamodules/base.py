"""Shared base LightningDataModule: common options, path resolution, frame probing, loaders, collation."""

from __future__ import annotations

import glob
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from vvc_lightning.datamodules.clips import SequenceDataset, collate_sequences
from vvc_lightning.datamodules.skips import SkippedVideoWarning
from vvc_lightning.datamodules.workers import (
    DEFAULT_TIMEOUT_S,
    WatchedDataLoader,
    check_timeout,
    loader_options,
)
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.video.video_sources import AVSource, ClipError, ClipSpec, YUVSource

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".y4m", ".mov", ".webm", ".m4v")
ASSET_PREFIX = "asset:"


def assets_dir() -> Path:
    """Folder of the bundled quickstart clips (installed package or source tree)."""
    import vvc_lightning

    return Path(vvc_lightning.__file__).resolve().parent / "assets"


def resolve_paths(spec: str | Path | list | tuple | None, exts: tuple[str, ...], what: str) -> list[Path]:
    """Files named by a folder (searched recursively), a file, a glob, 'asset:NAME', or a list of these."""
    if spec is None:
        return []
    if isinstance(spec, list | tuple) or type(spec).__name__ == "ListConfig":
        out: list[Path] = []
        for s in spec:
            out += [p for p in resolve_paths(s, exts, what) if p not in out]
        return out
    text = os.path.expanduser(str(spec))
    if text.startswith(ASSET_PREFIX):
        text = str(assets_dir() / text[len(ASSET_PREFIX) :])
    kinds = ", ".join(exts)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in exts)
        if not files:
            raise VVCError(f"{what}: no {kinds} file matches '{spec}'; check the pattern")
        return files
    path = Path(text)
    if not path.exists():
        raise VVCError(f"{what}: '{spec}' does not exist; give an existing folder, file or glob")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
        )
        if not files:
            raise VVCError(f"{what}: folder '{spec}' holds no {kinds} file")
        return files
    if path.suffix.lower() not in exts:
        raise VVCError(f"{what}: '{spec}' is not a {kinds} file")
    return [path]


_PROBE_CACHE: dict[tuple, tuple[int, int, int]] = {}


def probe(source: AVSource | YUVSource) -> tuple[int, int, int]:
    """(decoded frame count, height, width) of a source, cached per file version."""
    key = None
    if isinstance(source, YUVSource):
        return source.count_frames(), source.height, source.width
    if isinstance(source.src, str):
        st = os.stat(source.src)
        key = (source.src, st.st_size, st.st_mtime_ns)
        if key in _PROBE_CACHE:
            return _PROBE_CACHE[key]
    n, h, w = source.probe()
    if key is not None:
        _PROBE_CACHE[key] = (n, h, w)
    return n, h, w


def usable_sources(sources: list, spec: ClipSpec, what: str) -> list[tuple[Any, int]]:
    """(source, frames) of the sources long and large enough for `spec`; warns naming the others."""

    def check(src):
        try:
            n, h, w = probe(src)
        except ClipError as exc:
            return src, None, exc.reason
        if n < spec.span:
            return src, None, f"{n} frames < {spec.span} needed"
        if spec.crop_size is not None and min(h, w) < spec.crop_size:
            return src, None, f"{w}x{h} smaller than crop {spec.crop_size}"
        return src, n, ""

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(check, sources))
    good = [(s, n) for s, n, _ in results if n is not None]
    bad = [f"{s.label} ({why})" for s, n, why in results if n is None]
    if bad:
        warnings.warn(
            f"{what}: skipped {len(bad)} of {len(sources)} videos: {'; '.join(bad[:20])}"
            + (" ..." if len(bad) > 20 else ""),
            SkippedVideoWarning,
            stacklevel=2,
        )
    if not good:
        raise VVCError(
            f"{what}: no video can give a clip of {spec.frames} frames at stride {spec.stride} "
            f"({spec.span} frames) and crop {spec.crop_size}; lower data.frames, data.frame_stride or "
            "data.crop_size, or add longer/larger videos"
        )
    return good


def collate_clips(batch: list[torch.Tensor]) -> torch.Tensor:
    """Stack (3,T,H,W) clips into (B,3,T,H,W); clips of different sizes fail with a clear message."""
    shapes = {tuple(x.shape) for x in batch}
    if len(shapes) > 1:
        raise VVCError(
            f"clips of different sizes in one batch ({sorted(shapes)}); set data.crop_size or "
            "data.batch_size=1"
        )
    return torch.stack(batch)


def dist_info(trainer: Any = None) -> tuple[int, int]:
    """(global rank, world size) from the trainer, torch.distributed, or RANK/WORLD_SIZE; else (0, 1)."""
    if trainer is not None and getattr(trainer, "world_size", None):
        return int(trainer.global_rank), int(trainer.world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


class EpochDataLoader(WatchedDataLoader):
    """A DataLoader that tells its IterableDataset the epoch (the same on every rank) before each pass."""

    def __iter__(self):
        if hasattr(self.dataset, "epoch"):
            self.dataset.epoch += 1
        return super().__iter__()


class VideoDataModule(pl.LightningDataModule):
    """Common options and loaders; subclasses build the train/val datasets and the test sources."""

    def __init__(
        self,
        frames: int = 9,
        frame_stride: int = 3,
        crop_size: int | None = 256,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        test_max_frames: int | None = None,
        loader_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__()
        for key, value, low in (("frames", frames, 1), ("frame_stride", frame_stride, 1),
                                ("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
        if crop_size is not None and (not isinstance(crop_size, int) or crop_size < 1):
            raise ConfigError("data.crop_size must be a positive integer or null (full frame), got "
                              f"{crop_size!r}")
        if test_max_frames is not None and (not isinstance(test_max_frames, int) or test_max_frames < 1):
            raise ConfigError("data.test_max_frames must be a positive integer or null, got "
                              f"{test_max_frames!r}")
        self.frames, self.frame_stride, self.crop_size = frames, frame_stride, crop_size
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.test_max_frames = test_max_frames
        self.loader_timeout = check_timeout(loader_timeout)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._test: list | None = None

    @property
    def spec(self) -> ClipSpec:
        """How training and validation clips are cut."""
        return ClipSpec(self.frames, self.frame_stride, self.crop_size)

    # ----------------------------------------------------------------- what subclasses provide
    def build_train(self) -> Dataset | None:
        """The training dataset, or None when not configured."""
        return None

    def build_val(self) -> Dataset | None:
        """The validation dataset, or None when not configured."""
        return None

    def build_test_sources(self) -> list:
        """Sources of the test sequences, in order (empty when not configured)."""
        return []

    # ----------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        """Resolve paths and count frames for the stage (a missing path fails here, naming it)."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.build_train()
            if self.train_set is None and stage == "fit":
                raise ConfigError(f"datamodule '{self._name()}' has no training data: set its train path")
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self.build_val()
        if stage in (None, "test", "predict"):
            self._test_sources()

    def _name(self) -> str:
        return getattr(self, "registry_name", type(self).__name__)

    def _loader(self, ds: Dataset, train: bool) -> DataLoader:
        iterable = isinstance(ds, IterableDataset)
        shuffle = train and not iterable
        drop_last = train and not iterable and len(ds) >= self.batch_size
        return EpochDataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            collate_fn=collate_clips,
            **self.loader_options(),
        )

    def loader_options(self, workers: int | None = None) -> dict[str, Any]:
        """Worker count, start method, persistence and watchdog timeout of this datamodule's loaders."""
        return loader_options(self.num_workers if workers is None else workers, self.loader_timeout)

    def train_dataloader(self) -> DataLoader:
        """(B,3,T,H,W) float clips in [-1,1], random position and crop."""
        if self.train_set is None:
            self.setup("fit")
        # Map-style training sets draw random clips: give each DDP rank its own random stream.
        self.train_set.rank = dist_info(getattr(self, "trainer", None))[0]
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """(B,3,T,H,W) float clips in [-1,1], the same clips and crops on every run; [] when not
        configured."""
        if self.val_set is None:
            self.val_set = self.build_val()
        if self.val_set is None:
            return []
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        """One whole sequence per batch: a list of one lazy TestSequence (every frame in order, at most
        test_max_frames), read as `test` goes."""
        sources = self._test_sources()
        if not sources:
            raise ConfigError(f"datamodule '{self._name()}' has no test data: set data.test_dir")
        workers = min(self.num_workers, 1)  # whole sequences are large: decode one ahead at most
        options = self.loader_options(workers)
        options.pop("persistent_workers", None)  # one pass
        return WatchedDataLoader(
            SequenceDataset(sources, self.test_max_frames),
            batch_size=1,
            collate_fn=collate_sequences,
            shuffle=False,
            prefetch_factor=1 if workers else None,
            **options,
        )

    def _test_sources(self) -> list:
        if self._test is None:
            self._test = self.build_test_sources()
        return self._test

    @property
    def test_names(self) -> list[str]:
        """Names (file stems) of the test sequences, in test-loader order."""
        return [s.name for s in self._test_sources()]

    @property
    def test_fps(self) -> list[float]:
        """Frame rates of the test sequences, in test-loader order."""
        return [s.fps() for s in self._test_sources()]

    @property
    def test_sources(self) -> list:
        """The test sequence readers (AVSource / YUVSource), in order."""
        return self._test_sources()


__all__ = ["VIDEO_EXTS", "AVSource", "VideoDataModule", "YUVSource", "collate_clips",
           "dist_info", "resolve_paths", "usable_sources"]
