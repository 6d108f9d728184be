"""Cutting a video into overlapping GoPs, padding the last one in time, and blending the shared frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vvc_lightning.errors import CodecOptionError, VVCError


@dataclass(frozen=True)
class GopPlan:
    """GoP g covers frames [g*step, g*step + gop); frames past the end repeat the last frame."""

    num_frames: int
    gop: int = 9
    overlap: int = 1
    temporal_stride: int = 4

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise VVCError(f"a video needs at least one frame, got {self.num_frames}")
        ts = self.temporal_stride
        if self.gop < 1 or (self.gop - 1) % ts:
            lo = 1 + ts * max(0, (self.gop - 1) // ts)
            raise VVCError(f"GoP size must be 1 + {ts}k frames (e.g. {lo} or {lo + ts}), got {self.gop}")
        if self.overlap < 0 or 2 * self.overlap >= self.gop:
            raise CodecOptionError(
                "overlap",
                f"must be 0 or more and less than half the GoP ({self.gop}), got {self.overlap}; "
                "use overlap 1 (the paper) or 0 (off)",
            )

    @property
    def step(self) -> int:
        """Frames between the starts of two consecutive GoPs."""
        return self.gop - self.overlap

    @property
    def num_gops(self) -> int:
        """How many GoPs cover the video."""
        if self.num_frames <= self.gop:
            return 1
        return 1 + -(-(self.num_frames - self.gop) // self.step)

    def gop_start(self, g: int) -> int:
        """First frame index of GoP g."""
        if not 0 <= g < self.num_gops:
            raise IndexError(f"GoP {g} out of range 0..{self.num_gops - 1}")
        return g * self.step

    def gop_indices(self, g: int) -> np.ndarray:
        """Source frame index of every position of GoP g (the last frame repeated as padding)."""
        start = self.gop_start(g)
        return np.minimum(np.arange(start, start + self.gop), self.num_frames - 1)

    def gops_for_frames(self, start: int, stop: int) -> range:
        """The GoPs that frames [start, stop) need, blending partners included."""
        if not 0 <= start < stop <= self.num_frames:
            raise VVCError(
                f"frame range {start}:{stop} is outside the video's 0:{self.num_frames}; "
                f"give frames (a, b) with 0 <= a < b <= {self.num_frames}"
            )
        first = max(0, -(-(start - self.gop + 1) // self.step))
        last = min(self.num_gops - 1, (stop - 1) // self.step)
        return range(first, last + 1)


def parse_frame_range(text: str, num_frames: int) -> tuple[int, int]:
    """'a:b', 'a:' or ':b' (Python slice style, no negatives) -> (a, b) checked against the video."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a = int(parts[0]) if parts[0] else 0
        b = int(parts[1]) if parts[1] else num_frames
    except ValueError as exc:
        raise CodecOptionError("frames", f"takes a:b (e.g. 0:9), got '{text}'") from exc
    if not 0 <= a < b <= num_frames:
        raise CodecOptionError(
            "frames", f"{text} is outside the video's 0:{num_frames}; use 0 <= a < b <= {num_frames}"
        )
    return a, b


def check_frame_range(frames: object, num_frames: int) -> tuple[int, int]:
    """`frames` (a, b) of a video of `num_frames` frames as two whole numbers with 0 <= a < b <= num_frames
    ((0, num_frames) for None), or a CodecOptionError naming what is wrong."""
    if frames is None:
        return 0, num_frames
    try:
        a, b = frames  # type: ignore[misc]
    except (TypeError, ValueError):
        a = b = None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (a, b)):
        raise CodecOptionError(
            "frames", f"must be a pair of whole numbers (a, b), e.g. (0, {num_frames}), got {frames!r}"
        )
    if not 0 <= a < b <= num_frames:
        raise CodecOptionError(
            "frames", f"{(int(a), int(b))} is outside the video's frames; use 0 <= a < b <= {num_frames}"
        )
    return int(a), int(b)


def iter_gops(frames: Iterable[np.ndarray], gop: int, overlap: int) -> Iterator[tuple[np.ndarray, int]]:
    """(GoP frames (gop,H,W,3), real frame count) from a stream of frames, the last GoP padded in time."""
    buf: list[np.ndarray] = []
    step = gop - overlap
    emitted = 0
    for f in frames:
        buf.append(f)
        if len(buf) == gop:
            yield np.stack(buf), gop
            emitted += 1
            buf = buf[step:]
    # A tail is left when frames arrived after the last full GoP's shared frames (or no GoP at all).
    if buf and (emitted == 0 or len(buf) > overlap):
        real = len(buf)
        buf += [buf[-1]] * (gop - real)
        yield np.stack(buf), real


class GopBlender:
    """Receives decoded GoPs in order, blends the shared frames, and yields finished frames."""

    def __init__(self, plan: GopPlan, theta: float, first_gop: int = 0) -> None:
        if not 0.0 <= theta <= 1.0:
            raise VVCError(f"theta must be in [0, 1], got {theta}")
        self.plan, self.theta = plan, float(theta)
        self.next_gop = first_gop
        self._pending: torch.Tensor | None = None  # last `overlap` frames of the previous GoP

    def push(self, rec: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Add the reconstruction (C,T,H,W) of the next GoP; yield (frame index, (C,H,W)) finished frames."""
        g, p = self.next_gop, self.plan
        if rec.shape[1] != p.gop:
            raise ValueError(f"GoP reconstruction has {rec.shape[1]} frames, expected {p.gop}")
        self.next_gop += 1
        start, ov = p.gop_start(g), p.overlap
        first = 0
        if ov and self._pending is not None:
            blended = self.theta * self._pending + (1.0 - self.theta) * rec[:, :ov]
            for j in range(ov):
                yield start + j, blended[:, j]
            first = ov
        elif ov and g > 0:
            first = ov  # the previous GoP was not decoded: its shared frames are not asked for
        last_gop = g == p.num_gops - 1
        keep = p.gop if last_gop or not ov else p.gop - ov
        for j in range(first, keep):
            if start + j < p.num_frames:
                yield start + j, rec[:, j]
        self._pending = None if last_gop or not ov else rec[:, p.gop - ov :].clone()
