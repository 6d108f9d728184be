"""The registry of metric names (third-party metrics register through the entry-point group)."""

from __future__ import annotations

from vvc_lightning.registry import Registry

BUILTIN = tuple(
    f"vvc_lightning.metrics.{m}" for m in ("fidelity", "lpips", "distribution", "noref", "temporal", "vmaf")
)
METRICS = Registry("metric", "vvc_lightning.metrics", BUILTIN)
register_metric = METRICS.register
