"""A reference sequence and a coded one: what the harness, the classic codecs and the plane metrics share."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vvc_lightning.video.video_io import Video


@dataclass
class Sequence:
    """One reference sequence: RGB uint8 frames (N,H,W,3), its frame rate, where it came from; a 4:2:0
    source also its planes (`video.plane_source.PlaneSource`, the frames then made from them on demand)."""

    name: str
    frames: np.ndarray
    fps: float
    source: str
    digest: str = ""
    planes: Any = None

    def __post_init__(self) -> None:
        if not self.digest:
            h = hashlib.sha1(np.ascontiguousarray(self.frames).tobytes())
            h.update(f"{self.frames.shape}|{self.fps:g}".encode())
            self.digest = h.hexdigest()[:16]

    @property
    def video(self) -> Video:
        return Video(self.frames, self.fps)


@dataclass
class Coded:
    """A decoded sequence and what coding it cost: the frames as one array (classic codecs, decoded from
    their raw output file) or as a stream that decodes as it is read (the neural codec)."""

    frames: np.ndarray | None
    size_bytes: int
    info: dict[str, Any] = field(default_factory=dict)
    stream: Iterable[np.ndarray] | None = None
    planes: Any = None  # a classic codec's decoded 4:2:0 planes (`evaluation.planes.DecodedPlanes`)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """The decoded RGB uint8 frames (H,W,3) in order (from the stream: read once)."""
        yield from (self.stream if self.stream is not None else self.frames)
