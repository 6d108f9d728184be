"""Tiny synthetic videos whose frames carry their own index (for tests and benchmarks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vvc_lightning.video.colour import rgb_to_yuv420
from vvc_lightning.video.video_io import write_video


def index_frame(i: int, height: int, width: int) -> np.ndarray:
    """RGB uint8 frame: R and G flat, coding `i` (0..503); B a smooth diagonal ramp (tells crops apart)."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 16 + (i % 28) * 8
    frame[..., 1] = 16 + (i // 28) * 12
    yy, xx = np.mgrid[0:height, 0:width]
    frame[..., 2] = (32 + 190 * (yy + xx) / max(1, height + width - 2)).astype(np.uint8)
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index coded by `index_frame` (robust to mild compression and any crop)."""
    r = float(np.median(frame[..., 0]))
    g = float(np.median(frame[..., 1]))
    return int(round((g - 16) / 12)) * 28 + int(round((r - 16) / 8))


def index_video(num_frames: int, height: int, width: int) -> np.ndarray:
    """(N,H,W,3) uint8 frames 0..N-1 of `index_frame`."""
    return np.stack([index_frame(i, height, width) for i in range(num_frames)])


def write_h264(path: str | Path, frames: np.ndarray, fps: float = 25.0, crf: int = 10, gop: int = 16) -> Path:
    """Write RGB frames as H.264 .mp4/.mkv with a keyframe every `gop` frames (so seeking has targets)."""
    import av

    from vvc_lightning.video.video_io import atomic_path

    path = Path(path)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format="matroska" if path.suffix == ".mkv" else "mp4") as c,
    ):
        rate = Fraction(fps).limit_denominator(1001)
        s = c.add_stream("libx264", rate=rate)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "yuv420p"
        s.time_base = 1 / rate
        s.options = {"crf": str(crf), "g": str(gop), "keyint_min": str(gop), "preset": "medium",
                     "threads": "1"}
        for i, f in enumerate(frames):
            y, u, v = rgb_to_yuv420(f, "bt601", "limited")  # what decoders assume for untagged H.264
            vf = av.VideoFrame.from_ndarray(
                np.concatenate([y, u.reshape(-1, f.shape[1]), v.reshape(-1, f.shape[1])]), format="yuv420p"
            )
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode())
    return path


def write_index_video(path: str | Path, num_frames: int, height: int = 64, width: int = 96,
                      fps: float = 25.0, crf: int = 10, gop: int = 16) -> Path:
    """Write an index video (.mp4/.mkv H.264 with keyframes every `gop`, or .y4m, .yuv) and return its
    path."""
    frames = index_video(num_frames, height, width)
    if Path(path).suffix.lower() in (".mp4", ".mkv"):
        return write_h264(path, frames, fps, crf, gop)
    suffix = Path(path).suffix.lower()
    # FFmpeg reads untagged y4m as BT.601; raw .yuv is read back by our own BT.709 reader.
    return write_video(path, frames, fps, crf=crf, matrix="bt601" if suffix == ".y4m" else "bt709")
