"""The shared latent codec: real bytes, bit-exact decode, tables in the state dict, rate estimate."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch

from tests.conftest import one_thread
from vvc_lightning.codec.entropy.context_model import default_groups
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.errors import BitstreamError


def smooth_latent(b: int, c: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Spatially correlated latents, like a VAE's (low-pass filtered noise, a few units of scale)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, h + 4, w + 4, generator=g)
    x = torch.nn.functional.avg_pool3d(x, (1, 5, 5), stride=1)
    return 4 * x


@pytest.fixture(scope="module")
def trained_codec() -> LatentCodec:
    """A small codec trained briefly (rate + latent MSE) on smooth latents."""
    torch.manual_seed(0)
    codec = LatentCodec(channels=16, transform_blocks=1)
    with one_thread():  # small tensors: one thread is faster, and far faster beside another busy process
        _train(codec)
    codec.eval()
    codec.update_tables(force=True)
    return codec


def _train(codec: LatentCodec) -> None:
    """50 steps of rate + latent MSE on smooth latents (enough for the rate estimate to be meaningful)."""
    main = torch.optim.Adam(codec.main_parameters(), lr=2e-3)
    aux = torch.optim.Adam(codec.aux_parameters(), lr=1e-2)
    codec.train()
    for step in range(50):
        latent = smooth_latent(4, 16, 3, 16, 16, seed=step)
        out = codec(latent, None)
        pixels = 4 * 9 * 128 * 128
        rate = -(torch.log2(out.y_likelihoods).sum() + torch.log2(out.z_likelihoods).sum()) / pixels
        loss = rate + 0.5 * torch.mean((out.latent_hat - latent) ** 2)
        main.zero_grad()
        aux.zero_grad()
        (loss + codec.aux_loss()).backward()
        main.step()
        aux.step()


def test_default_groups_follow_elic_and_sum_to_channels():
    assert default_groups(128) == [16, 16, 32, 64]
    assert default_groups(320) == [16, 16, 32, 64, 192]
    for c in (8, 16, 32, 48, 96):
        assert sum(default_groups(c)) == c


def test_decompress_returns_exactly_the_eval_forward_latent(trained_codec):
    latent = smooth_latent(2, 16, 3, 12, 20, seed=999)
    strings, compressed_hat = trained_codec.compress(latent, None)
    assert len(strings) == 2 and all(isinstance(s, bytes) and len(s) > 0 for s in strings)
    decoded = trained_codec.decompress(strings, (16, 3, 12, 20), None)
    forward_hat = trained_codec(latent, None).latent_hat
    assert torch.equal(decoded, compressed_hat)
    assert torch.equal(decoded, forward_hat)


def test_odd_latent_sizes_code_exactly(trained_codec):
    latent = smooth_latent(1, 16, 2, 7, 9, seed=5)
    strings, hat = trained_codec.compress(latent, None)
    assert torch.equal(trained_codec.decompress(strings, (16, 2, 7, 9), None), hat)


def test_each_batch_item_decodes_alone_and_strings_do_not_depend_on_batch(trained_codec):
    latent = smooth_latent(3, 16, 3, 8, 8, seed=7)
    strings, hat = trained_codec.compress(latent, None)
    single, _ = trained_codec.compress(latent[1:2], None)
    assert single[0] == strings[1]  # exact integer entropy parameters: bytes never depend on the batch
    alone = trained_codec.decompress([strings[1]], (16, 3, 8, 8), None)
    # g_s is a batched convolution: results may differ in the last bit with the batch size, no more.
    torch.testing.assert_close(alone[0], hat[1], rtol=0, atol=1e-5)


def test_real_bytes_within_five_percent_of_rate_estimate(trained_codec):
    latent = smooth_latent(2, 16, 3, 16, 16, seed=1234)
    out = trained_codec(latent, None)
    est_bits = -(torch.log2(out.y_likelihoods).sum() + torch.log2(out.z_likelihoods).sum()).item()
    strings, _ = trained_codec.compress(latent, None)
    real_bits = 8 * sum(len(s) for s in strings)
    assert abs(real_bits - est_bits) / est_bits < 0.05, (real_bits, est_bits)


def test_state_dict_carries_cdf_tables_and_loads_into_fresh_codec(trained_codec):
    buf = io.BytesIO()
    torch.save(trained_codec.state_dict(), buf)
    buf.seek(0)
    fresh = LatentCodec(channels=16, transform_blocks=1)
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    assert fresh.tables_ready()
    latent = smooth_latent(1, 16, 3, 8, 8, seed=3)
    strings, hat = trained_codec.compress(latent, None)
    assert torch.equal(fresh.decompress(strings, (16, 3, 8, 8), None), hat)


def test_decode_in_a_fresh_process_is_identical(trained_codec, tmp_path):
    latent = smooth_latent(1, 16, 3, 8, 12, seed=11)
    strings, hat = trained_codec.compress(latent, None)
    torch.save({"state": trained_codec.state_dict(), "strings": strings}, tmp_path / "blob.pt")
    script = (
        "import sys, torch\n"
        "from vvc_lightning.codec.entropy.latent_codec import LatentCodec\n"
        "d = torch.load(sys.argv[1])\n"
        "c = LatentCodec(channels=16, transform_blocks=1); c.load_state_dict(d['state']); c.eval()\n"
        "torch.set_num_threads(int(sys.argv[3]))\n"
        "torch.save(c.decompress(d['strings'], (16, 3, 8, 12), None), sys.argv[2])\n"
    )
    threads = torch.get_num_threads()
    for n in (threads, 1):
        out = tmp_path / f"out{n}.pt"
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "blob.pt"), str(out), str(n)], check=True
        )
        if n == threads:
            assert torch.equal(torch.load(out), hat)
        else:  # another thread count: the entropy decode is exact; g_s may differ in the last bit
            torch.testing.assert_close(torch.load(out), hat, rtol=0, atol=1e-5)


def test_wrong_channel_count_in_stream_is_rejected(trained_codec):
    with pytest.raises(BitstreamError, match="latent channels"):
        trained_codec.decompress([b"\x00" * 8], (32, 3, 8, 8), None)


def test_code_steps_hand_their_sink_only_their_positions():
    torch.manual_seed(0)
    codec = LatentCodec(channels=16, transform_blocks=1).eval()
    hyper = torch.randint(-64, 64, (2, 32, 6, 10)).double() / 64
    seen = []

    def sink(step, residual, scales, means, positions):
        seen.append((step, residual, scales.shape, means.shape, int(positions.sum())))
        return torch.ones(scales.shape, dtype=torch.int32)

    with torch.no_grad():
        y_hat, lik = codec.context.run(None, hyper, codec.gaussian_conditional, "code", sink)
    assert lik is None and [s[0] for s in seen] == list(range(2 * len(codec.groups)))
    for (_, residual, scales, means, count), g in zip(seen, [g for g in codec.groups for _ in (0, 1)],
                                                       strict=True):
        assert residual is None and scales == means == (2, g, 30) and count == 30  # half of the 6x10 map
    assert y_hat.shape == (2, 16, 6, 10) and y_hat.dtype == torch.float64


def test_aux_parameters_are_only_the_quantiles():
    codec = LatentCodec(channels=16, transform_blocks=1)
    aux = codec.aux_parameters()
    assert len(aux) == 1 and aux[0] is codec.entropy_bottleneck.quantiles
    main_ids = {id(p) for p in codec.main_parameters()}
    assert id(aux[0]) not in main_ids
    assert len(main_ids) + 1 == len(list(codec.parameters()))
    codec.aux_loss().backward()
    grads = [n for n, p in codec.named_parameters() if p.grad is not None]
    assert grads == ["entropy_bottleneck.quantiles"]


def test_scale_indexes_match_compressai_exactly_even_on_table_entries():
    from vvc_lightning.codec.entropy.latent_codec import _scale_indexes

    codec = LatentCodec(channels=16)
    codec.update_tables(force=True)
    gc = codec.gaussian_conditional
    table = gc.scale_table.double()
    scales = torch.cat([torch.rand(5000, dtype=torch.float64) * 300, table, table + 1e-9, table - 1e-9,
                        torch.tensor([-1.0, 0.0, 0.11, 1e9], dtype=torch.float64)])
    assert torch.equal(_scale_indexes(gc, scales), gc.build_indexes(scales))


def test_integer_layers_are_exact_on_the_grid_and_close_to_training():
    """Eval output lies on the 2**-12 grid, within a few grid steps of the fake-quantised float32 path."""
    from vvc_lightning.codec.entropy.intnet import ACT_BITS, int_conv

    torch.manual_seed(1)
    layer = int_conv(8, 6, 5, relu=True)
    x = torch.randn(2, 8, 9, 7) * 3
    exact = layer.eval()(x)
    assert exact.dtype == torch.float64 and torch.equal(exact * 2**ACT_BITS, torch.round(exact * 2**ACT_BITS))
    assert exact.min() >= 0
    fake = layer.train()(x)
    assert (fake.double() - exact).abs().max() <= 2 * 2**-ACT_BITS


def test_weights_too_large_for_exact_sums_are_refused():
    from vvc_lightning.codec.entropy.intnet import int_conv

    layer = int_conv(64, 4, 5).eval()
    with torch.no_grad():
        layer.weight.fill_(300.0)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        layer(torch.zeros(1, 64, 5, 5))
