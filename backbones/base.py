"""The contract every video VAE backbone fulfils.

A backbone is an `nn.Module` with `encode` / `decode` and the strides below. The codec may run it on
overlapping tiles of a frame; layers whose output depends on the whole frame declare it so that tiles
agree with the whole frame: norms over the frame are `TileGroupNorm` (or a subclass such as the per-frame
`FrameGroupNorm`) and layers that mix all positions (attention) are `FrameMixing`
(`vvc_lightning.backbones.tile_aware`). A tiled run attaches its context to those layers of this model
only, in its own thread, for its duration. A plain `nn.GroupNorm` or an undeclared attention still works:
tiled, it sees each tile alone (the tile's own statistics), which differs from the untiled network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vvc_lightning.errors import FrameCountError, WeightsError


class VideoBackbone(nn.Module):
    """A video VAE: `encode` (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/ts,H/ss,W/ss), `decode` back."""

    temporal_stride: int = 4
    spatial_stride: int = 8
    latent_channels: int = 128

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) -> latent (B,c,t,h,w)."""
        raise NotImplementedError

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,T,H,W)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct `x` through the latent (no quantization)."""
        return self.decode(self.encode(x))

    # ------------------------------------------------------------------ checks
    def check_input(self, x: torch.Tensor) -> None:
        """Reject a clip whose shape the backbone cannot take, saying how to fix it."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise FrameCountError(
                f"expected frames shaped (B,3,T,H,W), got {tuple(x.shape)}; "
                "stack RGB frames along dim 2 (time)"
            )
        T, H, W = x.shape[2:]
        ts, ss = self.temporal_stride, self.spatial_stride
        if (T - 1) % ts != 0:
            lo = 1 + ts * ((T - 1) // ts)
            raise FrameCountError(
                f"{type(self).__name__} needs T = 1 + {ts}k frames per GoP, got T={T}; "
                f"use T={lo} or T={lo + ts} (pad the last GoP in time)"
            )
        if H % ss or W % ss:
            raise FrameCountError(
                f"{type(self).__name__} needs height and width divisible by {ss}, got {H}x{W}; "
                f"pad to {-(-H // ss) * ss}x{-(-W // ss) * ss} by edge replication"
            )

    def latent_shape(self, T: int, H: int, W: int) -> tuple[int, int, int, int]:
        """(c, t, h, w) of the latent of a (T,H,W) clip."""
        return (
            self.latent_channels,
            1 + (T - 1) // self.temporal_stride,
            H // self.spatial_stride,
            W // self.spatial_stride,
        )

    # ----------------------------------------------------------------- weights
    def load_weights(self, path: str | Path) -> None:
        """Load a state dict from `path`, naming every missing, unexpected or mis-shaped key."""
        path = Path(path)
        if not path.is_file():
            raise WeightsError(
                f"backbone weights file '{path}' does not exist; set model.backbone.weights to a .pt/.ckpt "
                "file holding this backbone's state_dict, or null to start from scratch"
            )
        from vvc_lightning.backbones.pretrained import load_tensor_file

        state = load_tensor_file(path, "backbone weights")
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise WeightsError(f"'{path}' holds a {type(state).__name__}, not a state_dict")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatched = [
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or mismatched:
            lines = []
            if missing:
                lines.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
            if unexpected:
                lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
            if mismatched:
                lines.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched)}")
            raise WeightsError(
                f"backbone weights '{path}' do not fit {type(self).__name__} with these settings: "
                + " | ".join(lines)
            )
        self.load_state_dict(state)


class EncoderDecoderBackbone(VideoBackbone):
    """A backbone whose `encoder` and `decoder` modules each carry a `gradient_checkpointing` flag."""

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the encoder's and decoder's blocks recompute activations in backward while training."""
        return self.encoder.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.encoder.gradient_checkpointing = self.decoder.gradient_checkpointing = bool(value)

    def load_initial(self, weights: str | None, pretrained: str | None) -> None:
        """Load `weights` (a state dict of this backbone) and/or `pretrained` (a released weight file)."""
        if weights:
            self.load_weights(weights)
        if pretrained:
            from vvc_lightning.backbones.pretrained import load_pretrained

            load_pretrained(self, pretrained)
