"""Metrics of a sequence given a few frames at a time (as a streaming decoder yields them), in bounded memory.

Per-frame metrics score each chunk; pair metrics (tOF, tLP) carry the last frame of the previous chunk so
the pair across the boundary counts once; set metrics (FID/KID) accumulate Inception features; BRISQUE and
the set metrics pick every `frame_stride`-th frame by its index in the whole sequence. The values equal
those of `VideoMetrics.sequence` on the whole sequence. VMAF alone keeps the frames (in files on disk, not
in memory) because libvmaf's motion feature looks across frames.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.errors import FrameCountError
from vvc_lightning.metrics.base import VideoMetric, check_sequences, frames_to_u8, u8_to_frames


def frame_chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Frames (H,W,3) in stacks of `size` (the last may be shorter), as `StreamingScores.update` takes."""
    buf: list[np.ndarray] = []
    for f in frames:
        buf.append(f)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def score_decoded(scores: StreamingScores, reference: Iterable[np.ndarray], decoded: Iterable[np.ndarray],
                  frames: int, chunk: int, on_chunk: Callable[[int, np.ndarray], None] | None = None) -> None:
    """Feed `scores` the decoded frames (H,W,3) beside the reference's, `chunk` at a time, as a streaming
    decoder yields them; FrameCountError when the decoded video does not have the reference's `frames`
    frames. `on_chunk(start, rec)` sees each decoded chunk (start: the index of its first frame)."""
    what, done = scores.what, 0
    refs = frame_chunks(reference, chunk)
    for rec in frame_chunks(decoded, chunk):
        if done + len(rec) > frames:
            raise FrameCountError(f"{what}: the decoded video has more frames than the reference's {frames}")
        ref = next(refs, None)
        if ref is None or len(ref) != len(rec):
            raise FrameCountError(f"{what}: the reference gives fewer frames than the {frames} it had")
        if on_chunk is not None:
            on_chunk(done, rec)
        scores.update(ref, rec)
        done += len(rec)
    if done != frames:
        raise FrameCountError(
            f"{what}: the decoded video has {done} frames but the reference has {frames}; compare the same "
            "frames (check --max-frames and that the decoder emits every frame)")


class StreamingScores:
    """Per-frame (per-pair, per-set) values of `metrics` over chunks `update(ref, rec)` of uint8 (n,H,W,3).

    `set_ref=False`: set metrics keep only the decoded frames' features (`rec_features`), for callers that
    cache the reference features themselves; `values()` then leaves them out.
    """

    def __init__(self, metrics: Iterable[VideoMetric], set_ref: bool = True, what: str = "metrics") -> None:
        self.metrics = list(metrics)
        self.set_ref, self.what = set_ref, what
        self.count = 0
        self._values: dict[str, list[Tensor]] = {m.key: [] for m in self.metrics}
        self._feats: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
            m.key: ([], []) for m in self.metrics if m.per == "set"}
        self._prev: tuple[Tensor, Tensor] | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._shape: tuple[int, ...] | None = None
        tlp = next((m for m in self.metrics if m.name == "tlp"), None)
        self._joint = next((m for m in self.metrics if tlp is not None and m is not tlp
                            and getattr(m, "_net", None) is getattr(tlp, "_net", 0)), None)
        self._tlp = tlp if self._joint is not None else None

    # ------------------------------------------------------------------------------ update
    def update(self, ref: np.ndarray, rec: np.ndarray) -> None:
        """Score the next frames: reference and decoded RGB uint8 (n,H,W,3)."""
        a, b = frames_to_u8(ref), frames_to_u8(rec)
        check_sequences(a, b, self.what)
        if self._shape is not None and tuple(a.shape[1:]) != self._shape:
            raise ValueError(f"{self.what}: frames change size within a sequence")
        self._shape = tuple(a.shape[1:])
        n = a.shape[0]
        if n == 0:
            return
        pa, pb = (
            (a, b) if self._prev is None else (torch.cat([self._prev[0], a]), torch.cat([self._prev[1], b]))
        )
        skip = 0 if self._prev is None else 1  # the carried frame was scored with the previous chunk
        if self._tlp is not None:
            lp, pairs = self._tlp.joint_scores(pa, pb)
            self._values[self._joint.key].append(lp[skip:])
            self._values[self._tlp.key].append(pairs)
        for m in self.metrics:
            if m is self._joint or m is self._tlp:  # (torchmetrics overloads ==, so no `in`)
                continue
            if m.name == "vmaf":
                self._spool(ref, rec)
            elif m.per == "pair":
                self._values[m.key].append(m.scores(pa, pb))
            elif m.per == "set":
                self._set_update(m, a, b)
            elif m.name == "brisque":
                from vvc_lightning.metrics.noref import brisque_scores

                sel = self._strided(n, m.frame_stride)
                self._values[m.key].append(torch.from_numpy(brisque_scores(u8_to_frames(b[sel]))))
            else:
                self._values[m.key].append(m.scores(a, b))
        self._prev = (a[-1:].clone(), b[-1:].clone())
        self.count += n

    def _strided(self, n: int, stride: int) -> Tensor:
        """Which of the next n frames are every `stride`-th frame of the whole sequence."""
        return (torch.arange(self.count, self.count + n) % stride) == 0

    def _set_update(self, m: VideoMetric, a: Tensor, b: Tensor) -> None:
        from vvc_lightning.metrics.distribution import features

        sel = self._strided(a.shape[0], m.frame_stride)
        if not bool(sel.any()):
            return
        refs, recs = self._feats[m.key]
        if self.set_ref:
            refs.append(features(a[sel], m.device, m.patch, m.shifted, 1))
        recs.append(features(b[sel], m.device, m.patch, m.shifted, 1))

    def _spool(self, ref: np.ndarray, rec: np.ndarray) -> None:
        """Append the RGB frames to files on disk for VMAF at the end."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vvc_vmaf_stream_")
        d = Path(self._tmp.name)
        with open(d / "ref.rgb", "ab") as f:
            f.write(np.ascontiguousarray(ref).tobytes())
        with open(d / "rec.rgb", "ab") as f:
            f.write(np.ascontiguousarray(rec).tobytes())

    # ------------------------------------------------------------------------------ results
    def rec_features(self, key: str) -> np.ndarray:
        """Inception features (P,2048) of the decoded frames seen (set metric `key`)."""
        from vvc_lightning.metrics.distribution import FEATURE_DIM

        recs = self._feats[key][1]
        return np.concatenate(recs) if recs else np.zeros((0, FEATURE_DIM), np.float32)

    def values(self) -> dict[str, np.ndarray]:
        """{key: per-frame (per-pair) values, or a one-element array for a set metric}."""
        out: dict[str, np.ndarray] = {}
        for m in self.metrics:
            if m.per == "set":
                if not self.set_ref:
                    continue
                refs, _ = self._feats[m.key]
                from vvc_lightning.metrics.distribution import FEATURE_DIM

                ref = np.concatenate(refs) if refs else np.zeros((0, FEATURE_DIM), np.float32)
                out[m.key] = np.array([m.from_features(ref, self.rec_features(m.key))], np.float64)
            elif m.name == "vmaf":
                out[m.key] = self._vmaf(m)
            else:
                parts = self._values[m.key]
                out[m.key] = torch.cat(parts).numpy() if parts else np.zeros(0, np.float64)
        return out

    def means(self) -> dict[str, float]:
        """{key: mean over every frame (pair) seen, or the set value}."""
        return {k: float(np.mean(v)) if len(v) else float("nan") for k, v in self.values().items()}

    def _vmaf(self, m: VideoMetric) -> np.ndarray:
        from vvc_lightning.metrics.vmaf import vmaf_scores

        if self._tmp is None or self._shape is None:
            return np.zeros(0, np.float64)
        _, h, w = self._shape
        d = Path(self._tmp.name)
        ref = np.memmap(d / "ref.rgb", np.uint8, "r").reshape(-1, h, w, 3)
        rec = np.memmap(d / "rec.rgb", np.uint8, "r").reshape(-1, h, w, 3)
        values, m.version = vmaf_scores(ref, rec, m.matrix, m.rng, m.threads)
        return values

    def close(self) -> None:
        """Remove the VMAF spool files (if any)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
