"""VideoCodec with the real (tiny, random) model: round trips, overlap, batching, tiling, ranges."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import small_clip
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.determinism import batch_invariant, model_identity
from vvc_lightning.codec.pipeline.tiling import plan_tiles
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import BitstreamError, VVCError
from vvc_lightning.video.video_io import Video, frames_to_tensor, tensor_to_frames


@pytest.fixture(scope="module")
def clip(bikes_frames) -> Video:
    """13 real frames of an odd size (not a multiple of the stride): 2 GoPs with overlap."""
    return Video(small_clip(bikes_frames, 13, 42, 70), 29.97)


@pytest.fixture(scope="module")
def coded(tiny_model, clip) -> tuple[bytes, Video]:
    codec = VideoCodec(tiny_model, batch=2)
    data = codec.encode(clip)
    return data, codec.decode(data)


def test_round_trip_keeps_size_count_and_fps(coded, clip, tiny_model):
    data, rec = coded
    assert rec.frames.shape == clip.frames.shape and rec.frames.dtype == np.uint8
    assert rec.fps == pytest.approx(29.97)
    header, records = bitstream.unpack(data)
    assert (header.width, header.height, header.frames, header.gop, header.overlap) == (70, 42, 13, 9, 1)
    assert header.num_gops == len(records) == 2 and header.theta == 0.5
    assert header.identity == model_identity(tiny_model)
    assert header.latent_shape == tiny_model.backbone.latent_shape(9, 48, 72)
    assert header.tile == 0  # smaller than a tile


def test_single_gop_decode_is_the_models_own_reconstruction(tiny_model, bikes_frames):
    """One GoP: the decoded frames are backbone.decode(codec L_hat) of the edge-padded clip, cropped."""
    frames = small_clip(bikes_frames, 9, 42, 70)
    data = VideoCodec(tiny_model, tile=0).encode(Video(frames, 25))
    with torch.no_grad(), batch_invariant(tiny_model.backbone):
        x = F.pad(frames_to_tensor(frames)[None], (0, 2, 0, 6, 0, 0), mode="replicate")
        latent_hat = tiny_model.codec.compress(tiny_model.backbone.encode(x), None)[1]
        expected = tensor_to_frames(tiny_model.backbone.decode(latent_hat)[0, :, :, :42, :70])
    assert np.array_equal(VideoCodec(tiny_model).decode(data).frames, expected)


def test_shared_frame_is_theta_blend_of_both_gops(tiny_model, clip):
    codec = VideoCodec(tiny_model, theta=0.3, tile=0)
    data = codec.encode(clip)
    header, records = codec.read_header(data)
    grid = plan_tiles(48, 72, 0, 0, 8)
    with torch.no_grad():
        recs = codec._decode_chunk(data, records, header, grid, "test", codec.gains)
    blended = 0.3 * recs[0, :, 8] + 0.7 * recs[1, :, 0]
    expected = tensor_to_frames(blended[:, None, :42, :70])[0]
    assert np.array_equal(codec.decode(data).frames[8], expected)
    assert np.array_equal(codec.decode(data).frames[7], tensor_to_frames(recs[0, :, 7:8, :42, :70])[0])


def test_overlap_zero_uses_fewer_gops_and_fewer_bytes(tiny_model, bikes_frames):
    video = Video(small_clip(bikes_frames, 18, 32, 48), 25)
    on, off = VideoCodec(tiny_model, overlap=1), VideoCodec(tiny_model, overlap=0)
    data_on, data_off = on.encode(video), off.encode(video)
    assert bitstream.unpack(data_on)[0].num_gops == 3 and bitstream.unpack(data_off)[0].num_gops == 2
    assert len(data_on) > len(data_off)
    assert off.decode(data_off).num_frames == 18


@pytest.mark.parametrize("n", [1, 5, 10])
def test_any_frame_count_round_trips(tiny_model, bikes_frames, n):
    video = Video(small_clip(bikes_frames, n, 24, 40), 25)
    codec = VideoCodec(tiny_model)
    assert codec.decode(codec.encode(video)).frames.shape == (n, 24, 40, 3)


def test_batch_size_changes_neither_bytes_nor_frames(tiny_model, bikes_frames):
    """2 GoPs x 2 tiles (passes of 3 + 1 items vs 1 + 1 + 1 + 1): same file, bit-identical frames."""
    video = Video(small_clip(bikes_frames, 17, 32, 80), 25)
    one = VideoCodec(tiny_model, batch=1, tile=48, tile_overlap=16)
    three = VideoCodec(tiny_model, batch=3, tile=48, tile_overlap=16)
    data = three.encode(video)
    header = bitstream.unpack(data)[0]
    assert (header.tile, header.num_gops) == (48, 2)
    assert plan_tiles(32, 80, 48, 16, 8).count == 2
    assert one.encode(video) == data
    assert np.array_equal(one.decode(data).frames, three.decode(data).frames)


def test_decoding_twice_gives_identical_frames(coded, tiny_model):
    data, rec = coded
    assert np.array_equal(VideoCodec(tiny_model).decode(data).frames, rec.frames)


@pytest.mark.parametrize("a, b", [(0, 3), (8, 9), (9, 13), (5, 12)])
def test_frame_range_equals_the_slice_of_a_full_decode(coded, tiny_model, a, b):
    data, rec = coded
    part = VideoCodec(tiny_model).decode(data, frames=(a, b))
    assert np.array_equal(part.frames, rec.frames[a:b])


def test_frame_range_reads_only_the_gops_it_needs(coded, tiny_model):
    data, rec = coded
    bad = bytearray(data)
    records = bitstream.unpack(data)[1]
    bad[records[1].offset + 2] ^= 0xFF  # damage GoP 1 (frames 8..12)
    codec = VideoCodec(tiny_model)
    assert np.array_equal(codec.decode(bytes(bad), frames=(0, 8)).frames, rec.frames[:8])
    with pytest.raises(BitstreamError, match="GoP record 1"):
        codec.decode(bytes(bad), frames=(0, 9))


def test_tiled_decoding_agrees_closely_with_untiled(tiny_config, bikes_frames):
    """LeanVAE (a local backbone): the same bitstream decoded whole and in 2x3 tiles, blended seams.

    The decoder tiles by its own choice: a header recording the encoder's tiles decodes the same."""
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(0)
    model = VideoCompressionModel(
        apply_overrides(tiny_config.copy(), ["model.backbone.name=lean_vae"])
    ).eval()
    video = Video(small_clip(bikes_frames, 5, 96, 128, y0=80, x0=100), 25)
    data = VideoCodec(model, gop=5, tile=0).encode(video)
    header, records = bitstream.unpack(data)
    payloads = list(bitstream.iter_payloads(data, records))
    tiled = bitstream.pack(dataclasses.replace(header, tile=72, tile_overlap=32), payloads)
    whole = VideoCodec(model).decode(data).frames.astype(np.float64)
    parts = VideoCodec(model, tile=72, tile_overlap=32).decode(tiled).frames.astype(np.float64)
    assert np.array_equal(VideoCodec(model, tile=72, tile_overlap=32).decode(data).frames, parts)
    psnr = 10 * np.log10(255**2 / np.mean((whole - parts) ** 2))
    assert psnr > 35, psnr


def test_blended_seams_leave_no_step(tiny_model, bikes_frames):
    """Tiles of CV-VAE (per-tile GroupNorm statistics) drift apart; ramps hide the seam that butting shows."""
    x = frames_to_tensor(small_clip(bikes_frames, 5, 64, 128, y0=80, x0=100))[None]
    grid = plan_tiles(64, 128, 72, 32, 8)
    assert grid.tile_shape == (64, 64) and grid.xs.starts == (0, 32, 64)
    with torch.no_grad(), batch_invariant(tiny_model.backbone):
        latent = tiny_model.backbone.encode(x)
        whole = tiny_model.backbone.decode(latent)
        outs = [tiny_model.backbone.decode(t) for t in grid.scaled(8).split(latent)]
    blended = grid.merge(outs)
    butted = torch.cat([outs[0][..., :48], outs[1][..., 16:48], outs[2][..., 16:]], -1)  # cut mid-overlap

    def seam_step(y: torch.Tensor) -> float:
        """Mean horizontal jump across the two seams, beyond what the untiled decode has there."""
        jump = lambda t: (t[..., [48, 80]] - t[..., [47, 79]]).abs().mean()  # noqa: E731
        return float(jump(y) - jump(whole))

    assert seam_step(blended) < 0.5 * seam_step(butted)


def test_bitstream_from_another_model_is_refused(coded, tiny_config):
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(1)
    other = VideoCompressionModel(tiny_config).eval()
    with pytest.raises(BitstreamError, match="made with model .* load the checkpoint it was made with"):
        VideoCodec(other).decode(coded[0])


def test_encode_leaves_a_training_model_in_training_mode(tiny_model, clip):
    tiny_model.train()
    try:
        VideoCodec(tiny_model).encode(Video(clip.frames[:1], 25))
        assert tiny_model.training
    finally:
        tiny_model.eval()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"gop": 8}, "1 \\+ 4k"),
        ({"overlap": 5}, "overlap"),
        ({"batch": 0}, "batch"),
        ({"theta": 1.5}, "theta"),
        ({"tile": 100}, "^tile must be a positive multiple"),
    ],
)
def test_bad_codec_options_are_user_errors(tiny_model, kw, message):
    with pytest.raises(VVCError, match=message):
        VideoCodec(tiny_model, **kw)


def test_frames_of_changing_size_or_wrong_type_are_user_errors(tiny_model):
    codec = VideoCodec(tiny_model)
    with pytest.raises(VVCError, match="frame 1 is 24x16, the first was 16x16"):
        codec.encode_frames([np.zeros((16, 16, 3), np.uint8), np.zeros((16, 24, 3), np.uint8)], 25)
    with pytest.raises(VVCError, match="RGB uint8"):
        codec.encode_frames([np.zeros((16, 16, 3), np.float32)], 25)
    with pytest.raises(VVCError, match="no frame"):
        codec.encode_frames([], 25)


def test_a_codec_built_from_options_codes_as_one_built_from_field_names(tiny_model, clip):
    from vvc_lightning.codec.pipeline.options import CodecOptions

    opts = CodecOptions(gop=5, batch=2, theta=0.3, tile=0)
    by_options = VideoCodec(tiny_model, opts)
    assert by_options.options is opts and by_options.gop == 5
    assert by_options.encode(clip) == VideoCodec(tiny_model, gop=5, batch=2, theta=0.3, tile=0).encode(clip)
    assert VideoCodec(tiny_model, opts, batch=1).options == opts.replace(batch=1)  # overrides on top
    assert VideoCodec(tiny_model).gop == tiny_model.gop  # no gop: the model's


def test_a_parsed_stream_decodes_without_being_parsed_again(tiny_model, coded, monkeypatch):
    from vvc_lightning.codec.pipeline.parsed import parse_stream

    data, rec = coded
    stream = parse_stream(data, "coded.vvc")
    calls = []
    monkeypatch.setattr(bitstream, "unpack_header", lambda *a, **k: calls.append(a))
    codec = VideoCodec(tiny_model)
    assert np.array_equal(codec.decode(stream).frames, rec.frames)
    assert sum(1 for _ in codec.decode_frames(stream, (2, 5))) == 3 and calls == []
