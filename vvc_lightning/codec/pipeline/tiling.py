"""Overlapping spatial tiles on a stride-aligned grid, merged with linear-ramp blend weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vvc_lightning.errors import CodecOptionError


@dataclass(frozen=True)
class AxisTiles:
    """Tiles of equal `size` along one axis of `length`, starting at `starts`."""

    length: int
    size: int
    starts: tuple[int, ...]

    def scaled(self, factor: int) -> AxisTiles:
        """The same tiles in units `factor` times coarser (pixels -> latent positions)."""
        if self.length % factor or self.size % factor or any(s % factor for s in self.starts):
            raise ValueError(f"tiles {self} are not aligned to {factor}")
        return AxisTiles(self.length // factor, self.size // factor, tuple(s // factor for s in self.starts))

    def weights(self) -> list[torch.Tensor]:
        """Per tile, 1-D weights: 1 inside; across each overlap 0 for its outer quarter, then a linear ramp.

        The quarter next to a tile's border (where its padding shows) is left to the neighbour; the ramps
        of two neighbours cross in the middle half of their overlap and sum to one.
        """
        out = []
        n = len(self.starts)
        k = torch.arange(self.size, dtype=torch.float64)
        for i, s in enumerate(self.starts):
            w = torch.ones(self.size, dtype=torch.float64)
            if i > 0:
                w = torch.minimum(w, _ramp(k, self.starts[i - 1] + self.size - s))
            if i < n - 1:
                w = torch.minimum(w, _ramp(self.size - 1 - k, s + self.size - self.starts[i + 1]))
            out.append(w)
        return out

    def owned(self) -> list[tuple[int, int]]:
        """Per tile, the [lo, hi) span (from its start) it owns: neighbours split their overlap in the middle.

        The spans partition the axis: statistics summed over each tile's own span count every position once.
        """
        cuts = [0]
        for a, b in zip(self.starts, self.starts[1:], strict=False):
            cuts.append((a + self.size + b) // 2)
        cuts.append(self.length)
        return [(lo - s, hi - s) for s, lo, hi in zip(self.starts, cuts[:-1], cuts[1:], strict=True)]


def _ramp(k: torch.Tensor, overlap: int) -> torch.Tensor:
    """0 over the first quarter of an overlap, rising linearly to 1 at its last quarter (k from the edge)."""
    if overlap <= 0:
        return torch.ones_like(k)
    margin = overlap // 4
    return ((k + 0.5 - margin) / (overlap - 2 * margin)).clamp(0.0, 1.0)


def axis_tiles(length: int, tile: int, overlap: int, stride: int = 1) -> AxisTiles:
    """Fewest tiles of at most `tile` (overlapping by at least `overlap`) covering `length`, evenly spread."""
    if length % stride:
        raise ValueError(f"length {length} is not a multiple of the stride {stride}; pad first")
    if length <= tile:
        return AxisTiles(length, length, (0,))
    n = -(-(length - overlap) // (tile - overlap))
    units, ov = length // stride, overlap // stride
    size = -(-(units + (n - 1) * ov) // n)  # smallest equal tile that still overlaps by `overlap`
    starts = tuple(((i * (units - size) * 2 + (n - 1)) // (2 * (n - 1))) * stride for i in range(n))
    return AxisTiles(length, size * stride, starts)


def check_tile_options(tile: int, overlap: int, stride: int) -> None:
    """Reject tile settings the backbone cannot use, saying which values would work."""
    if tile <= 0 or tile % stride:
        raise CodecOptionError(
            "tile", f"must be a positive multiple of the backbone stride {stride}, got {tile}"
        )
    if overlap < 0 or overlap % stride:
        raise CodecOptionError(
            "tile_overlap", f"must be a multiple of the backbone stride {stride} (e.g. 32), got {overlap}"
        )
    if 2 * overlap >= tile:
        fit = max(tile, 4 * stride)
        raise CodecOptionError(
            "tile_overlap",
            f"{overlap} must be less than half of tile {tile}; "
            f"e.g. tile {fit} with tile_overlap {fit // 4 // stride * stride}",
            ("tile",),
        )


@dataclass(frozen=True)
class TileGrid:
    """A grid of rows x columns of overlapping tiles over an (H, W) plane."""

    ys: AxisTiles
    xs: AxisTiles

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.ys.starts) * len(self.xs.starts)

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(height, width) of every tile."""
        return self.ys.size, self.xs.size

    def scaled(self, factor: int) -> TileGrid:
        """The grid in units `factor` times coarser."""
        return TileGrid(self.ys.scaled(factor), self.xs.scaled(factor))

    def boxes(self) -> list[tuple[int, int]]:
        """Top-left corner (y, x) of every tile, row-major."""
        return [(y, x) for y in self.ys.starts for x in self.xs.starts]

    def owned_boxes(self) -> list[tuple[int, int, int, int]]:
        """Per tile (row-major), the box (y0, y1, x0, x1) in it that it owns; boxes partition the plane."""
        return [(y0, y1, x0, x1) for y0, y1 in self.ys.owned() for x0, x1 in self.xs.owned()]

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Tiles (...,th,tw) of a tensor (...,H,W), row-major."""
        th, tw = self.tile_shape
        return [x[..., y : y + th, xx : xx + tw] for y, xx in self.boxes()]

    def merge(self, tiles: list[torch.Tensor]) -> torch.Tensor:
        """Blend tiles (...,th,tw) back into (...,H,W) with normalized linear-ramp weights."""
        if len(tiles) != self.count:
            raise ValueError(f"expected {self.count} tiles, got {len(tiles)}")
        if self.count == 1:
            return tiles[0]
        th, tw = self.tile_shape
        lead = tiles[0].shape[:-2]
        dtype = tiles[0].dtype
        out = torch.zeros(*lead, self.ys.length, self.xs.length, dtype=dtype, device=tiles[0].device)
        norm = torch.zeros(self.ys.length, self.xs.length, dtype=torch.float64)
        wy, wx = self.ys.weights(), self.xs.weights()
        k = 0
        for i, y in enumerate(self.ys.starts):
            for j, x in enumerate(self.xs.starts):
                w = wy[i][:, None] * wx[j][None, :]
                norm[y : y + th, x : x + tw] += w
                out[..., y : y + th, x : x + tw] += tiles[k] * w.to(dtype=dtype, device=out.device)
                k += 1
        return out / norm.to(dtype=dtype, device=out.device)


def plan_tiles(height: int, width: int, tile: int, overlap: int, stride: int) -> TileGrid:
    """The tile grid of a stride-aligned (height, width) plane; tile <= 0 means one tile."""
    if tile <= 0:
        return TileGrid(AxisTiles(height, height, (0,)), AxisTiles(width, width, (0,)))
    check_tile_options(tile, overlap, stride)
    return TileGrid(axis_tiles(height, tile, overlap, stride), axis_tiles(width, tile, overlap, stride))
