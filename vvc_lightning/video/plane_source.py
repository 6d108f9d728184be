"""A 4:2:0 source read as its own planes, a few frames at a time, never held whole: a raw .yuv file
(8-bit, or 16-bit little-endian words above 8 bits) or a container whose video stream is yuv420p /
yuv420p10le (.y4m, .mp4, ...) decoded by PyAV; and its RGB view for codecs and metrics that take RGB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.video.chroma import Planes, check_even, planes_to_rgb

PIX_FMTS = {"yuv420p": 8, "yuv420p10le": 10}
CHUNK = 8  # frames read at a time


def pix_fmt(bit_depth: int) -> str:
    """The ffmpeg pixel format of 4:2:0 planes at `bit_depth` (8 or 10)."""
    fmts = {v: k for k, v in PIX_FMTS.items()}
    if bit_depth not in fmts:
        raise VVCError(f"4:2:0 at {bit_depth} bits is not supported; sources are 8 or 10 bit")
    return fmts[bit_depth]


def split_frames(buf: np.ndarray, n: int, width: int, height: int) -> Planes:
    """n concatenated 4:2:0 frames (a flat array of samples) -> planes with a leading frame axis."""
    per, luma = width * height * 3 // 2, width * height
    frames = buf[: n * per].reshape(n, per)
    c = (height // 2, width // 2)
    return (frames[:, :luma].reshape(n, height, width), frames[:, luma : luma * 5 // 4].reshape(n, *c),
            frames[:, luma * 5 // 4 :].reshape(n, *c))


def join_frames(planes: Planes) -> bytes:
    """Planes with a leading frame axis -> the raw bytes of those frames, frame after frame."""
    y, u, v = planes
    n = y.shape[0]
    dtype = "<u2" if y.dtype != np.uint8 else np.uint8
    return np.concatenate([p.reshape(n, -1).astype(dtype, copy=False) for p in (y, u, v)], 1).tobytes()


@dataclass
class PlaneSource:
    """The first `frames` frames of a 4:2:0 file at `bit_depth`; `kind` 'raw' (a .yuv file) or 'container'."""

    path: Path
    width: int
    height: int
    bit_depth: int
    frames: int
    fps: float
    kind: str = "raw"

    def __post_init__(self) -> None:
        check_even(self.width, self.height, str(self.path))
        pix_fmt(self.bit_depth)

    @property
    def pix_fmt(self) -> str:
        return pix_fmt(self.bit_depth)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3 // 2 * (1 if self.bit_depth <= 8 else 2)

    def describe(self) -> str:
        """'yuv420p 8-bit, raw file' and the like."""
        return f"{self.pix_fmt} {self.bit_depth}-bit, {'raw file' if self.kind == 'raw' else 'decoded file'}"

    def with_frames(self, frames: int) -> PlaneSource:
        """The same source cut to its first `frames` frames."""
        return PlaneSource(self.path, self.width, self.height, self.bit_depth, min(frames, self.frames),
                           self.fps, self.kind)

    # -------------------------------------------------------------------------------- reading
    def read(self, start: int, count: int) -> Planes:
        """Frames start .. start+count-1 as planes (VVCError when the file holds fewer)."""
        count = max(0, min(count, self.frames - start))
        if self.kind == "raw":
            dtype = np.uint8 if self.bit_depth <= 8 else np.dtype("<u2")
            with open(self.path, "rb") as f:
                f.seek(start * self.frame_bytes)
                buf = np.fromfile(f, dtype, count * self.frame_bytes // np.dtype(dtype).itemsize)
            got = buf.nbytes // self.frame_bytes
            if got < count:
                raise VVCError(f"'{self.path}' holds {start + got} frames of {self.width}x{self.height} "
                               f"{self.pix_fmt}, fewer than the {self.frames} expected")
            return split_frames(buf, count, self.width, self.height)
        got = [p for _, p in zip(range(count), self._decode(start), strict=False)]
        if len(got) < count:
            raise VVCError(f"'{self.path}' decodes to {start + len(got)} frames, fewer than {self.frames}")
        return stack(got, self)

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, Planes]]:
        """(first frame index, planes) of consecutive chunks of at most `size` frames, in order."""
        if self.kind == "raw":
            for start in range(0, self.frames, size):
                yield start, self.read(start, size)
            return
        buf: list[Planes] = []
        start = 0
        for p in self._decode(0):
            buf.append(p)
            if len(buf) == size or start + len(buf) == self.frames:
                yield start, stack(buf, self)
                start, buf = start + len(buf), []
            if start == self.frames:
                return
        raise VVCError(f"'{self.path}' decodes to {start + len(buf)} frames, fewer than {self.frames}")

    def _decode(self, start: int) -> Iterator[Planes]:
        """Planes of one frame each from frame `start` on (PyAV; every frame must be of this format)."""
        import av

        bps = 1 if self.bit_depth <= 8 else 2
        with av.open(str(self.path)) as c:
            for i, frame in enumerate(c.decode(c.streams.video[0])):
                if i >= self.frames:
                    return
                if i < start:
                    continue
                got = (frame.format.name, frame.width, frame.height)
                if got != (self.pix_fmt, self.width, self.height):
                    raise VVCError(f"'{self.path}': frame {i} is {got[0]} {got[1]}x{got[2]}, not "
                                   f"{self.pix_fmt} {self.width}x{self.height} as the first")
                yield tuple(np.frombuffer(p, np.uint8 if bps == 1 else "<u2")  # type: ignore[misc]
                            .reshape(p.height, p.line_size // bps)[:, : p.width].copy()
                            for p in frame.planes[:3])

    def digest(self) -> str:
        """A hash of the planes' samples, size, bit depth and frame rate (read in chunks)."""
        h = hashlib.sha1(f"yuv420|{self.width}x{self.height}|{self.bit_depth}|{self.frames}|{self.fps:g}"
                         .encode())
        for _, planes in self.chunks():
            h.update(join_frames(planes))
        return h.hexdigest()[:16]


class PlaneReader:
    """A source's frames read once, in order, in pieces of any size (`take`)."""

    def __init__(self, src: PlaneSource) -> None:
        self.src, self.pos = src, 0
        self._chunks = src.chunks()
        self._held: Planes | None = None

    def take(self, count: int) -> Planes:
        """The next `count` frames as planes (fewer at the end of the source)."""
        parts: list[Planes] = []
        while count > 0:
            if self._held is None or not len(self._held[0]):
                nxt = next(self._chunks, None)
                if nxt is None:
                    break
                self._held = nxt[1]
            k = min(count, len(self._held[0]))
            parts.append(tuple(p[:k] for p in self._held))  # type: ignore[arg-type]
            self._held = tuple(p[k:] for p in self._held)  # type: ignore[assignment]
            count -= k
            self.pos += k
        if len(parts) <= 1:
            return parts[0] if parts else stack([], self.src)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def stack(frames: list[Planes], src: PlaneSource) -> Planes:
    """One-frame planes -> planes with a leading frame axis."""
    if not frames:
        shapes = ((src.height, src.width), (src.height // 2, src.width // 2))
        dtype = np.uint8 if src.bit_depth <= 8 else np.uint16
        return tuple(np.zeros((0, *shapes[min(i, 1)]), dtype) for i in range(3))  # type: ignore[return-value]
    return tuple(np.stack([f[i] for f in frames]) for i in range(3))  # type: ignore[return-value]


class PlaneFrames:
    """The RGB uint8 frames (N,H,W,3) of a `PlaneSource`, made on demand (`chroma.planes_to_rgb`): iterate,
    index or take `shape`; `np.asarray` makes them all at once."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, src: PlaneSource, matrix: str = "bt709", rng: str = "limited") -> None:
        self.src, self.matrix, self.rng = src, matrix, rng

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.src.frames, self.src.height, self.src.width, 3)

    def __len__(self) -> int:
        return self.src.frames

    def rgb(self, planes: Planes) -> np.ndarray:
        return planes_to_rgb(planes, self.src.bit_depth, self.matrix, self.rng)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, planes in self.src.chunks():
            yield from self.rgb(planes)

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, int | np.integer):
            i = int(index) + (self.src.frames if index < 0 else 0)
            if not 0 <= i < self.src.frames:
                raise IndexError(f"frame {index} of {self.src.frames}")
            return self.rgb(self.src.read(i, 1))[0]
        if isinstance(index, slice) and index.step in (None, 1):
            start, stop, _ = index.indices(self.src.frames)
            return self.rgb(self.src.read(start, max(0, stop - start)))
        return np.asarray(self)[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.stack(list(self)) if self.src.frames else np.zeros(self.shape, np.uint8)
        return out if dtype is None else out.astype(dtype)
