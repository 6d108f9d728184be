"""No-reference quality: BRISQUE (Mittal et al. 2012) of the decoded frames, via the `brisque` package."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.errors import VVCError
from vvc_lightning.metrics.base import VideoMetric, check_sequences, u8_to_frames
from vvc_lightning.metrics.registry import register_metric
from vvc_lightning.video.images import METRICS_EXTRA

_MODEL: list[Any] = []


def brisque_model() -> Any:
    """The `brisque` package's scorer with its bundled SVR model (loaded once)."""
    if not _MODEL:
        try:
            from brisque import BRISQUE
        except ImportError as exc:
            raise VVCError(f"BRISQUE needs the 'brisque' package, which the metrics extra installs: "
                           f"{METRICS_EXTRA} ({exc})") from exc
        _MODEL.append(BRISQUE(url=False))
    return _MODEL[0]


def brisque_scores(frames: np.ndarray) -> np.ndarray:
    """BRISQUE score of each uint8 RGB frame (N,H,W,3); lower is better."""
    model = brisque_model()
    return np.array([float(model.score(np.ascontiguousarray(f))) for f in frames], np.float64)


@register_metric("brisque")
class BRISQUE(VideoMetric):
    """BRISQUE of every decoded frame (every `frame_stride`-th); the reference is not used."""

    name = "brisque"
    label = "BRISQUE"
    higher_is_better = False
    fast = False

    def __init__(self, frame_stride: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if frame_stride < 1:
            raise VVCError("brisque: frame_stride must be >= 1")
        self.frame_stride = int(frame_stride)
        brisque_model()

    def info(self) -> dict[str, Any]:
        return {"implementation": "brisque 0.2 (libsvm SVR, LIVE-trained)", "input": "decoded RGB frames",
                "frame_stride": self.frame_stride}

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        check_sequences(ref, rec, self.key)
        frames = u8_to_frames(rec[:: self.frame_stride])
        return torch.from_numpy(brisque_scores(frames))
