"""CV-VAE-specific structure: SD-VAE block layout, causal resampling, norm groups."""

from __future__ import annotations

import pytest
import torch

from vvc_lightning.backbones.cv_vae import CVVAE
from vvc_lightning.backbones.layers import (
    CausalConv3d,
    Downsample3D,
    FrameGroupNorm,
    ResnetBlock3D,
    SpatialAttention,
    Upsample3D,
    num_groups,
)
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import BACKBONES


def test_registered_as_cv_vae_causal():
    assert BACKBONES.get("cv_vae_causal") is CVVAE


def test_default_layout():
    with torch.device("meta"):  # shapes only: the default model is 185M parameters
        model = CVVAE()
    assert model.latent_channels == 128 and model.width == 128
    enc_widths = [level[-1].conv2.out_channels for level in model.encoder.blocks]
    dec_widths = [level[-1].conv2.out_channels for level in model.decoder.blocks]
    assert enc_widths == [128, 256, 512, 512]
    assert dec_widths == [512, 512, 256, 128]
    assert [len(level) for level in model.encoder.blocks] == [2] * 4
    assert [len(level) for level in model.decoder.blocks] == [3] * 4
    assert [d.time for d in model.encoder.downsamples] == [True, False, True]
    assert [u.factor for u in model.decoder.upsamples] == [2, 1, 2]
    for mid in (model.encoder.mid, model.decoder.mid):
        assert isinstance(mid.block_1, ResnetBlock3D) and isinstance(mid.attn, SpatialAttention)
    assert model.encoder.conv_out.out_channels == 128  # the latent itself, no logvar half
    norms = [m for m in model.modules() if isinstance(m, FrameGroupNorm)]
    assert norms and all(m.num_groups == 32 for m in norms)


def test_group_count_divides_small_widths():
    assert num_groups(512) == 32 and num_groups(16) == 16 and num_groups(24) == 24 and num_groups(40) == 20
    model = CVVAE(width=12, latent_channels=4)
    for m in model.modules():
        if isinstance(m, FrameGroupNorm):
            assert m.num_channels % m.num_groups == 0
    assert model.encode(torch.zeros(1, 3, 1, 16, 16)).shape == (1, 4, 1, 2, 2)


@pytest.mark.parametrize("t", [1, 2, 3])
def test_resampling_keeps_first_frame_alone(t):
    torch.manual_seed(0)
    down, up = Downsample3D(4, time=True), Upsample3D(4, time=True)
    x = torch.randn(1, 4, 1 + 2 * (t - 1), 8, 8)
    assert down(x).shape == (1, 4, t, 4, 4)
    z = torch.randn(1, 4, t, 4, 4)
    y = up(z)
    assert y.shape == (1, 4, 2 * t - 1, 8, 8)
    z2 = z.clone()
    z2[:, :, 1:] += 1
    assert torch.equal(up(z2)[:, :, 0], y[:, :, 0])
    assert Upsample3D(4, time=False)(z).shape == (1, 4, t, 8, 8)
    assert Downsample3D(4, time=False)(x).shape == (1, 4, x.shape[2], 4, 4)


def test_causal_conv_pads_with_first_frame():
    conv = CausalConv3d(1, 1, 3)
    x = torch.randn(1, 1, 1, 5, 5)
    # a single frame behaves like a clip that starts with two copies of it
    x3 = x.repeat(1, 1, 3, 1, 1)
    assert torch.allclose(conv(x)[:, :, 0], conv(x3)[:, :, 2], atol=1e-6)


def test_norm_is_per_frame():
    norm = FrameGroupNorm(8)
    x = torch.randn(2, 8, 3, 4, 4)
    y = norm(x)
    x2 = x.clone()
    x2[:, :, 2] *= 100
    assert torch.allclose(norm(x2)[:, :, :2], y[:, :, :2])


def test_bad_channel_mult():
    with pytest.raises(ConfigError, match="channel_mult"):
        CVVAE(width=8, channel_mult=(1, 2, 4))
    # configs give lists
    assert (
        CVVAE(width=8, latent_channels=4, channel_mult=[1, 1, 2, 2]).encoder.blocks[-1][-1].conv2.out_channels
        == 16
    )


def test_attention_can_be_disabled():
    model = CVVAE(width=8, latent_channels=4, attention=False)
    assert not any(isinstance(m, SpatialAttention) for m in model.modules())
    assert model(torch.zeros(1, 3, 5, 16, 16)).shape == (1, 3, 5, 16, 16)
