"""Temporal consistency (paper section 4, after TecoGAN): tOF with DIS optical flow, tLP with LPIPS.

tOF_t = || OF(x^_{t-1}, x^_t) - OF(x_{t-1}, x_t) ||_1 over pixels, each pixel contributing the length of
its flow difference (TecoGAN's reference code: mean over pixels of the per-pixel vector norm), flow by
OpenCV's DIS (medium preset) on BT.601 grey frames. tLP_t = | LP(x^_{t-1}, x^_t) - LP(x_{t-1}, x_t) |
with the LPIPS network of the `lpips` metric. Both give one value per consecutive frame pair (N-1).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.metrics.base import (
    VideoMetric,
    check_sequences,
    chunks,
    flush_denormal,
    u8_to_frames,
)
from vvc_lightning.metrics.lpips import VARIANTS, perceptual_net, resolve_variant, to_unit
from vvc_lightning.metrics.registry import register_metric
from vvc_lightning.video.images import opencv

DIS_PRESETS = ("ultrafast", "fast", "medium")


def dis_flow(preset: str = "medium"):
    """An OpenCV DIS optical-flow object."""
    cv2 = opencv("tOF (DIS optical flow)")

    code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
    return cv2.DISOpticalFlow_create(code)


def grey(frames: np.ndarray) -> list[np.ndarray]:
    """uint8 RGB (N,H,W,3) -> list of uint8 grey frames."""
    cv2 = opencv("tOF (DIS optical flow)")

    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


def flows(frames: list[np.ndarray], preset: str = "medium") -> list[np.ndarray]:
    """DIS flow (H,W,2) from each frame to the next."""
    dis = dis_flow(preset)
    return [dis.calc(frames[t - 1], frames[t], None) for t in range(1, len(frames))]


@register_metric("tof")
class TOF(VideoMetric):
    """tOF: mean per-pixel length of the difference between decoded and reference optical flow."""

    name = "tof"
    label = "tOF"
    higher_is_better = False
    fast = False
    per = "pair"

    def __init__(self, preset: str = "medium", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}")
        self.preset = preset
        opencv("tOF (DIS optical flow)")  # missing: one line naming the extra, before any work

    def info(self) -> dict[str, Any]:
        return {
            "flow": f"OpenCV DIS, preset {self.preset}, on BT.601 grey frames",
            "norm": "mean over pixels of the per-pixel flow-difference length (TecoGAN)",
            "values": "one per consecutive frame pair",
        }

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        check_sequences(ref, rec, self.key)
        a, b = grey(u8_to_frames(ref)), grey(u8_to_frames(rec))
        out = [np.linalg.norm(fb - fa, axis=-1).mean() for fa, fb in zip(flows(a, self.preset),
                                                                          flows(b, self.preset), strict=True)]
        return torch.tensor(out, dtype=torch.float64)


@register_metric("tlp")
class TLP(VideoMetric):
    """tLP: change of the LPIPS distance between consecutive frames, decoded vs reference."""

    name = "tlp"
    label = "tLP"
    higher_is_better = False
    fast = False
    per = "pair"
    variant = "auto"

    def __init__(self, weights: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolved = resolve_variant(self.variant, weights)
        self.hide("_net", perceptual_net(self.resolved, weights))

    @property
    def key(self) -> str:
        lp = VARIANTS[self.resolved][0]
        return "tlp" if lp == "lpips" else f"tlp_{lp}"

    def info(self) -> dict[str, Any]:
        return {"network": self._net.name, "values": "one per consecutive frame pair"}

    def _neighbours(self, feats: list[Tensor], prev: list[Tensor] | None) -> list[Tensor]:
        """LP between consecutive frames of one chunk's features (and the previous chunk's last frame)."""
        out = []
        if prev is not None:
            out.append(self._net.from_features(prev, [f[:1] for f in feats]))
        if feats[0].shape[0] > 1:
            out.append(self._net.from_features([f[:-1] for f in feats], [f[1:] for f in feats]))
        return out

    def _pass(self, ref: Tensor, rec: Tensor, cross: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """One pass of the network over every frame of both videos: LP(x_{t-1}, x_t) of each, and
        (if `cross`) LP(rec_t, ref_t)."""
        nb_ref, nb_rec, lp, prev = [], [], [], None
        with torch.no_grad(), flush_denormal():
            for s in chunks(ref.shape[0]):
                fa = self._net.features(to_unit(ref[s].to(self.device).float()))
                fb = self._net.features(to_unit(rec[s].to(self.device).float()))
                if cross:
                    lp.append(self._net.from_features(fb, fa))
                nb_ref += self._neighbours(fa, prev[0] if prev else None)
                nb_rec += self._neighbours(fb, prev[1] if prev else None)
                prev = ([f[-1:] for f in fa], [f[-1:] for f in fb])

        def cat(parts: list[Tensor]) -> Tensor:
            return torch.cat(parts).double().cpu() if parts else torch.zeros(0, dtype=torch.float64)

        return cat(nb_ref), cat(nb_rec), (cat(lp) if cross else None)

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        check_sequences(ref, rec, self.key)
        nb_ref, nb_rec, _ = self._pass(ref, rec, cross=False)
        return (nb_rec - nb_ref).abs()

    def joint_scores(self, ref: Tensor, rec: Tensor) -> tuple[Tensor, Tensor]:
        """(per-frame LPIPS-family distance rec vs ref, tLP per pair) from one set of features."""
        check_sequences(ref, rec, self.key)
        nb_ref, nb_rec, lp = self._pass(ref, rec, cross=True)
        return lp, (nb_rec - nb_ref).abs()
