"""Building blocks shared by the built-in video VAE families: causal 3D convs, per-frame convs and norms,
resnet and attention blocks, causal resampling, Haar wavelet patchify and Neighborhood-Aware Feedforward
(NAF) blocks. Each block is defined here once; the family files import them.

Tensors are channels-first video, (B, C, T, H, W), unless a name says channels-last. "Causal" means
output frame t depends on input frames <= t only: temporal padding is on the past side (replicating the
first frame, or zeros in the released LeanVAE layer `GegluNAFBlock`), and every normalisation is per frame
(a GroupNorm over the whole clip would let later frames leak into earlier ones through its statistics).
Norms and attention that see the whole frame are tile-aware (`backbones/tile_aware.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from vvc_lightning.backbones.tile_aware import FrameMixing, TileGroupNorm
from vvc_lightning.ops import fold_time, unfold_time


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest group count <= `max_groups` that divides `channels`."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def maybe_checkpoint(fn: Callable[..., torch.Tensor], x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """Run `fn(x)`, through activation checkpointing when `enabled` and gradients are on."""
    if enabled and torch.is_grad_enabled() and x.requires_grad:
        return checkpoint(fn, x, use_reentrant=False)
    return fn(x)


def _frames(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B,C,T,H,W) -> ((B*T),C,H,W), T."""
    return fold_time(x), x.shape[2]


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last_3d for a (B,C,T,H,W) tensor stored channels-last, else contiguous_format."""
    if x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def causal_pad(x: torch.Tensor, past: int, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """`past` copies of frame 0 before the clip, zeros around each frame, in one copy keeping x's layout."""
    b, c, t, h, w = x.shape
    out = torch.empty((b, c, t + past, h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                      memory_format=memory_format(x))
    if top or bottom or left or right:
        out[:, :, :, :top].zero_()
        out[:, :, :, top + h :].zero_()
        out[:, :, :, :, :left].zero_()
        out[:, :, :, :, left + w :].zero_()
    inner = out[:, :, :, top : top + h, left : left + w]
    inner[:, :, past:] = x
    if past:
        inner[:, :, :past] = x[:, :, :1]
    return out


class FrameGroupNorm(TileGroupNorm):
    """GroupNorm computed on each frame separately (keeps the network causal in time); tile-aware."""

    def __init__(self, channels: int, max_groups: int = 32, eps: float = 1e-6) -> None:
        super().__init__(num_groups(channels, max_groups), channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise (B,C,T,H,W) per frame."""
        if x.dim() != 5:
            return self.normalize(x)
        y, t = _frames(x)
        return unfold_time(self.normalize(y), t)


class CausalConv3d(nn.Conv3d):
    """3D conv, zero padding in space, replicate padding of the first frame on the past side in time."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups)
        kt, kh, kw = self.kernel_size
        self.causal_pad = (kw // 2, kw // 2, kh // 2, kh // 2, 0, 0)
        self.time_pad = kt - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve (B,C,T,H,W) causally in time."""
        if self.time_pad or any(self.causal_pad):
            pw, _, ph, _, _, _ = self.causal_pad
            x = causal_pad(x, self.time_pad, ph, ph, pw, pw)
        return super().forward(x)


class FrameConv2d(nn.Conv2d):
    """2D conv applied to every frame of a (B,C,T,H,W) clip ("half-3D" second conv of CV-VAE blocks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve each frame."""
        y, t = _frames(x)
        return unfold_time(super().forward(y), t)


class ResnetBlock3D(nn.Module):
    """Norm-SiLU-causal 3D conv, norm-SiLU-2D conv, plus a (1x1x1 when widths differ) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = FrameGroupNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = FrameGroupNorm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = FrameConv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (
            nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update of `x`."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class SpatialAttention(FrameMixing):
    """Single-head self-attention over the pixels of each frame (SD-VAE mid-block attention); tile-aware."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = FrameGroupNorm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """Residual attention update of `x`."""
        y, t = _frames(self.norm(x))
        n, c, h, w = y.shape
        q, k, v = self.qkv(y).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        out = self.proj(out.transpose(-1, -2).reshape(n, c, h, w))
        return x + unfold_time(out, t)


class Downsample3D(nn.Module):
    """Stride-2 conv in space, and causally in time too when `time` (T -> 1 + (T-1)/2)."""

    def __init__(self, channels: int, time: bool) -> None:
        super().__init__()
        self.time = time
        self.conv = nn.Conv3d(channels, channels, 3, stride=(2 if time else 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve H and W (and the frame count after the first frame when `time`)."""
        # 2 causal past frames, SD-style asymmetric spatial padding (bottom and right)
        return self.conv(causal_pad(x, 2, 0, 1, 0, 1))


class Upsample3D(nn.Module):
    """Nearest x2 in space then a causal conv; with `time` it also doubles frames after the first.

    Temporal upsampling predicts 2 output frames per input step (channels -> time) and drops the
    first, so t steps become 2t-1 frames and frame 0 still comes from step 0 alone.
    """

    def __init__(self, channels: int, time: bool) -> None:
        super().__init__()
        self.factor = 2 if time else 1
        self.conv = CausalConv3d(channels, channels * self.factor, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Double H and W (and the frame count after the first frame when `time`)."""
        y, t = _frames(x)
        x = unfold_time(F.interpolate(y, scale_factor=2.0, mode="nearest"), t)
        x = self.conv(x)
        if self.factor == 1:
            return x
        b, c2, t, h, w = x.shape  # channels [k*C, (k+1)*C) of step s are frame 2s+k
        out = torch.empty((b, c2 // 2, 2 * t, h, w), dtype=x.dtype, device=x.device,
                          memory_format=memory_format(x))
        out[:, :, 0::2] = x[:, : c2 // 2]
        out[:, :, 1::2] = x[:, c2 // 2 :]
        return out[:, :, 1:]


# --------------------------------------------------------------------------- Haar wavelet patchify
_S = 1.0 / math.sqrt(2.0)


def haar_time(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Haar over frame pairs: (B,C,2t,H,W) -> (B,2C,t,H,W), [low, high]."""
    a, b = x[:, :, 0::2], x[:, :, 1::2]
    return torch.cat([(a + b) * _S, (a - b) * _S], dim=1)


def ihaar_time(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_time`."""
    lo, hi = x.chunk(2, dim=1)
    a, b = (lo + hi) * _S, (lo - hi) * _S
    bsz, c, t, h, w = a.shape
    return torch.stack([a, b], dim=3).reshape(bsz, c, 2 * t, h, w)


def haar_space(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D Haar: (B,C,T,2H,2W) -> (B,4C,T,H,W), subbands [LL, LH, HL, HH]."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1) * 0.5


def ihaar_space(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_space`."""
    ll, lh, hl, hh = x.chunk(4, dim=1)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll - lh + hl - hh) * 0.5
    c = (ll + lh - hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    bsz, ch, t, h, w = a.shape
    top = torch.stack([a, b], dim=-1).reshape(bsz, ch, t, h, 2 * w)
    bot = torch.stack([c, d], dim=-1).reshape(bsz, ch, t, h, 2 * w)
    return torch.stack([top, bot], dim=-2).reshape(bsz, ch, t, 2 * h, 2 * w)


def patches(x: torch.Tensor, frames: int, size: int = 8) -> torch.Tensor:
    """(B,C,k*frames,h*size,w*size) -> non-overlapping patches (B,k,h,w,C*frames*size*size), (c,t,y,x)."""
    b, c, t, h, w = x.shape
    p = x.reshape(b, c, t // frames, frames, h // size, size, w // size, size)
    return p.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t // frames, h // size, w // size, -1)


def unpatch(p: torch.Tensor, out: torch.Tensor, frames: int, size: int = 8) -> None:
    """Write patches (B,k,h,w,C*frames*size*size) into `out` (B,C,k*frames,h*size,w*size) (undo `patches`)."""
    b, k, h, w, _ = p.shape
    c = out.shape[1]
    view = out.unflatten(4, (w, size)).unflatten(3, (h, size)).unflatten(2, (k, frames))
    view.copy_(p.reshape(b, k, h, w, c, frames, size, size).permute(0, 4, 1, 5, 2, 6, 3, 7))


# ------------------------------------------------------------------ Neighborhood-Aware Feedforward
class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dim of a channels-first (B,C,...) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every position over its channels."""
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)

    def forward_cl(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a channels-last (...,C) tensor over its last dim."""
        return super().forward(x)


class NAFBlock(nn.Module):
    """Neighborhood-Aware Feedforward: causal depthwise 3x3x3 conv (first frame replicated on the past side)
    mixing neighbours, then a pointwise GELU MLP (`lean_vae_lite`; `GegluNAFBlock` is the released layer)."""

    def __init__(self, channels: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = max(1, int(channels * mlp_ratio))
        self.dwconv = CausalConv3d(channels, channels, 3, groups=channels)
        self.norm = ChannelLayerNorm(channels)
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.fc2 = nn.Conv3d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual neighbourhood mixing then residual MLP."""
        return self.forward_cl(x.movedim(1, -1).contiguous()).movedim(-1, 1)

    def forward_cl(self, x: torch.Tensor) -> torch.Tensor:
        """The same on a channels-last (B,T,H,W,C) tensor: the pointwise MLP runs as matrix products.

        Channels-last keeps every step free of layout copies (the LayerNorm and the two 1x1x1 convs work
        on the contiguous last dim, the depthwise conv reads it as channels_last_3d).
        """
        dw = self.dwconv  # called functionally: a depthwise 3D conv runs the same kernel at any batch size
        xc = x.permute(0, 4, 1, 2, 3)
        xc = torch.cat([xc[:, :, :1].expand(-1, -1, dw.time_pad, -1, -1), xc], dim=2)
        pad = (0, dw.kernel_size[1] // 2, dw.kernel_size[2] // 2)
        x = x + F.conv3d(xc, dw.weight, dw.bias, dw.stride, pad, groups=dw.groups).permute(0, 2, 3, 4, 1)
        h = F.linear(self.norm.forward_cl(x), self.fc1.weight.flatten(1), self.fc1.bias)
        h = torch._C._nn.gelu_(h) if not torch.is_grad_enabled() else F.gelu(h)
        return x + F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias)

    def mlp_rows_(self, rows: torch.Tensor, hidden: torch.Tensor, out: torch.Tensor) -> None:
        """Contiguous rows (M, C) += their residual MLP of `forward_cl`, in place, hidden.shape[0] at a time.

        Inference only. The same operations per row as `forward_cl` (LayerNorm, bias-initialised products,
        GELU, the residual add), with the block's hidden activations in the scratch `hidden` (R, 4C) and
        `out` (R, C), small enough to stay in cache, instead of whole (M, 4C) tensors."""
        norm, w1, w2 = self.norm, self.fc1.weight.flatten(1).t(), self.fc2.weight.flatten(1).t()
        step = hidden.shape[0]
        for r0 in range(0, rows.shape[0], step):
            x = rows[r0 : r0 + step]
            m = x.shape[0]
            xn = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            h = torch._C._nn.gelu_(torch.addmm(self.fc1.bias, xn, w1, out=hidden[:m]))
            x.add_(torch.addmm(self.fc2.bias, h, w2, out=out[:m]))


class ZeroPadDepthwiseConv(nn.Module):
    """Depthwise 3x3x3 conv on (B,T,H,W,C), zero padding with both time pads on the past side."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(dim, dim, 3, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix each channel over its causal 3x3x3 neighbourhood."""
        y = F.pad(rearrange(x, "b t h w c -> b c t h w"), (1, 1, 1, 1, 2, 0))
        return rearrange(self.conv(y), "b c t h w -> b t h w c")


class GegluFeedForward(nn.Module):
    """LayerNorm then a bias-free GEGLU MLP, hidden int(8/3 C) (timm GluMlp, GELU gate on the second half)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        from timm.layers import GluMlp  # on first use: importing timm costs seconds

        hidden = int(4 * (2 / 3) * dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = GluMlp(dim, 2 * hidden, act_layer=nn.GELU, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pointwise MLP."""
        return self.mlp(self.norm(x))


class GegluNAFBlock(nn.Module):
    """LeanVAE's released NAF layer on (B,T,H,W,C): zero-padded depthwise conv, GEGLU MLP; `residual`
    blocks add both parts to their input (ResNAF), plain ones chain them (the ISTA bottleneck's layers)."""

    def __init__(self, dim: int, residual: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = ZeroPadDepthwiseConv(dim)
        self.ffn = GegluFeedForward(dim)
        self.residual = residual
        if drop_path > 0:
            from timm.layers import DropPath
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Neighbourhood mixing then the MLP."""
        if not self.residual:
            return self.ffn(self.dwconv(x))
        x = x + self.drop_path(self.dwconv(x))
        return x + self.drop_path(self.ffn(x))
