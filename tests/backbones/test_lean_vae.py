"""LeanVAE-specific structure: Haar patchify, frequency split, cost versus CV-VAE."""

from __future__ import annotations

import pytest
import torch

from vvc_lightning.backbones.cv_vae import CVVAE
from vvc_lightning.backbones.layers import NAFBlock, haar_space, haar_time, ihaar_space, ihaar_time
from vvc_lightning.backbones.lean_vae import LeanVAE
from vvc_lightning.complexity import macs_per_frame
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import BACKBONES


def test_registered_as_lean_vae_lite():
    assert BACKBONES.get("lean_vae_lite") is LeanVAE


def test_haar_is_orthonormal_and_invertible():
    x = torch.randn(2, 3, 4, 8, 6, dtype=torch.float64)
    s, t = haar_space(x), haar_time(x)
    assert s.shape == (2, 12, 4, 4, 3) and t.shape == (2, 6, 2, 8, 6)
    assert torch.allclose(ihaar_space(s), x) and torch.allclose(ihaar_time(t), x)
    assert torch.allclose(s.square().sum(), x.square().sum())  # energy preserved
    # a constant clip has energy in the low band only
    c = torch.ones(1, 3, 2, 4, 4)
    v = haar_space(haar_time(c))
    assert torch.allclose(v[:, 3:], torch.zeros_like(v[:, 3:])) and v[:, :3].min() > 0


def test_default_layout():
    model = LeanVAE()
    assert model.latent_channels == 128 and model.width == 256
    assert model.encoder.embed_low_vid.out_channels == 64 and model.encoder.embed_high_vid.out_channels == 192
    assert len(model.encoder.sep_low.blocks) == 2 and len(model.encoder.fusion.blocks) == 4
    assert isinstance(model.decoder.fusion.blocks[0], NAFBlock)
    # patchify: no conv of the encoder overlaps its neighbours before the token grid
    assert model.encoder.embed_low_vid.kernel_size == model.encoder.embed_low_vid.stride == (2, 4, 4)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="width"):
        LeanVAE(width=2)


def test_at_least_10x_cheaper_than_cv_vae():
    # MACs per pixel do not depend on the frame size (all convs are local) except for CV-VAE's
    # mid-block attention, which grows with H*W; so measuring at 64x64 keeps the test fast and
    # under-states the gap at 256x256 rather than over-stating it.
    with torch.device("meta"):
        cv, lean = CVVAE(), LeanVAE()
    cv_macs = macs_per_frame(cv, T=9, H=64, W=64)
    lean_macs = macs_per_frame(lean, T=9, H=64, W=64)
    for key in ("encode", "decode", "total"):
        assert lean_macs[key] * 10 <= cv_macs[key], key
    assert lean_macs["total"] * 100 <= cv_macs["total"]


def test_first_frame_uses_image_path():
    model = LeanVAE(width=16, latent_channels=4).eval()
    x = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        single = model.encode(x)
        clip = model.encode(torch.cat([x, torch.rand(1, 3, 4, 16, 16)], dim=2))
    assert single.shape == (1, 4, 1, 2, 2)
    assert torch.equal(single[:, :, 0], clip[:, :, 0])
