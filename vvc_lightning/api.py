"""The Python API: `vvc_lightning.load(spec)` gives a `Codec` that compresses frames or video files to .vvc
bytes and back, with the same bytes as the `compress` / `decompress` commands.

    codec = vvc_lightning.load("vvc-lean-vr")
    data = codec.compress(frames, quality=3.5)     # uint8 (T, H, W, 3) array, or a video path
    frames = codec.decompress(data)                # uint8 (T, H, W, 3)
    codec.compress_file("in.mp4", "out.vvc", quality=3.5)   # long videos, streamed
    for frame in codec.decompress_iter(data): ...            # bounded memory
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vvc_lightning.codec.pipeline import files
from vvc_lightning.codec.pipeline.container import check_fps
from vvc_lightning.codec.pipeline.gop import check_frame_range
from vvc_lightning.codec.pipeline.options import CodecOptions
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import VVCError
from vvc_lightning.model import CompressionModel
from vvc_lightning.store.loader import load as load_model
from vvc_lightning.video.output_paths import input_problem, refuse_existing
from vvc_lightning.video.video_io import DEFAULT_FPS


def load_video_codec(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", gop: int | None = None, **options: Any
) -> VideoCodec:
    """The VideoCodec of the model `path` names, CodecOptions fields as keywords (`zoo.load_codec`'s form)."""
    return VideoCodec(load_model(path, map_location=map_location), CodecOptions(gop=gop, **options))


class Codec:
    """A loaded model as a video codec. `options`: a CodecOptions (None: the defaults) with field overrides
    by keyword (gop, overlap, theta, batch, tile, tile_overlap, max_memory, threads, ...). `quality` of a
    variable-rate model is any real number in [0, qualities - 1], higher = more bits; None codes at its
    highest quality."""

    def __init__(
        self, model: CompressionModel, options: CodecOptions | None = None, **overrides: Any
    ) -> None:
        if options is not None and not isinstance(options, CodecOptions):
            raise VVCError(
                f"options must be a CodecOptions or None (fields also go as keywords: batch=4, tile=256), "
                f"got {type(options).__name__} {options!r:.40}"
            )
        self.model = model
        self.options = (options or CodecOptions()).replace(**overrides)
        self._codecs: dict[float | None, VideoCodec] = {}
        self._codec(self.options.quality)  # checks the options against the model now, not at the first frame

    def _codec(self, quality: float | None) -> VideoCodec:
        q = self.model.check_quality(self.options.quality if quality is None else quality)
        if q not in self._codecs:
            self._codecs[q] = VideoCodec(self.model, self.options.replace(quality=q))
        return self._codecs[q]

    @property
    def qualities(self) -> int:
        """Number of qualities of a variable-rate model (0: fixed rate, give quality=None)."""
        return self.model.qualities

    # ------------------------------------------------------------------------------ compress
    def compress(
        self, video: np.ndarray | str | os.PathLike, quality: float | None = None, fps: float | None = None
    ) -> bytes:
        """.vvc bytes of a uint8 (T,H,W,3) RGB array or a video file (fps: `fps`, the file's, DEFAULT_FPS)."""
        codec = self._codec(quality)
        fps = None if fps is None else check_fps(fps)
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
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Compress a video file to a .vvc file, streamed (memory does not grow with its length); an existing
        `dst` is replaced only when `overwrite`."""
        codec = self._codec(quality)
        fps = None if fps is None else check_fps(fps)
        if max_frames is not None and not (_whole(max_frames) and max_frames >= 1):
            raise VVCError(f"max_frames must be a whole number >= 1 (or None: all), got {max_frames!r}")
        src = _existing(src)
        refuse_existing(dst, overwrite, flag="overwrite=True")
        limit = None if max_frames is None else int(max_frames)
        return files.compress_file(codec, src, dst, max_frames=limit, fps=fps, overwrite=overwrite)

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
        codec = self._codec(None)
        stream = codec.open(_bitstream(data))
        check_frame_range(frames, stream.header.frames)  # now, not at the first frame
        return codec.decode_frames(stream, frames)

    def decompress_file(
        self, src: str | os.PathLike, dst: str | os.PathLike, frames: tuple[int, int] | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Decompress a .vvc file to a video file (.mp4, .mkv, .y4m, .yuv) or a PNG folder, streamed; an
        existing `dst` file is replaced only when `overwrite`."""
        codec = self._codec(None)
        stream = codec.open(files.read_bitstream_file(src), f"'{os.fspath(src)}'")
        check_frame_range(frames, stream.header.frames)
        refuse_existing(dst, overwrite, flag="overwrite=True")
        return files.decompress_file(codec, src, dst, frames, stream=stream, overwrite=overwrite)


def _existing(path: str | os.PathLike) -> Path:
    problem = input_problem(path)
    if problem is not None:
        raise VVCError(f"video '{os.fspath(path)}' {problem}; pass a video file")
    return Path(path)


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _bitstream(data: bytes | str | os.PathLike) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        return files.read_bitstream_file(data)
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
    """A Codec of the model `spec` names (any spec `vvc_lightning.store.loader.load` takes: a shipped
    model's name, zoo:NAME, a `fit` checkpoint, an exported .safetensors, a released VAE), on `device`;
    `options` go to the video codec (gop, overlap, theta, batch, tile, max_memory, threads, ...)."""
    return Codec(load_model(_checked_spec(spec), map_location=device), **options)


def _checked_spec(spec: Any) -> str | os.PathLike:
    """`spec` when it is text or a path naming something; a one-line VVCError else."""
    if isinstance(spec, (bytes, bytearray, memoryview)):
        raise VVCError(f"spec must be a model name or path as text, got bytes {bytes(spec)[:40]!r}; pass a "
                       "str (e.g. 'vvc-lean-vr'), or decode the bytes first")
    if not isinstance(spec, (str, os.PathLike)) or not isinstance(os.fspath(spec), str):
        raise VVCError(f"spec must be a shipped model's name (e.g. 'vvc-lean-vr'), zoo:NAME or the path of a "
                       f"checkpoint or exported model, got {type(spec).__name__} {spec!r:.40}")
    if not os.fspath(spec).strip():
        raise VVCError("spec is an empty string; give a shipped model's name (e.g. 'vvc-lean-vr'), zoo:NAME "
                       "or the path of a checkpoint or exported model")
    return spec
