"""Memory model of the backbone passes, and the tiling that a memory budget (`--max-memory`) allows.

The peak memory of running the backbone encoder or decoder on one item of T frames of h x w pixels is
estimated from one probe run on a small input: forward hooks record the largest input + output bytes of
any leaf module, which scales with the pixel count; the peak is that times `PEAK_FACTOR` (calibrated
against the peak RSS of real runs, see the README) plus four float copies of the item's pixels (input,
output, and the temporaries of pixel-level functional steps such as a Haar transform, which hooks miss). The probe runs once
per backbone, side and frame count (cached on the backbone).

`plan_budget` then picks the cheapest plan that fits: whole frames with `batch` items per pass; whole
frames with fewer items per pass; else the largest stride-aligned tiles that fit, one or more per pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vvc_lightning.codec.tiling import TileGrid, plan_tiles
from vvc_lightning.errors import VVCError

DEFAULT_MAX_MEMORY = 8 << 30
PEAK_FACTOR = 3.5  # peak / largest leaf input+output; estimate / measured peak RSS 0.78-1.29 (README)
PROBE = 64  # probe side in pixels (a multiple of every backbone stride)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str | int) -> int:
    """Bytes from '512M', '8G', '1.5G', '1073741824' (K/M/G/T are powers of 1024); VVCError otherwise."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
        if m is None:
            raise VVCError(f"--max-memory takes a size like 512M, 8G or a number of bytes, got '{text}'")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value < 1 << 20:
        raise VVCError(f"--max-memory must be at least 1M (e.g. 8G), got '{text}'")
    return value


def _leaf_io_bytes(module: nn.Module, fn: Any, x: torch.Tensor) -> int:
    """Largest input + output bytes of a leaf module while `fn(x)` runs."""
    peak = [0]

    def hook(_m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        tensors = [a for a in args if torch.is_tensor(a)] + ([out] if torch.is_tensor(out) else [])
        peak[0] = max(peak[0], sum(t.numel() * t.element_size() for t in tensors))

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            fn(x)
    finally:
        for h in handles:
            h.remove()
    return peak[0]


class MemoryModel:
    """Estimated peak bytes of one backbone item (encode: T frames; decode: the latent of T frames)."""

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.stride = int(backbone.spatial_stride)

    def _per_pixel(self, side: str, frames: int) -> float:
        """Leaf input+output bytes per pixel of the frame, from a cached probe run."""
        cache = self.backbone.__dict__.setdefault("_vvc_memory_probe", {})
        key = (side, frames)
        if key not in cache:
            param = next(self.backbone.parameters())
            side_px = max(PROBE, 2 * self.stride)
            x = torch.zeros(1, 3, frames, side_px, side_px, dtype=param.dtype, device=param.device)
            was_training = self.backbone.training
            self.backbone.eval()
            try:
                if side == "encode":
                    io = _leaf_io_bytes(self.backbone, self.backbone.encode, x)
                else:
                    with torch.no_grad():
                        z = self.backbone.encode(x)
                    io = _leaf_io_bytes(self.backbone, self.backbone.decode, z)
            finally:
                self.backbone.train(was_training)
            cache[key] = io / side_px**2
        return cache[key]

    def peak(self, side: str, frames: int, height: int, width: int) -> int:
        """Estimated peak bytes of running `side` ('encode' or 'decode') on one item of (frames, height, width)."""
        pixels = height * width
        frame_io = 4 * 4 * 3 * frames * pixels  # float pixels: input, output, functional steps hooks miss (Haar)
        return int(PEAK_FACTOR * self._per_pixel(side, frames) * pixels) + frame_io


@dataclass(frozen=True)
class Plan:
    """How a frame is run through the backbone: its tile grid (pixels) and backbone items per pass."""

    grid: TileGrid
    items: int
    tile: int = 0  # the tile size asked of `plan_tiles` (0: the frame is one tile)


def plan_budget(model: MemoryModel, side: str, frames: int, height: int, width: int, batch: int,
                budget: int, overlap: int) -> Plan:
    """Whole frames, `batch` (or fewer) per pass, when they fit `budget` bytes; else the largest tiles that fit."""
    stride = model.stride
    whole = model.peak(side, frames, height, width)
    if whole <= budget:
        return Plan(plan_tiles(height, width, 0, overlap, stride), max(1, min(batch, budget // whole)))
    low = max(2 * overlap + stride, 2 * stride)
    low = -(-low // stride) * stride
    tile = -(-max(height, width) // stride) * stride
    while tile >= low:
        grid = plan_tiles(height, width, tile, overlap, stride)
        need = model.peak(side, frames, *grid.tile_shape)
        if need <= budget:
            return Plan(grid, max(1, min(batch, budget // need)), tile)
        tile = min(tile - stride, max(grid.tile_shape) - stride)
    need = model.peak(side, frames, low, low)
    raise VVCError(
        f"--max-memory {budget / 2**20:.0f}M is too small to {side} {frames}-frame GoPs even in {low}-pixel tiles "
        f"(about {need / 2**20:.0f}M needed); raise --max-memory or use a smaller --gop"
    )
