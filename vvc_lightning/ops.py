"""Tensor reshapes shared by the backbones, the latent codec and the losses (einops)."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor


def fold_time(x: Tensor) -> Tensor:
    """(B,C,T,H,W) -> (B*T,C,H,W): every frame becomes a batch item."""
    return rearrange(x, "b c t h w -> (b t) c h w")


def unfold_time(x: Tensor, t: int) -> Tensor:
    """(B*T,C,H,W) -> (B,C,T,H,W), the inverse of `fold_time` for T = `t` frames per item."""
    return rearrange(x, "(b t) c h w -> b c t h w", t=t)
