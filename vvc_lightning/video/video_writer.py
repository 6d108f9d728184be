"""A video written frame by frame as the frames come (bounded memory), atomically: into a temporary beside the
target, renamed onto it only when every frame is written (removed on an error, Ctrl-C or SIGTERM)."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.video.atomic import atomic_path
from vvc_lightning.video.colour import rgb_to_yuv420
from vvc_lightning.video.output_paths import PNG_SUFFIXES, VIDEO_SUFFIXES

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # H.264 outputs: suffix -> FFmpeg muxer


class VideoWriter:
    """Write RGB uint8 frames (H,W,3) one at a time as .mp4/.mov/.mkv (H.264), .y4m, .yuv, or a PNG folder.

    Use as a context manager: `with VideoWriter(path, fps) as w: w.write(frame)`. The output appears at
    `w.path` (the folder for PNGs) only when the block ends without an error. Colour as `write_video`;
    `size` (H, W) opens the output before the first frame (else the first frame sets it); a file at `path` is
    replaced only when `replace` (see `atomic_path`).
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 12, matrix: str | None = None,
                 rng: str = "limited", size: tuple[int, int] | None = None, replace: bool = True) -> None:
        path = Path(path)
        self.suffix = path.suffix.lower()
        if self.suffix not in VIDEO_SUFFIXES + PNG_SUFFIXES:
            raise VVCError(
                f"cannot write '{path}': use .mp4, .mov, .mkv, .y4m, .yuv or a new folder name for PNGs"
            )
        self.png = self.suffix in PNG_SUFFIXES
        self.path = path.with_suffix("") if self.suffix == ".png" else path
        self.fps, self.crf, self.rng = float(fps), int(crf), rng
        # .y4m carries no matrix tag (players read it as BT.601); raw .yuv follows the test sets (BT.709)
        self.matrix = matrix or ("bt601" if self.suffix == ".y4m" else "bt709")
        self.count, self.replace = 0, replace
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None
        self._av: Any = None  # (container, stream) of an H.264 output
        self._shape = None if size is None else (int(size[0]), int(size[1]))  # (H, W); else the first frame's

    def __enter__(self) -> VideoWriter:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path, is_dir=self.png, replace=self.replace))
        if self._shape is not None:
            try:
                self._open(*self._shape)
            except BaseException as err:
                self._stack.__exit__(type(err), err, err.__traceback__)
                raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        assert self._stack is not None
        try:
            if exc is None:
                # flushing the encoder and closing the file can fail (full disk) or be interrupted
                self._finish()
            else:
                self._close_quietly()
        except BaseException as err:  # never dropped: atomic_path removes the temporary and raises it (or its
            self._close_quietly()  # one-line form); the ExitStack returns False rather than re-raising it
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        return bool(self._stack.__exit__(kind, exc, tb))

    # ------------------------------------------------------------------------------- writing
    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame (H,W,3); every frame must have the size of the first."""
        if self._tmp is None:
            raise VVCError("VideoWriter.write outside its `with` block")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VVCError(f"frames to write must be RGB uint8 (H,W,3), got {frame.dtype} {frame.shape}")
        if self._shape is None:
            self._shape = frame.shape[:2]
            self._open(*self._shape)
        elif frame.shape[:2] != self._shape:
            raise VVCError(f"frame {self.count} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                           f"{self._shape[1]}x{self._shape[0]}")
        if self.png:
            from vvc_lightning.video.images import encode_png

            # write errors are OSErrors (atomic_path)
            with open(self._tmp / f"{self.count:05d}.png", "wb") as f:
                f.write(encode_png(frame))
        elif self._av is not None:
            self._write_av(frame)
        else:
            self._write_yuv(frame)
        self.count += 1

    def _open(self, h: int, w: int) -> None:
        assert self._tmp is not None
        if self.png:
            return
        if self.suffix in (".mp4", ".mov", ".mkv"):
            import av

            # bitexact: no muxer version, creation time or random (Matroska) UIDs in the file
            container = av.open(str(self._tmp), "w", format=CONTAINERS[self.suffix],
                                options={"fflags": "+bitexact"})
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = w + (w % 2), h + (h % 2)
            stream.pix_fmt = "yuv420p"
            # one encoder thread: x264's choices depend on its thread count, which would follow the machine
            stream.codec_context.thread_count = 1
            stream.options = {"crf": str(self.crf), "preset": "medium", "flags": "+bitexact"}
            self._av = (container, stream)
            return
        self._file = open(self._tmp, "wb")  # closed in _finish / _close_quietly
        if self.suffix == ".y4m":
            fr = Fraction(self.fps).limit_denominator(1001)
            colour_range = "XCOLORRANGE=LIMITED" if self.rng == "limited" else "XCOLORRANGE=FULL"
            self._file.write(
                f"YUV4MPEG2 W{w} H{h} F{fr.numerator}:{fr.denominator} Ip A1:1 C420 {colour_range}\n".encode()
            )

    def _write_av(self, frame: np.ndarray) -> None:
        import av

        container, stream = self._av
        h, w = frame.shape[:2]
        if (h, w) != (stream.height, stream.width):
            frame = np.pad(frame, ((0, stream.height - h), (0, stream.width - w), (0, 0)), mode="edge")
        for pkt in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            container.mux(pkt)

    def _write_yuv(self, frame: np.ndarray) -> None:
        assert self._file is not None
        h, w = frame.shape[:2]
        if self.suffix == ".y4m":
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            y, u, v = rgb_to_yuv420(frame, self.matrix, self.rng)
            self._file.write(b"FRAME\n")
            self._file.write(y[:h, :w].tobytes())
            self._file.write(u.tobytes())
            self._file.write(v.tobytes())
            return
        for plane in rgb_to_yuv420(frame, self.matrix, self.rng):
            self._file.write(plane.tobytes())

    def _finish(self) -> None:
        if self._av is not None:
            container, stream = self._av
            self._av = None
            try:
                for pkt in stream.encode():
                    container.mux(pkt)
            except BaseException:
                with contextlib.suppress(Exception):
                    container.close()
                raise
            container.close()  # writes the trailer (moov): its errors are raised, not dropped
        if self._file is not None:
            self._file, f = None, self._file
            f.close()  # flushes the buffer: a full disk shows here

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            if self._av is not None:
                self._av[0].close()
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()
        self._av = self._file = None
