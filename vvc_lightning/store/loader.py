"""One loader: `load(spec)` turns a checkpoint, an exported file, a zoo model or a released VAE into a
ready `CompressionModel` (eval mode, CDF tables built, no training stage).

Accepted specs: a `fit` checkpoint (.ckpt), an exported NAME.safetensors with its record NAME.json beside
it, `zoo:NAME` or a shipped model's bare NAME, and a released CV-VAE / LeanVAE weight file or folder. A
file that holds a record (zoo entry or exported file) is checked against it before anything is built
(checksum, architecture, parameter count, finite values, CDF tables) and after (integer layers, identity).
`resolve` reads a spec into a `Source` (weights, stored config, step) without building a model; training
code uses it to restore stages and optimizers, which `load` never does.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from vvc_lightning.configuration.config import from_container, packaged_defaults
from vvc_lightning.errors import VVCError, WeightsError, first_line
from vvc_lightning.model import CompressionModel, for_stored_weights
from vvc_lightning.version import __version__
from vvc_lightning.video.output_paths import special_kind

COMPATIBLE_MAJOR = __version__.split(".")[0]
RELEASE_SEED = 0  # a released VAE's latent codec starts from this seed, so a reload gives the same model
# release (backbones.pretrained.detect_release) -> (preset, state key holding the latent width, its dim)
RELEASES = {
    "cvvae_sd21": ("cv_vae_sd21", "decoder.conv_in.weight", 1),
    "cvvae_sd3": ("cv_vae_sd3", "decoder.conv_in.weight", 1),
    "leanvae": ("lean_vae_base", "latent_bottleneck.phi", 0),
}
CV_WIDTH_KEY = "encoder.conv_in.weight"  # a CV-VAE release's base width: the first convolution's outputs
ACCEPTED = (
    "give a checkpoint written by `fit` (.ckpt), an exported NAME.safetensors with NAME.json beside "
    "it, zoo:NAME or a shipped model's name ({known}), or a released CV-VAE / LeanVAE weight file or folder"
)


@dataclass
class Source:
    """What a spec names: its stored config, its weights (None: a released VAE, whose backbone reads its own
    file), what a bitstream header records as its source, and the training step it was taken at."""

    kind: str  # "checkpoint", "exported", "zoo" or "released"
    config: DictConfig
    state: dict[str, torch.Tensor] | None
    origin: str
    label: str
    step: int = 0
    epoch: int = 0
    record: dict[str, Any] | None = None
    entry: Any = None  # the ZooEntry of a zoo model
    init: str | None = None  # the model.init a `fit` checkpoint's run started from (its config holds null)


# ------------------------------------------------------------------------------------------ reading
def _torch_load(path: Path, what: str) -> Any:
    """`torch.load(weights_only=True)` of `path`, a refusal or failure in one line."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        kind = _foreign_kind(path)
        if kind is not None:
            raise _not_a_checkpoint(what, path, kind) from exc
        raise WeightsError(
            f"{what} '{path}' cannot be read as weights and plain data (truncated, not written by `fit`, or "
            "holding objects whose loading could run code: refused); pass a checkpoint written by `fit`"
        ) from exc
    except Exception as exc:
        kind = _foreign_kind(path)
        if kind is not None:
            raise _not_a_checkpoint(what, path, kind) from exc
        raise WeightsError(f"{what} '{path}' cannot be read ({first_line(exc)}); is it truncated?") from exc


def _not_a_checkpoint(what: str, path: Path, kind: str) -> WeightsError:
    return WeightsError(
        f"{what} '{path}' is {kind}, not a checkpoint; pass a checkpoint written by `fit` (e.g. "
        "runs/NAME/last.ckpt)"
    )


def _foreign_kind(path: Path) -> str | None:
    """What `path` is when torch cannot even start reading it (an empty file, text, neither a zip archive nor
    a pickle), else None (a damaged checkpoint)."""
    from vvc_lightning.video.safe_read import open_regular

    try:
        with open_regular(path) as f:
            head = f.read(4096)
    except (OSError, ValueError):
        return None
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"PK\x03\x04") or head[0] == 0x80:  # a zip archive (torch.save) or a pickle
        return None
    try:
        text = b"\0" not in head and bool(head.decode("utf-8"))
    except UnicodeDecodeError as exc:  # a character cut off at the end of what was read still counts
        text = b"\0" not in head and len(head) == 4096 and exc.start >= len(head) - 3
    return "a text file" if text else "a file that is neither a zip archive nor a pickle"


def _is_fit_checkpoint(ckpt: Any) -> bool:
    return (
        isinstance(ckpt, dict)
        and isinstance(ckpt.get("hyper_parameters"), dict)
        and "config" in ckpt["hyper_parameters"]
    )


def _checked_fit_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    if not _is_fit_checkpoint(ckpt):
        raise WeightsError(f"'{path}' is not a vvc-lightning checkpoint (no stored config)")
    version = str(ckpt["hyper_parameters"].get("version", "0"))
    if version.split(".")[0] != COMPATIBLE_MAJOR:
        raise WeightsError(
            f"checkpoint '{path}' was written by vvc-lightning {version}; this is {__version__} "
            f"(major versions differ): re-export it with a matching version"
        )
    return ckpt


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw dict of a `fit` checkpoint, with clear errors for a missing, foreign or incompatible file."""
    path = Path(path)
    if not path.is_file():
        raise VVCError(
            f"checkpoint '{path}' does not exist; pass the .ckpt written by `fit` (e.g. runs/NAME/last.ckpt)"
        )
    # weights_only: a checkpoint is data; unpickling arbitrary objects would let a crafted file run code.
    return _checked_fit_checkpoint(_torch_load(path, "checkpoint"), path)


def _from_fit(ckpt: dict[str, Any], path: Path) -> Source:
    stored = from_container(ckpt["hyper_parameters"]["config"])
    init = stored.model.get("init")
    return Source(
        "checkpoint",
        for_stored_weights(stored),
        ckpt["state_dict"],
        str(path.resolve()),
        f"checkpoint '{path}'",
        int(ckpt.get("global_step", 0)),
        int(ckpt.get("epoch", 0)),
        init=str(init) if init else None,
    )


def read_fit_checkpoint(path: str | os.PathLike) -> Source:
    """The Source of a `fit` checkpoint."""
    return _from_fit(read_checkpoint(path), Path(path))


def _with_record(
    kind: str, weights: Path, record: dict[str, Any], origin: str, label: str, entry: Any = None
) -> Source:
    """The Source of a weights file described by a record, checked against it before anything is built."""
    from vvc_lightning.store.record import RecordProblem, check_tensors
    from vvc_lightning.store.zoo import read_weights
    from vvc_lightning.video.atomic import sha256_file

    def refused(problem: str, fix: str = "re-export it, or remove it from its folder") -> WeightsError:
        return EntryRefused(label, problem, fix)

    try:
        size, most = weights.stat().st_size, 8 * int(record["params"]) + (64 << 20)
    except OSError as exc:
        raise refused(f"its weights file cannot be read ({exc.strerror or exc})") from exc
    if size > most:
        raise refused(
            f"its weights file is {size} bytes, more than a model of {record['params']} "
            f"parameters and its tables fill ({most})"
        )
    digest = record.get("sha256")
    if digest and sha256_file(weights) != digest:
        raise refused(
            "its weights file does not match the checksum in its record (damaged or mismatched files)",
            "re-export or reinstall it",
        )
    state, _ = read_weights(weights)
    try:
        cfg = check_tensors(state, record)
    except RecordProblem as exc:
        raise refused(str(exc)) from exc
    tr = record.get("training", {})
    return Source(
        kind, cfg, state, origin, label, int(tr.get("global_step", 0)), int(tr.get("epoch", 0)), record, entry
    )


class EntryRefused(WeightsError):
    """The weights of a model with a record fail its checks; `problem` says how."""

    def __init__(self, label: str, problem: str, fix: str) -> None:
        super().__init__(f"{label}: {problem}; {fix}")
        self.problem = problem


def read_zoo(name: str) -> Source:
    """The Source of zoo model `name` ('zoo:NAME' or NAME). An entry whose weights are damaged is skipped with
    a warning when a later folder holds one `name` also picks (a user's copy shadowing the installed
    model)."""
    from vvc_lightning.store.zoo import PREFIX, BadEntry, get_entries, warn_skipped

    entries = get_entries(name)
    first: EntryRefused | None = None
    for entry in entries:
        try:
            return _with_record(
                "zoo",
                entry.weights,
                entry.record,
                f"{PREFIX}{entry.name}",
                f"model '{entry.name}' ({entry.weights})",
                entry,
            )
        except EntryRefused as exc:
            first = first or exc
            if entry is not entries[-1]:
                warn_skipped(BadEntry(entry.name, entry.record_path, exc.problem))
    assert first is not None
    raise first


def read_exported(path: str | os.PathLike) -> Source:
    """The Source of an exported NAME.safetensors and its record NAME.json beside it."""
    from vvc_lightning.store.record import RecordProblem, read_record

    path = Path(path)
    rec_path = path.with_suffix(".json")
    if not path.is_file():
        raise VVCError(
            f"weights file '{path}' does not exist; give zoo:NAME (see `models`) or an exported .safetensors"
        )
    if not rec_path.is_file():
        raise VVCError(f"'{path}' has no record '{rec_path.name}' beside it; copy both files `export` wrote")
    try:
        record = read_record(rec_path)
    except RecordProblem as exc:
        raise VVCError(f"record '{rec_path}': {exc}; re-export the model") from exc
    return _with_record("exported", path, record, str(path.resolve()), f"model file '{path}'")


def read_released(path: str | os.PathLike, state: dict[str, torch.Tensor] | None = None) -> Source:
    """The Source of a released CV-VAE / LeanVAE weight file or folder (`state`: its tensors, when already
    read): its family's preset at the release's latent width, loaded through the family's pretrained loader,
    and a latent codec from RELEASE_SEED."""
    from vvc_lightning.backbones.pretrained import detect_release, read_state_dict

    path = Path(path)
    state = read_state_dict(path) if state is None else state
    release = detect_release(state)
    preset, key, dim = RELEASES[release]
    found = {k: v for k, v in state.items() if k == key or k.endswith("." + key)}
    if not found:
        raise WeightsError(f"'{path}' is a {release} release without '{key}'; replace the file")
    backbone: dict[str, Any] = {"name": preset, "latent_channels": int(next(iter(found.values())).shape[dim])}
    if release.startswith("cvvae") and CV_WIDTH_KEY in state:
        backbone["width"] = int(state[CV_WIDTH_KEY].shape[0])
    backbone["pretrained"] = str(path)
    cfg = packaged_defaults()
    cfg.model.backbone = backbone
    cfg = from_container(cfg)
    return Source("released", cfg, None, str(path.resolve()), f"released {release} VAE '{path}'")


# ------------------------------------------------------------------------------------------ resolving
def _known_names() -> str:
    from vvc_lightning.store.zoo import list_models

    return ", ".join(e.name for e in list_models()) or "none installed"


def _unknown(spec: str, why: str) -> VVCError:
    return VVCError(f"cannot load '{spec}' ({why}); " + ACCEPTED.format(known=_known_names()))


def resolve(spec: str | os.PathLike) -> Source:
    """The Source a spec names (see the module docstring), or one line listing what is accepted."""
    from vvc_lightning.store.zoo import NAME_RE, PREFIX, scan_models

    text = os.fspath(spec)
    if text.startswith(PREFIX):
        return read_zoo(text)
    path = Path(text)
    if not text.strip():
        raise _unknown(text, "an empty string names no model")
    kind = special_kind(path)
    if kind is not None:
        raise _unknown(text, f"it is {kind}, not a model file")
    if path.is_dir():
        return _read_folder(path, text)
    if not path.is_file():
        base = text.partition("@")[0]
        if NAME_RE.fullmatch(base) and any(e.name == base for found in scan_models() for e in found):
            return read_zoo(text)  # a usable entry, or one line naming what is wrong with its record
        if path.suffix.lower() == ".ckpt":
            return read_fit_checkpoint(path)  # one line: it does not exist
        raise _unknown(text, "no such file, folder or shipped model")
    if path.suffix.lower() == ".safetensors":
        if path.with_suffix(".json").is_file():
            return read_exported(path)
        return _released_or_unknown(path, text, "a .safetensors file without a record beside it")
    raw = _torch_load(path, "checkpoint")
    if _is_fit_checkpoint(raw):
        return _from_fit(_checked_fit_checkpoint(raw, path), path)
    return _released_or_unknown(path, text, "neither a `fit` checkpoint nor a released VAE")


def _read_folder(path: Path, text: str) -> Source:
    """A released VAE's folder (its diffusion_pytorch_model weights); any other folder named in one line."""
    from vvc_lightning.backbones.pretrained import FOLDER_FILES

    if any((path / name).is_file() for name in FOLDER_FILES):
        return read_released(path)
    models = sorted(p.name for p in path.glob("*.ckpt"))
    models += sorted(p.name for p in path.glob("*.safetensors") if p.with_suffix(".json").is_file())
    if models:
        pick = "last.ckpt" if "last.ckpt" in models else models[-1]
        raise VVCError(f"'{text}' is a folder (holding {len(models)} model file(s), e.g. a `fit` run's), not "
                       f"a model; pass one of its files, e.g. '{path / pick}'")
    weights = " / ".join(FOLDER_FILES)
    raise _unknown(text, f"a folder holding no `fit` checkpoint, exported model or {weights}")


def _released_or_unknown(path: Path, text: str, why: str) -> Source:
    from vvc_lightning.backbones.pretrained import read_state_dict

    state = read_state_dict(path)
    if any(k.startswith("codec.") for k in state):
        raise VVCError(
            f"'{path}' holds an exported model but no record '{path.with_suffix('.json').name}' "
            "beside it; copy both files `export` wrote"
        )
    try:
        return read_released(path, state)
    except WeightsError as exc:
        raise _unknown(text, why) from exc


# ------------------------------------------------------------------------------------------ building
def build(source: Source, map_location: str | torch.device = "cpu") -> CompressionModel:
    """The CompressionModel of a Source: its weights loaded, eval mode, CDF tables built, checked against
    its record when it has one."""
    from vvc_lightning.codec.pipeline.determinism import model_identity
    from vvc_lightning.store.record import RecordProblem, check_int_layers
    from vvc_lightning.store.zoo import load_state

    if source.state is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RELEASE_SEED)
            model = CompressionModel(source.config)
    else:
        model = CompressionModel(source.config)
        load_state(model, source.state, source.origin)
    model.eval()
    if source.record is None:
        model.codec.update_tables(force=not model.codec.tables_ready())
    else:
        refused = f"{source.label}: {{}}; re-export it, or remove it from its folder"
        try:
            check_int_layers(model)
        except RecordProblem as exc:
            raise WeightsError(refused.format(exc)) from exc
        if not model.codec.tables_ready():
            raise WeightsError(refused.format("its weights file has no CDF tables"))
        identity, claimed = model_identity(model), str(source.record.get("identity", ""))
        if identity != claimed:
            raise WeightsError(
                refused.format(
                    f"its weights and config have identity {identity[:12]}, not the {claimed[:12]} its "
                    "record claims (a record must hold the identity `export` wrote)"
                )
            )
    model.checkpoint_path = source.origin
    return model.to(map_location)


def load(spec: str | os.PathLike, map_location: str | torch.device = "cpu") -> CompressionModel:
    """The inference model `spec` names: a `fit` checkpoint (.ckpt), an exported .safetensors (record
    beside it), 'zoo:NAME' or a shipped model's NAME, or a released CV-VAE / LeanVAE weight file or folder.

    A released VAE gives its backbone and a freshly initialised latent codec (seeded, so reloading gives
    the same model): such a model must be trained (`fit` with model.backbone.pretrained) before it codes
    well. Eval mode, CDF tables ready, no training stage or optimizer restored. Reading and checking run at
    the thread count the codec would choose beside the machine's load (`ThreadGovernor`)."""
    from vvc_lightning.codec.pipeline.threads import ThreadGovernor

    with ThreadGovernor():
        return build(resolve(spec), map_location)


def is_weights_only(spec: str | os.PathLike) -> bool:
    """Whether `spec` names an exported weights-only model (zoo:NAME or a .safetensors file)."""
    from vvc_lightning.store.zoo import PREFIX

    text = os.fspath(spec)
    return text.startswith(PREFIX) or text.lower().endswith(".safetensors")
