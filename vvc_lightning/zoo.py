"""Any checkpoint turned into a ready VideoCodec: the one place that joins the training code and the codec."""

from __future__ import annotations

import os
from typing import Any

import torch

from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.training.checkpoint import load_model


def load_any_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """The model of a checkpoint file, an exported weights file, or a shipped model 'zoo:NAME'."""
    from vvc_lightning.pretrained import PREFIX, load_pretrained

    if str(path).startswith(PREFIX):
        return load_pretrained(str(path), map_location)
    return load_model(path, map_location=map_location)


def load_codec(path: str | os.PathLike, map_location: str | torch.device = "cpu", gop: int | None = None,
               **kw: Any) -> VideoCodec:
    """A VideoCodec around the model of `path` (see `load_any_model`; GoP length: `gop`, else the model's own)."""
    model = load_any_model(path, map_location=map_location)
    return VideoCodec(model, gop=model.gop if gop is None else gop, **kw)
