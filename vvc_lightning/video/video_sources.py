"""Random-access readers of one video (a PyAV file or bytes, or a raw YUV file) that cut clips and crops."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.video.colour import yuv420_to_rgb
from vvc_lightning.video.video_io import DEFAULT_FPS, parse_yuv_name, rgb24

# Seek (instead of decoding from the first frame) only when the clip starts at least this far in.
SEEK_MIN_FRAMES = 48
AV_MATRICES = {"bt709": "ITU709", "bt601": "ITU601"}  # our names -> PyAV/swscale colourspace names


class ClipError(VVCError):
    """A video cannot give the clip asked of it; `reason` is a short tag used when counting skips."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{detail} ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class ClipSpec:
    """How a clip is cut: `frames` frames, every `stride`-th, cropped to `crop_size` squared (None: whole)."""

    frames: int = 9
    stride: int = 3
    crop_size: int | None = 256

    @property
    def span(self) -> int:
        """Frames of the source one clip covers."""
        return (self.frames - 1) * self.stride + 1


@dataclass(frozen=True)
class ClipPos:
    """Where a clip sits, as fractions in [0,1) of the free room in time, height and width."""

    t: float = 0.0
    y: float = 0.5
    x: float = 0.5

    def start(self, num_frames: int, span: int) -> int:
        """First frame index of the clip in a video of `num_frames`."""
        return int(self.t * (num_frames - span + 1))

    def offsets(self, height: int, width: int, crop: int) -> tuple[int, int]:
        """(top, left) of a crop of side `crop`."""
        return int(self.y * (height - crop + 1)), int(self.x * (width - crop + 1))


def _crop(frame: np.ndarray, spec: ClipSpec, pos: ClipPos, label: str) -> np.ndarray:
    if spec.crop_size is None:
        return frame
    h, w = frame.shape[:2]
    c = spec.crop_size
    if h < c or w < c:
        raise ClipError("smaller than crop", f"{label} is {w}x{h}, smaller than the {c}x{c} crop")
    top, left = pos.offsets(h, w, c)
    return frame[top : top + c, left : left + c]


class AVSource:
    """A video PyAV can read, from a path or from in-memory bytes; frames are counted by decoding."""

    def __init__(
        self, src: str | Path | bytes, label: str | None = None, threads: int = 0, matrix: str | None = None
    ) -> None:
        self.src = src if isinstance(src, bytes) else str(src)
        self.label = label or (Path(self.src).name if isinstance(self.src, str) else "<bytes>")
        self.threads = threads  # 0: let FFmpeg choose
        if matrix is not None and matrix not in AV_MATRICES:
            raise VVCError(f"unknown colour matrix '{matrix}'; use one of {', '.join(AV_MATRICES)} or None "
                           "(the file's tag)")
        self.matrix = matrix  # None: the stream's tag (FFmpeg assumes BT.601 when untagged)

    def _rgb(self, frame) -> np.ndarray:
        return rgb24(frame, None if self.matrix is None else AV_MATRICES[self.matrix])

    @property
    def name(self) -> str:
        return Path(self.label).stem

    def _open(self):
        import av

        try:
            c = av.open(io.BytesIO(self.src) if isinstance(self.src, bytes) else self.src)
        except Exception as exc:
            raise ClipError("does not decode", f"cannot open {self.label}: {exc}") from exc
        if not c.streams.video:
            c.close()
            raise ClipError("no video stream", f"{self.label} has no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.thread_count = self.threads
        return c, s

    def _decode(self, c, s) -> Iterator:
        import av

        try:
            yield from c.decode(s)
        except (av.error.FFmpegError, ValueError, EOFError) as exc:
            raise ClipError("does not decode", f"{self.label} does not decode: {exc}") from exc

    def count_frames(self) -> int:
        """Number of decodable frames (container headers are not trusted)."""
        return self.probe()[0]

    def probe(self) -> tuple[int, int, int]:
        """(decoded frame count, height, width); frames are decoded, not read from headers."""
        n, h, w = 0, 0, 0
        c, s = self._open()
        with c:
            for frame in self._decode(c, s):
                if n == 0:
                    h, w = frame.height, frame.width
                n += 1
        if n == 0:
            raise ClipError("does not decode", f"{self.label} holds no decodable frame")
        return n, h, w

    def fps(self, default: float = DEFAULT_FPS) -> float:
        """Frame rate from the stream header."""
        c, s = self._open()
        with c:
            return float(s.average_rate or s.guessed_rate or default)

    def _seek(self, c, s, start: int):
        """Seek to a keyframe at or before frame `start`; the decoded iterator and its first index, or
        None."""
        fps = float(s.average_rate or s.guessed_rate or 0)
        tb = s.time_base
        if not fps or tb is None:
            return None
        t0 = s.start_time or 0
        target = t0 + int((start / fps) / tb)
        try:
            c.seek(target, stream=s, backward=True, any_frame=False)
        except Exception:
            return None
        it = self._decode(c, s)
        first = next(it, None)
        if first is None or first.pts is None:
            return None
        index = round(float((first.pts - t0) * tb) * fps)
        if index > start or index < 0:
            return None

        def chain():
            yield first
            yield from it

        return chain(), index

    def _collect(self, frames, index: int, start: int, spec: ClipSpec, pos: ClipPos) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for frame in frames:
            if index >= start and (index - start) % spec.stride == 0:
                out.append(_crop(self._rgb(frame), spec, pos, self.label))
                if len(out) == spec.frames:
                    break
            index += 1
        return out

    def read_clip(self, start: int, spec: ClipSpec, pos: ClipPos, seek: bool = True) -> np.ndarray:
        """Frames start, start+stride, ... (spec.frames of them), cropped: uint8 (T,h,w,3)."""
        out = None
        if seek and start >= SEEK_MIN_FRAMES:
            c, s = self._open()
            with c:
                found = self._seek(c, s, start)
                if found is not None:
                    out = self._collect(found[0], found[1], start, spec, pos)
        if out is None:
            c, s = self._open()
            with c:
                out = self._collect(self._decode(c, s), 0, start, spec, pos)
        if len(out) < spec.frames:
            raise ClipError(
                "too short",
                f"{self.label} gave {len(out)} of {spec.frames} frames from frame {start} at stride "
                f"{spec.stride}",
            )
        return np.stack(out)

    def iter_frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """All frames in order, RGB uint8 (H,W,3), at most `max_frames`."""
        c, s = self._open()
        with c:
            for i, frame in enumerate(self._decode(c, s)):
                if max_frames is not None and i >= max_frames:
                    break
                yield self._rgb(frame)


class YUVSource:
    """A raw 8-bit 4:2:0 file; size and fps from its name unless given; random access by seeking."""

    def __init__(
        self,
        path: str | Path,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        matrix: str = "bt709",
        rng: str = "limited",
    ) -> None:
        self.path = Path(path)
        self.label = self.path.name
        if width is None or height is None:
            w, h, name_fps = parse_yuv_name(self.path.name)
            width, height = width or w, height or h
            fps = fps if fps is not None else name_fps
        if width % 2 or height % 2:
            raise VVCError(f"raw 4:2:0 video '{self.path}' needs even width and height, got {width}x{height}")
        self.width, self.height, self._fps = int(width), int(height), fps
        self.matrix, self.rng = matrix, rng
        self.frame_bytes = self.width * self.height * 3 // 2

    @property
    def name(self) -> str:
        return self.path.stem

    def count_frames(self) -> int:
        """Whole frames in the file (its size must be a multiple of one frame)."""
        size = self.path.stat().st_size
        if size == 0 or size % self.frame_bytes:
            raise VVCError(
                f"'{self.path}' is {size} bytes, not a whole number of {self.width}x{self.height} 8-bit "
                f"4:2:0 frames ({self.frame_bytes} bytes each); check the size in its name or "
                "data.width/data.height"
            )
        return size // self.frame_bytes

    def fps(self, default: float = DEFAULT_FPS) -> float:
        """Frame rate from the name or the constructor (else `default`)."""
        return float(self._fps) if self._fps else default

    def _read(self, f, index: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
        w, h = self.width, self.height
        f.seek(index * self.frame_bytes)
        buf = np.frombuffer(f.read(self.frame_bytes), np.uint8)
        if buf.size < self.frame_bytes:
            raise ClipError("too short", f"{self.label} has no frame {index}")
        y = buf[: w * h].reshape(h, w)
        u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v = buf[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        if box is None:
            return yuv420_to_rgb(y, u, v, self.matrix, self.rng)
        top, left, c = box[0], box[1], box[2]
        t0, l0 = top - top % 2, left - left % 2  # chroma-aligned box around the crop
        t1, l1 = top + c + (top + c) % 2, left + c + (left + c) % 2
        rgb = yuv420_to_rgb(
            y[t0:t1, l0:l1], u[t0 // 2 : t1 // 2, l0 // 2 : l1 // 2], v[t0 // 2 : t1 // 2, l0 // 2 : l1 // 2],
            self.matrix, self.rng,
        )
        return rgb[top - t0 : top - t0 + c, left - l0 : left - l0 + c]

    def read_clip(self, start: int, spec: ClipSpec, pos: ClipPos, seek: bool = True) -> np.ndarray:
        """Frames start, start+stride, ... cropped: uint8 (T,h,w,3)."""
        box = None
        if spec.crop_size is not None:
            c = spec.crop_size
            if self.height < c or self.width < c:
                raise ClipError(
                    "smaller than crop", f"{self.label} is {self.width}x{self.height}, smaller than the "
                                         f"{c}x{c} crop"
                )
            box = (*pos.offsets(self.height, self.width, c), c)
        with open(self.path, "rb") as f:
            return np.stack([self._read(f, start + i * spec.stride, box) for i in range(spec.frames)])

    def iter_frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """All frames in order, RGB uint8 (H,W,3), at most `max_frames`."""
        n = self.count_frames()
        n = n if max_frames is None else min(n, max_frames)
        with open(self.path, "rb") as f:
            for i in range(n):
                yield self._read(f, i, None)

