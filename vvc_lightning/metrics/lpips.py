"""LPIPS family: AlexNet LPIPS where its torchvision weights are present, else ST-LPIPS (labelled so)."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from vvc_lightning.metrics import perceptual
from vvc_lightning.metrics.base import VideoMetric, say_once
from vvc_lightning.metrics.registry import register_metric

# variant -> (output key, distance name for `perceptual.build_perceptual`, trunk); "auto" resolves to
# "alex" or "st_alex".
VARIANTS = {
    "alex": ("lpips", "lpips", "alex"),
    "vgg": ("lpips_vgg", "lpips", "vgg"),
    "st_alex": ("stlpips", "stlpips", "alex"),
    "st_vgg": ("stlpips_vgg", "stlpips", "vgg"),
}
_CACHE: dict[tuple[str, str | None], perceptual.PerceptualDistance] = {}


def resolve_variant(variant: str, weights: str | os.PathLike | None = None) -> str:
    """'auto' -> 'alex' when AlexNet weights are asked for (a path, $VVC_LPIPS_ALEX: then they must exist)
    or found in the torch hub cache, else 'st_alex'."""
    if variant == "auto":
        explicit = weights is not None or bool(os.environ.get(perceptual.ENV_VARS["alex"]))
        return "alex" if explicit or perceptual.lpips_available("alex", weights) else "st_alex"
    if variant not in VARIANTS:
        raise ValueError(f"unknown LPIPS variant {variant!r}")
    return variant


def perceptual_net(variant: str, weights: str | os.PathLike | None = None) -> perceptual.PerceptualDistance:
    """The (shared, CPU-built) network of a resolved variant."""
    key = (variant, None if weights is None else str(weights))
    if key not in _CACHE:
        _, distance, net = VARIANTS[variant]
        _CACHE[key] = perceptual.build_perceptual(distance, net, weights)
    return _CACHE[key]


def to_unit(x: Tensor) -> Tensor:
    """[0,255] -> [-1,1]."""
    return x / 127.5 - 1.0


class _LPIPSBase(VideoMetric):
    """Per-frame LPIPS-style distance between reference and decoded frames."""

    higher_is_better = False
    variant = "auto"

    def __init__(self, weights: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weights = weights
        self.resolved = resolve_variant(self.variant, weights)
        self.hide("_net", perceptual_net(self.resolved, weights))
        if self.note(0, 0):
            say_once(self.note(0, 0))

    @property
    def key(self) -> str:
        return VARIANTS[self.resolved][0]

    @property
    def label(self) -> str:  # type: ignore[override]
        return {"lpips": "LPIPS (AlexNet)", "lpips_vgg": "LPIPS (VGG)", "stlpips": "ST-LPIPS (AlexNet)",
                "stlpips_vgg": "ST-LPIPS (VGG)"}[self.key]

    def info(self) -> dict[str, Any]:
        out = {"network": self._net.name, "version": "0.1", "input": "RGB in [-1,1], whole frames"}
        if self.variant == "auto" and self.resolved != "alex":
            out["note"] = ("AlexNet LPIPS weights not found (torchvision alexnet-owt-7be5be79.pth); "
                           "ST-LPIPS used instead and labelled 'stlpips'")
        return out

    def note(self, height: int, width: int) -> str:
        if self.variant != "auto" or self.resolved == "alex":
            return ""
        return (f"lpips: AlexNet LPIPS weights not found ({perceptual.ENV_VARS['alex']} unset, none in the "
                "torch hub cache; --lpips-weights gives them); ST-LPIPS computed instead, reported as "
                "'stlpips'")

    def frame_scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        return self._net(to_unit(rec), to_unit(ref))


@register_metric("lpips")
class LPIPS(_LPIPSBase):
    """LPIPS (AlexNet) if its weights are present, otherwise ST-LPIPS reported under the key 'stlpips'."""

    name = "lpips"


@register_metric("lpips_alex")
class LPIPSAlex(_LPIPSBase):
    """AlexNet LPIPS explicitly: fails (saying where to put the weights) when they are absent."""

    name = "lpips_alex"
    variant = "alex"


@register_metric("lpips_vgg")
class LPIPSVGG(_LPIPSBase):
    """VGG16 LPIPS (torchvision VGG16 weights needed)."""

    name = "lpips_vgg"
    variant = "vgg"


@register_metric("stlpips")
class STLPIPS(_LPIPSBase):
    """Shift-tolerant LPIPS, AlexNet trunk (weights ship with stlpips-pytorch)."""

    name = "stlpips"
    variant = "st_alex"


@register_metric("stlpips_vgg")
class STLPIPSVGG(_LPIPSBase):
    """Shift-tolerant LPIPS, VGG16 trunk."""

    name = "stlpips_vgg"
    variant = "st_vgg"
