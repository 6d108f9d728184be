"""Reproducibility helpers: batch-size-invariant backbones on the CPU, and a stable model identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vvc_lightning.codec.determinism import batch_invariant, model_identity
from vvc_lightning.codec.video_codec import VideoCodec
from vvc_lightning.video.video_io import Video


@pytest.mark.parametrize("backbone", ["cv_vae", "lean_vae"])
def test_each_item_gets_the_same_bits_alone_or_in_a_batch(tiny_config, backbone):
    from vvc_lightning.config import apply_overrides
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(0)
    cfg = apply_overrides(tiny_config.copy(), [f"model.backbone.name={backbone}"])
    bb = VideoCompressionModel(cfg).eval().backbone
    x = torch.rand(3, 3, 9, 32, 48) * 2 - 1
    with torch.no_grad(), batch_invariant(bb):
        latent = bb.encode(x)
        assert torch.equal(torch.cat([bb.encode(x[i : i + 1]) for i in range(3)]), latent)
        out = bb.decode(latent)
        assert torch.equal(torch.cat([bb.decode(latent[i : i + 1]) for i in range(3)]), out)
        assert torch.equal(bb.decode(latent[:2]), out[:2])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in bb.modules())  # hooks removed


def test_identity_does_not_change_when_a_fresh_model_first_codes(tiny_config):
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(3)
    fresh = VideoCompressionModel(tiny_config).eval()
    before = model_identity(fresh)
    VideoCodec(fresh).encode(Video(np.zeros((1, 16, 16, 3), np.uint8), 25))  # masked convolutions run
    assert model_identity(fresh) == before


def test_identity_follows_in_place_weight_changes(tiny_config):
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(4)
    model = VideoCompressionModel(tiny_config).eval()
    first = model_identity(model)
    assert model_identity(model) == first  # cached
    with torch.no_grad():
        next(model.backbone.parameters()).mul_(1.5)
    assert model_identity(model) != first
