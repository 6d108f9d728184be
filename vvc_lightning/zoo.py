"""The model zoo: trained models that ship with the package, found by name.

A zoo entry is two files in a models folder: NAME.safetensors (weights and CDF tables, no optimizer state;
float weights of the backbone and transforms in float16, entropy models, gains and integer tables as
trained) and NAME.json (the record: identity, architecture, how it was trained, its measured curve).
Folders searched, first match wins: each folder in $VVC_LIGHTNING_MODELS (os.pathsep-separated), then
the packaged vvc_lightning/assets/models/. A folder is untrusted: a record that cannot be used is skipped
with a one-line warning naming it (`zoo_record` says what is checked) and never hides another entry.

`vvc_lightning.loader` loads an entry: its weights file is checked against the SHA-256 in its record, against
its record's architecture before anything is built, and the built model's identity against the record's. A bitstream
it wrote decodes anywhere the package is installed: `decompress` finds the entry whose identity the header
holds (the one the header names first, even where a same-named entry in an earlier folder shadows it),
else the entry the header names; the codec then checks the identity.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vvc_lightning import __version__
from vvc_lightning.deprecation import deprecated_alias
from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.video.atomic import sha256_file
from vvc_lightning.zoo_record import (
    FIX,
    FORMAT,
    RecordProblem,
    check_int_layers,
    check_tensors,
    portable_path,
    portable_strings,
    read_curve,
    read_record,
)

log = logging.getLogger(__name__)

ENV = "VVC_LIGHTNING_MODELS"
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


@dataclass
class BadEntry:
    """A record in a models folder that cannot be used, and why."""

    name: str
    record_path: Path
    problem: str

    def error(self) -> WeightsError:
        return WeightsError(f"model '{self.name}' ({self.record_path}): {self.problem}; {FIX}")


_warned: set[tuple[str, str]] = set()


def _skip(bad: BadEntry) -> None:
    """Warn once per process that `bad` is skipped."""
    key = (str(bad.record_path), bad.problem)
    if key not in _warned:
        _warned.add(key)
        log.warning("warning: skipped model record '%s': %s", bad.record_path, bad.problem)


def scan_models() -> tuple[list[ZooEntry], list[BadEntry]]:
    """Every usable entry in every folder, in search order (names may repeat), and the unusable records."""
    good: list[ZooEntry] = []
    bad: list[BadEntry] = []
    for folder in model_dirs():
        try:
            paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        except OSError:
            continue
        for rec_path in paths:
            name, weights = rec_path.stem, folder / f"{rec_path.stem}.safetensors"
            try:
                if not NAME_RE.fullmatch(name):
                    raise RecordProblem("its name is not letters, digits, '.', '_' or '-' (at most 64)")
                rec = read_record(rec_path)
                if not weights.is_file():
                    raise RecordProblem(f"its weights file '{weights.name}' is missing beside it")
            except RecordProblem as exc:
                bad.append(BadEntry(name, rec_path, str(exc)))
                _skip(bad[-1])
                continue
            good.append(ZooEntry(name, weights, rec_path, rec))
    return good, bad


def list_models() -> list[ZooEntry]:
    """Every usable zoo entry (a name in an earlier folder hides the same name in a later one); unusable
    records are skipped with a warning naming them."""
    found: dict[str, ZooEntry] = {}
    for entry in scan_models()[0]:
        found.setdefault(entry.name, entry)
    return list(found.values())


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called `name` (a leading 'zoo:' is allowed; 'NAME@ID' picks the entry of that name whose
    identity starts with ID), or one line naming the known ones."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    base, _, ident = name.partition("@")
    good, bad = scan_models()
    for e in good:
        if e.name == base and e.identity.startswith(ident):
            return ZooEntry(name, e.weights, e.record_path, e.record) if ident else e
    for b in bad:
        if b.name == base:
            raise b.error()
    known = ", ".join(dict.fromkeys(e.name for e in good)) or "none installed"
    raise VVCError(f"no shipped model named '{name}'; known models: {known} (see `python -m vvc_lightning models`)")


def find_for_header(identity: str, checkpoint: str) -> ZooEntry | None:
    """The installed zoo entry whose identity the bitstream holds (the one it names first), as a name that
    `get_entry` resolves to it even where an entry of the same name shadows it; else the entry it names."""
    good = scan_models()[0]
    named = checkpoint[len(PREFIX) :] if checkpoint.startswith(PREFIX) else None
    matches = sorted((e for e in good if identity and e.identity == identity), key=lambda e: e.name != named)
    if matches:
        e = matches[0]
        first = next(x for x in good if x.name == e.name)
        return e if first is e else ZooEntry(f"{e.name}@{e.identity}", e.weights, e.record_path, e.record)
    return next((e for e in good if e.name == named), None)


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
    from omegaconf import OmegaConf
    from safetensors.torch import save

    from vvc_lightning.config import stage_index
    from vvc_lightning.loader import build, read_fit_checkpoint

    if not NAME_RE.fullmatch(name):
        raise VVCError(f"model name '{name}' must be letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
    out = Path(out_dir) if out_dir is not None else packaged_dir()
    if out.exists() and not out.is_dir():
        raise VVCError(f"-o '{out}' is a file, not a folder; pass the models folder to write {name}.safetensors "
                       f"and {name}.json into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VVCError(f"cannot make the models folder '{out}' ({exc.strerror or exc}); pass another -o") from exc
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
        "storage": "float16 weights, float32 entropy models and gains, int32 CDF tables" if fp16 else "float32",
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
    _write(weights_path, blob)
    try:
        _write(record_path, (json.dumps(record, indent=1) + "\n").encode())
    except VVCError:
        if not existed:  # no weights without their record
            weights_path.unlink(missing_ok=True)
        raise
    return record_path


def _write(path: Path, data: bytes) -> None:
    """`write_bytes_atomic`, a failure as one line naming the path and the cause."""
    from vvc_lightning.video.video_io import write_bytes_atomic

    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise VVCError(f"cannot write '{path}' ({exc.strerror or exc}); free space or pick another folder") from exc


def attach_curve(name: str, summary_csv: str | os.PathLike, codec: str = "ours", source: str = "") -> Path:
    """Store the measured curve of zoo entry `name` (rows of `codec` in an `evaluate` summary.csv) in its record."""
    entry = get_entry(name)
    if "@" in entry.name:
        raise VVCError(f"'{name}': give the model's plain name")
    path = Path(summary_csv)
    curve = read_curve(path, codec)
    record = {**entry.record, "curve": curve, "curve_source": source or portable_path(path)}
    _write(entry.record_path, (json.dumps(record, indent=1, allow_nan=False) + "\n").encode())
    return entry.record_path


def _load_codec(path: str | os.PathLike, map_location: str | torch.device = "cpu", gop: int | None = None,
                **kw: Any) -> Any:
    """A VideoCodec around the model of `path` (GoP length: `gop`, else the model's own)."""
    from vvc_lightning.api import video_codec
    from vvc_lightning.loader import load

    quality = kw.pop("quality", None)
    return video_codec(load(path, map_location), quality, gop=gop, **kw)


def _load_any_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """The inference model of `path` (see `vvc_lightning.loader.load`)."""
    from vvc_lightning.loader import load

    return load(path, map_location)


load_any_model = deprecated_alias("vvc_lightning.zoo.load_any_model", "vvc_lightning.loader.load", _load_any_model)
load_codec = deprecated_alias("vvc_lightning.zoo.load_codec", "vvc_lightning.load", _load_codec)
