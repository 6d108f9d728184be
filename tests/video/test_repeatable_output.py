"""The same frames and options give the same output bytes in every container we write, whatever the
machine's CPU count (x264 on one thread) and time (no creation time, muxer version or random UIDs)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.video.video_io import read_video, write_video
from vvc_lightning.video.video_writer import VideoWriter

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
MAGIC = {".mp4": b"ftypisom", ".mkv": b"\x1a\x45\xdf\xa3", ".mov": b"ftypqt"}


@contextlib.contextmanager
def on_cpus(cpus: list[int]):
    """Run a block on these CPUs only (x264's automatic thread count follows them)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def written(path: Path, frames: np.ndarray) -> bytes:
    with VideoWriter(path, 25.0) as w:
        for f in frames:
            w.write(f)
    return path.read_bytes()


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to compare thread counts")
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_outputs_do_not_depend_on_the_cpu_count(tmp_path, suffix):
    frames = np.random.default_rng(1).integers(0, 256, (10, 288, 352, 3), dtype=np.uint8)
    with on_cpus(CPUS[:1]):
        one = written(tmp_path / f"one{suffix}", frames)
    with on_cpus(CPUS):
        every = written(tmp_path / f"every{suffix}", frames)
    assert one == every


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_each_suffix_gets_its_own_container_without_version_or_time(tmp_path, suffix):
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    data = written(tmp_path / f"a{suffix}", frames)
    assert MAGIC[suffix] in data[:16]
    assert re.search(rb"Lavf\d", data) is None  # no muxer version: the bytes do not follow the FFmpeg build
    assert written(tmp_path / f"b{suffix}", frames) == data
    back = read_video(tmp_path / f"a{suffix}")
    assert back.frames.shape == frames.shape and back.fps == pytest.approx(25.0)


def test_two_decodes_of_one_bitstream_are_byte_identical(tmp_path, bikes_frames, tiny_ckpt):
    src = write_video(tmp_path / "clip.y4m", small_clip(bikes_frames, 5, 64, 96), 25)
    vvc = tmp_path / "clip.vvc"
    assert main(["compress", str(src), "-o", str(vvc), "--ckpt", str(tiny_ckpt), "--gop", "5"]) == 0
    for suffix in (".mp4", ".mkv"):
        outs = []
        for i, cpus in enumerate((CPUS[:1], CPUS) if len(CPUS) > 1 else (CPUS, CPUS)):
            out = tmp_path / f"{i}{suffix}"
            with on_cpus(cpus) if cpus else contextlib.nullcontext():
                assert main(["decompress", str(vvc), "-o", str(out), "--ckpt", str(tiny_ckpt)]) == 0
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], suffix
