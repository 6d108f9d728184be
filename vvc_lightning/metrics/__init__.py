"""Video quality metrics by name, and `VideoMetrics`, the set a test loop or the evaluation harness uses.

Names: psnr, psnr_y, ms_ssim, lpips (AlexNet LPIPS where its weights are present, otherwise ST-LPIPS,
reported as 'stlpips'), lpips_alex (AlexNet, required), lpips_vgg, stlpips, stlpips_vgg, fid, kid,
brisque, tof, tlp, vmaf. The fast ones (psnr, psnr_y, ms_ssim, lpips) are the default; the others are
opt-in (`names=[...]` or 'all').
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vvc_lightning.errors import VVCError
from vvc_lightning.metrics.base import VideoMetric, frames_to_u8
from vvc_lightning.metrics.registry import METRICS, register_metric

DEFAULT = ("psnr", "psnr_y", "ms_ssim", "lpips")
ALL = ("psnr", "psnr_y", "ms_ssim", "lpips", "fid", "kid", "brisque", "tof", "tlp", "vmaf")
GROUPS = {"default": DEFAULT, "fast": DEFAULT, "all": ALL}


def metric_names() -> list[str]:
    """Every registered metric name."""
    return METRICS.names()


def resolve_names(names: str | Iterable[str] | None) -> list[str]:
    """Metric names from a list or a comma-separated string ('all', 'fast' allowed); unknown names fail."""
    if names is None:
        return list(DEFAULT)
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        for name in GROUPS.get(item, (item,)):
            METRICS.entry(name)  # RegistryError listing the known names
            if name not in out:
                out.append(name)
    if not out:
        raise VVCError("no metric named; give e.g. --metrics psnr,lpips or --metrics all")
    return out


def build_metric(name: str, device: torch.device | str = "cpu", **options: Any) -> VideoMetric:
    """The metric `name`, given the options its constructor accepts (others are ignored)."""
    cls = METRICS.get(name)
    params = inspect.signature(cls.__init__).parameters.values()
    allowed = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return cls(**{k: v for k, v in options.items() if k in allowed}).to(device)


class VideoMetrics(nn.Module):
    """Several metrics at once: `update(ref, rec)` with (B,3,T,H,W) in [-1,1], `compute()` -> {key: value}.

    Keys are what each metric reports under (e.g. 'stlpips' where 'lpips' fell back). Networks are kept
    out of `state_dict`, so holding this in a LightningModule does not change its checkpoints.
    """

    def __init__(self, names: str | Iterable[str] | None = None, device: torch.device | str = "cpu",
                 **options: Any) -> None:
        super().__init__()
        self.names = resolve_names(names)
        self.metrics = nn.ModuleDict({n: build_metric(n, device, **options) for n in self.names})
        keys = [m.key for m in self.metrics.values()]
        if len(set(keys)) != len(keys):
            raise VVCError(f"metrics {self.names} report under the same name twice ({keys}); drop one")

    @property
    def keys(self) -> list[str]:
        """Output names, in order."""
        return [m.key for m in self.metrics.values()]

    def update(self, ref: Tensor, rec: Tensor) -> None:
        """Accumulate clips (B,3,T,H,W) in [-1,1] (rounded to 8 bits, as a decoder outputs)."""
        for m in self.metrics.values():
            m.update(ref, rec)

    def compute(self) -> dict[str, float]:
        """{key: mean over every frame (pair) seen, or the set value for fid/kid}."""
        return {m.key: float(m.compute()) for m in self.metrics.values()}

    def reset(self) -> None:
        """Forget everything accumulated."""
        for m in self.metrics.values():
            m.reset()

    def info(self) -> dict[str, dict[str, Any]]:
        """The protocol of each metric, by key."""
        return {m.key: {"name": m.name, "higher_is_better": m.higher_is_better, **m.info()}
                for m in self.metrics.values()}

    def sequence(
        self, ref: np.ndarray, rec: np.ndarray, only: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Per-frame (per-pair, or one set value) arrays of one sequence given as uint8 (N,H,W,3).

        `only`: the keys to compute (default: all).
        """
        a, b = frames_to_u8(ref), frames_to_u8(rec)
        wanted = [m for m in self.metrics.values() if only is None or m.key in set(only)]
        out: dict[str, np.ndarray] = {}
        tlp = next((m for m in wanted if m.name == "tlp"), None)
        partner = next((m for m in wanted if tlp is not None and m is not tlp
                        and getattr(m, "_net", None) is tlp._net), None)
        if partner is not None:  # LPIPS and tLP from one pass of the network over each frame
            lp, pairs = tlp.joint_scores(a, b)
            out[partner.key], out[tlp.key] = lp.numpy(), pairs.numpy()
        for m in wanted:
            if m.key not in out:
                out[m.key] = m.scores(a, b).numpy()
        return {m.key: out[m.key] for m in wanted}


__all__ = ["ALL", "DEFAULT", "METRICS", "VideoMetric", "VideoMetrics", "build_metric", "metric_names",
           "register_metric", "resolve_names"]
