"""Tiles only when needed: the memory budget's plan, and tiled coding that agrees with untiled coding."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.codec.pipeline.determinism import batch_invariant
from vvc_lightning.codec.pipeline.memory import MemoryModel, gop_bytes, plan_budget
from vvc_lightning.codec.pipeline.sizes import parse_bytes
from vvc_lightning.codec.pipeline.tile_norm import FrameNorms, default_overlap, run_tiled, tiled_round_trip
from vvc_lightning.codec.pipeline.tiling import plan_tiles
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import VVCError
from vvc_lightning.registry import BACKBONES
from vvc_lightning.video.video_io import Video, frames_to_tensor, tensor_to_frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between uint8 frames."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def backbone_round_trip(bb: torch.nn.Module, x: torch.Tensor, tile: int, overlap: int,
                        passes: int | None) -> np.ndarray:
    """Encode then decode (1,3,T,H,W) through tiles as VideoCodec._run_tiles does (tile 0: whole frames)."""
    with batch_invariant(bb):
        return tensor_to_frames(tiled_round_trip(bb, x, tile, overlap, passes)[0])


@pytest.fixture(scope="module")
def clip96(bikes_frames) -> np.ndarray:
    return small_clip(bikes_frames, 5, 96, 320, y0=60, x0=100)


@pytest.fixture(scope="module")
def clip64(bikes_frames) -> np.ndarray:
    """Two 160-pixel tiles overlapping by 64 (a CV-VAE's convolutions reach far past a smaller overlap)."""
    return small_clip(bikes_frames, 5, 64, 256, y0=80, x0=100)


# --------------------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("scale", [1, 8])  # FrameNorms cuts on the latent grid; every layer scales it exactly
def test_owned_boxes_partition_the_plane(scale):
    grid = plan_tiles(272, 640, 128, 32, 8).scaled(scale)
    cover = torch.zeros(grid.ys.length, grid.xs.length, dtype=torch.int32)
    for (ty, tx), (y0, y1, x0, x1) in zip(grid.boxes(), grid.owned_boxes(), strict=True):
        assert 0 <= y0 < y1 <= grid.ys.size and 0 <= x0 < x1 <= grid.xs.size
        cover[ty + y0 : ty + y1, tx + x0 : tx + x1] += 1
    assert torch.all(cover == 1)


# ------------------------------------------------------------------------------- shared norms
@pytest.mark.slow  # a minute on 2 cores; the lean backbone's tiled run is in the default suite
@pytest.mark.parametrize("name, kw", [
    ("cv_vae_causal", dict(width=8, latent_channels=8, enc_blocks=1, dec_blocks=1)),  # GroupNorm, attention
])
def test_tiled_groupnorm_backbone_agrees_with_untiled(clip64, name, kw):
    """Random weights: per-tile statistics miss by far more than 0.1 dB; shared ones do not."""
    torch.manual_seed(0)
    bb = BACKBONES.get(name)(**kw).eval()
    x = frames_to_tensor(clip64[:1])[None]
    src = clip64[:1]
    whole = backbone_round_trip(bb, x, 0, 0, None)
    shared = backbone_round_trip(bb, x, 160, 64, None)
    own = backbone_round_trip(bb, x, 160, 64, 0)
    assert abs(psnr(shared, src) - psnr(whole, src)) < 0.1
    assert psnr(shared, whole) > 40  # the same frames, not just the same quality
    assert abs(psnr(own, src) - psnr(whole, src)) > 0.1 and psnr(own, whole) < 25  # the test can fail


@pytest.mark.slow
def test_tiled_clip_groupnorm_backbone_agrees_with_untiled(clip64):
    """cv_vae_sd21: GroupNorm over the whole clip, spatial + temporal mid attention."""
    torch.manual_seed(0)
    bb = BACKBONES.get("cv_vae_sd21")(width=32, latent_channels=8, enc_blocks=1, dec_blocks=1).eval()
    x = frames_to_tensor(clip64)[None]
    whole = backbone_round_trip(bb, x, 0, 0, None)
    shared = backbone_round_trip(bb, x, 160, 64, None)
    assert abs(psnr(shared, clip64) - psnr(whole, clip64)) < 0.1
    assert psnr(shared, whole) > 40


def test_passes_stop_when_the_statistics_settle(clip64):
    """Statistics passes end early once nothing moves; a backbone without GroupNorm pays none."""
    torch.manual_seed(0)
    cv = BACKBONES.get("cv_vae_causal")(width=8, latent_channels=8, enc_blocks=1, dec_blocks=1,
                                        attention=False).eval()
    lean = BACKBONES.get("lean_vae_lite")(width=16, latent_channels=8).eval()
    pixels = plan_tiles(64, 256, 160, 64, 8)
    grid = pixels.scaled(8)
    assert FrameNorms(lean, grid, 1).depth == 0
    assert (default_overlap(lean), default_overlap(cv)) == (32, 64)  # convolutions of a CV-VAE reach further
    norms = FrameNorms(cv, grid, 1)
    assert norms.depth == 26  # 13 GroupNorms in the encoder, 13 in the decoder
    x = torch.cat(pixels.split(frames_to_tensor(clip64[:1])[None]))
    changes = []
    with torch.no_grad(), norms:
        for _ in range(norms.depth + 2):
            for i in range(x.shape[0]):
                with norms.items(i, i + 1):
                    cv.encode(x[i : i + 1])
            changes.append(norms.end_pass())
            assert norms.depth == 13  # the encoder's, once a pass has run
    assert changes[0] == float("inf") and changes[-1] < 1e-6  # exact after `depth` passes: nothing moves


def test_tiled_run_leaves_torch_and_other_models_alone(clip64):
    """While one model runs tiled, nn.GroupNorm.forward is torch's, and other GroupNorm models (plain or
    tile-aware, in this thread or another, the tiled model itself in another thread) compute as ever."""
    torch.manual_seed(0)
    kw = dict(width=8, latent_channels=8, enc_blocks=1, dec_blocks=1)
    tiled, other = (BACKBONES.get("cv_vae_causal")(**kw).eval() for _ in range(2))
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8)).eval()
    original = nn.GroupNorm.forward
    x = frames_to_tensor(clip64[:1])[None]
    probe = torch.rand(1, 3, 1, 16, 16) * 2 - 1

    def everyone() -> list[torch.Tensor]:
        return [other.encode(probe), tiled.encode(probe), plain(probe[:, :, 0])]

    with torch.no_grad():
        expected = everyone()
        seen: list[list[torch.Tensor]] = []

        def encode(items: torch.Tensor) -> torch.Tensor:
            assert nn.GroupNorm.forward is original
            same_thread = [other.encode(probe), plain(probe[:, :, 0])]  # (the tiled model is attached here)
            box: list[list[torch.Tensor]] = []
            worker = threading.Thread(target=lambda: box.append(everyone()))
            worker.start()
            worker.join()
            seen.append(same_thread + box[0])
            return tiled.encode(items)

        pixels = plan_tiles(64, 256, 160, 64, 8)
        run_tiled(tiled, encode, torch.cat(pixels.split(x)), pixels.scaled(8), 1, 1, passes=2)
    assert nn.GroupNorm.forward is original
    assert len(seen) == 6  # two statistics passes and the final one, over two tiles
    for other_here, plain_here, *elsewhere in seen:
        assert torch.equal(other_here, expected[0]) and torch.equal(plain_here, expected[2])
        assert all(torch.equal(a, b) for a, b in zip(elsewhere, expected, strict=True))


def test_undeclared_layers_run_with_each_tile_s_own_statistics():
    """A third-party backbone with plain nn.GroupNorm and its own attention: no statistics passes."""

    class Attention(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.mean((-2, -1), keepdim=True)

    model = nn.Sequential(nn.Conv3d(3, 8, 1), nn.GroupNorm(4, 8), Attention())
    grid = plan_tiles(64, 256, 160, 64, 8).scaled(8)
    norms = FrameNorms(model, grid, 1)
    assert norms.depth == 0 and norms.norms == [] and norms.attentions == []
    assert default_overlap(model) == 64  # still the wider overlap of a GroupNorm backbone


def test_tiled_lean_backbone_agrees_with_untiled(clip96):
    """LayerNorm per position: only convolution borders differ, which the blend keeps out."""
    torch.manual_seed(0)
    bb = BACKBONES.get("lean_vae_lite")(width=32, latent_channels=8).eval()
    x = frames_to_tensor(clip96)[None]
    whole = backbone_round_trip(bb, x, 0, 0, None)
    tiled = backbone_round_trip(bb, x, 72, 32, None)
    assert abs(psnr(tiled, clip96) - psnr(whole, clip96)) < 0.1
    assert psnr(tiled, whole) > 40


@pytest.fixture(scope="module")
def shipped():
    from vvc_lightning.store.loader import load

    try:
        return load("zoo:vvc-lean-vr").eval()
    except VVCError as exc:  # pragma: no cover - the model ships with the package
        pytest.skip(str(exc))


def test_shipped_model_codes_tiled_as_well_as_whole(shipped, bikes_frames):
    """The trained LeanVAE model through the whole codec: forced tiles vs whole frames, within 0.1 dB."""
    video = Video(small_clip(bikes_frames, 9, 96, 160, y0=80, x0=100), 25)
    whole_codec = VideoCodec(shipped, tile=0)
    tiled_codec = VideoCodec(shipped, tile=72, tile_overlap=32)
    whole = whole_codec.decode(whole_codec.encode(video)).frames
    tiled = tiled_codec.decode(tiled_codec.encode(video)).frames
    assert abs(psnr(tiled, video.frames) - psnr(whole, video.frames)) < 0.1


# ------------------------------------------------------------------------------------- budget
def test_budget_gives_whole_frames_when_they_fit_and_tiles_within_budget_when_not(tiny_model):
    mm = MemoryModel(tiny_model.backbone)
    whole = mm.peak("encode", 9, 272, 640)
    assert whole > mm.peak("encode", 9, 136, 320) > 0
    big = plan_budget(mm, "encode", 9, 272, 640, 4, 4 * whole, 32)
    assert big.grid.count == 1 and big.items == 4 and big.tile == 0
    fewer = plan_budget(mm, "encode", 9, 272, 640, 4, 2 * whole, 32)  # fewer GoPs per pass before tiling
    assert fewer.grid.count == 1 and fewer.items == 2
    small = plan_budget(mm, "encode", 9, 272, 640, 4, whole // 5, 32)
    assert small.grid.count > 1 and small.tile > 0
    assert small.items * mm.peak("encode", 9, *small.grid.tile_shape) <= whole // 5
    larger = plan_tiles(272, 640, small.tile + 8, 32, 8)  # the largest tiles that fit
    assert larger.count == small.grid.count or mm.peak("encode", 9, *larger.tile_shape) > whole // 5
    with pytest.raises(VVCError, match="^max_memory .* too small"):
        plan_budget(mm, "encode", 9, 272, 640, 4, 1 << 20, 32)


def test_codec_tiles_only_under_a_small_budget(tiny_model, bikes_frames):
    from vvc_lightning.codec.pipeline import container as bitstream

    video = Video(small_clip(bikes_frames, 5, 64, 200), 25)
    roomy = VideoCodec(tiny_model, gop=5)
    assert bitstream.unpack(roomy.encode(video))[0].tile == 0  # 8 GiB: whole frames
    need = MemoryModel(tiny_model.backbone).peak("encode", 5, 64, 200)
    own = gop_bytes(
        "encode", 5, 64, 200, int(np.prod(tiny_model.backbone.latent_shape(5, 64, 200)))
    )  # frames
    tight = VideoCodec(tiny_model, gop=5, max_memory=need // 2 + own, tile_overlap=16)
    data = tight.encode(video)
    assert bitstream.unpack(data)[0].tile > 0
    assert tight.decode(data).frames.shape == video.frames.shape


# ---------------------------------------------------------------------------------- --max-memory
@pytest.mark.parametrize("text, value", [("512M", 512 << 20), ("8G", 8 << 30), ("1.5g", 3 << 29),
                                         ("1073741824", 1 << 30), ("2GiB", 2 << 30), ("64MB", 64 << 20)])
def test_max_memory_sizes_parse(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["8X", "-1G", "lots", "", "100", "0"])
def test_bad_max_memory_is_refused(text):
    with pytest.raises(VVCError, match="^max_memory"):
        parse_bytes(text)


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_cli_max_memory_errors_are_one_line(tmp_path, capsys, command):
    src = tmp_path / ("in.y4m" if command == "compress" else "in.vvc")
    src.write_bytes(b"x")
    code = main(
        [command, str(src), "-o", str(tmp_path / "out.mp4"), "--ckpt", "none.ckpt", "--max-memory", "8X"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--max-memory takes a size like 512M, 8G" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]
