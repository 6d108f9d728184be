"""The CPU fast paths of the backbones compute what the plain layer-by-layer definitions compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vvc_lightning.backbones.layers import (
    CausalConv3d,
    NAFBlock,
    Upsample3D,
    causal_pad,
    haar_space,
    haar_time,
    ihaar_space,
    ihaar_time,
)
from vvc_lightning.backbones.lean_vae import LOW_IMG, LOW_VID, LeanVAE


def _naf_reference(block: NAFBlock, x: torch.Tensor) -> torch.Tensor:
    """NAF block on channels-first video through its modules: x + dwconv(x), x + fc2(gelu(fc1(norm(x))))."""
    x = x + block.dwconv(x)
    return x + block.fc2(F.gelu(block.fc1(block.norm(x))))


def _encode_reference(model: LeanVAE, x: torch.Tensor) -> torch.Tensor:
    """The encoder as defined: Haar subbands, patch-embedding convs, NAF stacks, head (channels-first)."""
    e = model.encoder
    stack = lambda s, h: [h := _naf_reference(b, h) for b in s.blocks][-1] if s.blocks else h  # noqa: E731
    img = haar_space(x[:, :, :1])
    vid = haar_space(haar_time(x[:, :, 1:]))
    lo = torch.cat([e.embed_low_img(img[:, :LOW_IMG]), e.embed_low_vid(vid[:, :LOW_VID])], dim=2)
    hi = torch.cat([e.embed_high_img(img[:, LOW_IMG:]), e.embed_high_vid(vid[:, LOW_VID:])], dim=2)
    h = stack(e.fusion, torch.cat([stack(e.sep_low, lo), stack(e.sep_high, hi)], dim=1))
    return e.head(e.norm_out(h))


def _decode_reference(model: LeanVAE, z: torch.Tensor) -> torch.Tensor:
    """The decoder as defined: NAF stacks, transposed-conv un-embedding, inverse Haar (channels-first)."""
    d = model.decoder
    stack = lambda s, h: [h := _naf_reference(b, h) for b in s.blocks][-1] if s.blocks else h  # noqa: E731
    h = stack(d.fusion, d.proj_in(z))
    lo = d.norm_low(stack(d.sep_low, h[:, : d.low]))
    hi = d.norm_high(stack(d.sep_high, h[:, d.low :]))
    img = torch.cat([d.unembed_low_img(lo[:, :, :1]), d.unembed_high_img(hi[:, :, :1])], dim=1)
    if z.shape[2] == 1:
        return ihaar_space(img)
    vid = torch.cat([d.unembed_low_vid(lo[:, :, 1:]), d.unembed_high_vid(hi[:, :, 1:])], dim=1)
    return torch.cat([ihaar_space(img), ihaar_time(ihaar_space(vid))], dim=2)


@pytest.fixture(scope="module")
def lean() -> LeanVAE:
    torch.manual_seed(0)
    model = LeanVAE(latent_channels=8, width=16, sep_layers=1, fusion_layers=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # non-zero biases and norm affines
    return model


def test_naf_block_channels_last_equals_the_module_definition():
    torch.manual_seed(1)
    block = NAFBlock(12).eval()
    x = torch.randn(2, 12, 5, 6, 10)
    with torch.no_grad():
        ref = _naf_reference(block, x)
        assert torch.allclose(block(x), ref, atol=1e-5)
        assert torch.allclose(block.forward_cl(x.movedim(1, -1).contiguous()).movedim(-1, 1), ref, atol=1e-5)
    # gradients flow through the channels-last path (training uses it too)
    y = block(x.requires_grad_())
    y.square().mean().backward()
    assert block.fc1.weight.grad is not None and block.dwconv.weight.grad is not None


def test_fused_haar_patch_encoder_equals_haar_then_embedding(lean):
    x = torch.rand(2, 3, 9, 24, 32) * 2 - 1
    with torch.no_grad():
        fast, ref = lean.encode(x), _encode_reference(lean, x)
    assert fast.shape == ref.shape == (2, 8, 3, 3, 4) and fast.is_contiguous()
    assert torch.allclose(fast, ref, atol=1e-4), (fast - ref).abs().max()


def test_fused_unembed_inverse_haar_decoder_equals_the_definition(lean):
    z = torch.randn(2, 8, 3, 3, 4)
    with torch.no_grad():
        fast, ref = lean.decode(z), _decode_reference(lean, z)
    assert fast.shape == ref.shape == (2, 3, 9, 24, 32)
    assert torch.allclose(fast, ref, atol=1e-4), (fast - ref).abs().max()
    with torch.no_grad():  # a single latent step decodes the first frame alone
        assert torch.allclose(lean.decode(z[:, :, :1]), _decode_reference(lean, z[:, :, :1]), atol=1e-4)


def test_fused_maps_train_the_original_parameters(lean):
    """The fused maps are built from the conv weights each call, so gradients reach them."""
    model = LeanVAE(latent_channels=4, width=8, sep_layers=1, fusion_layers=1)
    out = model(torch.rand(1, 3, 5, 16, 16) * 2 - 1)
    out.square().mean().backward()
    for conv in (model.encoder.embed_low_img, model.encoder.embed_high_vid, model.decoder.unembed_low_vid,
                 model.decoder.unembed_high_img):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
        assert conv.bias.grad is not None and conv.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_causal_pad_equals_replicate_then_zero_pad(layout):
    x = torch.randn(2, 4, 3, 5, 6).contiguous(memory_format=layout)
    out = causal_pad(x, 2, 1, 2, 0, 1)
    ref = F.pad(torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1), x], dim=2), (0, 1, 1, 2, 0, 0))
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=layout)


def test_causal_conv_and_temporal_upsampling_keep_their_definitions():
    torch.manual_seed(2)
    conv = CausalConv3d(4, 6, 3).eval()
    up = Upsample3D(4, time=True).eval()
    x = torch.randn(1, 4, 3, 5, 7)
    with torch.no_grad():
        ref = F.conv3d(F.pad(torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1), x], 2), (1, 1, 1, 1, 0, 0)),
                       conv.weight, conv.bias)
        assert torch.allclose(conv(x), ref, atol=1e-6)
        frames = F.interpolate(x.transpose(1, 2).flatten(0, 1), scale_factor=2.0)
        y = up.conv(frames.unflatten(0, (1, 3)).transpose(1, 2))
        b, c2, t, h, w = y.shape
        ref = y.reshape(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5)
        ref = ref.reshape(b, c2 // 2, 2 * t, h, w)[:, :, 1:]
        assert torch.equal(up(x), ref)


@pytest.mark.parametrize("backbone", ["lean_vae_lite", "cv_vae_causal"])
def test_coding_twice_gives_the_same_bytes_and_frames(tiny_config, bikes_frames, backbone):
    from tests.conftest import small_clip
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.training.model import VideoCompressionModel
    from vvc_lightning.video.video_io import Video

    torch.manual_seed(5)
    config = apply_overrides(tiny_config.copy(), [f"model.backbone.name={backbone}"])
    model = VideoCompressionModel(config).eval()
    video = Video(small_clip(bikes_frames, 9, 32, 48), 25)
    codec = VideoCodec(model, tile=0, threads=1)  # float convolutions may round otherwise on other threads
    data = codec.encode(video)
    assert codec.encode(video) == data
    first = codec.decode(data).frames
    assert np.array_equal(VideoCodec(model, tile=0, batch=1, threads=1).decode(data).frames, first)
