"""Tile-aware layers: the same function as their plain counterparts, and contexts per layer and per thread."""

from __future__ import annotations

import threading

import torch
from torch import nn

from vvc_lightning.backbones.layers import FrameGroupNorm, SpatialAttention
from vvc_lightning.backbones.tile_aware import TILE_MIXING, TILE_NORM, FrameMixing, TileGroupNorm, tile_layers
from vvc_lightning.registry import BACKBONES


class Marker:
    """A context that marks what went through it."""

    def group_norm(self, module, x):
        return torch.full_like(x, 7.0)

    def frame_mixing(self, module, x, mix):
        return mix(x) + 100.0


def test_tile_group_norm_is_a_group_norm_with_the_same_keys_and_output():
    torch.manual_seed(0)
    plain, aware = nn.GroupNorm(4, 8, eps=1e-5), TileGroupNorm(4, 8, eps=1e-5)
    nn.init.normal_(plain.weight)
    aware.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 3, 5, 6)
    assert isinstance(aware, nn.GroupNorm) and list(aware.state_dict()) == ["weight", "bias"]
    assert torch.equal(aware(x), plain(x))


def test_attached_context_serves_only_its_layer_and_its_thread():
    norm, other = FrameGroupNorm(8), FrameGroupNorm(8)
    x = torch.randn(1, 8, 2, 4, 4)
    expected = other(x)
    norm.attach_tile_context(Marker())
    try:
        assert torch.all(norm(x) == 7.0)  # per frame, through the context's normalize
        assert torch.equal(other(x), expected)  # another layer: untouched
        seen = {}
        thread = threading.Thread(target=lambda: seen.update(out=norm(x)))
        thread.start()
        thread.join()
        assert torch.equal(seen["out"], expected)  # the same layer in another thread: untouched
    finally:
        norm.detach_tile_context()
    assert norm.tile_context is None and torch.equal(norm(x), expected)


def test_frame_mixing_runs_mix_through_the_context():
    torch.manual_seed(0)
    attn = SpatialAttention(8).eval()
    x = torch.randn(1, 8, 2, 4, 4)
    with torch.no_grad():
        plain = attn(x)
        assert torch.equal(plain, attn.mix(x))
        attn.attach_tile_context(Marker())
        assert torch.equal(attn(x), plain + 100.0)
        attn.detach_tile_context()
        assert torch.equal(attn(x), plain)


def test_backbones_declare_their_whole_frame_layers():
    with torch.device("meta"):
        cv = BACKBONES.create("cv_vae_causal", width=32, latent_channels=8, enc_blocks=1, dec_blocks=1)
        sd21 = BACKBONES.create("cv_vae_sd21", width=32, latent_channels=8, enc_blocks=1, dec_blocks=1)
        lean = BACKBONES.create("lean_vae_lite", width=32, latent_channels=8)
    for model in (cv, sd21):
        mixing, norms = tile_layers(model, TILE_MIXING), tile_layers(model, TILE_NORM)
        assert len(mixing) == 2 and all(isinstance(m, FrameMixing) for m in mixing)  # encoder and decoder mid
        inside = {id(s) for m in mixing for s in m.modules()}
        groupnorms = [m for m in model.modules() if isinstance(m, nn.GroupNorm) and id(m) not in inside]
        assert norms == groupnorms and norms  # every GroupNorm outside attention, none inside
    assert tile_layers(lean, TILE_NORM) == tile_layers(lean, TILE_MIXING) == []
