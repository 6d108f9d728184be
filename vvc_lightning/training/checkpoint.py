"""Checkpoints written atomically by `fit`; reading them is `vvc_lightning.store.loader`'s job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vvc_lightning.deprecation import deprecated_alias
from vvc_lightning.store.loader import load, read_checkpoint

__all__ = ["AtomicCheckpointIO", "read_checkpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it and renames it: never a half-written .ckpt."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None
    ) -> None:
        from vvc_lightning.video.atomic import atomic_path, make_dirs

        path = Path(path)
        make_dirs(path.parent)
        # a full disk etc. ends in one line, no file; last.ckpt replaces itself, but a new name that another
        # run writes meanwhile is kept (`OutputTaken`)
        with atomic_path(path, replace=path.exists()) as tmp, open(tmp, "wb") as f:
            try:
                torch.save(checkpoint, f)
            except RuntimeError as exc:  # torch reports a failed write as "enforce fail ... unexpected pos"
                if isinstance(exc.__context__, OSError):
                    raise exc.__context__ from exc
                raise


load_model = deprecated_alias(
    "vvc_lightning.training.checkpoint.load_model", "vvc_lightning.store.loader.load", load
)
