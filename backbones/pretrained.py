"""`model.backbone.pretrained=PATH`: load a released weight file into the backbone family it was made for.

Reads the files as released: a diffusers-style folder (`config.json` + `diffusion_pytorch_model.safetensors`
or `.bin`, also a hub snapshot root with the release's subfolder), a single `.safetensors` / `.pt` /
`.bin`, or a Lightning `.ckpt` (weights under `state_dict`), never unpickling anything but tensors.

What each released file means lives with its family (`cv_vae_official.py`, `lean_vae_official.py`),
which registers a `Release`: how to recognise the file from its keys, how its names map to ours, and
which latent-facing tensors to adapt. Where the latent width c differs from the release's z, those
tensors start from the official function: the z official filters in z of their c channels and zeros
elsewhere, so the model reconstructs at step 0 as the official VAE does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vvc_lightning.errors import WeightsError

FOLDER_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class Release:
    """One released weight file format of a backbone family and its conversion to our state dict.

    name: the release ('cvvae_sd21'); family: the backbone class it loads into; preset: the registered
    backbone name to build for it; matches(keys): whether a file's keys are this release's; rename(key):
    our name for an official key, None for a tensor we drop; adapted: our latent-facing keys -> (dim holding
    the latent channels, whether the file holds 2z there with the mean first); fits(model): whether a model
    of the family takes this release as it is set up; subfolder: the release's folder in a hub snapshot.
    """

    name: str
    family: type[nn.Module]
    preset: str
    matches: Callable[[Sequence[str]], bool]
    rename: Callable[[str], str | None]
    adapted: dict[str, tuple[int, bool]] = field(default_factory=dict)
    fits: Callable[[nn.Module], bool] = lambda model: True
    subfolder: str | None = None


RELEASES: dict[str, Release] = {}


def register_release(release: Release) -> Release:
    """Make `release` loadable by `load_pretrained` (families call this when they are imported)."""
    RELEASES[release.name] = release
    return release


# ------------------------------------------------------------------------------------------ reading
def _weights_file(path: Path, subfolders: Sequence[str]) -> Path:
    """The weight file inside a diffusers-style folder (or a hub snapshot root holding `subfolders`)."""
    for folder in [path / sub for sub in subfolders] + [path]:
        for name in FOLDER_FILES:
            if (folder / name).is_file():
                return folder / name
    raise WeightsError(
        f"folder '{path}' holds no {' or '.join(FOLDER_FILES)}; point model.backbone.pretrained at the "
        "downloaded model folder (with config.json), its release subfolder, or a single weight file"
    )


def load_tensor_file(path: str | Path, what: str) -> Any:
    """`torch.load(weights_only=True)` of a weights file; a file holding more than tensors (pickled code) is
    refused in one line (never loaded unsafely), any other failure named in one line."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text advises unsafe loading: never shown
        if "allowed global" in str(exc) or "Unsupported global" in str(exc):
            raise WeightsError(f"'{path}' holds more than tensors (pickled code) and is refused; give {what} "
                               "saved as plain tensors (a state_dict by torch.save, or .safetensors)"
                               ) from exc
        raise WeightsError(f"cannot read {what} '{path}': it is not tensors saved by torch.save (damaged, "
                           "another format, or other pickled data: refused); replace the file") from exc
    except Exception as exc:
        first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"cannot read {what} '{path}' ({first}); replace the file") from exc


def read_state_dict(path: str | Path, subfolders: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """All tensors of a released weight file or folder, as one flat dict (nothing but tensors is built).

    subfolders: where to look first inside a hub snapshot root."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"pretrained weights '{path}' do not exist; download them first "
                           "(see README, Backbones)")
    if path.is_dir():
        path = _weights_file(path, subfolders)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = load_tensor_file(path, "pretrained weights")
    except WeightsError:
        raise
    except Exception as exc:  # a corrupt or foreign file: one line, naming it
        raise WeightsError(f"cannot read pretrained weights '{path}': {str(exc).splitlines()[0]}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    tensors = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    if not tensors or not state:
        raise WeightsError(f"'{path}' holds no state dict of tensors (got {type(state).__name__})")
    return state


# ------------------------------------------------------------------------------------------ naming
def detect_release(state: dict[str, torch.Tensor]) -> str:
    """The name of the registered release whose keys `state` has."""
    keys = list(state)
    for release in RELEASES.values():
        if release.matches(keys):
            return release.name
    known = ", ".join(f"{r.name} ({r.preset})" for r in RELEASES.values())
    raise WeightsError(f"pretrained weights are none of the known releases ({known}); first keys: "
                       f"{', '.join(keys[:3])}")


def official_to_ours(key: str, release: str) -> str | None:
    """Our name for an official key of `release`, or None for a tensor we drop."""
    return RELEASES[release].rename(key)


# ------------------------------------------------------------------------------------------ fitting
def adapt(key: str, src: torch.Tensor, own: torch.Tensor, release: str) -> torch.Tensor:
    """Embed an official latent-facing tensor in our shape: its z filters first, zeros for the rest."""
    dim, doubled = RELEASES[release].adapted[key]
    if doubled:
        src = src.narrow(dim, 0, src.shape[dim] // 2)  # the mean half of (mean, logvar)
    z, c = src.shape[dim], own.shape[dim]
    rest_ok = all(a == b for i, (a, b) in enumerate(zip(src.shape, own.shape, strict=False)) if i != dim)
    if src.dim() != own.dim() or not rest_ok or z > c:
        raise WeightsError(
            f"pretrained '{key}': file {tuple(src.shape)} vs model {tuple(own.shape)}; the model needs "
            f"latent_channels >= the release's {z} and the release's widths"
        )
    out = torch.zeros_like(own)
    out.narrow(dim, 0, z).copy_(src.to(own.dtype))
    return out


@dataclass
class LoadReport:
    """What `load_pretrained` did, by our key."""

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def line(self, path: str | Path, release: str) -> str:
        """The one summary line."""
        more = " ..." if len(self.reinitialised) > 4 else ""
        extra = f" (kept at init: {', '.join(self.reinitialised[:4])}{more})"
        return (
            f"pretrained {release} '{path}': {len(self.loaded)} tensors loaded, {len(self.adapted)} adapted "
            f"to the latent width, {len(self.reinitialised)} re-initialised, {len(self.dropped)} dropped"
            + (extra if self.reinitialised else "")
        )


def _same_pointwise(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `a` and `b` are one 1x1 (pointwise) weight stored with different trailing singleton dims."""
    return a.shape[:2] == b.shape[:2] and a.numel() == b.numel() and a.dim() >= 2 and b.dim() >= 2


def convert_state_dict(model: nn.Module, state: dict[str, torch.Tensor], release: str
                       ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Official tensors of `release` -> a complete state dict of `model` (ours where the file has none)."""
    own = model.state_dict()
    rules = RELEASES[release]
    out: dict[str, torch.Tensor] = {}
    report = LoadReport()
    for key, tensor in state.items():
        ours = rules.rename(key)
        if ours is None:
            report.dropped.append(key)  # log-variance head, training-only parts of a checkpoint
            continue
        if ours not in own:
            raise WeightsError(
                f"pretrained key '{key}' (as '{ours}', shape {tuple(tensor.shape)}) has no place in "
                f"{type(model).__name__} with these settings; check the preset and its options"
            )
        target = own[ours]
        if ours in rules.adapted and (rules.adapted[ours][1] or tuple(tensor.shape) != tuple(target.shape)):
            out[ours] = adapt(ours, tensor, target, release)
            report.adapted.append(ours)
        elif tuple(tensor.shape) == tuple(target.shape) or _same_pointwise(tensor, target):
            out[ours] = tensor.reshape(target.shape).to(target.dtype)  # 1x1 convs stored as Linear / 2D
            report.loaded.append(ours)
        else:
            raise WeightsError(
                f"pretrained '{key}' -> '{ours}': file {tuple(tensor.shape)} vs model {tuple(target.shape)}"
            )
    for key, tensor in own.items():
        if key not in out:
            out[key] = tensor
            report.reinitialised.append(key)
    return out, report


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Load a released file into `model` (a backbone of the release's family), print one summary line."""
    family = [r for r in RELEASES.values() if isinstance(model, r.family)]
    fitting = [r for r in family if r.fits(model)]
    state = read_state_dict(path, [r.subfolder for r in fitting if r.subfolder])
    rules = RELEASES[detect_release(state)]
    if rules not in family:
        raise WeightsError(f"'{path}' is a {rules.name} release but the backbone is {type(model).__name__}; "
                           f"use {rules.preset}")
    if rules not in fitting:
        raise WeightsError(f"'{path}' is the {rules.name} release; set model.backbone.name={rules.preset}")
    converted, report = convert_state_dict(model, state, rules.name)
    if len(report.reinitialised) > len(converted) // 2:
        raise WeightsError(
            f"'{path}' fills only {len(converted) - len(report.reinitialised)} of {len(converted)} tensors "
            f"of {type(model).__name__}; it is not a release of this backbone"
        )
    model.load_state_dict(converted)
    print(report.line(path, rules.name), flush=True)
    return report
