"""`export`: a `fit` checkpoint as zoo entry NAME (NAME.safetensors + NAME.json; see
`vvc_lightning.store.zoo`)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import torch

from vvc_lightning.errors import VVCError
from vvc_lightning.store.loader import build, read_fit_checkpoint
from vvc_lightning.store.record import FORMAT, portable_path, portable_strings
from vvc_lightning.store.zoo import NAME_RE, packaged_dir, write_file
from vvc_lightning.version import __version__
from vvc_lightning.video.atomic import make_dirs

# Kept in float32 when exporting: small, and they shape the entropy coder's tables and the rate.
FP32_PARTS = ("codec.entropy_bottleneck.", "codec.gaussian_conditional.", "codec.gain.")


def _storage(state: dict[str, torch.Tensor], fp16: bool) -> dict[str, torch.Tensor]:
    """Which tensors are stored in float16: large float weights outside the entropy models, when exact."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if fp16 and v.dtype == torch.float32 and not k.startswith(FP32_PARTS):
            half = v.half()
            if torch.isfinite(half).all() or not torch.isfinite(v).all():
                v = half
        out[k] = v.clone()
    return out


def export_model(
    ckpt: str | os.PathLike,
    name: str,
    out_dir: str | os.PathLike | None = None,
    fp16: bool = True,
    overwrite: bool = False,
    notes: str = "",
) -> Path:
    """Write a `fit` checkpoint as zoo entry NAME (.safetensors + .json) in `out_dir`; returns the record
    path.

    Float weights are rounded to float16 first (unless fp16=False), then the CDF tables are rebuilt from the
    rounded weights, so the stored tables and weights belong together and decoding stays exact."""
    from omegaconf import OmegaConf
    from safetensors.torch import save

    from vvc_lightning.configuration.config import stage_index

    if not NAME_RE.fullmatch(name):
        raise VVCError(
            f"model name '{name}' must be letters, digits, '.', '_' or '-' (at most 64), starting with a "
            "letter or digit"
        )
    out = Path(out_dir) if out_dir is not None else packaged_dir()
    if out.exists() and not out.is_dir():
        raise VVCError(
            f"-o '{out}' is a file, not a folder; pass the models folder to write {name}.safetensors "
            f"and {name}.json into"
        )
    make_dirs(out)
    weights_path, record_path = out / f"{name}.safetensors", out / f"{name}.json"
    if not overwrite and (weights_path.exists() or record_path.exists()):
        raise VVCError(f"zoo entry '{name}' already exists in {out}; pick another --name or pass --force")
    source = read_fit_checkpoint(ckpt)
    model = build(source)
    stored = _storage(model.state_dict(), fp16)
    with torch.no_grad():
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored.items()})
    model.codec.update_tables(force=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    stored.update({k: state[k] for k in state if k.startswith(FP32_PARTS)})  # fresh tables, float32
    identity = model.identity()
    cfg = model.cfg
    config = OmegaConf.to_container(cfg, resolve=True)
    config["model"]["init"] = None
    config = {k: v if k == "model" else portable_strings(v) for k, v in config.items()}  # model: identity
    step, epoch = source.step, source.epoch
    record = {
        "format": FORMAT,
        "name": name,
        "weights": weights_path.name,
        "identity": identity,
        "backbone": str(cfg.model.backbone.name),
        "latent_channels": int(model.backbone.latent_channels),
        "params": int(sum(p.numel() for p in model.parameters())),
        "qualities": int(model.codec.qualities),
        "lmbda_range": list(model.lmbda_range) if model.lmbda_range else None,
        "gop": int(cfg.model.gop),
        "storage": "float16 weights, float32 entropy models and gains, int32 CDF tables"
        if fp16
        else "float32",
        "training": {
            "global_step": step,
            "epoch": epoch,
            "stage": str(cfg.stages[stage_index(cfg.stages, step, epoch)].name),
            "data": config.get("data"),
            "source_checkpoint": portable_path(ckpt),
            "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "vvc_lightning": __version__,
            "notes": notes,
        },
        "curve": [],
        "curve_source": "",
        "config": config,
    }
    blob = save(stored, metadata={"name": name, "identity": identity, "format": str(FORMAT)})
    record["sha256"] = hashlib.sha256(blob).hexdigest()
    existed = weights_path.exists()
    write_file(weights_path, blob, replace=overwrite)  # of two exports to one name, one wins here
    try:
        write_file(record_path, (json.dumps(record, indent=1) + "\n").encode(), replace=overwrite)
    except VVCError:
        if not existed:  # no weights without their record
            weights_path.unlink(missing_ok=True)
        raise
    return record_path
