"""Memory model of the backbone passes, and the tiling that a memory budget (`CodecOptions.max_memory`)
allows.

The peak memory of running the backbone encoder or decoder on one item of T frames of h x w pixels is
estimated from one probe run on a small input: forward hooks record the largest input + output bytes of
any leaf module, which scales with the pixel count; the peak is that times `PEAK_FACTOR` (calibrated
against the peak RSS of real runs, see docs/memory.md) plus four float copies of the item's pixels (input,
output, and the temporaries of pixel-level functional steps such as a Haar transform, which hooks miss). The
probe runs once per backbone, side and frame count (cached on the backbone).

Besides the backbone, each GoP of a pass holds its frames and is entropy-coded as a whole by the latent
codec (`gop_bytes`: per-pixel frame buffers plus `CODEC_BYTES` per latent element, measured at 250-360 on
the shipped and the tiny model, encode and decode alike). `plan_budget` reserves that for at least one GoP,
refuses up front when one GoP alone exceeds the budget (a long GoP on a large frame), then picks the
cheapest plan that fits: whole frames with `batch` items per pass; whole frames with fewer items per pass;
else the largest stride-aligned tiles that fit, one or more per pass; and as many GoPs per pass as fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vvc_lightning.codec.pipeline.sizes import size_text
from vvc_lightning.codec.pipeline.tiling import TileGrid, plan_tiles
from vvc_lightning.errors import CodecOptionError

PEAK_FACTOR = 3.5  # peak / largest leaf input+output; estimate / measured peak RSS 0.78-1.29 (docs/memory.md)
PROBE = 64  # probe side in pixels (a multiple of every backbone stride)
# Bytes per pixel of a GoP held through a pass (resident) and briefly on top (transient): encode keeps the
# uint8 frames twice (reader buffer, GoP stack) and the padded float copy (3+3+12), and briefly the float
# stack and its padded copy (12+12); decode keeps the float reconstruction (12) and briefly the blended
# frames.
FRAME_BYTES = {"encode": (18, 24), "decode": (12, 6)}
CODEC_BYTES = 320  # per latent element: the latent codec's working set on one GoP (compress or decompress)


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
        """Estimated peak bytes of `side` ('encode' or 'decode') on one item of (frames, height, width)."""
        pixels = height * width
        frame_io = (
            4 * 4 * 3 * frames * pixels
        )  # float pixels: input, output, functional steps hooks miss (Haar)
        return int(PEAK_FACTOR * self._per_pixel(side, frames) * pixels) + frame_io


def gop_bytes(side: str, frames: int, height: int, width: int, latent_elements: int) -> int:
    """Estimated bytes one GoP adds to a pass besides the backbone: its frames and its latent coding."""
    resident, transient = FRAME_BYTES[side]
    pixels = frames * height * width
    return resident * pixels + max(transient * pixels, CODEC_BYTES * latent_elements)


@dataclass(frozen=True)
class Plan:
    """How a frame is run through the backbone: its tile grid (pixels), backbone items and GoPs per pass."""

    grid: TileGrid
    items: int
    tile: int = 0  # the tile size asked of `plan_tiles` (0: the frame is one tile)
    gops: int = 0  # GoPs held per pass (0: as many as `items` backbone items cover)


def plan_budget(model: MemoryModel, side: str, frames: int, height: int, width: int, batch: int,
                budget: int, overlap: int, per_gop: int = 0, limit: str = "") -> Plan:
    """Whole frames, `batch` (or fewer) per pass, when they fit `budget` bytes; else the largest tiles that
    fit.

    per_gop: bytes each GoP of a pass needs besides the backbone (`gop_bytes`); one GoP's worth is reserved
    first, and the plan holds as many GoPs per pass as fit beside the backbone pass. limit: why `budget` is
    less than max_memory (what the process may allocate, `allocatable.usable_budget`), '' when it is not.
    """
    size = f"{budget / 2**20:.0f}M" + (f" ({limit})" if limit else "")
    if per_gop >= budget:  # refused before the backbone is probed (a long GoP's probe alone is costly)
        grow = "let the process allocate more" if limit else f"raise max_memory above {size_text(per_gop)}"
        raise CodecOptionError(
            "max_memory",
            f"{size} is too small to {side} {frames}-frame GoPs of {width}x{height}: one GoP's frames and "
            f"latent coding alone need about {size_text(per_gop)}; {grow}"
            + (" or use a smaller gop (e.g. 9)" if side == "encode" else ""),
            ("gop",),
        )
    stride = model.stride
    low = -(-max(2 * overlap + stride, 2 * stride) // stride) * stride  # the smallest tile
    room = budget - per_gop

    def plan(grid: TileGrid, need: int, tile: int) -> Plan:
        items = max(1, min(batch, room // need))
        gops = max(1, items // grid.count)
        if per_gop:
            gops = max(1, min(gops, (budget - items * need) // per_gop))
        return Plan(grid, items, tile, gops)

    whole = model.peak(side, frames, height, width)
    if whole <= room:
        return plan(plan_tiles(height, width, 0, overlap, stride), whole, 0)
    tile = -(-max(height, width) // stride) * stride
    while tile >= low:
        grid = plan_tiles(height, width, tile, overlap, stride)
        need = model.peak(side, frames, *grid.tile_shape)
        if need <= room:
            return plan(grid, need, tile)
        tile = min(tile - stride, max(grid.tile_shape) - stride)
    need = model.peak(side, frames, low, low) + per_gop
    raise CodecOptionError(
        "max_memory",
        f"{size} is too small to {side} {frames}-frame GoPs even in {low}-pixel tiles "
        f"(about {need / 2**20:.0f}M needed); "
        f"{'let the process allocate more' if limit else 'raise max_memory'} or use a smaller gop",
        ("gop",),
    )
