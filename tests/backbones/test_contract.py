"""The VideoBackbone contract, checked on every built-in backbone at a small width."""

from __future__ import annotations

import inspect

import pytest
import torch

from vvc_lightning.backbones.base import VideoBackbone
from vvc_lightning.errors import ConfigError, FrameCountError, WeightsError
from vvc_lightning.registry import BACKBONES

NAMES = ["cv_vae_causal", "lean_vae_lite"]
SMALL = {"width": 16, "latent_channels": 8}


def make(name: str, **kwargs) -> VideoBackbone:
    torch.manual_seed(0)
    return BACKBONES.create(name, **{**SMALL, **kwargs})


def clip(T: int, H: int = 32, W: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, T, H, W) * 2 - 1


@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param


def test_registry_resolves(name):
    cls = BACKBONES.get(name)
    assert issubclass(cls, VideoBackbone)
    assert cls.registry_name == BACKBONES.aliases().get(name, name)
    assert cls.temporal_stride == 4 and cls.spatial_stride == 8


def test_every_constructor_argument_has_a_default(name):
    sig = inspect.signature(BACKBONES.get(name).__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    for key in ("latent_channels", "width", "weights", "gradient_checkpointing"):
        assert key in sig.parameters
    assert all(p.default is not inspect.Parameter.empty for p in params)
    assert sig.parameters["latent_channels"].default == 128


def test_unknown_config_key_is_named(name):
    with pytest.raises(ConfigError, match="widht"):
        BACKBONES.create(name, widht=16)


@pytest.mark.parametrize("T", [1, 5, 9])
def test_shapes(name, T):
    model = make(name).eval()
    x = clip(T, 32, 48)
    with torch.no_grad():
        z = model.encode(x)
        y = model.decode(z)
    assert z.shape == (1, 8, 1 + (T - 1) // 4, 4, 6)
    assert tuple(z.shape[1:]) == model.latent_shape(T, 32, 48)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.abs().max() < 20


@pytest.mark.parametrize("T", [2, 8])
def test_invalid_frame_count(name, T):
    model = make(name)
    with pytest.raises(FrameCountError) as err:
        model.encode(clip(T))
    msg = str(err.value)
    assert f"T={T}" in msg and "1 + 4k" in msg
    lo = 1 + 4 * ((T - 1) // 4)
    assert f"T={lo}" in msg and f"T={lo + 4}" in msg


@pytest.mark.parametrize("hw", [(36, 32), (32, 20)])
def test_size_not_multiple_of_8(name, hw):
    with pytest.raises(FrameCountError, match="divisible by 8"):
        make(name).encode(clip(5, *hw))


def test_bad_layout_rejected(name):
    with pytest.raises(FrameCountError):
        make(name).encode(torch.rand(1, 4, 5, 32, 32))


def test_encoder_is_causal(name):
    model = make(name).eval()
    x = clip(9)
    x2 = x.clone()
    x2[:, :, 1:] = torch.rand_like(x2[:, :, 1:]) * 2 - 1
    x3 = x.clone()
    x3[:, :, 5:] = 0
    with torch.no_grad():
        z, z2, z3 = model.encode(x), model.encode(x2), model.encode(x3)
    assert torch.equal(z[:, :, 0], z2[:, :, 0])  # frame 0 is coded alone
    assert not torch.allclose(z[:, :, 1], z2[:, :, 1])
    assert torch.equal(z[:, :, :2], z3[:, :, :2])  # step 1 sees frames 1..4 (and before) only


def test_decoder_is_causal(name):
    model = make(name).eval()
    z = torch.randn(1, 8, 3, 4, 4)
    z2 = z.clone()
    z2[:, :, 1:] += 1
    with torch.no_grad():
        y, y2 = model.decode(z), model.decode(z2)
    assert torch.equal(y[:, :, 0], y2[:, :, 0])


def test_gradients_reach_every_parameter(name):
    model = make(name).train()
    model(clip(5)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_gradient_checkpointing_matches(name):
    ref, ckpt = make(name).train(), make(name, gradient_checkpointing=True).train()
    assert ckpt.gradient_checkpointing and not ref.gradient_checkpointing
    x = clip(5)
    for m in (ref, ckpt):
        m(x).square().mean().backward()
    for (n, a), (_, b) in zip(ref.named_parameters(), ckpt.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), n


def test_weights_round_trip(name, tmp_path):
    model = make(name).eval()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(123)
    other = BACKBONES.create(name, **SMALL).eval()
    x = clip(5)
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x))
        other.load_weights(path)
        assert torch.equal(other(x), model(x))
        loaded = BACKBONES.create(name, **SMALL, weights=str(path)).eval()
        assert torch.equal(loaded(x), model(x))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpt.pt")  # Lightning-style wrapper
    BACKBONES.create(name, **SMALL, weights=str(tmp_path / "ckpt.pt"))


def test_mismatching_weights_name_the_key(name, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(make(name, latent_channels=4).state_dict(), path)
    with pytest.raises(WeightsError) as err:
        make(name, weights=str(path))
    msg = str(err.value)
    assert "shape mismatches" in msg
    key = {"cv_vae_causal": "encoder.conv_out.weight", "lean_vae_lite": "encoder.head.weight"}[name]
    assert f"{key}: file (4," in msg and "model (8," in msg


def test_missing_weights_file(name, tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        make(name, weights=str(tmp_path / "nope.pt"))
