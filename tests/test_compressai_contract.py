"""CompressAI's model contract (forward, update, compress, decompress, aux_loss); timm's backbone factory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import vvc_lightning
from tests.conftest import one_thread, small_clip
from vvc_lightning.codec.entropy.symbol_check import bind_to_gop
from vvc_lightning.codec.pipeline import container
from vvc_lightning.codec.pipeline.parsed import parse_stream
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import RegistryError, VVCError
from vvc_lightning.video.video_io import frames_to_tensor


@pytest.fixture(scope="module")
def shipped():
    return vvc_lightning.load("vvc-lean-vr").model


@pytest.fixture(scope="module")
def clip(bikes_frames):
    return small_clip(bikes_frames, 9, 64, 64)


def compressai_inference(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float | dict]:
    """CompressAI's `eval_model` inference, as its users write it (frames in [-1, 1] here)."""
    out_net = model(x)
    model.update()
    out_enc = model.compress(x)
    out_dec = model.decompress(out_enc["strings"], out_enc["shape"])
    num_pixels = x.size(0) * x.size(2) * x.size(3) * x.size(4)
    bpp = sum(len(s[0]) for s in out_enc["strings"]) * 8.0 / num_pixels
    bits = sum(torch.log2(lik).sum() for lik in out_net["likelihoods"].values())
    est = -bits / num_pixels
    mse = ((out_dec["x_hat"] + 1) / 2 - (x + 1) / 2).pow(2).mean()
    return {"bpp": bpp, "bpp_estimate": float(est), "psnr": float(-10 * torch.log10(mse)),
            "out_net": out_net, "out_enc": out_enc, "out_dec": out_dec}


@pytest.fixture(scope="module")
def evaluated(shipped, clip):
    shipped.eval()
    with torch.no_grad():
        return compressai_inference(shipped, frames_to_tensor(clip)[None])


def test_a_compressai_evaluation_loop_runs_on_the_shipped_model(evaluated, clip):
    out_net, out_enc, out_dec = evaluated["out_net"], evaluated["out_enc"], evaluated["out_dec"]
    assert out_net["x_hat"].shape == out_dec["x_hat"].shape == (1, 3, 9, 64, 64)
    assert set(out_net["likelihoods"]) == {"y", "z"}
    assert out_enc["shape"] == (9, 64, 64) and [len(s) for s in out_enc["strings"]] == [1]
    assert evaluated["psnr"] > 28 and 0 < evaluated["bpp"] < 1
    # the real bytes are the likelihoods' estimate plus a little coding overhead
    assert abs(evaluated["bpp"] - evaluated["bpp_estimate"]) / evaluated["bpp"] < 0.2
    # eval-mode forward and decompress(compress(x)) reconstruct the same frames
    assert torch.allclose(out_net["x_hat"].clamp(-1, 1), out_dec["x_hat"], atol=2e-3)


def test_compress_strings_are_the_records_the_video_codec_writes(shipped, clip, evaluated):
    data = VideoCodec(shipped, gop=9).encode_frames(iter(clip), 25.0, 9)
    stream = parse_stream(data, "clip")
    assert len(stream.records) == 1
    record = container.read_payload(stream.data, stream.records[0], "clip")
    assert record == bind_to_gop(evaluated["out_enc"]["strings"][0][0], 0)


def test_aux_loss_and_update(shipped):
    aux = shipped.aux_loss().detach()
    assert aux.dim() == 0 and float(aux) >= 0
    assert shipped.update() is False  # the stored tables fit the weights
    assert shipped.update(force=True) is True


def test_gops_of_any_size_are_padded_and_cropped_and_batched_gops_code_alone(tiny_model):
    x = torch.rand(2, 3, 5, 20, 28) * 2 - 1
    with one_thread(), torch.no_grad():
        out = tiny_model(x)
        enc = tiny_model.compress(x)
        alone = tiny_model.compress(x[1:])
        dec = tiny_model.decompress(enc["strings"], enc["shape"])
    assert out["x_hat"].shape == dec["x_hat"].shape == x.shape
    assert enc["shape"] == (5, 20, 28) and len(enc["strings"][0]) == 2
    assert enc["strings"][0][1] == alone["strings"][0][0]
    assert torch.allclose(out["x_hat"].clamp(-1, 1), dec["x_hat"], atol=1e-3)


def test_bad_calls_are_one_line_errors(tiny_model):
    with pytest.raises(VVCError, match="fixed-rate"):
        tiny_model.compress(torch.zeros(1, 3, 5, 16, 16), quality=3)
    with pytest.raises(VVCError, match=r"\(B,3,T,H,W\)"):
        tiny_model(torch.zeros(3, 5, 16, 16))
    with pytest.raises(VVCError, match="one list of byte strings"):
        tiny_model.decompress([b"abc"], (5, 16, 16))


def test_create_backbone_and_list_backbones_as_timm():
    names = vvc_lightning.list_backbones()
    assert "lean_vae_lite" in names and "cv_vae_causal" in names
    assert "lean_vae" not in names and "lean_vae" in vvc_lightning.list_backbones(aliases=True)
    assert vvc_lightning.list_backbones("lean_vae_*") == ["lean_vae_base", "lean_vae_lite"]
    backbone = vvc_lightning.create_backbone("lean_vae_lite", width=8, latent_channels=16)
    assert backbone.latent_channels == 16 and isinstance(backbone, torch.nn.Module)
    with pytest.raises(RegistryError, match="did you mean|Did you mean"):
        vvc_lightning.create_backbone("lean_vae_lit")


def test_the_factories_keep_import_light():
    code = ("import sys, vvc_lightning; vvc_lightning.create_backbone; vvc_lightning.list_backbones; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
