"""Deprecated module: the zoo is `vvc_lightning.store.zoo` (export: `vvc_lightning.store.export`), loading any
model is `vvc_lightning.store.loader.load`."""

from __future__ import annotations

import importlib
from typing import Any

from vvc_lightning.deprecation import warn_deprecated

_MOVED = {
    "load_pretrained": ("vvc_lightning.store.loader", "load"),
    "export_model": ("vvc_lightning.store.export", "export_model"),
}


def __getattr__(name: str) -> Any:
    module, new = _MOVED.get(name, ("vvc_lightning.store.zoo", name))
    target = importlib.import_module(module)
    if not hasattr(target, new):
        raise AttributeError(f"module 'vvc_lightning.store.pretrained' has no attribute '{name}'")
    warn_deprecated(f"vvc_lightning.store.pretrained.{name}", f"{module}.{new}")
    return getattr(target, new)
