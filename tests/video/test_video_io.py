"""Reading and writing videos (tests of vvc_lightning.video.video_io)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import (
    atomic_path,
    decode_video_bytes,
    frames_to_tensor,
    iter_yuv,
    parse_yuv_name,
    read_video,
    tensor_to_frames,
    write_bytes_atomic,
    write_video,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BasketballDrive_1920x1080_50.yuv", (1920, 1080, 50.0)),
        ("RaceHorses_416x240_30.yuv", (416, 240, 30.0)),
        ("Jockey_1920x1080_120fps_420_8bit_YUV.yuv", (1920, 1080, 120.0)),
        ("videoSRC01_1920x1080_30.yuv", (1920, 1080, 30.0)),
        ("plain_352x288.yuv", (352, 288, None)),
    ],
)
def test_parse_yuv_name_reads_ctc_uvg_and_mcl_names(name, expected):
    assert parse_yuv_name(name) == expected


def test_parse_yuv_name_without_size_says_how_to_fix():
    with pytest.raises(VVCError, match="NAME_1920x1080_50.yuv"):
        parse_yuv_name("foreman.yuv")


def flat_frames(n=3, h=16, w=24):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = (40 + 50 * i, 200 - 40 * i, 90)
    return frames


@pytest.mark.parametrize("ext", [".yuv", ".mp4", ""])
def test_write_then_read_round_trips(tmp_path, ext):
    frames = flat_frames()
    path = write_video(tmp_path / f"clip_24x16_25{ext}", frames, 25.0)
    video = read_video(path) if ext != "" else None
    if ext == "":
        assert sorted(os.listdir(path)) == ["00000.png", "00001.png", "00002.png"]
        return
    assert video.frames.shape == frames.shape and video.fps == 25.0
    assert np.abs(video.frames.astype(int) - frames).max() <= 3


def test_y4m_round_trips_colours(tmp_path):
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    frames[...] = (200, 60, 30)
    video = read_video(write_video(tmp_path / "c.y4m", frames, 25.0))
    assert np.abs(video.frames.astype(int) - frames).max() <= 3


def test_read_video_counts_frames_and_honours_max_frames(tmp_path):
    path = write_video(tmp_path / "c.mp4", flat_frames(5), 30.0)
    assert read_video(path).num_frames == 5
    assert read_video(path, max_frames=2).num_frames == 2
    assert decode_video_bytes(path.read_bytes()).num_frames == 5


def test_iter_yuv_rejects_a_size_that_does_not_divide_the_file(tmp_path):
    path = tmp_path / "x_24x16.yuv"
    path.write_bytes(bytes(24 * 16 * 3 // 2 + 5))
    with pytest.raises(VVCError, match="not a whole number"):
        list(iter_yuv(path))


def test_atomic_path_leaves_nothing_on_error_and_keeps_the_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["out.bin"]
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_bytes_atomic(tmp_path / "f", b"x")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o666 & ~umask


def test_unknown_output_type_fails_clearly(tmp_path):
    with pytest.raises(VVCError, match="use .mp4"):
        write_video(tmp_path / "x.gif", flat_frames(), 25.0)


def test_frames_tensor_round_trip_and_range():
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    t = frames_to_tensor(frames)
    assert t.shape == (3, 2, 4, 5) and t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(tensor_to_frames(t), frames)
