"""CV-VAE-style causal dense 3D VAE (Zhao et al. 2024): the Stable Diffusion image VAE inflated to 3D.

Layout (width w, channel multipliers (1,2,4,4) -> w, 2w, 4w, 4w):

- encoder: causal conv_in; per level `enc_blocks` resnet blocks, then a downsample after every level
  but the last (spatial x2 each, temporal x2 after levels 0 and 2 as in CV-VAE); mid block
  resnet + spatial self-attention + resnet; GroupNorm-SiLU-causal conv to `latent_channels`.
- decoder: the mirror, `dec_blocks` resnet blocks per level, nearest+conv spatial upsampling and
  causal temporal upsampling (x2 after levels 3 and 1) that keeps the first frame alone.

Resnet blocks are CV-VAE's "half-3D" ones: the first conv is a causal 3x3x3, the second a per-frame
3x3. Every temporal padding replicates the first frame on the past side and every norm is per frame,
so the network is strictly causal: latent step 0 codes frame 0 alone and step k>0 frames 4k-3..4k.

Deviation from CV-VAE/SD-VAE: the encoder outputs the latent directly (c channels) instead of a
(mean, logvar) pair, because the codec quantizes a deterministic latent (the posterior mean) and a
logvar head would be dead weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vvc_lightning.backbones.base import VideoBackbone
from vvc_lightning.backbones.layers import (
    CausalConv3d,
    Downsample3D,
    FrameGroupNorm,
    ResnetBlock3D,
    SpatialAttention,
    Upsample3D,
    maybe_checkpoint,
)
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import register_backbone


def _mults(channel_mult: Sequence[int]) -> tuple[int, ...]:
    mults = tuple(int(m) for m in channel_mult)
    if len(mults) != 4 or any(m < 1 for m in mults):
        raise ConfigError(
            f"model.backbone.channel_mult must be 4 positive integers (3 spatial downsamplings for "
            f"stride 8), got {list(channel_mult)}"
        )
    return mults


class MidBlock(nn.Module):
    """Resnet, spatial self-attention (optional), resnet."""

    def __init__(self, channels: int, attention: bool, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock3D(channels, channels, dropout)
        self.attn = SpatialAttention(channels) if attention else nn.Identity()
        self.block_2 = ResnetBlock3D(channels, channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the three sub-blocks."""
        return self.block_2(self.attn(self.block_1(x)))


class CVEncoder(nn.Module):
    """Frames (B,3,T,H,W) -> latent (B,c,1+(T-1)/4,H/8,W/8)."""

    TIME_DOWN = (True, False, True)  # temporal x2 after levels 0 and 2 (CV-VAE: i_level % 2 == 0)

    def __init__(
        self, width: int, mults: tuple[int, ...], blocks: int, latent: int, attention: bool, dropout: float
    ) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(3, width * mults[0], 3)
        self.blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        ch = width * mults[0]
        for level, m in enumerate(mults):
            out = width * m
            self.blocks.append(
                nn.ModuleList(ResnetBlock3D(ch if i == 0 else out, out, dropout) for i in range(blocks))
            )
            ch = out
            if level < len(mults) - 1:
                self.downsamples.append(Downsample3D(ch, time=self.TIME_DOWN[level]))
        self.mid = MidBlock(ch, attention, dropout)
        self.norm_out = FrameGroupNorm(ch)
        self.conv_out = CausalConv3d(ch, latent, 3)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a clip."""
        ckpt = self.gradient_checkpointing and self.training
        h = self.conv_in(x)
        for level, level_blocks in enumerate(self.blocks):
            for block in level_blocks:
                h = maybe_checkpoint(block, h, ckpt)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
        h = maybe_checkpoint(self.mid, h, ckpt)
        return self.conv_out(F.silu(self.norm_out(h)))


class CVDecoder(nn.Module):
    """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w)."""

    TIME_UP = (False, True, False, True)  # indexed by level: x2 in time after levels 3 and 1

    def __init__(
        self, width: int, mults: tuple[int, ...], blocks: int, latent: int, attention: bool, dropout: float
    ) -> None:
        super().__init__()
        ch = width * mults[-1]
        self.conv_in = CausalConv3d(latent, ch, 3)
        self.mid = MidBlock(ch, attention, dropout)
        self.blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(mults))):
            out = width * mults[level]
            self.blocks.append(
                nn.ModuleList(ResnetBlock3D(ch if i == 0 else out, out, dropout) for i in range(blocks))
            )
            ch = out
            if level > 0:
                self.upsamples.append(Upsample3D(ch, time=self.TIME_UP[level]))
        self.norm_out = FrameGroupNorm(ch)
        self.conv_out = CausalConv3d(ch, 3, 3)
        self.gradient_checkpointing = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent."""
        ckpt = self.gradient_checkpointing and self.training
        h = self.conv_in(z)
        h = maybe_checkpoint(self.mid, h, ckpt)
        for i, level_blocks in enumerate(self.blocks):
            for block in level_blocks:
                h = maybe_checkpoint(block, h, ckpt)
            if i < len(self.upsamples):
                h = maybe_checkpoint(self.upsamples[i], h, ckpt)
        return self.conv_out(F.silu(self.norm_out(h)))


@register_backbone("cv_vae_causal")
class CVVAE(VideoBackbone):
    """CV-VAE-style causal 3D VAE: temporal stride 4, spatial stride 8, deterministic latent."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(
        self,
        latent_channels: int = 128,
        width: int = 128,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        enc_blocks: int = 2,
        dec_blocks: int = 3,
        attention: bool = True,
        dropout: float = 0.0,
        gradient_checkpointing: bool = False,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if width < 1 or latent_channels < 1 or enc_blocks < 1 or dec_blocks < 1:
            raise ConfigError(
                "model.backbone.width, latent_channels, enc_blocks and dec_blocks must be positive, got "
                f"width={width}, latent_channels={latent_channels}, enc_blocks={enc_blocks}, "
                f"dec_blocks={dec_blocks}"
            )
        mults = _mults(channel_mult)
        self.latent_channels = int(latent_channels)
        self.width = int(width)
        self.encoder = CVEncoder(width, mults, enc_blocks, latent_channels, attention, dropout)
        self.decoder = CVDecoder(width, mults, dec_blocks, latent_channels, attention, dropout)
        self.gradient_checkpointing = gradient_checkpointing
        if weights:
            self.load_weights(weights)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the resnet/mid blocks recompute activations in backward while training."""
        return self.encoder.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.encoder.gradient_checkpointing = bool(value)
        self.decoder.gradient_checkpointing = bool(value)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/4,H/8,W/8)."""
        self.check_input(x)
        return self.encoder(x.contiguous())  # a strided input (frames permuted from HWC) slows every conv

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w), roughly in [-1,1]."""
        return self.decoder(latent)
