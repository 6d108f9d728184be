"""Rate control: a quality resolved once into `Gains`, passed to every latent-codec call as an argument."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tests.codec.entropy.test_latent_codec import smooth_latent
from vvc_lightning.codec.entropy.gain import GRID, Gains, parse_quality_label, quality_label
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.errors import VVCError

SHAPE = (8, 2, 8, 8)


def _variable_codec(hyper_gain: bool = True, seed: int = 0) -> LatentCodec:
    """An 8-channel codec of 8 qualities: random weights, distinct y and z gains per quality, real tables."""
    torch.manual_seed(seed)
    codec = LatentCodec(8, transform_blocks=1, qualities=8, hyper_gain=hyper_gain)
    with torch.no_grad():
        for table in (codec.gain.y_gain, codec.gain.z_gain):
            table.copy_(torch.linspace(-1.5, 1.0, 8)[:, None] + 0.1 * torch.randn(8, 8))
        codec.gain.y_inv.copy_(-codec.gain.y_gain)
        codec.gain.z_inv.copy_(-codec.gain.z_gain)
    codec.eval()
    codec.update_tables(force=True)
    return codec


@pytest.fixture(scope="module")
def codec() -> LatentCodec:
    return _variable_codec()


@pytest.fixture(scope="module")
def latent() -> torch.Tensor:
    return smooth_latent(2, 8, 2, 8, 8, seed=21)


def test_interleaved_calls_at_two_qualities_give_the_bytes_of_separate_calls(codec, latent):
    alone_bytes, alone_hat = codec.compress(latent, codec.rate(1.0))
    high, low = codec.rate(6.0), codec.rate(1.0)  # both held at once
    high_bytes, _ = codec.compress(latent, high)
    low_bytes, low_hat = codec.compress(latent, low)
    high_again = codec.decompress(high_bytes, SHAPE, high)
    low_decoded = codec.decompress(low_bytes, SHAPE, low)
    assert low_bytes == alone_bytes and torch.equal(low_hat, alone_hat)
    assert torch.equal(low_decoded, alone_hat)
    assert high_bytes != low_bytes and sum(map(len, high_bytes)) > sum(map(len, low_bytes))
    assert torch.equal(high_again, codec.compress(latent, high)[1])


def test_no_forward_hooks_and_no_mutable_quality_on_the_codec(codec):
    assert not codec.h_a._forward_hooks and not codec.h_a._forward_pre_hooks
    assert not codec.h_s._forward_hooks and not codec.h_s._forward_pre_hooks
    assert not hasattr(codec.gain, "active") and not hasattr(codec.gain, "at")


def test_z_gains_act_in_the_code_path_unless_the_codec_has_none():
    with_z, without_z = _variable_codec(True), _variable_codec(False)
    with torch.no_grad():  # z gains of 20 make h_a's small outputs code to nonzero symbols
        for codec in (with_z, without_z):
            codec.gain.z_gain.fill_(math.log(20.0))
            codec.gain.z_inv.fill_(-math.log(20.0))
    latent = smooth_latent(1, 8, 2, 8, 8, seed=3)
    gains = with_z.rate(3.0)
    assert with_z.compress(latent, gains)[0] != without_z.compress(latent, gains)[0]
    with torch.no_grad():  # z gains of exactly one: the same bytes as a codec without z gains
        for codec in (with_z, without_z):
            codec.gain.z_gain.zero_()
            codec.gain.z_inv.zero_()
    gains = with_z.rate(3.0)
    assert with_z.compress(latent, gains)[0] == without_z.compress(latent, gains)[0]


def test_rate_resolves_the_highest_quality_by_default_and_on_the_grid_outside_training(codec):
    top = codec.rate(None)
    assert isinstance(top, Gains) and top.quality == 7.0
    assert torch.equal(top.y, codec.rate(7).y)
    for v in (top.y, top.y_inv, top.z, top.z_inv):
        assert v.shape == (8,) and v.dtype == torch.float32 and not v.requires_grad
        assert torch.equal(v * GRID, (v * GRID).round())
    with pytest.raises(dataclasses.FrozenInstanceError):
        top.quality = 1.0  # type: ignore[misc]


def test_rate_is_differentiable_while_training_with_autograd_unless_exact_is_asked():
    codec = _variable_codec().train()
    assert codec.rate(2.5).y.requires_grad
    assert not codec.rate(2.5, exact=True).y.requires_grad
    with torch.no_grad():
        v = codec.rate(2.5).y
    assert torch.equal(v * GRID, (v * GRID).round())


def test_rate_refuses_a_quality_outside_the_range_or_on_a_fixed_rate_codec(codec):
    for bad in (-0.5, 7.01, math.nan):
        with pytest.raises(VVCError, match=r"outside this model's range \[0, 7\]"):
            codec.rate(bad)
    with pytest.raises(VVCError, match="quality must be a number"):
        codec.rate("high")  # type: ignore[arg-type]
    fixed = LatentCodec(8, transform_blocks=1)
    assert fixed.rate(None) is None
    with pytest.raises(VVCError, match="quality 2.0 asked of a fixed-rate model"):
        fixed.rate(2.0)


def test_coding_calls_refuse_gains_that_do_not_fit_the_codec(codec, latent):
    fixed = LatentCodec(8, transform_blocks=1).eval()
    with pytest.raises(VVCError, match="gains given to a fixed-rate codec"):
        fixed.compress(latent, codec.rate(1.0))
    with pytest.raises(VVCError, match="variable-rate codec needs gains"):
        codec.compress(latent, None)
    with pytest.raises(VVCError, match="variable-rate codec needs gains"):
        codec(latent, 3.0)  # type: ignore[arg-type]
    other = LatentCodec(16, transform_blocks=1, qualities=8)
    with pytest.raises(VVCError, match="gains hold 16 channels but this codec codes 8"):
        codec.decompress([b""], SHAPE, other.rate(1.0))


def test_quality_labels_round_trip():
    assert quality_label(3.5) == "@q3.5" and quality_label(3) == "@q3" and quality_label(0.0) == "@q0"
    for q in (0.0, 1.25, 3.5, 7.0):
        assert parse_quality_label("vvc-lean-vr" + quality_label(q)) == q
    assert parse_quality_label("vvc-lean") is None and parse_quality_label("m@qhigh") is None
