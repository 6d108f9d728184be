"""Whole-frame normalisation for tiled backbone passes: GroupNorm statistics and attention shared by tiles.

A GroupNorm normalises with statistics over the whole frame (or clip); a tile alone sees only its part,
so tiles of a GroupNorm network disagree with the untiled network (a random CV-VAE by 13-16 dB PSNR).
`FrameNorms` makes tiled passes converge to the untiled one by iterating over the tiles:

- every pass records, per GoP and group, the count, sum and sum of squares of each GroupNorm's input over
  the part of each tile that the tile owns (`TileGrid.owned_boxes`, scaled to the layer's resolution), so
  every position counts once: the whole-frame statistics of that pass; and each tile's own statistics;
- pass 0 normalises every tile with its own statistics (the plain tiled network);
- pass p > 0 normalises a tile with its own statistics now, shifted by what separated the whole frame's
  from the tile's own in pass p - 1 (mean + (whole - own), 1/std * whole / own): once a GroupNorm's input
  stops changing between passes this is exactly the whole-frame statistic, so in a chain of n GroupNorms
  pass n is exact, and the shift keeps the passes in between stable (using pass p - 1's whole-frame
  statistics as they are oscillates by tens of dB in a random CV-VAE).

Layers that mix all positions of a frame (`FrameMixing`, e.g. the mid-block attention at latent
resolution) get the same treatment for their input: each pass assembles their whole-frame input from the
tiles' owned parts, and pass p adds to a tile's own output what the whole-frame run of pass p - 1's input
gave beyond the tile's own output then. Norms inside such a layer run as they are.

Only layers that declare themselves (`vvc_lightning.backbones.tile_aware`: `TileGroupNorm` and its
subclasses such as the per-frame `FrameGroupNorm`, `FrameMixing`) take part, through the context that
`FrameNorms` attaches to the layers of the one model it runs, in the calling thread, while it is open.
Statistics are per sample of the tensor `TileGroupNorm.normalize` receives. A plain `nn.GroupNorm` or an
undeclared attention runs on each tile alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vvc_lightning.backbones.tile_aware import TILE_MIXING, TILE_NORM, TileGroupNorm, tile_layers
from vvc_lightning.codec.pipeline.tiling import TileGrid, plan_tiles

Box = tuple[int, int, int, int]  # y0, y1, x0, x1
TOLERANCE = 1e-3  # statistics passes stop once no normalised value moves by more than this


def _scale(feature: int, tile: int) -> int:
    """A layer's resolution relative to the grid's units (a tile spans `feature` positions, `tile` units)."""
    if feature % tile:
        raise ValueError(f"a layer of {feature} positions is not a multiple of the tile's {tile}; "
                         "cannot share stats")
    return feature // tile


def default_overlap(model: nn.Module) -> int:
    """Tile overlap in pixels: 64 for GroupNorm / attention backbones (convolutions reaching far), else 32."""
    wide = any(isinstance(m, nn.GroupNorm) or getattr(m, "tile_role", "") == TILE_MIXING
               for m in model.modules())
    return 64 if wide else 32


class FrameNorms:
    """Context over a tiled run of `model`: tile-aware norms and attention converge to the whole frame's.

    grid: the tile grid in the units of the coarsest layer (latent positions); gops: GoPs per tile. Items
    are tile-major (item = tile * gops + gop), as `VideoCodec._run_tiles` stacks them; call `items(a, b)`
    around the call on items [a, b) and `end_pass()` after each pass over all items.
    """

    def __init__(self, model: nn.Module, grid: TileGrid, gops: int) -> None:
        self.grid, self.gops = grid, int(gops)
        self.boxes, self.tops = grid.owned_boxes(), grid.boxes()
        self.th, self.tw = grid.tile_shape
        self.first, self.count = 0, 0
        self.attentions = tile_layers(model, TILE_MIXING)
        self.norms = tile_layers(model, TILE_NORM)
        self.whole: dict[int, torch.Tensor] = {}  # id(norm) -> (gops, S, G, 2) last pass's mean, 1/std
        self.sums: dict[int, torch.Tensor] = {}  # id(norm) -> (gops, S, G, 3) this pass's count, sum, squares
        self.own: dict[int, torch.Tensor] = {}  # id(module) -> per item: this pass's own stats / output
        self.own_prev: dict[int, torch.Tensor] = {}
        self.inputs: dict[int, torch.Tensor] = {}  # id(attention) -> (gops, C, T, H, W) assembled this pass
        self.inputs_prev: dict[int, torch.Tensor] = {}
        self.outputs: dict[int, torch.Tensor] = {}  # id(attention) -> whole-frame output of inputs_prev
        self.passes = 0
        self.used = 0

    @property
    def depth(self) -> int:
        """Passes after which every shared statistic is exact: one per GroupNorm or attention in the chain
        (those that the first pass ran, once it has run)."""
        return self.used if self.passes else len(self.norms) + len(self.attentions)

    # ----------------------------------------------------------------------------- context
    def __enter__(self) -> FrameNorms:
        for m in self.norms + self.attentions:
            m.attach_tile_context(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.norms + self.attentions:
            m.detach_tile_context()

    @contextlib.contextmanager
    def items(self, first: int, stop: int) -> Iterator[None]:
        """The next backbone call runs on items [first, stop)."""
        self.first, self.count = first, stop - first
        try:
            yield
        finally:
            self.count = 0

    def end_pass(self) -> float:
        """Make this pass's records those of the next; returns how much they changed (inf after the first).

        The change is the largest shift of a normalised value one std from the mean (|d mean| / std +
        |d std| / std) or relative L2 change of an attention input.
        """
        change = 0.0 if self.passes else float("inf")
        for key, s in self.sums.items():
            n, total, squares = s.unbind(-1)
            mean = total / n
            rstd = ((squares / n - mean * mean).clamp_min(0) + self.eps[key]).rsqrt()
            new = torch.stack([mean, rstd], -1)
            old = self.whole.get(key)
            if old is not None:
                shift = ((new[..., 0] - old[..., 0]).abs() * new[..., 1]
                         + (old[..., 1] / new[..., 1] - 1).abs())
                change = max(change, float(shift.max()))
            self.whole[key] = new
        for key, x in self.inputs.items():
            old = self.inputs_prev.get(key)
            if old is not None:
                change = max(change, float((x - old).norm() / x.norm().clamp_min(1e-12)))
        if not self.passes:
            self.used = len(self.sums) + len(self.inputs)
        self.sums, self.outputs = {}, {}
        self.own_prev, self.own = self.own, {}
        self.inputs_prev, self.inputs = self.inputs, {}
        self.passes += 1
        return change

    # ------------------------------------------------------------------------------ layers
    @property
    def eps(self) -> dict[int, float]:
        """GroupNorm epsilons by id."""
        return {id(m): float(m.eps) for m in self.norms}

    def _item_boxes(self, h: int, w: int) -> Iterator[tuple[int, int, Box, tuple[int, int]]]:
        """Per item of this call: (index in call, gop, owned box, tile's top-left), at this resolution."""
        ry, rx = _scale(h, self.th), _scale(w, self.tw)
        for b in range(self.count):
            tile, gop = divmod(self.first + b, self.gops)
            y0, y1, x0, x1 = self.boxes[tile]
            ty, tx = self.tops[tile]
            yield b, gop, (y0 * ry, y1 * ry, x0 * rx, x1 * rx), (ty * ry, tx * rx)

    def _record(self, key: int, value: torch.Tensor) -> torch.Tensor:
        """Store this call's per-item `value` (items first) for the next pass; return last pass's for them."""
        total = self.gops * len(self.boxes)
        own = self.own.get(key)
        if own is None:
            own = self.own[key] = value.new_zeros(total, *value.shape[1:])
        own[self.first : self.first + self.count] = value
        prev = self.own_prev.get(key)
        return None if prev is None else prev[self.first : self.first + self.count]

    def group_norm(self, module: TileGroupNorm, x: torch.Tensor) -> torch.Tensor:
        """GroupNorm of a tile batch: record owned-part sums; normalise with shifted own statistics."""
        if self.count == 0:
            return F.group_norm(x, module.num_groups, module.weight, module.bias, module.eps)
        n, c = x.shape[:2]
        if n % self.count:
            raise ValueError(f"a GroupNorm input of {n} samples does not split into {self.count} items")
        s, g = n // self.count, module.num_groups
        v = x.reshape(self.count, s, g, c // g, *x.shape[2:])
        key = id(module)
        sums = self.sums.get(key)
        if sums is None:
            sums = self.sums[key] = torch.zeros(self.gops, s, g, 3, dtype=torch.float64)
        for b, gop, (y0, y1, x0, x1), _ in self._item_boxes(*x.shape[-2:]):
            part = v[b, ..., y0:y1, x0:x1]
            var, mean = torch.var_mean(part, dim=tuple(range(2, part.dim())), correction=0)
            cnt = part[0, 0].numel()
            mean, var = mean.double().cpu(), var.double().cpu()
            sums[gop] += torch.stack([torch.full_like(mean, cnt), cnt * mean, cnt * (var + mean * mean)], -1)
        var, mean = torch.var_mean(v, dim=tuple(range(3, v.dim())), correction=0)
        own = torch.stack([mean, (var + module.eps).rsqrt()], -1).double().cpu()  # (items, S, G, 2)
        prev = self._record(key, own)
        whole = self.whole.get(key)
        if prev is None or whole is None:  # pass 0: the tile's own statistics
            return F.group_norm(x, module.num_groups, module.weight, module.bias, module.eps)
        gops = [gop for _, gop, _, _ in self._item_boxes(*x.shape[-2:])]
        whole = whole[gops]
        st = torch.stack([own[..., 0] + whole[..., 0] - prev[..., 0],
                          own[..., 1] * whole[..., 1] / prev[..., 1]], -1)
        st = st.to(device=x.device, dtype=x.dtype)
        shape = (self.count, s, g) + (1,) * (v.dim() - 3)
        out = ((v - st[..., 0].reshape(shape)) * st[..., 1].reshape(shape)).reshape(x.shape)
        if module.affine:
            bshape = (1, c) + (1,) * (x.dim() - 2)
            out = out * module.weight.reshape(bshape) + module.bias.reshape(bshape)
        return out

    def frame_mixing(self, module: nn.Module, x: torch.Tensor,
                     mix: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`mix` on a tile batch: own output + (whole-frame output - own output) of the last pass."""
        if self.count == 0 or x.dim() != 5:
            return mix(x)
        key = id(module)
        h, w = x.shape[-2:]
        full = self.inputs.get(key)
        if full is None:
            frame = (self.grid.ys.length * (h // self.th), self.grid.xs.length * (w // self.tw))
            full = self.inputs[key] = x.new_zeros(self.gops, *x.shape[1:3], *frame)
        for b, gop, (y0, y1, x0, x1), (ty, tx) in self._item_boxes(h, w):
            full[gop, :, :, ty + y0 : ty + y1, tx + x0 : tx + x1] = x[b, :, :, y0:y1, x0:x1]
        own = mix(x)
        prev = self._record(key, own)
        last = self.inputs_prev.get(key)
        if prev is None or last is None:  # pass 0: the tile alone
            return own
        out = self.outputs.get(key)
        if out is None:  # the whole frame, one GoP at a time (attention memory grows with the frame)
            out = self.outputs[key] = torch.cat([mix(last[i : i + 1]) for i in range(self.gops)])
        crops = [out[gop, :, :, ty : ty + h, tx : tx + w] for _, gop, _, (ty, tx) in self._item_boxes(h, w)]
        return own + torch.stack(crops) - prev


def run_tiled(model: nn.Module, fn: Any, items: torch.Tensor, grid: TileGrid, gops: int, batch: int,
              passes: int | None = None, tol: float = TOLERANCE) -> torch.Tensor:
    """`fn` on tile-major `items`, `batch` at a time; several tiles share whole-frame norms (`FrameNorms`).

    grid: the tiles in latent units. Statistics passes (outputs dropped) run before the final one until
    their records change by less than `tol`, at most `passes` of them (None: the depth, which is exact);
    none for one tile or a backbone without GroupNorm or attention.
    """
    n = items.shape[0]

    def one_pass(norms: FrameNorms | None, keep: bool) -> list[torch.Tensor]:
        outs = []
        for i in range(0, n, batch):
            with norms.items(i, min(i + batch, n)) if norms is not None else contextlib.nullcontext():
                y = fn(items[i : i + batch].contiguous())
            if keep:
                outs.append(y)
        return outs

    norms = FrameNorms(model, grid, gops) if grid.count > 1 else None
    if norms is None or norms.depth == 0 or passes == 0:
        outs = one_pass(None, True)
    else:
        with norms:
            while norms.passes < (norms.depth if passes is None else passes):
                one_pass(norms, False)
                if norms.end_pass() < tol:
                    break
            outs = one_pass(norms, True)
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def run_on_tiles(model: nn.Module, fn: Any, x: torch.Tensor, in_grid: TileGrid, out_grid: TileGrid,
                 batch: int, passes: int | None = None) -> torch.Tensor:
    """`fn` on the tiles of x (G,C,T,H,W), `batch` GoP-tiles per call (shared norms), blended on `out_grid`.

    One grid is in pixels, the other in latent units (encode: pixels -> latent; decode: the reverse)."""
    g = x.shape[0]
    tiles = in_grid.split(x)  # per tile (G,C,T,th,tw)
    stacked = torch.cat(tiles) if len(tiles) > 1 else tiles[0]  # tile-major: item = tile * G + gop
    latent = in_grid if in_grid.ys.length < out_grid.ys.length else out_grid
    out = run_tiled(model, fn, stacked, latent, g, batch, passes)
    return out_grid.merge([out[k * g : (k + 1) * g] for k in range(in_grid.count)])


def tiled_round_trip(backbone: nn.Module, x: torch.Tensor, tile: int, overlap: int, passes: int | None = None,
                     batch: int = 2) -> torch.Tensor:
    """Encode then decode frames (G,3,T,H,W) through tiles as the codec does (tile 0: whole frames)."""
    stride = int(backbone.spatial_stride)
    grid = plan_tiles(x.shape[-2], x.shape[-1], tile, overlap, stride)
    latent = grid.scaled(stride)
    with torch.no_grad():
        z = run_on_tiles(backbone, backbone.encode, x, grid, latent, batch, passes)
        return run_on_tiles(backbone, backbone.decode, z, latent, grid, batch, passes)
