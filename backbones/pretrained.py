"""`model.backbone.pretrained=PATH`: load a released CV-VAE or LeanVAE weight file into an official-layout preset.

Reads the files as released: a diffusers-style folder (`config.json` + `diffusion_pytorch_model.safetensors`
or `.bin`, also the hub snapshot root with its `vae3d` / `vae3d_sd3` subfolders), a single
`.safetensors` / `.pt` / `.bin`, or a Lightning `.ckpt` (weights under `state_dict`, any `autoencoder.`
prefix). Official names are mapped to ours (`official_to_ours`). Where the latent width c differs from
the official z, the layers whose shape changes start from the official function: encoder `conv_out`
(its mean half), decoder `conv_in` and LeanVAE's `phi` / `Q` get the z official filters in z of their
c channels and zeros elsewhere, so the model reconstructs at step 0 as the official VAE does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vvc_lightning.errors import WeightsError

FOLDER_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SUBFOLDERS = {"sd21": "vae3d", "sd3": "vae3d_sd3"}
LEAN_PREFIXES = ("autoencoder.", "model.", "module.")
LEAN_DROPPED = ("std_layer.",)  # the official log-variance head; the codec codes the mean


# ------------------------------------------------------------------------------------------ reading
def _weights_file(path: Path, layout: str | None) -> Path:
    """The weight file inside a diffusers-style folder (or its hub snapshot root)."""
    for folder in ([path / SUBFOLDERS[layout]] if layout in SUBFOLDERS else []) + [path]:
        for name in FOLDER_FILES:
            if (folder / name).is_file():
                return folder / name
    raise WeightsError(
        f"folder '{path}' holds no {' or '.join(FOLDER_FILES)}; point model.backbone.pretrained at the "
        "downloaded model folder (with config.json), its vae3d/vae3d_sd3 subfolder, or a single weight file"
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
            raise WeightsError(f"'{path}' holds more than tensors (pickled code) and is refused; give {what} saved "
                               "as plain tensors (a state_dict by torch.save, or .safetensors)") from exc
        raise WeightsError(f"cannot read {what} '{path}': it is not tensors saved by torch.save (damaged, another "
                           "format, or other pickled data: refused); replace the file") from exc
    except Exception as exc:
        first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"cannot read {what} '{path}' ({first}); replace the file") from exc


def read_state_dict(path: str | Path, layout: str | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a released weight file or folder, as one flat dict (nothing but tensors is built)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"pretrained weights '{path}' do not exist; download them first (see README, Backbones)")
    if path.is_dir():
        path = _weights_file(path, layout)
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
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"'{path}' holds no state dict of tensors (got {type(state).__name__})")
    return state


def folder_config(path: str | Path, layout: str | None = None) -> dict:
    """The `config.json` beside a folder's weights ({} where there is none)."""
    path = Path(path)
    if not path.is_dir():
        return {}
    cfg = _weights_file(path, layout).parent / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else {}


# ------------------------------------------------------------------------------------------ naming
def detect_release(state: dict[str, torch.Tensor]) -> str:
    """'cvvae_sd21', 'cvvae_sd3' or 'leanvae', from the keys."""
    keys = list(state)
    if any(".down_blocks." in k or ".mid_block." in k for k in keys):
        return "cvvae_sd3"
    if any(k.startswith("encoder.down.") for k in keys):
        return "cvvae_sd21"
    if any(k.endswith("latent_bottleneck.phi") for k in keys):
        return "leanvae"
    raise WeightsError(
        "pretrained weights are neither a CV-VAE (encoder.down.* / down_blocks.*) nor a LeanVAE "
        f"(latent_bottleneck.phi) release; first keys: {', '.join(keys[:3])}"
    )


_SD3_RULES = [
    (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.mid.block_1."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.mid.block_2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.", r"\1.mid.attn_1.norm."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_(q|k|v)\.", r"\1.mid.attn_1.\2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.", r"\1.mid.attn_1.proj_out."),
    (r"\.conv_shortcut\.", ".nin_shortcut."),
]
_LEAN_RULES = [
    (r"^(encoder|decoder)\.(image|video)_(low|high)_proj\.[01]\.", r"\1.\2_\3_proj."),
    (r"\.dconv_layer\.(\d+)\.ds_conv\.", r".\1.dwconv.conv."),
    (r"\.ffd_layer\.(\d+)\.0\.", r".\1.ffn.norm."),
    (r"\.ffd_layer\.(\d+)\.1\.", r".\1.ffn.mlp.fc1."),
    (r"\.ffd_layer\.(\d+)\.4\.", r".\1.ffn.mlp.fc2."),
]


def official_to_ours(key: str, release: str, levels: int = 4) -> str | None:
    """Our name for an official key, or None for a tensor we drop."""
    if release == "leanvae":
        for prefix in LEAN_PREFIXES:
            if key.startswith(prefix) and not key.startswith(("encoder.", "decoder.", "latent_bottleneck.")):
                key = key[len(prefix):]
        if key.startswith(LEAN_DROPPED) or not key.startswith(("encoder.", "decoder.", "latent_bottleneck.")):
            return None
        for pat, rep in _LEAN_RULES:
            key = re.sub(pat, rep, key)
        return key
    if release == "cvvae_sd3":
        m = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", key)
        if m:
            level = levels - 1 - int(m.group(1))
            part = f"block.{m.group(3)}" if m.group(2) == "resnets" else "upsample"
            key = f"decoder.up.{level}.{part}.{m.group(4)}"
        for pat, rep in _SD3_RULES:
            key = re.sub(pat, rep, key)
    return key


# ------------------------------------------------------------------------------------------ fitting
ADAPTED = {  # our key -> (dim holding the latent channels, official tensor holds 2z there (mean first))
    "encoder.conv_out.weight": (0, True),
    "encoder.conv_out.bias": (0, True),
    "decoder.conv_in.weight": (1, False),
    "latent_bottleneck.phi": (0, False),
    "latent_bottleneck.Q": (1, False),
}


def adapt(key: str, src: torch.Tensor, own: torch.Tensor, release: str) -> torch.Tensor:
    """Embed an official latent-facing tensor in our shape: its z filters first, zeros for the rest."""
    dim, doubled = ADAPTED[key]
    if doubled and release.startswith("cvvae"):
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
        extra = f" (kept at init: {', '.join(self.reinitialised[:4])}{' ...' if len(self.reinitialised) > 4 else ''})"
        return (
            f"pretrained {release} '{path}': {len(self.loaded)} tensors loaded, {len(self.adapted)} adapted to "
            f"the latent width, {len(self.reinitialised)} re-initialised, {len(self.dropped)} dropped"
            + (extra if self.reinitialised else "")
        )


def _same_pointwise(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `a` and `b` are the same 1x1 (pointwise) weight stored with different trailing singleton dims."""
    return a.shape[:2] == b.shape[:2] and a.numel() == b.numel() and a.dim() >= 2 and b.dim() >= 2


FAMILY_RELEASES = {"CVVAEOfficial": ("cvvae_sd21", "cvvae_sd3"), "LeanVAEOfficial": ("leanvae",)}


def convert_state_dict(model: nn.Module, state: dict[str, torch.Tensor], release: str
                       ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Official tensors -> a complete state dict of `model` (ours where the file has none), and the report."""
    own = model.state_dict()
    levels = len(getattr(getattr(model, "decoder", None), "up", [])) or 4
    out: dict[str, torch.Tensor] = {}
    report = LoadReport()
    for key, tensor in state.items():
        ours = official_to_ours(key, release, levels)
        if ours is None:
            report.dropped.append(key)  # log-variance head, training-only parts of a checkpoint
            continue
        if ours not in own:
            raise WeightsError(
                f"pretrained key '{key}' (as '{ours}', shape {tuple(tensor.shape)}) has no place in "
                f"{type(model).__name__} with these settings; check the preset and its options"
            )
        target = own[ours]
        doubled = ours in ADAPTED and ADAPTED[ours][1] and release.startswith("cvvae")  # (mean, logvar) head
        if ours in ADAPTED and (doubled or tuple(tensor.shape) != tuple(target.shape)):
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
    """Load a released file into `model` (an official-layout preset), print one summary line, return the report."""
    layout = getattr(model, "layout", None)
    state = read_state_dict(path, layout)
    release = detect_release(state)
    allowed = FAMILY_RELEASES.get(type(model).__mro__[1].__name__, ()) + FAMILY_RELEASES.get(
        type(model).__name__, ())
    if release not in allowed:
        raise WeightsError(
            f"'{path}' is a {release} release but the backbone is {type(model).__name__}; use "
            + ("cv_vae_sd21 / cv_vae_sd3" if release.startswith("cvvae") else "lean_vae_base")
        )
    if release.startswith("cvvae") and layout is not None and release != f"cvvae_{layout}":
        raise WeightsError(
            f"'{path}' is the {release} release; set model.backbone.name=cv_vae_{release.split('_')[1]}"
        )
    converted, report = convert_state_dict(model, state, release)
    if len(report.reinitialised) > len(converted) // 2:
        raise WeightsError(
            f"'{path}' fills only {len(converted) - len(report.reinitialised)} of {len(converted)} tensors of "
            f"{type(model).__name__}; it is not a release of this backbone"
        )
    model.load_state_dict(converted)
    print(report.line(path, release), flush=True)
    return report
