"""Parameter and multiply-add counting."""

from __future__ import annotations

import torch
from torch import nn

from vvc_lightning.backbones.base import VideoBackbone
from vvc_lightning.backbones.cv_vae import CVVAE
from vvc_lightning.complexity import count_parameters, human, macs_per_frame


class Pointwise(VideoBackbone):
    """Toy backbone whose MACs are known: 1x1x1 convs at full resolution, no striding."""

    temporal_stride = 1
    spatial_stride = 1

    def __init__(self, c: int = 5) -> None:
        super().__init__()
        self.latent_channels = c
        self.enc = nn.Conv3d(3, c, 1)
        self.dec = nn.Conv3d(c, 3, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.enc(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


def test_count_parameters():
    lin = nn.Linear(3, 4)
    assert count_parameters(lin) == 16
    lin.bias.requires_grad_(False)
    assert count_parameters(lin, trainable_only=True) == 12


def test_human():
    assert human(12_345_678_901) == "12.3G"
    assert human(1_500_000) == "1.5M"
    assert human(2_000) == "2.0K"
    assert human(3.2e12) == "3.2T"
    assert human(999) == "999"


def test_macs_per_frame_exact():
    macs = macs_per_frame(Pointwise(5), T=3, H=8, W=4)
    assert macs == {"encode": 3 * 5 * 32, "decode": 5 * 3 * 32, "total": 2 * 3 * 5 * 32}


def test_meta_count_equals_cpu_run_and_leaves_model_alone():
    model = CVVAE(width=8, latent_channels=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = macs_per_frame(model, T=5, H=32, W=32)
    cpu = macs_per_frame(model, T=5, H=32, W=32, device="cpu")
    assert meta == cpu
    assert meta["total"] == meta["encode"] + meta["decode"] > 0
    assert model.training and next(model.parameters()).device.type == "cpu"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
