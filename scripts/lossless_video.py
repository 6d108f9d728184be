"""The test split's clips, lossless and compact: RGB frames become the BT.601 limited-range 4:2:0 planes a
.y4m would hold (`VideoWriter`'s .y4m default), which are coded losslessly with H.264 (x264 `qp=0`, High 4:4:4
Predictive profile) in Matroska, tagged BT.601 limited range. Decoding gives back those planes bit for bit, so
every reader sees exactly the frames of the .y4m, in about a quarter of its size (FFV1: a third).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.video.atomic import atomic_path
from vvc_lightning.video.colour import rgb_to_yuv420

SUFFIX = ".mkv"
CODEC, OPTIONS = "libx264", {"qp": "0", "preset": "veryslow"}  # smallest lossless coder (docs/data.md)
MATRIX, RANGE = "bt601", "limited"
_SMPTE170M, _MPEG_RANGE = 6, 1  # AVColorSpace / AVColorRange values of BT.601 and limited range


def yuv_planes(frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(Y, U, V) uint8 planes of each RGB uint8 (N,H,W,3) frame, as in a .y4m that `write_video` writes."""
    return [rgb_to_yuv420(f, MATRIX, RANGE) for f in frames]


def _frame(planes: tuple[np.ndarray, np.ndarray, np.ndarray], width: int, height: int):
    import av

    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, planes, strict=True):
        rows = np.zeros((data.shape[0], plane.line_size), np.uint8)  # a plane's rows may be padded
        rows[:, : data.shape[1]] = data
        plane.update(rows.tobytes())
    return frame


def write_lossless(path: Path, frames: np.ndarray, fps: float) -> Path:
    """Write RGB uint8 (N,H,W,3) frames (H, W even) losslessly as 4:2:0 into `path` (.mkv), atomically."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise VVCError(
            f"lossless clip {path.name}: frames must be RGB uint8 (N,H,W,3), got {frames.dtype} "
            f"{frames.shape}"
        )
    if path.suffix != SUFFIX:
        raise VVCError(f"lossless clip {path.name}: the file name must end in {SUFFIX}")
    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="matroska") as container:
            stream = container.add_stream(CODEC, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.colorspace, stream.codec_context.color_range = _SMPTE170M, _MPEG_RANGE
            stream.options = dict(OPTIONS)
            for planes in yuv_planes(frames):
                container.mux(stream.encode(_frame(planes, width, height)))
            container.mux(stream.encode())
    return path
