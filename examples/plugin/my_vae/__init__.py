"""An example backbone: frame 0 alone, then the mean of every 4 frames, each cut into 8x8 patches."""

from __future__ import annotations

import torch
from torch import nn

from vvc_lightning.backbones.base import VideoBackbone


class MyVAE(VideoBackbone):
    """Temporal stride 4, spatial stride 8: (B,3,T,H,W) in [-1,1] -> (B,c,1+(T-1)/4,H/8,W/8) and back."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(self, latent_channels: int = 16, width: int = 64) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        patch = (1, 8, 8)
        self.encoder = nn.Sequential(
            nn.Conv3d(3, width, patch, stride=patch), nn.GELU(), nn.Conv3d(width, latent_channels, 1)
        )
        self.decoder = nn.Sequential(  # four frames out of each latent step
            nn.Conv3d(latent_channels, width, 1), nn.GELU(),
            nn.ConvTranspose3d(width, 4 * 3, patch, stride=patch),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) -> latent (B,c,1+(T-1)/4,H/8,W/8)."""
        self.check_input(x)
        steps = torch.cat([x[:, :, :1], x[:, :, 1:].unflatten(2, (-1, 4)).mean(3)], 2)
        return self.encoder(steps)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w)."""
        y = self.decoder(latent).unflatten(1, (4, 3))  # (B,4,3,t,H,W)
        rest = y[:, :, :, 1:].permute(0, 2, 3, 1, 4, 5).flatten(2, 3)  # (B,3,4(t-1),H,W)
        return torch.cat([y[:, 0, :, :1], rest], 2)
