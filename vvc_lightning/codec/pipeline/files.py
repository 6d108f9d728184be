"""Files through a VideoCodec: a video file to a .vvc file and back, streamed and written atomically."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.codec.pipeline import container
from vvc_lightning.codec.pipeline.parsed import ParsedStream, parse_stream
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import VVCError
from vvc_lightning.video.output_paths import check_output_path, input_problem, refuse_existing
from vvc_lightning.video.safe_read import FileBytes, NotRegularFile
from vvc_lightning.video.video_io import iter_video, video_fps, write_bytes_atomic
from vvc_lightning.video.video_writer import VideoWriter

# sees the frames go by, e.g. to show progress (`video.progress.FrameProgress.wrap`)
FrameHook = Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]


def read_bitstream_file(path: str | os.PathLike) -> FileBytes:
    """A .vvc file as bytes read on demand (memory holds what is asked of it, never the whole file), with a
    clear error when it is missing or not a regular file."""
    problem = input_problem(path)
    if problem is not None:
        raise VVCError(f"bitstream '{os.fspath(path)}' {problem}; pass a .vvc file")
    path = Path(path)
    try:
        return FileBytes(path)
    except NotRegularFile as exc:
        raise VVCError(f"bitstream '{path}' is {exc}; pass a .vvc file") from exc
    except OSError as exc:
        raise VVCError(f"bitstream '{path}' cannot be read ({exc.strerror or exc})") from exc


def open_bitstream_file(path: str | os.PathLike) -> ParsedStream:
    """A .vvc file with its header and record index parsed once (payloads are read as they are decoded)."""
    return parse_stream(read_bitstream_file(path), f"'{path}'")


def compress_file(
    codec: VideoCodec,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    max_frames: int | None = None,
    fps: float | None = None,
    overwrite: bool = False,
    progress: FrameHook | None = None,
    **yuv_kwargs: Any,
) -> dict[str, Any]:
    """Compress a video file (streamed; .yuv takes width/height/matrix/rng) to a .vvc file, atomically;
    returns statistics. An existing `dst` (or one that appears meanwhile) is replaced only when
    `overwrite`."""
    dst = check_output_path(dst, src, kind="bitstream")
    refuse_existing(dst, overwrite)
    rate = fps if fps is not None else video_fps(src)
    frames: Iterable[np.ndarray] = iter_video(src, **yuv_kwargs)
    if max_frames is not None:
        frames = itertools.islice(frames, max_frames)
    data = codec.encode_frames(frames if progress is None else progress(frames), rate)
    header, _ = container.unpack_header(data)
    write_bytes_atomic(dst, data, replace=overwrite)
    return run_stats(codec, len(data), header.frames, header.width, header.height, str(dst))


def decompress_file(
    codec: VideoCodec,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    frames: tuple[int, int] | None = None,
    stream: ParsedStream | None = None,
    progress: FrameHook | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Decompress the .vvc file `src` (`stream`: its contents already read with `open_bitstream_file`) to a
    video file / PNG folder, streamed a few GoPs at a time (memory does not grow with the length) and
    written atomically; returns statistics. An existing file at `dst` (or one that appears meanwhile) is
    replaced only when `overwrite`."""
    dst = check_output_path(dst, src, kind="video")
    refuse_existing(dst, overwrite)
    stream = stream if stream is not None else open_bitstream_file(src)
    header = stream.header
    # The header's matrix is that of the raw .yuv input; untagged .y4m keeps write_video's BT.601 default.
    matrix = header.matrix if Path(dst).suffix.lower() == ".yuv" else None
    a, b = frames if frames is not None else (0, header.frames)
    size = (header.height, header.width) if b > a else None
    with VideoWriter(
        dst, header.fps, matrix=matrix, rng=header.range, size=size, replace=overwrite
    ) as writer:
        decoded = codec.decode_frames(stream, frames)
        for frame in decoded if progress is None else progress(decoded):
            writer.write(frame)
    size = len(stream.data)
    stats = run_stats(codec, size, header.frames, header.width, header.height, str(writer.path))
    stats["decoded_frames"] = writer.count
    stats["fps"] = writer.count / max(codec.timings.get("total", 0.0), 1e-9)
    return stats


def run_stats(
    codec: VideoCodec, size: int, frames: int, width: int, height: int, path: str
) -> dict[str, Any]:
    """Size, rate, speed, timings and threads of the codec's last run on a file of `size` bytes."""
    total = max(codec.timings.get("total", 0.0), 1e-9)
    return {
        "path": path,
        "frames": frames,
        "width": width,
        "height": height,
        "bytes": size,
        "bpp": size * 8 / (frames * width * height),
        "seconds": total,
        "fps": frames / total,
        "timings": dict(codec.timings),
        "threads": list(codec.thread_history),
    }
