"""The official-layout presets at small widths: shapes, options the GoP coding needs, checkpointing."""

from __future__ import annotations

import pytest
import torch

from vvc_lightning.backbones.lean_vae_official import haar_image, haar_video, ihaar_image, ihaar_video
from vvc_lightning.errors import ConfigError, FrameCountError
from vvc_lightning.registry import BACKBONES

SMALL = {"cv_vae_sd21": {"width": 32}, "cv_vae_sd3": {"width": 32},
         "lean_vae_base": {"width": 64, "low_width": 16, "fusion_layers": 2, "ista_layers": 1}}


def make(name: str, c: int = 8, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return BACKBONES.create(name, latent_channels=c, **{**SMALL[name], **kw}).eval()


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("T", [1, 9])
def test_shapes(name, T):
    model = make(name)
    with torch.no_grad():
        z = model.encode(torch.rand(1, 3, T, 16, 24) * 2 - 1)
        assert z.shape == (1, 8, 1 + (T - 1) // 4, 2, 3)
        assert model.decode(z).shape == (1, 3, T, 16, 24)
    with pytest.raises(FrameCountError, match="T=5 or T=9"):
        model.encode(torch.zeros(1, 3, 6, 16, 16))


@pytest.mark.parametrize(("name", "kw"), [("cv_vae_sd21", {"norm": "frame", "causal_decoder": True}),
                                          ("cv_vae_sd3", {"norm": "frame", "causal_decoder": True}),
                                          ("lean_vae_base", {})])
def test_causal_options_make_frame_zero_independent_of_later_frames(name, kw):
    model = make(name, **kw)
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    y = x.clone()
    y[:, :, 1:] = -y[:, :, 1:]
    with torch.no_grad():
        zx, zy = model.encode(x), model.encode(y)
        torch.testing.assert_close(zx[:, :, :1], zy[:, :, :1])
        torch.testing.assert_close(model.decode(zx)[:, :, :1], model.decode(zy)[:, :, :1])


def test_official_default_is_not_causal():
    model = make("cv_vae_sd21")
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    y = x.clone()
    y[:, :, 1:] = 0
    with torch.no_grad():
        assert not torch.allclose(model.encode(x)[:, :, :1], model.encode(y)[:, :, :1])


@pytest.mark.parametrize("name", [pytest.param("cv_vae_sd21", marks=pytest.mark.slow),
                                  pytest.param("cv_vae_sd3", marks=pytest.mark.slow), "lean_vae_base"])
def test_gradient_checkpointing_gives_the_same_gradients(name):
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    grads = []
    for ckpt in (False, True):
        model = make(name, gradient_checkpointing=ckpt).train()
        model.decode(model.encode(x)).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_haar_is_the_official_scaling_and_inverts():
    x = torch.rand(2, 3, 4, 8, 8)
    bands = haar_video(x)
    assert torch.allclose(bands[:, :3, 0, 0, 0], x[:, :, :2, :2, :2].sum((2, 3, 4)))  # LLL = sum of 8
    torch.testing.assert_close(ihaar_video(bands), x)
    img = haar_image(x[:, :, :1])
    assert torch.allclose(img[:, :3, 0, 0, 0], x[:, :, 0, :2, :2].sum((2, 3)))  # LL = sum of 4
    lh = x[:, :, 0, 0, :2].sum(-1) - x[:, :, 0, 1, :2].sum(-1)  # 2nd band: low across width, high across rows
    assert torch.allclose(img[:, 3:6, 0, 0, 0], lh)
    torch.testing.assert_close(ihaar_image(img), x[:, :, :1])


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="layout"):
        BACKBONES.create("cv_vae_sd21", layout="sdxl")
    with pytest.raises(ConfigError, match="multiple of 32"):
        BACKBONES.create("cv_vae_sd3", width=48)
    with pytest.raises(ConfigError, match="low_width"):
        BACKBONES.create("lean_vae_base", width=64, low_width=64)
