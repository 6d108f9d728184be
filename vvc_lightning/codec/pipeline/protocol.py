"""What the video pipeline needs of a model: a backbone, a latent codec, an identity and a checkpoint name.

`VideoCodec` codes with any object that has these members; the inference model and the training module
both do. A backbone may also carry `registry_name` (the header's backbone field; else its class name).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from vvc_lightning.codec.entropy.latent_codec import LatentCodec


@runtime_checkable
class CodingBackbone(Protocol):
    """A video VAE as the pipeline uses it: frames (B,3,T,H,W) <-> latent (B,c,t,h,w), with its strides."""

    spatial_stride: int
    temporal_stride: int
    training: bool

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1, 1] -> latent (B,c,t,h,w)."""
        ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,T,H,W)."""
        ...

    def latent_shape(self, T: int, H: int, W: int) -> tuple[int, int, int, int]:
        """(c, t, h, w) of the latent of a (T,H,W) clip."""
        ...

    def modules(self) -> Iterator[nn.Module]:
        """Every module of the backbone (as nn.Module gives them)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """Every parameter of the backbone (as nn.Module gives them)."""
        ...

    def eval(self) -> nn.Module:
        """Evaluation mode (as nn.Module sets it)."""
        ...

    def train(self, mode: bool = True) -> nn.Module:
        """Training mode on or off (as nn.Module sets it)."""
        ...


@runtime_checkable
class CodingModel(Protocol):
    """A model `VideoCodec` codes with: backbone + latent codec, the identity bitstreams are tied to."""

    backbone: CodingBackbone
    codec: LatentCodec
    checkpoint_path: str
    training: bool

    def identity(self) -> str:
        """Hex SHA-256 of the model's config and state: the identity written in each header."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """Every parameter (as nn.Module gives them)."""
        ...

    def state_dict(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        """Every tensor of the model by name (as nn.Module gives them)."""
        ...

    def eval(self) -> nn.Module:
        """Evaluation mode (as nn.Module sets it)."""
        ...

    def train(self, mode: bool = True) -> nn.Module:
        """Training mode on or off (as nn.Module sets it)."""
        ...
