"""Checkpoints: atomic writes, and loading a model (with its stored config) from a checkpoint alone."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vvc_lightning import __version__
from vvc_lightning.errors import VVCError, WeightsError

COMPATIBLE_MAJOR = __version__.split(".")[0]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it and renames it: never a half-written .ckpt."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None) -> None:
        from vvc_lightning.video.atomic import atomic_path, make_dirs

        path = Path(path)
        make_dirs(path.parent)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a full disk etc. ends in one line, no file
            try:
                torch.save(checkpoint, f)
            except RuntimeError as exc:  # torch reports a failed write as "enforce fail ... unexpected pos"
                if isinstance(exc.__context__, OSError):
                    raise exc.__context__ from exc
                raise


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, with clear errors for a missing, foreign or incompatible file."""
    path = Path(path)
    if not path.is_file():
        raise VVCError(f"checkpoint '{path}' does not exist; pass the .ckpt written by `fit` (e.g. runs/NAME/last.ckpt)")
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects would let a crafted file run code.
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says it all
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"checkpoint '{path}' cannot be read as weights and plain data (truncated, not written by `fit`, or "
            "holding objects whose loading could run code: refused); pass a checkpoint written by `fit`"
        ) from exc
    except Exception as exc:
        raise WeightsError(f"checkpoint '{path}' cannot be read ({str(exc).splitlines()[0]}); is it truncated?") from exc
    if not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "config" not in ckpt["hyper_parameters"]:
        raise WeightsError(f"'{path}' is not a vvc-lightning checkpoint (no stored config)")
    version = str(ckpt["hyper_parameters"].get("version", "0"))
    if version.split(".")[0] != COMPATIBLE_MAJOR:
        raise WeightsError(
            f"checkpoint '{path}' was written by vvc-lightning {version}; this is {__version__} "
            f"(major versions differ): re-export it with a matching version"
        )
    return ckpt


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu", overrides: list[str] | None = None):
    """A VideoCompressionModel from a checkpoint alone, in eval mode, with its CDF tables, in the stage the
    checkpoint was taken in."""
    from vvc_lightning.config import apply_overrides, from_container
    from vvc_lightning.training.model import VideoCompressionModel
    from vvc_lightning.training.stages import stage_index

    ckpt = read_checkpoint(path)
    cfg = from_container(ckpt["hyper_parameters"]["config"])
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    # The backbone's own weights come from the checkpoint, not from the original weights file.
    for key in ("weights", "pretrained"):
        if cfg.model.backbone.get(key) is not None:
            cfg.model.backbone[key] = None
    model = VideoCompressionModel(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise WeightsError(f"checkpoint '{path}' does not fit its own config: {str(exc).splitlines()[0]}") from exc
    model.stage = cfg.stages[stage_index(cfg.stages, int(ckpt.get("global_step", 0)), int(ckpt.get("epoch", 0)))]
    model.eval()
    model.codec.update_tables(force=not model.codec.tables_ready())
    model.checkpoint_path = str(Path(path).resolve())
    return model.to(map_location)
