"""Shared machinery of the video metrics: input checks, 8-bit quantisation, frame-averaged torchmetrics.

Every metric sees a sequence as uint8 tensors (N,3,H,W) (what a decoder outputs) through `scores`,
which returns one value per frame (per frame pair for temporal metrics). As a torchmetrics `Metric`,
`update(ref, rec)` takes (B,3,T,H,W) in [-1,1], rounds to 8 bits and accumulates the per-frame values;
`compute()` is their mean over every frame seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from vvc_lightning.errors import FrameCountError, VVCError

CHUNK = 4  # frames converted to float at a time
_SAID: set[str] = set()


def say_once(message: str) -> None:
    """Tell the user `message` in one line on the command's output, once per process."""
    import logging

    if message not in _SAID:
        _SAID.add(message)
        logging.getLogger("vvc_lightning").warning(message)


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Treat denormal floats as zero on the CPU meanwhile (real images make CNNs hit them: 3-6x slower)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def quantize(x: Tensor) -> Tensor:
    """(…) float in [-1,1] -> uint8 in [0,255], rounded and clipped (the 8-bit decoder output)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def frames_to_u8(frames: np.ndarray) -> Tensor:
    """uint8 (N,H,W,3) numpy -> uint8 tensor (N,3,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def u8_to_frames(x: Tensor) -> np.ndarray:
    """uint8 tensor (N,3,H,W) -> numpy (N,H,W,3)."""
    return x.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()


def check_sequences(ref: Tensor, rec: Tensor, what: str = "metrics") -> None:
    """Reference and decoded frames must match in count and size (a clear VVCError otherwise)."""
    if ref.dim() != rec.dim() or ref.shape[-3] != 3 or rec.shape[-3] != 3:
        raise VVCError(f"{what}: expected frames (N,3,H,W), got {tuple(ref.shape)} and {tuple(rec.shape)}")
    if ref.shape[0] != rec.shape[0]:
        raise FrameCountError(
            f"{what}: the decoded video has {rec.shape[0]} frames but the reference has {ref.shape[0]}; "
            "compare the same frames (check --max-frames and that the decoder emits every frame)"
        )
    if ref.shape[-2:] != rec.shape[-2:]:
        raise VVCError(
            f"{what}: decoded frames are {rec.shape[-1]}x{rec.shape[-2]} but the reference is "
            f"{ref.shape[-1]}x{ref.shape[-2]}; crop or scale the decoded video to the reference size"
        )


def check_clips(ref: Tensor, rec: Tensor) -> None:
    """(B,3,T,H,W) clips of one shape."""
    if ref.dim() != 5 or rec.dim() != 5 or ref.shape[1] != 3:
        raise VVCError(f"metrics take clips (B,3,T,H,W), got {tuple(ref.shape)} and {tuple(rec.shape)}")
    if ref.shape[0] != rec.shape[0]:
        raise VVCError(f"metrics: {ref.shape[0]} reference clips but {rec.shape[0]} decoded clips")
    check_sequences(ref[0].transpose(0, 1), rec[0].transpose(0, 1))


def chunks(n: int, size: int = CHUNK, overlap: int = 0) -> Iterator[slice]:
    """Slices covering range(n) in pieces of `size` (consecutive pieces share `overlap` items)."""
    step = max(1, size - overlap)
    start = 0
    while start < n:
        stop = min(n, start + size)
        yield slice(start, stop)
        if stop == n:
            break
        start += step


class VideoMetric(Metric):
    """A metric averaged over frames; subclasses give `frame_scores` (or override `scores`)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # human-readable, for plots
    higher_is_better: ClassVar[bool] = True
    is_differentiable = False
    full_state_update = False
    fast: ClassVar[bool] = True  # in the default set
    per: ClassVar[str] = "frame"  # frame | pair (temporal) | set (distribution)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self._hidden: list[nn.Module] = []

    # -------------------------------------------------------------------- what subclasses give
    @property
    def key(self) -> str:
        """The name this metric's values carry in outputs (may differ from `name`, e.g. stlpips)."""
        return self.name

    def info(self) -> dict[str, Any]:
        """Protocol details recorded beside the results."""
        return {}

    def note(self, height: int, width: int) -> str:
        """What a user must know about this metric's values on frames of this size ('' when nothing)."""
        return ""

    def frame_scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        """Per-frame values (n,) of float frames (n,3,H,W) in [0,255] on `self.device`."""
        raise NotImplementedError

    # -------------------------------------------------------------------- shared
    def hide(self, attr: str, module: nn.Module) -> nn.Module:
        """Set `self.<attr>` to a network kept out of state_dict (never in checkpoints) that moves with us."""
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        module = module.to(self.device)
        self._hidden.append(module)
        object.__setattr__(self, attr, module)  # not registered as a submodule
        return module

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> VideoMetric:
        out = super()._apply(fn, *args, **kwargs)
        for m in getattr(self, "_hidden", []):
            m._apply(fn, *args, **kwargs)
        return out

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        """Per-frame values (N,) float64 of a sequence given as uint8 tensors (N,3,H,W)."""
        check_sequences(ref, rec, self.key)
        out = []
        with torch.no_grad(), flush_denormal():
            for s in chunks(ref.shape[0]):
                a = ref[s].to(self.device).float()
                b = rec[s].to(self.device).float()
                out.append(self.frame_scores(a, b).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def update(self, ref: Tensor, rec: Tensor) -> None:
        """Accumulate clips (B,3,T,H,W) in [-1,1] (rounded to 8 bits first)."""
        check_clips(ref, rec)
        for b in range(ref.shape[0]):
            values = self.scores(quantize(ref[b]).transpose(0, 1), quantize(rec[b]).transpose(0, 1))
            self.total += values.sum().to(self.total.device)
            self.count += int(values.numel())

    def compute(self) -> Tensor:
        """Mean over all frames (frame pairs) seen; NaN before any update."""
        if int(self.count) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count
