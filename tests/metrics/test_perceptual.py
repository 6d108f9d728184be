"""LPIPS / ST-LPIPS loaders: local weights only, clear errors, same values as the reference packages."""

from __future__ import annotations

import socket
import urllib.request

import pytest
import torch

from vvc_lightning.errors import WeightsError
from vvc_lightning.metrics import perceptual


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without AlexNet / VGG weights, and no env overrides."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("VVC_LPIPS_ALEX", raising=False)
    monkeypatch.delenv("VVC_LPIPS_VGG", raising=False)
    return tmp_path / "hub"


@pytest.fixture(scope="module")
def fake_alexnet(tmp_path_factory):
    """A torchvision AlexNet checkpoint file (random weights: the loader's mapping is what is tested)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alex") / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def test_lpips_without_trunk_weights_says_where_to_put_them(empty_hub, no_network):
    assert not perceptual.lpips_available("alex")
    with pytest.raises(WeightsError) as err:
        perceptual.build_lpips("alex")
    msg = str(err.value)
    assert str(empty_hub / "checkpoints" / "alexnet-owt-7be5be79.pth") in msg
    assert "VVC_LPIPS_ALEX" in msg and "stlpips" in msg


def test_lpips_with_an_explicit_missing_path_names_that_path(tmp_path, no_network):
    with pytest.raises(WeightsError, match="nothere.pth' does not exist"):
        perceptual.build_lpips("alex", tmp_path / "nothere.pth")


def test_lpips_loads_the_trunk_from_the_env_var_and_matches_the_lpips_package(empty_hub, fake_alexnet,
                                                                               monkeypatch, no_network):
    import lpips

    monkeypatch.setenv("VVC_LPIPS_ALEX", str(fake_alexnet))
    assert perceptual.lpips_available("alex")
    ours = perceptual.build_lpips("alex")
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    ref.net.load_state_dict(ours.inner.net.state_dict())
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(ours(x, y), ref(x, y).flatten())
    for a, b in zip(ours.inner.net.slice1.parameters(), torch.load(fake_alexnet).values(), strict=False):
        torch.testing.assert_close(a, b)


def test_a_file_that_is_not_an_alexnet_checkpoint_is_rejected(tmp_path, no_network):
    bad = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="not torchvision's alex"):
        perceptual.build_lpips("alex", bad)


def test_stlpips_builds_from_shipped_weights_without_network(no_network):
    for net in ("alex", "vgg"):
        m = perceptual.build_stlpips(net)
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        d = m(x, x.flip(-1))
        assert d.shape == (2,) and (d > 0).all()
        assert torch.allclose(m(x, x), torch.zeros(2), atol=1e-7)


def test_stlpips_is_differentiable_in_its_inputs_and_frozen_in_its_weights():
    m = perceptual.build_stlpips("alex").train()
    assert not m.training
    x = (torch.rand(1, 3, 48, 48) * 2 - 1).requires_grad_(True)
    m(x, torch.zeros_like(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in m.parameters())


def test_features_and_from_features_give_the_forward_distance():
    m = perceptual.build_stlpips("alex")
    x, y = torch.rand(3, 3, 40, 56) * 2 - 1, torch.rand(3, 3, 40, 56) * 2 - 1
    torch.testing.assert_close(m.from_features(m.features(x), m.features(y)), m(x, y))


def test_unknown_network_is_a_clear_error():
    with pytest.raises(Exception, match="unknown LPIPS network 'squeeze'"):
        perceptual.build_stlpips("squeeze")
