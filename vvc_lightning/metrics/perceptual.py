"""LPIPS-family perceptual distances built from local weight files only (never downloaded).

`build_lpips` is the original LPIPS (Zhang et al. 2018): the `lpips` package ships only its linear
layers, the AlexNet / VGG16 trunk is torchvision's ImageNet weights, which torchvision would download.
Here the trunk is read from a file: `weights=PATH`, else the environment variable VVC_LPIPS_ALEX /
VVC_LPIPS_VGG, else torchvision's hub cache (`torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`,
`vgg16-397923af.pth`). `build_stlpips` is the shift-tolerant LPIPS (Ghildyal & Liu 2022) whose package
ships the whole network. `build_perceptual` builds any of them, or 1 - MS-SSIM, by name for the training
loss and the video metrics alike. All map two (B,3,H,W) images in [-1,1] to per-image distances (B,),
differentiably.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.metrics import functional
from vvc_lightning.metrics.functional import MSSSIM_MIN_SIDE

TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
ENV_VARS = {"alex": "VVC_LPIPS_ALEX", "vgg": "VVC_LPIPS_VGG"}
NETS = ("alex", "vgg")


def _check_net(net: str) -> None:
    if net not in NETS:
        raise VVCError(f"unknown LPIPS network '{net}'; use one of {', '.join(NETS)}")


def lpips_weights_path(net: str = "alex", weights: str | os.PathLike | None = None) -> Path | None:
    """Where the torchvision trunk weights for LPIPS are (explicit path, env var, hub cache), or None."""
    _check_net(net)
    if weights is not None:
        return Path(weights)
    env = os.environ.get(ENV_VARS[net])
    if env:
        return Path(env)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
    return cached if cached.is_file() else None


def lpips_available(net: str = "alex", weights: str | os.PathLike | None = None) -> bool:
    """Whether `build_lpips(net, weights)` can work without a download."""
    path = lpips_weights_path(net, weights)
    return path is not None and path.is_file()


def _missing_message(net: str, path: Path | None) -> str:
    where = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
    got = f"'{path}' does not exist; " if path is not None else ""
    return (
        f"LPIPS ({net}) needs torchvision's ImageNet {net} weights, which are never downloaded here: "
        f"{got}put {TORCHVISION_FILES[net]} at {where}, or set {ENV_VARS[net]}=PATH (or pass the path), "
        "or use ST-LPIPS ('stlpips'), whose package ships its weights"
    )


class PerceptualDistance(nn.Module):
    """An LPIPS-style network (scaling layer, trunk, linear heads) with its features exposed."""

    def __init__(self, inner: nn.Module, name: str) -> None:
        super().__init__()
        self.inner = inner
        self.name = name
        for p in self.inner.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualDistance:
        """Always eval (dropout in the linear heads off): a fixed metric."""
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised trunk features of images (B,3,H,W) in [-1,1]."""
        m = self.inner
        outs = m.net.forward(m.scaling_layer(x))
        return [_normalize(outs[k]) for k in range(m.L)]

    def from_features(self, f0: list[Tensor], f1: list[Tensor]) -> Tensor:
        """Distances (B,) between two lists of features from `features`."""
        m = self.inner
        total = None
        for k in range(m.L):
            d = m.lins[k]((f0[k] - f1[k]) ** 2).mean(dim=(2, 3))
            total = d if total is None else total + d
        return total.flatten()

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """Per-image distance (B,) between images (B,3,H,W) in [-1,1]."""
        if x0.shape != x1.shape or x0.dim() != 4 or x0.shape[1] != 3:
            raise VVCError(f"{self.name} takes two (B,3,H,W) tensors of one shape, got {tuple(x0.shape)} "
                           f"and {tuple(x1.shape)}")
        return self.from_features(self.features(x0), self.features(x1))


def _normalize(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


def _load_checked(
    module: nn.Module, state: dict, what: str, loaded_elsewhere: tuple[str, ...] = ("lins.",)
) -> None:
    """Load `state` into `module`, failing on any key neither loaded nor listed in `loaded_elsewhere`."""
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(loaded_elsewhere)]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"{what} does not fit the network (missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}); "
            "the file is damaged or of another version"
        )


def _torch_load(path: Path, what: str) -> dict:
    from vvc_lightning.backbones.pretrained import load_tensor_file

    return load_tensor_file(path, what)


def build_lpips(net: str = "alex", weights: str | os.PathLike | None = None) -> PerceptualDistance:
    """LPIPS v0.1 with the torchvision trunk read from a local file; WeightsError saying where to put it."""
    _check_net(net)
    path = lpips_weights_path(net, weights)
    if path is None or not path.is_file():
        raise WeightsError(_missing_message(net, path))
    import lpips

    with _quiet():
        inner = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
    trunk = _torch_load(path, f"{net} weights")
    mapped = {}
    for key in inner.net.state_dict():  # 'slice1.0.weight' holds torchvision 'features.0.weight'
        idx_param = key.split(".", 1)[1]
        src = f"features.{idx_param}"
        if src not in trunk:
            raise WeightsError(f"'{path}' is not torchvision's {net} ImageNet checkpoint (no '{src}')")
        mapped[key] = trunk[src]
    inner.net.load_state_dict(mapped, strict=True)
    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    _load_checked(inner, _torch_load(lin_path, "LPIPS linear layers"), f"'{lin_path}'",
                  loaded_elsewhere=("lins.", "net.", "scaling_layer."))
    return PerceptualDistance(inner, f"lpips_{net}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _import_stlpips() -> types.ModuleType:
    """`stlpips_pytorch.stlpips`, whose module imports two unused names (torchsummary, IPython)."""
    stubs = {}
    for name, attr in (("torchsummary", "summary"), ("IPython", "embed")):
        try:
            importlib.import_module(name)
        except ImportError:
            stubs[name] = types.SimpleNamespace(**{attr: None})
    sys.modules.update(stubs)
    try:
        return importlib.import_module("stlpips_pytorch.stlpips")
    finally:
        for name in stubs:
            sys.modules.pop(name, None)


def build_stlpips(net: str = "alex") -> PerceptualDistance:
    """Shift-tolerant LPIPS with the weights its package ships (trunk included; nothing downloads)."""
    _check_net(net)
    st = _import_stlpips()
    with _quiet():
        inner = st.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
    path = Path(st.__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise WeightsError(f"ST-LPIPS weights '{path}' are missing; reinstall stlpips-pytorch==0.0.2")
    _load_checked(inner, _torch_load(path, "ST-LPIPS weights"), f"'{path}'")
    return PerceptualDistance(inner, f"stlpips_{net}")


class MSSSIMDistance(nn.Module):
    """1 - MS-SSIM per image of two (N,3,H,W) in [-1,1]; single-scale SSIM where a side is too small."""

    name = "ms-ssim"

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """Per-image distance (N,) in [0, 2]."""
        a, b = (x0 + 1) / 2, (x1 + 1) / 2
        if min(a.shape[-2:]) > MSSSIM_MIN_SIDE:
            return 1.0 - functional.ms_ssim(a, b, data_range=1.0)
        return 1.0 - functional.ssim(a, b, data_range=1.0)


# Distance name -> builder(net, weights); every one maps two (N,3,H,W) in [-1,1] to (N,).
DISTANCES: dict[str, Callable[[str, str | os.PathLike | None], nn.Module]] = {
    "lpips": build_lpips,
    "stlpips": lambda net, weights: build_stlpips(net),
    "ms-ssim": lambda net, weights: MSSSIMDistance(),
}


def build_perceptual(name: str, net: str = "alex", weights: str | os.PathLike | None = None) -> nn.Module:
    """A frozen perceptual distance by name: lpips, stlpips (trunk `net`) or ms-ssim; (N,3,H,W) x2 -> (N,)."""
    if name not in DISTANCES:
        raise VVCError(f"unknown perceptual distance '{name}'; use one of {', '.join(DISTANCES)}")
    module = DISTANCES[name](net, weights)
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
