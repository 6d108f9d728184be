"""The Python API: `vvc_lightning.load(spec)` gives a `Codec` that compresses frames or video files to .vvc
bytes and back, with the same bytes as the `compress` / `decompress` commands.

    codec = vvc_lightning.load("vvc-lean-vr")
    data = codec.compress(frames, quality=3.5)     # uint8 (T, H, W, 3) array, or a video path
    frames = codec.decompress(data)                # uint8 (T, H, W, 3)
    codec.compress_file("in.mp4", "out.vvc", quality=3.5)   # long videos, streamed
    for frame in codec.decompress_iter(data): ...            # bounded memory
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vvc_lightning.codec.pipeline.video_codec import VideoCodec, read_bitstream_file
from vvc_lightning.errors import VVCError
from vvc_lightning.loader import load as load_model
from vvc_lightning.model import CompressionModel

DEFAULT_FPS = 25.0  # frames per second recorded for an array given without `fps` (the CLI's default)
# Options of the video codec a Codec takes as keywords (quality is given per call).
OPTIONS = tuple(
    p for p in inspect.signature(VideoCodec.__init__).parameters if p not in ("self", "model", "quality")
)


def video_codec(model: CompressionModel, quality: float | None = None, **options: Any) -> VideoCodec:
    """The VideoCodec of `model` at `quality` with `options` (GoP length: `gop`, else the model's own)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise VVCError(f"unknown codec option '{unknown[0]}'; the options are {', '.join(OPTIONS)}")
    gop = options.pop("gop", None)
    return VideoCodec(
        model, gop=model.gop if gop is None else gop, quality=model.check_quality(quality), **options
    )


def load_video_codec(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", gop: int | None = None, **options: Any
) -> VideoCodec:
    """The VideoCodec of the model `path` names, its `quality` among `options` (the `zoo.load_codec` form)."""
    quality = options.pop("quality", None)
    return video_codec(load_model(path, map_location=map_location), quality, gop=gop, **options)


class Codec:
    """A loaded model as a video codec; `options` are those of the video codec (gop, overlap, theta, batch,
    tile, tile_overlap, max_memory, threads, ...). `quality` of a variable-rate model is any real number in
    [0, qualities - 1], higher = more bits; None codes at its highest quality."""

    def __init__(self, model: CompressionModel, **options: Any) -> None:
        self.model = model
        self.options = dict(options)
        self._codecs: dict[float | None, VideoCodec] = {}
        self._codec(None)  # checks the options now, not at the first frame

    def _codec(self, quality: float | None) -> VideoCodec:
        q = self.model.check_quality(quality)
        if q not in self._codecs:
            self._codecs[q] = video_codec(self.model, q, **self.options)
        return self._codecs[q]

    @property
    def qualities(self) -> int:
        """Number of qualities of a variable-rate model (0: fixed rate, give quality=None)."""
        return self.model.qualities

    # ------------------------------------------------------------------------------ compress
    def compress(
        self, video: np.ndarray | str | os.PathLike, quality: float | None = None, fps: float | None = None
    ) -> bytes:
        """.vvc bytes of a uint8 (T, H, W, 3) RGB array or a video file (fps: `fps`, else the file's, else
        DEFAULT_FPS)."""
        codec = self._codec(quality)
        if isinstance(video, (str, os.PathLike)):
            from vvc_lightning.video.video_io import iter_video, video_fps

            path = _existing(video)
            return codec.encode_frames(iter_video(path), fps if fps is not None else video_fps(path))
        frames = _checked_frames(video)
        return codec.encode_frames(iter(frames), DEFAULT_FPS if fps is None else fps, frames.shape[0])

    def compress_file(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        quality: float | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> dict[str, Any]:
        """Compress a video file to a .vvc file, streamed (memory does not grow with its length)."""
        return self._codec(quality).encode_file(_existing(src), dst, max_frames=max_frames, fps=fps)

    # ---------------------------------------------------------------------------- decompress
    def decompress(
        self, data: bytes | str | os.PathLike, frames: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The uint8 (T, H, W, 3) frames of .vvc bytes or a .vvc file (only frames [a, b) when given)."""
        return self._codec(None).decode(_bitstream(data), frames).frames

    def decompress_iter(
        self, data: bytes | str | os.PathLike, frames: tuple[int, int] | None = None
    ) -> Iterator[np.ndarray]:
        """The uint8 (H, W, 3) frames of .vvc bytes or a .vvc file, one by one, a few GoPs at a time."""
        return self._codec(None).decode_frames(_bitstream(data), frames)

    def decompress_file(
        self, src: str | os.PathLike, dst: str | os.PathLike, frames: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """Decompress a .vvc file to a video file (.mp4, .mkv, .y4m, .yuv) or a PNG folder, streamed."""
        return self._codec(None).decode_file(src, dst, frames)


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise VVCError(f"video '{p}' does not exist or is not a file")
    return p


def _bitstream(data: bytes | str | os.PathLike) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        return read_bitstream_file(data)
    raise VVCError(f"data must be .vvc bytes or the path of a .vvc file, got {type(data).__name__}")


def _checked_frames(video: Any) -> np.ndarray:
    """`video` as a uint8 (T, H, W, 3) array, or a one-line VVCError naming what it is."""
    if isinstance(video, torch.Tensor) or not isinstance(video, (np.ndarray, Iterable)):
        raise VVCError(
            f"video must be a uint8 (T, H, W, 3) numpy array or a video file path, got {type(video).__name__}"
        )
    frames = np.asarray(video)
    if frames.dtype != np.uint8:
        raise VVCError(
            f"video must hold uint8 RGB values (0-255), got {frames.dtype}; convert it, e.g. "
            "(x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise VVCError(f"video must be a (T, H, W, 3) array of RGB frames, got shape {tuple(frames.shape)}")
    return frames


def load(spec: str | os.PathLike, device: str | torch.device = "cpu", **options: Any) -> Codec:
    """A Codec of the model `spec` names (any spec `vvc_lightning.loader.load` takes: a shipped model's name,
    zoo:NAME, a `fit` checkpoint, an exported .safetensors, a released VAE), on `device`; `options` go to
    the video codec (gop, overlap, theta, batch, tile, max_memory, threads, ...)."""
    return Codec(load_model(spec, map_location=device), **options)
