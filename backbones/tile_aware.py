"""Layers whose output depends on the whole frame, declared so that tiled runs can give them the whole frame.

A backbone that codes frames through tiles (`vvc_lightning.codec.pipeline.tile_norm`) sees each tile
alone. Local layers (convolutions, per-position norms) agree with the untiled network away from the
tile borders, which the blend leaves out; two kinds of layer do not, and declare it here:

- `TileGroupNorm` (`tile_role = "norm"`): a GroupNorm whose statistics span the frame. While a tiled
  run is attached, `normalize` asks the run's `TileContext.group_norm` for whole-frame statistics.
- `FrameMixing` (`tile_role = "mixing"`): a layer that mixes all positions of a frame (attention);
  subclasses implement `mix`. While a tiled run is attached, `forward` asks `TileContext.frame_mixing`,
  which runs `mix` on the whole frame's input.

A tiled run attaches its context to the layers of the one model it runs, for the calling thread only,
and detaches it when it ends: other models, other threads and `torch.nn.GroupNorm` itself are untouched.
Layers that do not declare themselves (a plain `nn.GroupNorm`, a third-party attention) run on each tile
alone, with the tile's own statistics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

TILE_NORM = "norm"
TILE_MIXING = "mixing"


class TileContext(Protocol):
    """What a tiled run offers the layers attached to it."""

    def group_norm(self, module: TileGroupNorm, x: torch.Tensor) -> torch.Tensor:
        """`module`'s GroupNorm of a batch of tiles `x` (N,C,...), with the whole frame's statistics."""
        ...

    def frame_mixing(self, module: FrameMixing, x: torch.Tensor,
                     mix: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`mix` of a batch of tiles `x` (N,C,T,h,w) as the whole frame's `mix` gives it on those tiles."""
        ...


class TileAware:
    """Mixin of a layer that needs the whole frame; `tile_role` says how (`TILE_NORM`, `TILE_MIXING`)."""

    tile_role: str = ""

    @property
    def tile_context(self) -> TileContext | None:
        """The tiled run attached to this layer in the calling thread, if any."""
        contexts = self.__dict__.get("_tile_contexts")
        return contexts.get(threading.get_ident()) if contexts else None

    def attach_tile_context(self, context: TileContext) -> None:
        """Route this layer's whole-frame work through `context` in the calling thread."""
        self.__dict__.setdefault("_tile_contexts", {})[threading.get_ident()] = context

    def detach_tile_context(self) -> None:
        """Stop routing through the calling thread's context."""
        self.__dict__.get("_tile_contexts", {}).pop(threading.get_ident(), None)


class TileGroupNorm(TileAware, nn.GroupNorm):
    """`nn.GroupNorm` (same parameters and keys) that normalises with a tiled run's whole-frame statistics."""

    tile_role = TILE_NORM

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """GroupNorm of `x` (N,C,...) per sample: over the whole frame while a tiled run is attached."""
        context = self.tile_context
        if context is None:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return context.group_norm(self, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise `x`."""
        return self.normalize(x)


class FrameMixing(TileAware, nn.Module):
    """A layer that mixes all positions of a frame (attention) on (B,C,T,H,W); subclasses implement `mix`."""

    tile_role = TILE_MIXING

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's function on whole frames."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`mix(x)`; on tiles of an attached tiled run, what `mix` of the whole frame gives there."""
        context = self.tile_context
        return self.mix(x) if context is None else context.frame_mixing(self, x, self.mix)


def tile_layers(model: nn.Module, role: str) -> list[nn.Module]:
    """The outermost layers of `model` with `tile_role == role`, none inside a `TILE_MIXING` layer."""
    mixing = [m for m in model.modules() if getattr(m, "tile_role", "") == TILE_MIXING]
    inside = {id(s) for m in mixing for s in list(m.modules())[1:]}
    return [m for m in model.modules() if getattr(m, "tile_role", "") == role and id(m) not in inside]
