"""The protocol between the video pipeline and a model: what `VideoCodec` may use of it."""

from __future__ import annotations

from torch import nn

from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.codec.pipeline.protocol import CodingBackbone, CodingModel


def test_the_shipped_model_and_its_backbone_fulfil_the_protocol():
    from vvc_lightning.store.loader import load

    model = load("zoo:vvc-lean-vr")
    assert isinstance(model, CodingModel) and isinstance(model.backbone, CodingBackbone)
    assert isinstance(model.codec, LatentCodec) and model.checkpoint_path == "zoo:vvc-lean-vr"


def test_a_module_without_a_latent_codec_or_identity_is_not_a_coding_model():
    class BackboneOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Identity()
            self.checkpoint_path = ""

    assert not isinstance(BackboneOnly(), CodingModel)
    assert not isinstance(nn.Identity(), CodingBackbone)  # no strides, no encode/decode
