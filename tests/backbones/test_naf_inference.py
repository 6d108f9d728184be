"""The lean backbone's inference path (ping-pong buffers, MLP in row blocks, cached patch maps, un-patchify in
blocks) gives what the plain channels-last code path gives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vvc_lightning.backbones.lean_vae as lean_vae
from vvc_lightning.backbones.layers import patches, unpatch
from vvc_lightning.backbones.lean_vae import LeanVAE, NAFStack


def _stack(stack: NAFStack, x: torch.Tensor) -> torch.Tensor:
    """The blocks one after the other on whole tensors (`NAFBlock.forward_cl`: cat padding, whole MLP)."""
    x = x.contiguous()
    for block in stack.blocks:
        x = block.forward_cl(x)
    return x


def _decode(model: LeanVAE, z: torch.Tensor) -> torch.Tensor:
    """The decoder on whole tensors, its patch maps built afresh, un-patchified in one copy per path."""
    d = model.decoder
    h = F.linear(z.permute(0, 2, 3, 4, 1).contiguous(), d.proj_in.weight.flatten(1), d.proj_in.bias)
    h = _stack(d.fusion, h)
    lo = d.norm_low.forward_cl(_stack(d.sep_low, h[..., : d.low]))
    hi = d.norm_high.forward_cl(_stack(d.sep_high, h[..., d.low :]))
    tokens = torch.cat([lo, hi], dim=-1)
    maps = d.patch_maps()
    b, t, hh, ww, _ = tokens.shape
    out = tokens.new_empty(b, 3, 1 + 4 * (t - 1), 8 * hh, 8 * ww)
    unpatch(F.linear(tokens[:, :1].contiguous(), *maps["img"]), out[:, :, :1], 1)
    if t > 1:
        unpatch(F.linear(tokens[:, 1:].contiguous(), *maps["vid"]), out[:, :, 1:], 4)
    return out


def _encode_tokens(model: LeanVAE, x: torch.Tensor) -> torch.Tensor:
    """The encoder's NAF stacks on whole tensors, from the tokens of its (cached or fresh) patch maps."""
    e = model.encoder
    maps = e.patch_maps()
    img = F.linear(patches(x[:, :, :1], 1), *maps["img"])
    h = torch.cat([img, F.linear(patches(x[:, :, 1:], 4), *maps["vid"])], dim=1)
    lo, hi = _stack(e.sep_low, h[..., : e.low]), _stack(e.sep_high, h[..., e.low :])
    h = _stack(e.fusion, torch.cat([lo, hi], dim=-1))
    z = F.linear(e.norm_out.forward_cl(h), e.head.weight.flatten(1), e.head.bias)
    return z.permute(0, 4, 1, 2, 3)


@pytest.fixture(scope="module")
def shipped_size() -> LeanVAE:
    """The shipped model's architecture (width 128, c=64, 2 + 4 NAF layers), random weights and affines."""
    torch.manual_seed(0)
    model = LeanVAE(latent_channels=64, width=128, sep_layers=2, fusion_layers=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("small_blocks", [False, True])
def test_inference_path_equals_the_whole_tensor_path(shipped_size, monkeypatch, small_blocks):
    """Decoder and encoder outputs within float rounding (1e-5) of the whole-tensor code path, also with row
    blocks that do not divide the rows (a partial last block, several blocks per item)."""
    if small_blocks:
        monkeypatch.setattr(lean_vae, "_MLP_BLOCK_BYTES", 4 * 512 * 7)  # 7 rows of the 128-wide MLP
        monkeypatch.setattr(lean_vae, "_UNPATCH_BLOCK_BYTES", 1)  # one token row per block
    torch.manual_seed(2)
    z = torch.randn(2, 64, 3, 5, 7)
    x = torch.rand(2, 3, 9, 40, 56) * 2 - 1
    with torch.no_grad():
        fast, ref = shipped_size.decode(z), _decode(shipped_size, z)
        enc, enc_ref = shipped_size.encode(x), _encode_tokens(shipped_size, x)
    assert fast.shape == ref.shape == (2, 3, 9, 40, 56)
    assert (fast - ref).abs().max() <= 1e-5
    assert enc.shape == enc_ref.shape and (enc - enc_ref).abs().max() <= 1e-5


def test_inference_path_is_batch_invariant(shipped_size):
    """An item decodes to the same floats alone as in a batch (as the codec needs for batch and ranges)."""
    z = torch.randn(3, 64, 3, 4, 6)
    with torch.no_grad():
        batch = shipped_size.decode(z)
        for i in range(3):
            assert torch.equal(shipped_size.decode(z[i : i + 1])[0], batch[i])


def test_cached_patch_maps_follow_the_weights():
    """Maps kept between inference calls are rebuilt when an un-embedding weight changes in place."""
    torch.manual_seed(3)
    model = LeanVAE(latent_channels=8, width=16, sep_layers=1, fusion_layers=1).eval()
    z = torch.randn(1, 8, 2, 3, 4)
    with torch.no_grad():
        model.decode(z)  # maps cached
        model.decoder.unembed_high_vid.weight.mul_(1.5)
        model.decoder.unembed_low_img.bias.add_(0.25)
        assert (model.decode(z) - _decode(model, z)).abs().max() <= 1e-5
        model.encoder.embed_low_vid.weight.mul_(-1.0)
        x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
        assert (model.encode(x) - _encode_tokens(model, x)).abs().max() <= 1e-5
