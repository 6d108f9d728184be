"""`folder` datamodule: video files (mp4/avi/mkv/y4m/...) in folders, for fine-tuning and evaluation."""

from __future__ import annotations

from vvc_lightning.datamodules.base import VIDEO_EXTS, VideoDataModule, resolve_paths, usable_sources
from vvc_lightning.datamodules.clips import ClipDataset
from vvc_lightning.datamodules.workers import DEFAULT_TIMEOUT_S
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import register_datamodule
from vvc_lightning.video.video_sources import AV_MATRICES, AVSource

PathSpec = str | list[str] | None


@register_datamodule("folder")
class FolderDataModule(VideoDataModule):
    """Clips from video files. Each of train_dir/val_dir/test_dir is a folder (searched recursively),
    a single file, a glob, 'asset:NAME' (a bundled clip), or a list of these; any may be None.
    `matrix` (None, 'bt709', 'bt601') is how Y'CbCr becomes RGB: None follows each file's tag, and
    FFmpeg treats untagged files (most y4m) as BT.601."""

    def __init__(
        self,
        train_dir: PathSpec = None,
        val_dir: PathSpec = None,
        test_dir: PathSpec = None,
        frames: int = 9,
        frame_stride: int = 3,
        crop_size: int | None = 256,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        test_max_frames: int | None = None,
        epoch_length: int | None = None,
        val_clips_per_video: int = 1,
        seek: bool = True,
        matrix: str | None = None,
        loader_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(frames, frame_stride, crop_size, batch_size, num_workers, seed, test_max_frames,
                         loader_timeout)
        if epoch_length is not None and (not isinstance(epoch_length, int) or epoch_length < 1):
            raise ConfigError(f"data.epoch_length must be a positive integer or null, got {epoch_length!r}")
        if not isinstance(val_clips_per_video, int) or val_clips_per_video < 1:
            raise ConfigError(
                f"data.val_clips_per_video must be an integer >= 1, got {val_clips_per_video!r}"
            )
        self.train_dir, self.val_dir, self.test_dir = train_dir, val_dir, test_dir
        self.epoch_length, self.val_clips_per_video, self.seek = epoch_length, val_clips_per_video, seek
        if matrix not in (None, *AV_MATRICES):
            raise ConfigError(f"data.matrix must be null (the file's tag) or one of {', '.join(AV_MATRICES)}")
        self.matrix = matrix
        self.save_hyperparameters()

    def _sources(self, spec: PathSpec, key: str) -> list[AVSource]:
        return [
            AVSource(p, label=str(p), matrix=self.matrix)
            for p in resolve_paths(spec, VIDEO_EXTS, f"data.{key}")
        ]

    def build_train(self) -> ClipDataset | None:
        """Random clips and crops; `epoch_length` clips per epoch (default: one per video)."""
        if self.train_dir is None:
            return None
        items = usable_sources(self._sources(self.train_dir, "train_dir"), self.spec, "data.train_dir")
        return ClipDataset(
            items, self.spec, True, self.seed, self.epoch_length, seek=self.seek, where="train"
        )

    def build_val(self) -> ClipDataset | None:
        """Seeded clips and crops, the same on every run."""
        if self.val_dir is None:
            return None
        items = usable_sources(self._sources(self.val_dir, "val_dir"), self.spec, "data.val_dir")
        return ClipDataset(
            items,
            self.spec,
            False,
            self.seed,
            clips_per_video=self.val_clips_per_video,
            seek=self.seek,
            where="val",
        )

    def build_test_sources(self) -> list[AVSource]:
        """Every test file, sorted by path."""
        return self._sources(self.test_dir, "test_dir")

