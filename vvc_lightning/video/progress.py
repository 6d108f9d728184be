"""Progress over frames (compress, decompress, test): frames done, frames/s and time left, on one redrawn
line of stderr when it is a terminal (nothing per frame otherwise: the command prints its summary)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
REDRAW_S = 0.25  # at most four redraws a second


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class FrameProgress:
    """Counts the frames an iterable gives and shows `label: done/total frames, F frames/s, ETA` on a
    terminal (`total` None: no ETA). `enabled=False` (--quiet, or stderr not a terminal) shows nothing."""

    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.total, self.done = label, total, 0
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = self._drawn = 0.0
        self._width = 0

    def wrap(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, counting each one as a frame done."""
        self._start = time.perf_counter()
        try:
            for item in items:
                yield item
                self.done += 1
                now = time.perf_counter()
                if self.enabled and now - self._drawn >= REDRAW_S:
                    self._draw(now)
        finally:
            self.close()

    def line(self, now: float | None = None) -> str:
        """The progress text: frames done (of total), frames/s, and the time left when the total is known."""
        elapsed = max((now if now is not None else time.perf_counter()) - self._start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "") + " frames"
        text += f", {rate:.2f} frames/s"
        if self.total and rate > 0:
            text += f", ETA {_clock(max(self.total - self.done, 0) / rate)}"
        return text

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width, self._drawn = len(text), now

    def close(self) -> None:
        """Clear the progress line (the command's summary line follows)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def frames_in(path: str | Path, max_frames: int | None = None, **yuv: Any) -> int | None:
    """How many frames compressing `path` reads (None: unknown): a raw .yuv's size over its frame size, or
    the count a container declares; at most `max_frames`."""
    count: int | None = None
    try:
        if Path(path).suffix.lower() == ".yuv" and yuv.get("width") and yuv.get("height"):
            count = Path(path).stat().st_size // (int(yuv["width"]) * int(yuv["height"]) * 3 // 2)
        elif Path(path).suffix.lower() == ".y4m":
            count = _y4m_frames(Path(path))
        elif Path(path).is_file():
            import av

            with av.open(str(path)) as container:
                count = int(container.streams.video[0].frames) or None
    except Exception:  # a count is a nicety: the codec reports what it cannot read
        count = None
    if max_frames is not None:
        count = max_frames if count is None else min(count, max_frames)
    return count


def _y4m_frames(path: Path) -> int | None:
    """Frames of a .y4m file: its size over the frame size its header states (frames without parameters)."""
    with open(path, "rb") as f:
        header = f.readline(4096)
    tags = {t[:1]: t[1:] for t in header.split()[1:]}
    w, h = int(tags[b"W"]), int(tags[b"H"])
    chroma = tags.get(b"C", b"420")
    plane = 3 if chroma.startswith(b"444") else 2 if chroma.startswith(b"422") else 1.5
    return (path.stat().st_size - len(header)) // (len(b"FRAME\n") + int(w * h * plane))
