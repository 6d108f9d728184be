"""`yuv` datamodule: raw 8-bit YUV 4:2:0 files (HEVC CTC, UVG, MCL-JCV) converted to RGB, for evaluation."""

from __future__ import annotations

from vvc_lightning.datamodules.base import VideoDataModule, resolve_paths, usable_sources
from vvc_lightning.datamodules.clips import ClipDataset
from vvc_lightning.datamodules.workers import DEFAULT_TIMEOUT_S
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import register_datamodule
from vvc_lightning.video.colour import MATRICES, RANGES
from vvc_lightning.video.video_sources import YUVSource

PathSpec = str | list[str] | None


@register_datamodule("yuv")
class YUVDataModule(VideoDataModule):
    """Raw .yuv sequences. Size and fps come from names like 'BasketballDrive_1920x1080_50.yuv' unless
    width/height/fps are given (then they apply to every file). `matrix` (bt709/bt601) and `range`
    (limited/full) say how Y'CbCr becomes RGB. Paths: folder, file, glob or list, as for `folder`."""

    def __init__(
        self,
        test_dir: PathSpec = None,
        train_dir: PathSpec = None,
        val_dir: PathSpec = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        matrix: str = "bt709",
        range: str = "limited",  # the config key users expect
        frames: int = 9,
        frame_stride: int = 3,
        crop_size: int | None = 256,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        test_max_frames: int | None = None,
        epoch_length: int | None = None,
        val_clips_per_video: int = 1,
        loader_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(frames, frame_stride, crop_size, batch_size, num_workers, seed, test_max_frames,
                         loader_timeout)
        if matrix not in MATRICES:
            raise ConfigError(f"data.matrix must be one of {', '.join(MATRICES)}, got {matrix!r}")
        if range not in RANGES:
            raise ConfigError(f"data.range must be one of {', '.join(RANGES)}, got {range!r}")
        if (width is None) != (height is None):
            raise ConfigError("give both data.width and data.height, or neither (then names carry the size)")
        self.test_dir, self.train_dir, self.val_dir = test_dir, train_dir, val_dir
        self.width, self.height, self.fps = width, height, fps
        self.matrix, self.range = matrix, range
        self.epoch_length, self.val_clips_per_video = epoch_length, val_clips_per_video
        self.save_hyperparameters()

    def _sources(self, spec: PathSpec, key: str) -> list[YUVSource]:
        return [
            YUVSource(p, self.width, self.height, self.fps, self.matrix, self.range)
            for p in resolve_paths(spec, (".yuv",), f"data.{key}")
        ]

    def build_train(self) -> ClipDataset | None:
        """Random clips and crops of the training sequences."""
        if self.train_dir is None:
            return None
        items = usable_sources(self._sources(self.train_dir, "train_dir"), self.spec, "data.train_dir")
        return ClipDataset(items, self.spec, True, self.seed, self.epoch_length, where="train")

    def build_val(self) -> ClipDataset | None:
        """Seeded clips and crops, the same on every run."""
        if self.val_dir is None:
            return None
        items = usable_sources(self._sources(self.val_dir, "val_dir"), self.spec, "data.val_dir")
        return ClipDataset(
            items, self.spec, False, self.seed, clips_per_video=self.val_clips_per_video, where="val"
        )

    def build_test_sources(self) -> list[YUVSource]:
        """Every test sequence, sorted by path; the file size is checked against the frame size here."""
        sources = self._sources(self.test_dir, "test_dir")
        for s in sources:
            s.count_frames()
        return sources
