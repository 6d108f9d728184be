"""Any checkpoint turned into a ready VideoCodec: the one place that joins the training code and the codec."""

from __future__ import annotations

import os
from typing import Any

import torch

from vvc_lightning.codec.video_codec import VideoCodec
from vvc_lightning.training.checkpoint import load_model


def load_codec(path: str | os.PathLike, map_location: str | torch.device = "cpu", gop: int | None = None,
               **kw: Any) -> VideoCodec:
    """A VideoCodec around the model stored in checkpoint `path` (GoP length: `gop`, else the model's own)."""
    model = load_model(path, map_location=map_location)
    return VideoCodec(model, gop=model.gop if gop is None else gop, **kw)
