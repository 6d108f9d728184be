"""Variable rate: gain units, lambda sampling, quality in the header, exact coding at a fractional quality."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tests.conftest import TINY_OVERRIDES, one_thread, small_clip
from vvc_lightning.codec.entropy.gain import GRID, GainUnits, lambda_to_quality, quality_to_lambda
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.configuration.config import load_config
from vvc_lightning.errors import BitstreamError, ConfigError, VVCError
from vvc_lightning.training.losses import bits
from vvc_lightning.training.model import VideoCompressionModel
from vvc_lightning.video.video_io import Video

VR = ["model.codec.qualities=4", "model.loss.lmbda_range=[0.01,0.4]"]


def test_gain_vectors_interpolate_exponentially_between_neighbours():
    g = GainUnits(3, 4)
    with torch.no_grad():
        g.y_gain.copy_(torch.randn(4, 3))
    for q in (0.0, 2.0, 3.0):
        assert torch.allclose(g.resolve(q, exact=False).y, g.y_gain[int(q)].exp())
    v = g.resolve(1.25, exact=False).y
    expected = g.y_gain[1].exp() ** 0.75 * g.y_gain[2].exp() ** 0.25
    assert torch.allclose(v, expected, rtol=1e-5)
    exact = g.resolve(1.25, exact=True).y
    assert exact.dtype == torch.float32 and torch.equal(exact * GRID, (exact * GRID).round())
    assert torch.allclose(exact, v, atol=1.0 / GRID)
    for bad in (-0.1, 3.01, math.nan):
        with pytest.raises(VVCError, match="outside this model's range"):
            g.resolve(bad, exact=True)


def test_lambda_maps_monotonically_to_quality_and_back():
    qs = [lambda_to_quality(lm, 0.01, 0.4, 8) for lm in (0.01, 0.02, 0.05, 0.1, 0.4)]
    assert qs[0] == 0.0 and qs[-1] == 7.0 and all(a < b for a, b in zip(qs, qs[1:], strict=False))
    assert quality_to_lambda(lambda_to_quality(0.07, 0.01, 0.4, 8), 0.01, 0.4, 8) == pytest.approx(0.07)


@pytest.fixture(scope="module")
def trained_codec() -> tuple[LatentCodec, torch.Tensor]:
    """A latent codec with 4 qualities briefly trained across lambdas on smooth latents."""
    torch.manual_seed(0)
    codec = LatentCodec(8, transform_blocks=1, qualities=4)
    lo, hi = 0.5, 50.0
    codec.gain.init_from_lambdas([quality_to_lambda(q, lo, hi, 4) for q in range(4)], 5.0)
    base = torch.nn.functional.interpolate(torch.randn(4, 8, 2, 4, 4) * 4, size=(2, 8, 8), mode="trilinear")
    opt = torch.optim.Adam(codec.main_parameters(), lr=3e-3)
    codec.train()
    with one_thread():  # tiny tensors: one thread is fastest, and immune to a busy machine
        for _ in range(30):
            u = float(torch.rand(()))
            lmbda = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            out = codec(base, codec.rate(lambda_to_quality(lmbda, lo, hi, 4)))
            rate = (bits(out.y_likelihoods) + bits(out.z_likelihoods)) / base.numel()
            loss = lmbda * torch.mean((out.latent_hat - base) ** 2) + rate
            opt.zero_grad()
            (loss + codec.aux_loss()).backward()
            opt.step()
    codec.eval()
    codec.update_tables(force=True)
    return codec, base[:2]


def test_rate_falls_monotonically_with_lower_quality(trained_codec):
    codec, latent = trained_codec
    rates, sizes, errors = [], [], []
    for q in (3.0, 2.5, 2.0, 1.0, 0.0):
        with torch.no_grad():
            out = codec(latent, codec.rate(q))
        rates.append(float(bits(out.y_likelihoods) + bits(out.z_likelihoods)))
        strings, latent_hat = codec.compress(latent, codec.rate(q))
        sizes.append(sum(len(s) for s in strings))
        errors.append(float(torch.mean((latent_hat - latent) ** 2)))
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False)) and sizes[0] > sizes[-1], sizes
    assert errors[0] < errors[-1], errors


def test_decompress_is_exact_at_a_fractional_quality(trained_codec):
    codec, latent = trained_codec
    gains = codec.rate(1.37)
    strings, latent_hat = codec.compress(latent, gains)
    shape = tuple(latent.shape[1:])
    assert torch.equal(codec.decompress(strings, shape, gains), latent_hat)
    with torch.no_grad():
        assert torch.equal(codec(latent, gains).latent_hat, latent_hat)  # eval forward = the real codec
    with pytest.raises(BitstreamError):  # the quality matters: decoding at another one fails the symbol check
        codec.decompress(strings, shape, codec.rate(1.0))


def test_header_records_the_quality_and_decode_uses_it(bikes_frames):
    torch.manual_seed(0)
    model = VideoCompressionModel(load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES + VR)).eval()
    video = Video(small_clip(bikes_frames, 9, 32, 48), 25.0)
    codec = VideoCodec(model, quality=2.5, tile=0)
    assert codec.gains.quality == 2.5 and torch.equal(codec.gains.y, model.codec.rate(2.5, exact=True).y)
    data = codec.encode(video)
    header, records = bitstream.unpack(data)
    assert header.quality == 2.5
    payloads = [bitstream.read_payload(data, r) for r in records]
    beyond = bitstream.pack(dataclasses.replace(header, quality=4.0), payloads)
    with pytest.raises(BitstreamError, match=r"header: quality 4.0 is outside this model's range \[0, 3\]"):
        VideoCodec(model).decode(beyond)
    assert (codec.decode(data).frames == VideoCodec(model).decode(data).frames).all()  # quality from the file
    low = VideoCodec(model, quality=0.0, tile=0).encode(video)
    assert bitstream.unpack_header(low)[0].quality == 0.0 and len(low) < len(data)
    with pytest.raises(VVCError, match="outside this model's range"):
        VideoCodec(model, quality=4.0)


def test_fixed_rate_models_store_no_quality_and_refuse_one(tiny_model, bikes_frames):
    data = VideoCodec(tiny_model, tile=0).encode(Video(small_clip(bikes_frames, 5, 32, 48), 25.0))
    assert bitstream.unpack_header(data)[0].quality is None
    with pytest.raises(VVCError, match="fixed-rate model"):
        VideoCodec(tiny_model, quality=1.0)


def test_a_header_without_the_quality_field_parses():
    h = bitstream.Header(16, 16, 1, 25.0, 1, 0, 0.5, 1, (4, 1, 2, 2), "id")
    raw = bitstream.pack_header(h)
    body_len = int.from_bytes(raw[6:10], "little") - 8  # drop the trailing f64, as older writers did
    import zlib

    head = raw[:6] + body_len.to_bytes(4, "little") + raw[10 : 10 + body_len]
    old = head + zlib.crc32(head).to_bytes(4, "little")
    parsed, _ = bitstream.unpack_header(old)
    assert parsed.quality is None and parsed.identity == "id"


def test_training_samples_lambda_in_the_range_and_validation_uses_the_fixed_one():
    torch.manual_seed(1)
    model = VideoCompressionModel(load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES + VR))
    points = [model.rate_point(train=True) for _ in range(50)]
    assert all(0.01 <= lm <= 0.4 and 0.0 <= q <= 3.0 for q, lm in points)
    assert len({round(lm, 6) for _, lm in points}) == 50
    assert all(q == pytest.approx(lambda_to_quality(lm, 0.01, 0.4, 4)) for q, lm in points)
    q, lm = model.rate_point(train=False)
    assert lm == 0.1 and q == pytest.approx(lambda_to_quality(0.1, 0.01, 0.4, 4))
    assert model.quality_for_lambda(0.4) == 3.0
    with pytest.raises(ConfigError, match="outside the range"):
        model.quality_for_lambda(1.0)


def test_variable_rate_needs_both_keys():
    for extra in (["model.codec.qualities=4"], ["model.loss.lmbda_range=[0.01,0.4]"]):
        with pytest.raises(ConfigError, match="needs both"):
            VideoCompressionModel(load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES + extra))
    with pytest.raises(ConfigError, match="0 < lo < hi"):
        VideoCompressionModel(
            load_config(
                ["quickstart_scratch.yaml"],
                TINY_OVERRIDES + ["model.codec.qualities=4", "model.loss.lmbda_range=[0.4,0.1]"],
            )
        )


def test_a_fixed_rate_models_identity_ignores_the_variable_rate_keys(tiny_config):
    from vvc_lightning.configuration.config import apply_overrides

    torch.manual_seed(0)
    a = VideoCompressionModel(tiny_config).eval()
    torch.manual_seed(0)
    b = VideoCompressionModel(apply_overrides(tiny_config.copy(), ["model.codec.hyper_gain=false",
                                                                   "model.init=zoo:x"])).eval()
    assert a.identity() == b.identity()
