"""Frame-by-frame writing (VideoWriter / write_video from any iterable) and lazy reading of PNG folders."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import iter_video, read_video, write_video
from vvc_lightning.video.video_writer import VideoWriter


def frames(n=4, h=16, w=24):
    out = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = (30 + 40 * i, 200 - 30 * i, 90)
    return out


@pytest.mark.parametrize("ext", [".y4m", ".yuv", ".mp4", ""])
def test_a_generator_writes_the_same_video_as_an_array(tmp_path, ext):
    ref = frames()
    a = write_video(tmp_path / f"a_24x16_25{ext}", ref, 25.0)
    b = write_video(tmp_path / f"b_24x16_25{ext}", (f for f in ref), 25.0)
    if ext in (".y4m", ".yuv"):
        assert a.read_bytes() == b.read_bytes()
    got = np.stack(list(iter_video(b)))  # a PNG folder reads back too
    assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 3


def test_an_error_midway_leaves_no_output_and_no_temporary(tmp_path):
    def failing():
        yield frames(1)[0]
        raise RuntimeError("decoder broke")

    for name in ("x.y4m", "x.mp4", "pngs"):
        with pytest.raises(RuntimeError, match="decoder broke"):
            write_video(tmp_path / name, failing(), 25.0)
    assert list(tmp_path.iterdir()) == []


def test_the_output_appears_only_when_the_block_ends(tmp_path):
    out = tmp_path / "v.y4m"
    with VideoWriter(out, 25.0) as w:
        for f in frames():
            w.write(f)
        assert not out.exists() and w.count == 4
    assert read_video(out).num_frames == 4


def test_frames_of_another_size_or_type_are_refused(tmp_path):
    with (
        pytest.raises(VVCError, match="frame 1 is 8x16, the first was 24x16"),
        VideoWriter(tmp_path / "v.yuv", 25) as w,
    ):
        w.write(frames()[0])
        w.write(frames()[0][:, :8])
    with pytest.raises(VVCError, match="RGB uint8"), VideoWriter(tmp_path / "v.yuv", 25) as w:
        w.write(frames()[0].astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_pngs_is_a_clear_error(tmp_path):
    with pytest.raises(VVCError, match="holds no .png frame"):
        next(iter_video(tmp_path))
