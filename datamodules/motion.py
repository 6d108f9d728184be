"""Synthetic camera motion over a still photograph: pan, zoom, small rotation and brightness drift.

A clip is what a camera moving smoothly over the photo would film: per frame an affine window
(centre, scale, angle) on the image, sampled bicubically, then a brightness gain, rounded to 8 bits as
real frames are. The photo is first area-downscaled to a random scale (so resampling never aliases),
and every window stays inside the photo (no padding ever shows).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vvc_lightning.errors import ConfigError, VVCError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Motion:
    """Largest motion over one clip (uniformly drawn up to these, in a random direction)."""

    pan: float = 0.5  # camera travel, as a fraction of the crop side
    zoom: float = 0.15  # |log| of the scale change (0.15: about +-16 %)
    rotate: float = 5.0  # degrees
    brightness: float = 0.1  # gain change (0.1: +-10 %)

    def __post_init__(self) -> None:
        for key in ("pan", "zoom", "rotate", "brightness"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"data.{key} must be a number >= 0, got {value!r}")
        if self.brightness >= 1 or self.zoom > 1 or self.rotate > 45:
            raise ConfigError("data.brightness must be < 1, data.zoom <= 1 and data.rotate <= 45 degrees")


def load_image(path: str | Path) -> torch.Tensor:
    """A photo as float (3,H,W) in [0,1] (greyscale becomes 3 equal channels)."""
    from vvc_lightning.video.images import decode_image

    try:
        rgb = decode_image(path)
    except VVCError as exc:
        raise VVCError(f"image '{path}' cannot be read; give a PNG/JPEG/TIFF/BMP/WebP photo") from exc
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def shrink(img: torch.Tensor, short_side: int) -> torch.Tensor:
    """Area-downscale a (3,H,W) photo so its short side is at most `short_side` (once, not per clip)."""
    h, w = img.shape[-2:]
    if min(h, w) <= short_side:
        return img
    f = short_side / min(h, w)
    return F.interpolate(img[None], size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")[0]


def _profile(rng: random.Random, t: np.ndarray) -> np.ndarray:
    """Motion over time t in [0,1]: constant speed, or easing in and out (a smoothstep)."""
    return t if rng.random() < 0.5 else t * t * (3 - 2 * t)


def motion_clip(img: torch.Tensor, frames: int, stride: int, crop: int, motion: Motion,
                rng: random.Random) -> torch.Tensor:
    """(3,frames,crop,crop) in [-1,1]: every `stride`-th frame of a synthetic pan/zoom/rotate shot of
    `img`."""
    if rng.random() < 0.5:
        img = img.flip(-1)
    _, height, width = img.shape
    span = (frames - 1) * stride + 1
    t = np.arange(frames) * stride / max(1, span - 1)
    prof = _profile(rng, t)
    angle = math.radians(rng.uniform(-motion.rotate, motion.rotate))
    log_zoom = rng.uniform(-motion.zoom, motion.zoom)
    direction = rng.uniform(0, 2 * math.pi)
    travel = rng.uniform(0, motion.pan) * crop  # output pixels
    dx, dy = travel * math.cos(direction), travel * math.sin(direction)
    gain_end = 1 + rng.uniform(-motion.brightness, motion.brightness)
    # Half-extent of the window in output pixels (rotation needs the half-diagonal), at the largest zoom.
    zoom_max = math.exp(max(0.0, log_zoom))
    half = crop / 2 * zoom_max * (math.sqrt(2) * math.cos(math.pi / 4 - abs(angle)) if angle else 1.0)
    fit = min(width / (2 * half + abs(dx) + 1), height / (2 * half + abs(dy) + 1))  # largest scale that fits
    scale = fit if fit <= 1 else math.exp(rng.uniform(0, math.log(fit)))  # source px per output px
    h2, w2 = max(1, int(height / scale)), max(1, int(width / scale))
    if (h2, w2) != (height, width):
        img = F.interpolate(img[None], size=(h2, w2), mode="area" if scale > 1 else "bicubic",
                            align_corners=None if scale > 1 else False)[0]
    sx, sy = w2 / width * scale, h2 / height * scale  # exact per-axis scale after the integer resize
    room_x, room_y = max(0.0, w2 - 2 * half * sx - abs(dx) * sx), max(0.0, h2 - 2 * half * sy - abs(dy) * sy)
    x0 = half * sx + rng.uniform(0, room_x) + (abs(dx) * sx if dx < 0 else 0)
    y0 = half * sy + rng.uniform(0, room_y) + (abs(dy) * sy if dy < 0 else 0)
    theta = torch.empty(frames, 2, 3)
    for k, p in enumerate(prof):
        z = math.exp(log_zoom * p)
        a = angle * p
        cx, cy = x0 + dx * sx * p, y0 + dy * sy * p
        c, s = math.cos(a) * crop / 2 * z, math.sin(a) * crop / 2 * z
        theta[k, 0] = torch.tensor([2 / w2 * c * sx, -2 / w2 * s * sx, 2 * cx / w2 - 1])
        theta[k, 1] = torch.tensor([2 / h2 * s * sy, 2 / h2 * c * sy, 2 * cy / h2 - 1])
    grid = F.affine_grid(theta, [frames, 3, crop, crop], align_corners=False)
    out = F.grid_sample(img[None].expand(frames, -1, -1, -1), grid, mode="bicubic", padding_mode="reflection",
                        align_corners=False)
    gain = torch.tensor(1 + (gain_end - 1) * prof, dtype=out.dtype).view(frames, 1, 1, 1)
    out = (out * gain).clamp(0, 1).mul(255).round()  # 8-bit frames, as a camera writes them
    return (out / 127.5 - 1).permute(1, 0, 2, 3).contiguous()
