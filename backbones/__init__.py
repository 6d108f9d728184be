"""Video VAE backbones, one per file, registered by name (see vvc_lightning.registry.BACKBONES)."""

from vvc_lightning.backbones import cv_vae, lean_vae  # noqa: F401  (registers the built-ins)
from vvc_lightning.backbones.base import VideoBackbone

__all__ = ["VideoBackbone"]
