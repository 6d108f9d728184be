"""Classic codecs through ffmpeg: raw streams, one intra picture, real decodes, versions, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import small_clip
from vvc_lightning.errors import RegistryError, VVCError
from vvc_lightning.evaluation import baselines
from vvc_lightning.evaluation.baselines import ENCODERS, get_encoder, run_ffmpeg, write_input
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.video.video_io import Video

FAST = {"x265": "ultrafast", "vvenc": "faster", "svtav1": "10", "x264": "ultrafast"}
RAW = {"x265": "-f hevc", "vvenc": "-f vvc", "svtav1": "-f obu", "x264": "-f h264"}


@pytest.fixture(scope="module")
def video(bikes_frames) -> Video:
    """9 real frames, 96x160."""
    return Video(small_clip(bikes_frames, 9, 96, 160), 25.0)


@pytest.mark.parametrize("name", ["x265", "vvenc", "svtav1", "x264"])
def test_each_codec_codes_a_raw_stream_with_one_intra_picture_and_decodes_every_frame(name, video, tmp_path):
    enc = get_encoder(name)
    run = enc.run(video, enc.default_points[2], tmp_path, preset=FAST[name])
    stream = (tmp_path / f"stream.{enc.extension}").read_bytes()
    assert run.frames.shape == video.frames.shape
    assert run.stream_bytes == len(stream)
    assert run.bpp == pytest.approx(len(stream) * 8 / (9 * 96 * 160))
    assert run.intra_pictures == 1
    assert RAW[name] in run.command and f"-preset {FAST[name]}" in run.command
    assert run.version not in ("", "unknown")
    psnr_y = build_metric("psnr_y").scores(frames_to_u8(video.frames), frames_to_u8(run.frames)).mean()
    assert 28 < float(psnr_y) < 60


def test_colour_is_not_converted_behind_our_back(video, tmp_path):
    """A near-lossless encode must return nearly the input: no hidden range or matrix conversion."""
    run = get_encoder("x264").run(video, 4, tmp_path, preset="ultrafast")
    psnr_y = build_metric("psnr_y").scores(frames_to_u8(video.frames), frames_to_u8(run.frames)).mean()
    assert float(psnr_y) > 45


@pytest.mark.parametrize("name", ["x265", "svtav1", "x264"])
def test_an_intra_period_gives_one_intra_picture_every_n_frames(name, video, tmp_path):
    enc = get_encoder(name)
    run = enc.run(video, enc.default_points[2], tmp_path, intra_period=4, preset=FAST[name])
    assert run.intra_pictures == 3  # frames 0, 4 and 8


def test_vvenc_defaults_would_insert_intra_pictures_that_our_settings_prevent(video, tmp_path):
    """At 2 fps vvenc's default (one intra picture a second) codes several; ours codes one."""
    slow = Video(video.frames, 2.0)
    enc = get_encoder("vvenc")
    ours = enc.run(slow, 32, tmp_path / "ours", preset="faster")
    work = tmp_path / "default"
    work.mkdir()
    write_input(work, slow.frames, 10, "bt709", "limited")
    args = enc.encode_args(160, 96, 2.0, 32, None, "faster", "bt709", "limited")
    i = args.index("-vvenc-params")
    run_ffmpeg(args[:i] + args[i + 2 :], work, "vvenc default")
    default_stream = (work / "stream.vvc").read_bytes()
    assert ours.intra_pictures == 1
    assert enc.count_intra(default_stream) >= 3
    assert len(default_stream) > 1.5 * ours.stream_bytes


def test_odd_frame_sizes_are_padded_for_the_encoder_and_cropped_back(bikes_frames, tmp_path):
    odd = Video(small_clip(bikes_frames, 5, 67, 101), 25.0)
    run = get_encoder("x264").run(odd, 24, tmp_path, preset="ultrafast")
    assert run.frames.shape == (5, 67, 101, 3)
    assert run.bpp == pytest.approx(run.stream_bytes * 8 / (5 * 67 * 101))


def test_a_missing_encoder_is_a_clear_error(video, tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "ffmpeg_has", lambda kind, name: False)
    with pytest.raises(VVCError, match="needs ffmpeg's libvvenc encoder"):
        get_encoder("vvenc").run(video, 32, tmp_path)


def test_an_unknown_codec_lists_the_known_ones():
    with pytest.raises(RegistryError, match="x265"):
        get_encoder("hm")
    assert set(ENCODERS.names()) >= {"x265", "vvenc", "svtav1", "x264"}


def test_an_encoder_failure_reports_ffmpegs_own_words(video, tmp_path):
    with pytest.raises(VVCError, match="x265 encode at qp 99 failed"):
        get_encoder("x265").run(video, 99, tmp_path, preset="ultrafast")


def test_versions_of_ffmpeg_and_every_encoder_are_recorded():
    v = baselines.encoder_versions(["x265", "vvenc", "svtav1", "x264"])
    assert v["ffmpeg"].startswith("ffmpeg version")
    assert v["x264"].startswith("core ") and v["vvenc"][0].isdigit()


def test_av1_frame_headers_are_counted_from_obu_sizes():
    seq_header = bytes([0x0A, 0x01, 0x00])  # type 1 with a size field, 1 byte payload
    key = bytes([0x32, 0x01, 0x10])  # type 6 FRAME, show_existing 0, frame_type KEY (0)
    inter = bytes([0x32, 0x01, 0x30])  # frame_type INTER (1)
    assert baselines.av1_intra_frames(seq_header + key + inter + inter) == 1
    assert np.isclose(baselines.av1_intra_frames(key + key), 2)
