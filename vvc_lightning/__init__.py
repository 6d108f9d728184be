"""vvc-lightning: perceptual neural video compression with video VAEs, on PyTorch Lightning.

`vvc_lightning.load(spec, **options)` gives a codec (`vvc_lightning.api.Codec`); the package's modules are
imported on first use, so `import vvc_lightning` stays light.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vvc_lightning.version import __version__

if TYPE_CHECKING:
    from vvc_lightning.api import Codec
    from vvc_lightning.model import CompressionModel

__all__ = ["Codec", "CompressionModel", "__version__", "create_backbone", "list_backbones", "load"]
_LAZY = {"Codec": "vvc_lightning.api", "CompressionModel": "vvc_lightning.model"}
# Modules grouped into sub-packages (configuration/, store/); their old names import the same module
# objects, so `from vvc_lightning.zoo import get_entry` and patches of `vvc_lightning.loader` keep working.
MOVED = {
    "vvc_lightning.config": "vvc_lightning.configuration.config",
    "vvc_lightning.config_ranges": "vvc_lightning.configuration.ranges",
    "vvc_lightning.config_types": "vvc_lightning.configuration.types",
    "vvc_lightning.zoo": "vvc_lightning.store.zoo",
    "vvc_lightning.zoo_record": "vvc_lightning.store.record",
    "vvc_lightning.loader": "vvc_lightning.store.loader",
    "vvc_lightning.export": "vvc_lightning.store.export",
    "vvc_lightning.pretrained": "vvc_lightning.store.pretrained",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module's old name as its new module (one module object under both names)."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module ran when it was imported."""


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def load(spec: str, device: str = "cpu", **options: Any) -> Codec:
    """A codec of the model `spec` names: a shipped model's name ('vvc-lean-vr'), zoo:NAME, a `fit`
    checkpoint, an exported .safetensors or a released VAE; `options` go to the video codec
    (gop, overlap, theta, batch, tile, max_memory, threads, ...)."""
    from vvc_lightning.api import load as load_codec

    return load_codec(spec, device, **options)


def create_backbone(name: str, **kwargs: Any) -> Any:
    """A registered backbone (video VAE) built with `kwargs` as its constructor arguments (timm's
    `create_model`): `create_backbone("lean_vae_lite", latent_channels=64)`; unknown names and keys are a
    one-line error listing the known ones."""
    from vvc_lightning.registry import BACKBONES

    return BACKBONES.create(name, **kwargs)


def list_backbones(pattern: str = "*", aliases: bool = False) -> list[str]:
    """Names of the registered backbones (plugins included) that match the shell-style `pattern`, sorted
    (timm's `list_models`); `aliases`: the deprecated names too."""
    import fnmatch

    from vvc_lightning.registry import BACKBONES

    old = set() if aliases else set(BACKBONES.aliases())
    return [n for n in BACKBONES.names() if n not in old and fnmatch.fnmatchcase(n, pattern)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vvc_lightning' has no attribute '{name}'")
