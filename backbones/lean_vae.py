"""LeanVAE-style lightweight video VAE (Cheng & Yuan 2025): patchify first, then cheap token mixing.

All downsampling happens at the input by a non-overlapping patchify:

- a Haar wavelet transform (2D on the first frame, 3D over frame pairs on the rest) splits the clip
  into a low-frequency subband (LL / LLL, 3 channels) and high-frequency subbands (9 / 21 channels)
  at half resolution;
- a non-overlapping patch embedding (kernel = stride = 1x4x4 for the first frame, 2x4x4 for the frame
  pairs) turns each subband group into tokens on the latent grid (1+(T-1)/4, H/8, W/8); the first
  frame is embedded alone (causal), each later token covers 4 frames.

The low- and high-frequency tokens go through `sep_layers` Neighborhood-Aware Feedforward (NAF)
blocks each (widths width/4 and 3*width/4, as LeanVAE's l_dim/h_dim), are concatenated to `width`
channels and mixed by `fusion_layers` NAF blocks, then a linear head gives the latent. NAF blocks
are a causal depthwise 3x3x3 conv (neighbourhood mixing) followed by a pointwise MLP. The decoder
mirrors this and ends with a linear un-patchify and the inverse Haar transform.

Deviation from LeanVAE: a plain linear latent head instead of its ISTA compressed-sensing bottleneck,
and a deterministic latent (no logvar branch), because the codec quantizes the latent.
"""

from __future__ import annotations

import torch
from torch import nn

from vvc_lightning.backbones.base import VideoBackbone
from vvc_lightning.backbones.layers import (
    ChannelLayerNorm,
    NAFBlock,
    haar_space,
    haar_time,
    ihaar_space,
    ihaar_time,
    maybe_checkpoint,
)
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import register_backbone

LOW_IMG, HIGH_IMG = 3, 9  # first frame: 2D Haar -> LL (3) + LH/HL/HH (9) channels
LOW_VID, HIGH_VID = 3, 21  # frame pairs: 3D Haar -> LLL (3) + 7 other subbands (21) channels
PATCH_IMG, PATCH_VID = (1, 4, 4), (2, 4, 4)  # on the half-resolution subbands -> stride 4x8x8 overall


def _split_width(width: int) -> tuple[int, int]:
    low = max(1, width // 4)
    return low, width - low


class NAFStack(nn.Module):
    """A sequence of NAF blocks, optionally checkpointed."""

    def __init__(self, channels: int, depth: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(NAFBlock(channels, mlp_ratio) for _ in range(depth))
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the blocks in order."""
        ckpt = self.gradient_checkpointing and self.training
        for block in self.blocks:
            x = maybe_checkpoint(block, x, ckpt)
        return x


class LeanEncoder(nn.Module):
    """Frames (B,3,T,H,W) -> latent (B,c,1+(T-1)/4,H/8,W/8)."""

    def __init__(
        self, width: int, latent: int, sep_layers: int, fusion_layers: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        low, high = _split_width(width)
        self.embed_low_img = nn.Conv3d(LOW_IMG, low, PATCH_IMG, stride=PATCH_IMG)
        self.embed_high_img = nn.Conv3d(HIGH_IMG, high, PATCH_IMG, stride=PATCH_IMG)
        self.embed_low_vid = nn.Conv3d(LOW_VID, low, PATCH_VID, stride=PATCH_VID)
        self.embed_high_vid = nn.Conv3d(HIGH_VID, high, PATCH_VID, stride=PATCH_VID)
        self.sep_low = NAFStack(low, sep_layers, mlp_ratio)
        self.sep_high = NAFStack(high, sep_layers, mlp_ratio)
        self.fusion = NAFStack(width, fusion_layers, mlp_ratio)
        self.norm_out = ChannelLayerNorm(width)
        self.head = nn.Conv3d(width, latent, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a clip."""
        img = haar_space(x[:, :, :1])
        low = [self.embed_low_img(img[:, :LOW_IMG])]
        high = [self.embed_high_img(img[:, LOW_IMG:])]
        if x.shape[2] > 1:
            vid = haar_space(haar_time(x[:, :, 1:]))  # [L-time, H-time] x [LL, LH, HL, HH] -> LLL first
            low.append(self.embed_low_vid(vid[:, :LOW_VID]))
            high.append(self.embed_high_vid(vid[:, LOW_VID:]))
        lo = self.sep_low(torch.cat(low, dim=2))
        hi = self.sep_high(torch.cat(high, dim=2))
        h = self.fusion(torch.cat([lo, hi], dim=1))
        return self.head(self.norm_out(h))


class LeanDecoder(nn.Module):
    """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w)."""

    def __init__(
        self, width: int, latent: int, sep_layers: int, fusion_layers: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.low, high = _split_width(width)
        self.proj_in = nn.Conv3d(latent, width, 1)
        self.fusion = NAFStack(width, fusion_layers, mlp_ratio)
        self.sep_low = NAFStack(self.low, sep_layers, mlp_ratio)
        self.sep_high = NAFStack(high, sep_layers, mlp_ratio)
        self.norm_low = ChannelLayerNorm(self.low)
        self.norm_high = ChannelLayerNorm(high)
        self.unembed_low_img = nn.ConvTranspose3d(self.low, LOW_IMG, PATCH_IMG, stride=PATCH_IMG)
        self.unembed_high_img = nn.ConvTranspose3d(high, HIGH_IMG, PATCH_IMG, stride=PATCH_IMG)
        self.unembed_low_vid = nn.ConvTranspose3d(self.low, LOW_VID, PATCH_VID, stride=PATCH_VID)
        self.unembed_high_vid = nn.ConvTranspose3d(high, HIGH_VID, PATCH_VID, stride=PATCH_VID)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent."""
        h = self.fusion(self.proj_in(z))
        lo = self.norm_low(self.sep_low(h[:, : self.low]))
        hi = self.norm_high(self.sep_high(h[:, self.low :]))
        img = torch.cat([self.unembed_low_img(lo[:, :, :1]), self.unembed_high_img(hi[:, :, :1])], dim=1)
        frames = [ihaar_space(img)]
        if z.shape[2] > 1:
            vid = torch.cat([self.unembed_low_vid(lo[:, :, 1:]), self.unembed_high_vid(hi[:, :, 1:])], dim=1)
            frames.append(ihaar_time(ihaar_space(vid)))
        return torch.cat(frames, dim=2)


@register_backbone("lean_vae_lite")
class LeanVAE(VideoBackbone):
    """LeanVAE-style lightweight video VAE: temporal stride 4, spatial stride 8, deterministic latent."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(
        self,
        latent_channels: int = 128,
        width: int = 256,
        sep_layers: int = 2,
        fusion_layers: int = 4,
        mlp_ratio: float = 4.0,
        gradient_checkpointing: bool = False,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if width < 4 or latent_channels < 1 or sep_layers < 0 or fusion_layers < 0 or mlp_ratio <= 0:
            raise ConfigError(
                "model.backbone needs width >= 4, latent_channels >= 1, sep_layers >= 0, fusion_layers >= 0 "
                f"and mlp_ratio > 0, got width={width}, latent_channels={latent_channels}, "
                f"sep_layers={sep_layers}, fusion_layers={fusion_layers}, mlp_ratio={mlp_ratio}"
            )
        self.latent_channels = int(latent_channels)
        self.width = int(width)
        args = (self.width, self.latent_channels, int(sep_layers), int(fusion_layers), float(mlp_ratio))
        self.encoder = LeanEncoder(*args)
        self.decoder = LeanDecoder(*args)
        self.gradient_checkpointing = gradient_checkpointing
        if weights:
            self.load_weights(weights)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the NAF blocks recompute activations in backward while training."""
        return self.encoder.fusion.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        for module in self.modules():
            if isinstance(module, NAFStack):
                module.gradient_checkpointing = bool(value)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/4,H/8,W/8)."""
        self.check_input(x)
        return self.encoder(x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w), roughly in [-1,1]."""
        return self.decoder(latent)
