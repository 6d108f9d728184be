"""Video VAE backbones: one family per file, each registering named presets (`registry.BACKBONES`).

Families: `cv_vae` (causal CV-VAE-style, preset `cv_vae_causal`), `cv_vae_official` (`cv_vae_sd21`,
`cv_vae_sd3`), `lean_vae` (lightweight, `lean_vae_lite`), `lean_vae_official` (`lean_vae_base`).
`cv_vae` and `lean_vae` are deprecated aliases of `cv_vae_causal` and `lean_vae_lite` (same classes and
state-dict keys), declared with `registry.BACKBONES`.
"""

from vvc_lightning.backbones import cv_vae, cv_vae_official, lean_vae, lean_vae_official  # noqa: F401
from vvc_lightning.backbones.base import VideoBackbone

__all__ = ["VideoBackbone"]
