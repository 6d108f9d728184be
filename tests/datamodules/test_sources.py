"""Clip readers: frame stride and order (proved by frames that carry their index), seeking, crops, YUV."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_lightning.datamodules.synthetic import index_frame, read_index, write_index_video
from vvc_lightning.video.video_sources import AVSource, ClipError, ClipPos, ClipSpec, YUVSource


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory):
    return write_index_video(tmp_path_factory.mktemp("long") / "long.mp4", 120, 48, 64, gop=16)


def test_probe_counts_decoded_frames(long_mp4):
    assert AVSource(long_mp4).probe() == (120, 48, 64)


@pytest.mark.parametrize("start", [0, 7, 50, 71, 95])
def test_clip_takes_every_stride_th_frame_in_order(long_mp4, start):
    clip = AVSource(long_mp4).read_clip(start, ClipSpec(9, 3, 32), ClipPos(0, 0.2, 0.9), seek=False)
    assert clip.shape == (9, 32, 32, 3)
    assert [read_index(f) for f in clip] == list(range(start, start + 25, 3))


@pytest.mark.parametrize("start", [48, 53, 64, 90])
def test_seeking_gives_the_same_clip_as_decoding_from_the_start(long_mp4, start):
    src = AVSource(long_mp4)
    spec, pos = ClipSpec(9, 3, 32), ClipPos(0, 0.5, 0.5)
    seeked, decoded = src.read_clip(start, spec, pos, seek=True), src.read_clip(start, spec, pos, seek=False)
    assert np.array_equal(seeked, decoded)
    assert read_index(seeked[0]) == start


def test_clip_past_the_end_raises_too_short(long_mp4):
    with pytest.raises(ClipError) as exc:
        AVSource(long_mp4).read_clip(97, ClipSpec(9, 3, None), ClipPos(), seek=False)
    assert exc.value.reason == "too short"


def test_crop_larger_than_frame_raises_smaller_than_crop(long_mp4):
    with pytest.raises(ClipError) as exc:
        AVSource(long_mp4).read_clip(0, ClipSpec(2, 1, 64), ClipPos())
    assert exc.value.reason == "smaller than crop"


def test_garbage_bytes_raise_does_not_decode():
    with pytest.raises(ClipError) as exc:
        AVSource(b"\x00" * 5000, label="junk.mp4").probe()
    assert exc.value.reason in ("does not decode", "no video stream")


def test_crop_position_fractions_span_the_whole_frame():
    assert ClipPos(0, 0.0, 0.0).offsets(48, 64, 32) == (0, 0)
    assert ClipPos(0, 0.9999, 0.9999).offsets(48, 64, 32) == (16, 32)
    assert ClipPos(0.9999).start(100, 25) == 75


def test_yuv_crop_matches_the_crop_of_the_full_frame(tmp_path):
    path = write_index_video(tmp_path / "seq_64x48_30.yuv", 12, 48, 64)
    src = YUVSource(path)
    assert (src.width, src.height, src.fps()) == (64, 48, 30.0)
    full = list(src.iter_frames())
    for pos in (ClipPos(0, 0.33, 0.77), ClipPos(0, 0.0, 1 - 1e-9), ClipPos(0, 0.51, 0.13)):
        clip = src.read_clip(2, ClipSpec(3, 4, 17), pos)  # odd crop and odd offsets
        top, left = pos.offsets(48, 64, 17)
        for k, f in enumerate(clip):
            assert np.array_equal(f, full[2 + 4 * k][top : top + 17, left : left + 17])
    assert [read_index(f) for f in src.read_clip(1, ClipSpec(3, 4, None), ClipPos())] == [1, 5, 9]


def test_yuv_wrong_size_names_the_file_and_frame_size(tmp_path):
    path = tmp_path / "clip_64x48.yuv"
    path.write_bytes(bytes(64 * 48 * 3 // 2 * 2 + 7))
    with pytest.raises(Exception, match="clip_64x48.yuv.*64x48"):
        YUVSource(path).count_frames()


def test_index_frames_survive_h264(tmp_path):
    path = write_index_video(tmp_path / "all.mp4", 300, 32, 32, gop=30)
    frames = list(AVSource(path).iter_frames())
    assert [read_index(f) for f in frames] == list(range(300))
    assert index_frame(5, 4, 4).shape == (4, 4, 3)
