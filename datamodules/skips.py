"""Counting skipped videos and shards: a warning per skip (rate-limited), never a crash, never a silent
hang."""

from __future__ import annotations

import warnings
from collections import Counter

from vvc_lightning.errors import VVCError


class SkippedVideoWarning(UserWarning):
    """A video (or a shard) was skipped; the message says why and how many so far."""


class SkipCounter:
    """Counts skips by reason; warns for the first `verbose` skips and then every `every`-th.

    Raises VVCError after `max_consecutive` skips in a row (all data bad: fail instead of hanging).
    """

    def __init__(self, where: str, verbose: int = 10, every: int = 100, max_consecutive: int = 1000) -> None:
        self.where = where
        self.verbose, self.every, self.max_consecutive = verbose, every, max_consecutive
        self.counts: Counter[str] = Counter()
        self.consecutive = 0
        self.ok_count = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def ok(self) -> None:
        """A sample went through."""
        self.ok_count += 1
        self.consecutive = 0

    def skip(self, key: str, reason: str, detail: str = "") -> None:
        """Count one skip and warn about it."""
        self.counts[reason] += 1
        self.consecutive += 1
        n = self.total
        if n <= self.verbose or n % self.every == 0:
            warnings.warn(
                f"{self.where}: skipped {key} ({reason}{': ' + detail if detail else ''}); "
                f"{n} skipped so far ({self.describe()})",
                SkippedVideoWarning,
                stacklevel=2,
            )
        if self.consecutive >= self.max_consecutive:
            raise VVCError(
                f"{self.where}: the last {self.consecutive} videos or shards were all skipped "
                f"({self.describe()}); check that the shards exist and hold videos long and large enough "
                "for data.frames, data.frame_stride and data.crop_size"
            )

    def describe(self) -> str:
        """'3 too short, 1 does not decode'."""
        return ", ".join(f"{v} {k}" for k, v in self.counts.most_common()) or "none"

    def report(self) -> None:
        """Warn with the totals if anything was skipped."""
        if self.total:
            warnings.warn(
                f"{self.where}: {self.total} skipped, {self.ok_count} used ({self.describe()})",
                SkippedVideoWarning,
                stacklevel=2,
            )

    def handler(self, exn: BaseException) -> bool:
        """A webdataset exception handler: count the error as a skipped shard and go on."""
        label = next((a for a in reversed(getattr(exn, "args", ())) if isinstance(a, str)), "shard")
        self.skip(str(label), "unreadable shard", f"{type(exn).__name__}: {str(exn)[:200]}")
        return True
