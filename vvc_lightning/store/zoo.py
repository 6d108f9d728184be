"""The model zoo: trained models that ship with the package, found by name.

A zoo entry is two files in a models folder: NAME.safetensors (weights and CDF tables, no optimizer state;
float weights of the backbone and transforms in float16, entropy models, gains and integer tables as
trained) and NAME.json (the record: identity, architecture, how it was trained, its measured curve).
Folders searched, first match wins: each folder in $VVC_LIGHTNING_MODELS (os.pathsep-separated), then
the packaged vvc_lightning/assets/models/. A folder is untrusted: a record that cannot be used is skipped
with a one-line warning naming it (`zoo_record` says what is checked) and never hides another entry; only
regular files are opened (a FIFO or a device link is such a record), and an entry whose weights fail their
checksum when loaded gives way, with a warning, to the next entry of its name (the installed model under a
damaged copy).

`vvc_lightning.store.loader` loads an entry: its weights file is checked against the SHA-256 in its record,
against its record's architecture before anything is built, and the built model's identity against the
record's. A bitstream it wrote decodes anywhere the package is installed: `decompress` finds the entry whose
identity the header holds (the one the header names first, even where a same-named entry in an earlier folder
shadows it), else the entry the header names; the codec then checks the identity.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vvc_lightning.deprecation import deprecated_alias
from vvc_lightning.errors import VVCError, WeightsError, first_line
from vvc_lightning.store.record import (
    FIX,
    MAX_RECORD_BYTES,
    RecordProblem,
    check_record,
    portable_path,
    read_curve,
    read_record,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ENV = "VVC_LIGHTNING_MODELS"
PREFIX = "zoo:"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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
            "backbone": f"{_current_name(r.get('backbone', '?'))} c={r.get('latent_channels', '?')}",
            "params": f"{int(r.get('params', 0)) / 1e6:.2f}M",
            "qualities": str(self.qualities) if self.qualities else "fixed",
            "bpp": f"{bpp[0]:.4f}-{bpp[1]:.4f}" if bpp else "not measured",
            "trained": f"{tr.get('global_step', '?')} steps on {data.get('name', '?')} "
            f"({tr.get('stage', '?')} stage)",
        }


def _current_name(backbone: Any) -> str:
    """The registered name a record's backbone goes by now (a built-in deprecated alias resolved, silently;
    no backbone is imported)."""
    from vvc_lightning.registry import BACKBONES

    return BACKBONES.canonical(backbone, scan=False) if isinstance(backbone, str) else "?"


@dataclass
class BadEntry:
    """A record in a models folder that cannot be used, and why."""

    name: str
    record_path: Path
    problem: str

    def error(self) -> WeightsError:
        return WeightsError(f"model '{self.name}' ({self.record_path}): {self.problem}; {FIX}")


_warned: set[tuple[str, str]] = set()


def warn_skipped(bad: BadEntry) -> None:
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
                warn_skipped(bad[-1])
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
    return get_entries(name)[0]


def get_entries(name: str) -> list[ZooEntry]:
    """Every usable entry `name` picks (as `get_entry`), in search order: the first is the one it names, the
    others stand in for it when its weights turn out damaged. One line naming the known ones if none."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    base, _, ident = name.partition("@")
    good, bad = scan_models()
    found = [ZooEntry(name, e.weights, e.record_path, e.record) if ident else e
             for e in good if e.name == base and e.identity.startswith(ident)]
    if found:
        return found
    for b in bad:
        if b.name == base:
            raise b.error()
    known = ", ".join(dict.fromkeys(e.name for e in good)) or "none installed"
    raise VVCError(
        f"no shipped model named '{name}'; known models: {known} (see `python -m vvc_lightning models`)"
    )


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
        raise WeightsError(f"'{origin}' does not fit the model: {first_line(exc)}") from exc
    return missing if gains_only else []


def write_file(path: Path, data: bytes, replace: bool = True) -> None:
    """`write_bytes_atomic` (a file at `path` replaced only when `replace`), a failure as one line naming the
    path and the cause."""
    from vvc_lightning.video.video_io import write_bytes_atomic

    try:
        write_bytes_atomic(path, data, replace=replace)
    except OSError as exc:
        raise VVCError(
            f"cannot write '{path}' ({exc.strerror or exc}); free space or pick another folder"
        ) from exc


def attach_curve(name: str, summary_csv: str | os.PathLike, codec: str | None = None,
                 source: str = "") -> Path:
    """Store the measured curve of zoo entry `name` (rows of `codec`, default the model's own curve, in an
    `evaluate` summary.csv) in its record."""
    entry = get_entry(name)
    codec = codec or entry.name
    if "@" in entry.name:
        raise VVCError(f"'{name}': give the model's plain name")
    path = Path(summary_csv)
    curve = read_curve(path, codec)
    record = {**entry.record, "curve": curve, "curve_source": source or portable_path(path)}
    blob = (json.dumps(record, indent=1, allow_nan=False) + "\n").encode()
    try:  # the record as `read_record` will see it: never write one that makes the entry unusable
        check_record(record)
        if len(blob) > MAX_RECORD_BYTES:
            raise RecordProblem(f"the record would be {len(blob)} bytes (at most {MAX_RECORD_BYTES})")
    except RecordProblem as exc:
        raise VVCError(
            f"'{path}' cannot be stored in the record of '{name}': {exc}; pass the summary.csv of one "
            "`evaluate` run (the record was not changed)"
        ) from exc
    write_file(entry.record_path, blob)
    return entry.record_path


# Deprecated names, imported on first use (the loader and the API sit above the zoo).
_DEPRECATED = {
    "load_any_model": ("vvc_lightning.store.loader", "load", "vvc_lightning.store.loader.load"),
    "load_codec": ("vvc_lightning.api", "load_video_codec", "vvc_lightning.load"),
    "export_model": ("vvc_lightning.store.export", "export_model", "vvc_lightning.store.export.export_model"),
}


def __getattr__(name: str) -> Any:
    if name not in _DEPRECATED:
        raise AttributeError(f"module 'vvc_lightning.store.zoo' has no attribute '{name}'")
    module, attr, new = _DEPRECATED[name]
    target = getattr(importlib.import_module(module), attr)
    return deprecated_alias(f"vvc_lightning.store.zoo.{name}", new, target)
