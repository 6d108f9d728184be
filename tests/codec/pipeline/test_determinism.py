"""Reproducibility: batch-invariant backbones, a stable model identity, exact entropy decoding everywhere."""

from __future__ import annotations

import copy
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from vvc_lightning.codec.pipeline.determinism import batch_invariant, model_identity
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.video.video_io import Video


@pytest.mark.parametrize("backbone", [pytest.param("cv_vae_causal", marks=pytest.mark.slow), "lean_vae_lite"])
def test_each_item_gets_the_same_bits_alone_or_in_a_batch(tiny_config, backbone):
    from vvc_lightning.configuration.config import apply_overrides
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


# ------------------------------------------------------------------ exact entropy parameters
_DECODE_SCRIPT = """
import sys, torch
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
path, out = sys.argv[1], sys.argv[2]
threads, mkldnn, batch = int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
torch.set_num_threads(threads)
d = torch.load(path, weights_only=True)
c = LatentCodec(channels=16, transform_blocks=1)
c.load_state_dict(d["state"])
c.eval()
t, h, w = d["shape"]
with torch.backends.mkldnn.flags(enabled=mkldnn):
    parts = [c.decode_y(d["strings"][i : i + batch], t, h, w, None)
             for i in range(0, len(d["strings"]), batch)]
torch.save(torch.cat(parts), out)
"""


@pytest.fixture(scope="module")
def coded_latent(tmp_path_factory):
    """A small codec (random weights, real tables), four GoPs coded in one batch, and their exact y_hat."""
    from tests.codec.entropy.test_latent_codec import smooth_latent
    from vvc_lightning.codec.entropy.latent_codec import LatentCodec

    torch.manual_seed(12)
    codec = LatentCodec(channels=16, transform_blocks=1).eval()
    codec.update_tables(force=True)
    latent = smooth_latent(4, 16, 3, 12, 16, seed=12)
    with torch.no_grad():
        y = codec.g_a(latent).transpose(1, 2).reshape(12, 16, 12, 16)
        y_hat, strings = codec.encode_y(y, 4, None)
    path = tmp_path_factory.mktemp("exact") / "coded.pt"
    torch.save({"state": codec.state_dict(), "strings": strings, "shape": (3, 12, 16)}, path)
    return codec, strings, y_hat, path


@pytest.mark.parametrize(
    "threads,mkldnn,batch", [(1, 1, 4), (2, 1, 4), (2, 0, 4), (1, 0, 1), (2, 1, 1)]
)
def test_entropy_decode_is_bit_identical_in_any_process_setting(
    coded_latent, tmp_path, threads, mkldnn, batch
):
    """Process x threads x oneDNN on/off x GoPs per call: the decoded latent is the encoder's, bit for bit."""
    _, _, y_hat, path = coded_latent
    out = tmp_path / "y.pt"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(
        [sys.executable, "-c", _DECODE_SCRIPT, str(path), str(out), str(threads), str(mkldnn), str(batch)],
        check=True, env=env,
    )
    decoded = torch.load(out, weights_only=True)
    assert decoded.dtype == torch.float64 and torch.equal(decoded, y_hat)


def test_entropy_parameters_do_not_depend_on_batch_or_backend(coded_latent):
    """In process: each GoP alone, all four at once, and oneDNN off give the same scales and means."""
    codec, strings, y_hat, _ = coded_latent
    with torch.no_grad():
        alone = torch.cat([codec.decode_y([s], 3, 12, 16, None) for s in strings])
        with torch.backends.mkldnn.flags(enabled=False):
            off = codec.decode_y(strings, 3, 12, 16, None)
    assert torch.equal(alone, y_hat) and torch.equal(off, y_hat)
    assert not torch.equal(y_hat, torch.round(y_hat))  # means are real offsets, not just integers


def test_a_float_ulp_in_a_weight_does_not_move_the_integer_network(coded_latent):
    """Weights are used on a 2**-14 grid: float noise below it (a cast, a re-save) changes nothing."""
    codec, strings, y_hat, _ = coded_latent
    perturbed = copy.deepcopy(codec)
    with torch.no_grad():
        w = perturbed.context.aggregation[0][4].weight
        w.copy_(torch.nextafter(w, torch.full_like(w, 2.0)))
        assert torch.equal(perturbed.decode_y(strings, 3, 12, 16, None), y_hat)


def test_a_perturbed_scale_path_is_caught(coded_latent):
    """A decoder whose scale path differs from the encoder's must fail, not return garbage.

    NOTE: relies on the per-GoP check of the decoded symbols added by the 'hostile' branch (a CRC of
    the quantised latent in each GoP payload); it fails until that branch is merged."""
    from vvc_lightning.errors import BitstreamError

    codec, strings, _, _ = coded_latent
    perturbed = copy.deepcopy(codec)
    with torch.no_grad():
        last = perturbed.context.aggregation[1][4]
        last.bias[: last.bias.numel() // 2] += 0.75  # the scale half of the last aggregation layer
    with pytest.raises(BitstreamError):
        perturbed.decompress(strings, (16, 3, 12, 16), None)


def test_version_1_files_are_refused_with_the_version_named(tiny_model):
    from vvc_lightning.codec.pipeline import container as bitstream
    from vvc_lightning.errors import BitstreamError

    data = bytearray(VideoCodec(tiny_model).encode(Video(np.zeros((1, 16, 16, 3), np.uint8), 25)))
    struct.pack_into("<H", data, 4, 1)
    with pytest.raises(BitstreamError, match="container version 1.*re-encode"):
        bitstream.unpack(bytes(data))


# ------------------------------------------------------------------ --batch never changes the output
def _four_gop_clip(bikes_frames: np.ndarray) -> Video:
    from tests.conftest import small_clip

    return Video(small_clip(bikes_frames, 17, 32, 48), 25)


@pytest.fixture(scope="module")
def four_gops(tiny_model, bikes_frames) -> bytes:
    """A real 17-frame clip in four 5-frame GoPs: with --batch 3 the second pass holds one GoP alone."""
    return VideoCodec(tiny_model, gop=5, batch=3).encode(_four_gop_clip(bikes_frames))


def test_decoding_with_batch_1_or_3_gives_identical_frames(tiny_model, four_gops):
    """The same file decoded one GoP per pass and three per pass (then one alone): the same pixels."""
    one = VideoCodec(tiny_model, batch=1).decode(four_gops).frames
    three = VideoCodec(tiny_model, batch=3).decode(four_gops).frames
    assert one.shape == (17, 32, 48, 3) and np.array_equal(one, three)


def test_each_gops_reconstruction_is_bit_identical_alone_or_batched(tiny_model, four_gops):
    """Each GoP's float reconstruction (g_s + backbone): alone == in a batch of four, bit for bit."""
    codec = VideoCodec(tiny_model, batch=4)
    header, records = codec.read_header(four_gops)
    grid = codec._plan("decode", header.height, header.width, header.gop).grid
    with torch.no_grad():
        batched = codec._decode_chunk(four_gops, records, header, grid, "test", codec.gains)
        alone = torch.cat(
            [codec._decode_chunk(four_gops, [r], header, grid, "test", codec.gains) for r in records]
        )
    assert batched.shape[0] == 4 and torch.equal(alone, batched)


def test_encoding_with_batch_1_or_3_gives_the_same_bytes(tiny_model, bikes_frames, four_gops):
    assert VideoCodec(tiny_model, gop=5, batch=1).encode(_four_gop_clip(bikes_frames)) == four_gops
