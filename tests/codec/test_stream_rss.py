"""Bounded memory: the peak RSS of `compress`, `decompress` and `test` does not grow with the sequence length.

Each command runs in a fresh process on a 27- and a 90-frame sequence; its peak RSS (ru_maxrss from
wait4) may differ by at most MARGIN. glibc is told to return large freed blocks at once
(MALLOC_MMAP_THRESHOLD_, one arena), which takes its caching noise (20-40 MB at 384x256) out of the peak;
the repeat-to-repeat spread is then about 1 MB. Measured before streaming (main at 818b266, same tiny
model): `decompress` grew by 18.5 MB from 27 to 90 frames at 384x256 (the whole decoded video in memory)
and `test` by 28.5 MB at 192x128 (whole float sequences and GoPs); with streaming every command stays
within 2 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from vvc_lightning.video.video_io import write_video

MARGIN = 4 << 20  # bytes
SHORT, LONG = 27, 90


def peak_rss(args: list[str], tmp_path) -> int:
    """Peak resident memory in bytes of `python -m vvc_lightning ARGS` run in a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_ARENA_MAX="1")
    with open(tmp_path / "stderr.txt", "w+b") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vvc_lightning", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage (not all children's)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        assert proc.returncode == 0, err.read().decode()[-3000:]
    return usage.ru_maxrss * 1024  # Linux: kilobytes


def moving_clip(path, n: int, h: int, w: int) -> None:
    """n frames of a random texture sliding sideways, written frame by frame."""
    base = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    write_video(path, (np.roll(base, i, axis=1) for i in range(n)), 25.0)


def assert_flat(short: int, long: int, what: str) -> None:
    assert long - short < MARGIN, (
        f"{what}: peak RSS grew by {(long - short) / 2**20:.1f} MiB from {SHORT} to {LONG} frames "
        f"({short / 2**20:.0f} -> {long / 2**20:.0f} MiB)")


def test_compress_and_decompress_peak_rss_is_flat_in_the_sequence_length(tmp_path, tiny_ckpt):
    peaks: dict[str, list[int]] = {"compress": [], "decompress": []}
    for n in (SHORT, LONG):
        src, vvc = tmp_path / f"clip{n}_384x256_25.yuv", tmp_path / f"clip{n}.vvc"
        moving_clip(src, n, 256, 384)
        peaks["compress"].append(peak_rss(["compress", str(src), "-o", str(vvc), "--ckpt", str(tiny_ckpt),
                                           "--batch", "1"], tmp_path))
        peaks["decompress"].append(peak_rss(["decompress", str(vvc), "-o", str(tmp_path / f"out{n}.y4m"),
                                             "--ckpt", str(tiny_ckpt), "--batch", "1"], tmp_path))
        assert (tmp_path / f"out{n}.y4m").stat().st_size > n * 256 * 384 * 3 // 2
    for what, (short, long) in peaks.items():
        assert_flat(short, long, what)


def test_the_test_command_peak_rss_is_flat_in_the_sequence_length(tmp_path, tiny_ckpt):
    peaks = []
    for n in (SHORT, LONG):
        clip = tmp_path / f"clip{n}.y4m"
        moving_clip(clip, n, 128, 192)
        peaks.append(peak_rss(["test", "--ckpt", str(tiny_ckpt), f"data.test_dir={clip}", "data.test_max_frames=100",
                               "test.metrics=[psnr]", "test.batch=1"], tmp_path))
    assert_flat(*peaks, "test")
