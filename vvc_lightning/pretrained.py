"""The model zoo: trained models that ship with the package, found by name.

A zoo entry is two files in a models folder: NAME.safetensors (weights and CDF tables, no optimizer state;
float weights of the backbone and transforms in float16, entropy models, gains and integer tables as
trained) and NAME.json (the record: identity, architecture, how it was trained, its measured curve).
Folders searched, first match wins: each folder in $VVC_LIGHTNING_MODELS (os.pathsep-separated), then
the packaged vvc_lightning/assets/models/.

A zoo model's weights file is checked against the SHA-256 in its record on load, and a bitstream it wrote
decodes anywhere the package is installed: `decompress` finds the entry the header names (checkpoint
'zoo:NAME'), or else the entry whose recorded identity the header holds; the codec then checks the identity.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vvc_lightning import __version__
from vvc_lightning.errors import VVCError, WeightsError

ENV = "VVC_LIGHTNING_MODELS"
FORMAT = 1
PREFIX = "zoo:"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Kept in float32 when exporting: small, and they shape the entropy coder's tables and the rate.
FP32_PARTS = ("codec.entropy_bottleneck.", "codec.gaussian_conditional.", "codec.gain.")


def packaged_dir() -> Path:
    """The folder of the models that install with the package."""
    return Path(str(resources.files("vvc_lightning").joinpath("assets", "models")))


def model_dirs() -> list[Path]:
    """Folders searched for zoo entries, in order."""
    extra = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]
    return [*extra, packaged_dir()]


@dataclass
class ZooEntry:
    """One shipped model: its files and its record."""

    name: str
    weights: Path
    record_path: Path
    record: dict[str, Any]

    @property
    def identity(self) -> str:
        return str(self.record.get("identity", ""))

    @property
    def qualities(self) -> int:
        return int(self.record.get("qualities") or 0)

    def bpp_range(self) -> tuple[float, float] | None:
        """(lowest, highest) measured bpp of its curve, or None before it is measured."""
        bpps = [float(p["bpp"]) for p in self.record.get("curve") or [] if "bpp" in p]
        return (min(bpps), max(bpps)) if bpps else None

    def summary(self) -> dict[str, str]:
        """One row of `models`: name, backbone, params, qualities, bpp range, training."""
        r, tr = self.record, self.record.get("training", {})
        bpp = self.bpp_range()
        data = tr.get("data", {}) or {}
        return {
            "name": self.name,
            "backbone": f"{r.get('backbone', '?')} c={r.get('latent_channels', '?')}",
            "params": f"{int(r.get('params', 0)) / 1e6:.2f}M",
            "qualities": str(self.qualities) if self.qualities else "fixed",
            "bpp": f"{bpp[0]:.4f}-{bpp[1]:.4f}" if bpp else "not measured",
            "trained": f"{tr.get('global_step', '?')} steps on {data.get('name', '?')} ({tr.get('stage', '?')} stage)",
        }


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("format") == FORMAT else None


def list_models() -> list[ZooEntry]:
    """Every zoo entry found (a name in an earlier folder hides the same name in a later one)."""
    found: dict[str, ZooEntry] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for rec_path in sorted(folder.glob("*.json")):
            name = rec_path.stem
            weights = folder / f"{name}.safetensors"
            rec = _read_record(rec_path)
            if name in found or rec is None or not weights.is_file():
                continue
            found[name] = ZooEntry(name, weights, rec_path, rec)
    return list(found.values())


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called `name` (a leading 'zoo:' is allowed), or one line naming the known ones."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    entries = list_models()
    for e in entries:
        if e.name == name:
            return e
    known = ", ".join(e.name for e in entries) or "none installed"
    raise VVCError(f"no shipped model named '{name}'; known models: {known} (see `python -m vvc_lightning models`)")


def find_for_header(identity: str, checkpoint: str) -> ZooEntry | None:
    """The installed zoo entry a bitstream names (checkpoint 'zoo:NAME'), else the one with its identity."""
    entries = list_models()
    if checkpoint.startswith(PREFIX):
        named = next((e for e in entries if e.name == checkpoint[len(PREFIX) :]), None)
        if named is not None:
            return named
    return next((e for e in entries if identity and e.identity == identity), None)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict (float tensors as float32, integer tables as stored) and metadata of a .safetensors file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise VVCError(f"weights file '{path}' does not exist")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightsError(f"'{path}' is not a readable .safetensors file ({exc}); re-export it") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, meta


def build_model(config: dict[str, Any], state: dict[str, torch.Tensor], origin: str, strict: bool = True):
    """A VideoCompressionModel from a stored config and state dict (gains may be missing when not strict)."""
    from vvc_lightning.config import from_container
    from vvc_lightning.training.model import VideoCompressionModel

    cfg = from_container(config)
    if cfg.model.backbone.get("weights") is not None:
        cfg.model.backbone.weights = None  # the weights come from the state dict
    cfg.model.init = None
    model = VideoCompressionModel(cfg)
    load_state(model, state, origin, strict)
    return model


def load_state(model: Any, state: dict[str, torch.Tensor], origin: str, strict: bool = True) -> list[str]:
    """Load weights into a model; returns the gain keys that were missing (allowed unless `strict`; any
    other difference in keys or shapes is an error)."""
    missing = [k for k in model.state_dict() if k not in state]
    gains_only = bool(missing) and all(k.startswith("codec.gain.") for k in missing)
    try:
        model.load_state_dict(state, strict=strict or not gains_only)
    except RuntimeError as exc:
        raise WeightsError(f"'{origin}' does not fit the model: {str(exc).splitlines()[0]}") from exc
    return missing if gains_only else []


def load_pretrained(name: str, map_location: str | torch.device = "cpu"):
    """The zoo model `name` in eval mode with its CDF tables, its weights file checked against its record."""
    from vvc_lightning.training.stages import stage_index

    entry = get_entry(name)
    digest = entry.record.get("sha256")
    if digest and hashlib.sha256(entry.weights.read_bytes()).hexdigest() != digest:
        raise WeightsError(f"zoo model '{entry.name}' ({entry.weights}) does not match the checksum in its record; "
                           "the files are damaged or mismatched: re-export or reinstall it")
    state, _ = read_weights(entry.weights)
    model = build_model(entry.record["config"], state, str(entry.weights))
    tr = entry.record.get("training", {})
    model.stage = model.cfg.stages[stage_index(model.cfg.stages, int(tr.get("global_step", 0)), int(tr.get("epoch", 0)))]
    model.eval()
    if not model.codec.tables_ready():
        raise WeightsError(f"zoo model '{entry.name}' has no CDF tables; re-export it")
    model.checkpoint_path = f"{PREFIX}{entry.name}"
    model.zoo_entry = entry
    return model.to(map_location)


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
    """Write a Lightning checkpoint as zoo entry NAME (.safetensors + .json) in `out_dir`; returns the record path.

    Float weights are rounded to float16 first (unless fp16=False), then the CDF tables are rebuilt from the
    rounded weights, so the stored tables and weights belong together and decoding stays exact."""
    from safetensors.torch import save

    from vvc_lightning.training.checkpoint import load_model, read_checkpoint
    from vvc_lightning.video.video_io import write_bytes_atomic

    if not NAME_RE.fullmatch(name):
        raise VVCError(f"model name '{name}' must be letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
    out = Path(out_dir) if out_dir is not None else packaged_dir()
    out.mkdir(parents=True, exist_ok=True)
    weights_path, record_path = out / f"{name}.safetensors", out / f"{name}.json"
    if not overwrite and (weights_path.exists() or record_path.exists()):
        raise VVCError(f"zoo entry '{name}' already exists in {out}; pick another --name or pass --force")
    raw = read_checkpoint(ckpt)
    model = load_model(ckpt)
    stored = _storage(model.state_dict(), fp16)
    with torch.no_grad():
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored.items()})
    model.codec.update_tables(force=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    stored.update({k: state[k] for k in state if k.startswith(FP32_PARTS)})  # fresh tables, float32
    identity = model.identity()
    cfg = model.cfg
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    config["model"]["init"] = None
    step, epoch = int(raw.get("global_step", 0)), int(raw.get("epoch", 0))
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
        "storage": "float16 weights, float32 entropy models and gains, int32 CDF tables" if fp16 else "float32",
        "training": {
            "global_step": step,
            "epoch": epoch,
            "stage": str(model.stage.name),
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "source_checkpoint": str(Path(ckpt).resolve()),
            "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "vvc_lightning": __version__,
            "notes": notes,
        },
        "curve": [],
        "curve_source": "",
        "config": config,
    }
    write_bytes_atomic(weights_path, save(stored, metadata={"name": name, "identity": identity, "format": str(FORMAT)}))
    record["sha256"] = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    write_bytes_atomic(record_path, (json.dumps(record, indent=1) + "\n").encode())
    return record_path


def attach_curve(name: str, summary_csv: str | os.PathLike, codec: str = "ours", source: str = "") -> Path:
    """Store the measured curve of zoo entry `name` (rows of `codec` in an `evaluate` summary.csv) in its record."""
    import csv

    from vvc_lightning.video.video_io import write_bytes_atomic

    entry = get_entry(name)
    path = Path(summary_csv)
    if not path.is_file():
        raise VVCError(f"'{path}' does not exist; pass the summary.csv written by `evaluate`")
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r.get("codec") == codec]
    if not rows:
        raise VVCError(f"'{path}' holds no rows of codec '{codec}'; pass --codec with the name used in evaluate")
    curve = []
    for r in rows:
        point: dict[str, Any] = {"point": r.get("point", "")}
        if "@q" in point["point"]:
            point["quality"] = float(point["point"].rsplit("@q", 1)[1])
        for k, v in r.items():
            if k in ("codec", "label", "kind", "point", "point_label"):
                continue
            try:
                point[k] = float(v)
            except (TypeError, ValueError):
                continue
        curve.append(point)
    entry.record["curve"] = sorted(curve, key=lambda p: p.get("bpp", 0.0))
    entry.record["curve_source"] = source or str(path.resolve())
    write_bytes_atomic(entry.record_path, (json.dumps(entry.record, indent=1) + "\n").encode())
    return entry.record_path
