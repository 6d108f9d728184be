"""Bounded memory: the peak RSS of `compress`, `decompress` and `test` does not grow with the sequence length.

Each command runs in a fresh process on a 27- and a 90-frame sequence, and the two peaks may differ by at
most MARGIN. glibc is told to return large freed blocks at once (MALLOC_MMAP_THRESHOLD_, one arena),
which takes its caching noise (20-40 MB at 384x256) out of the peak; repeats then agree within ~1.5 MB.
compress / decompress run `files.compress_file` / `decompress_file` (what the commands call) on the tiny
model; their peak is read from /proc/self/status (VmHWM) after resetting it once the model is built, so
it is the peak of the coding itself (the whole-process peak is set by loading, tens of MB higher, and
would hide growth). `test` runs the real command and reads the child's ru_maxrss from wait4.

Measured before streaming (main at 818b266, same tiny model), 27 -> 90 frames: `decompress` at 384x256
grew by 18.5 MB (the whole decoded video in memory; coding peak 131.5 -> 149.9 MB above the loaded model),
`test` at 192x128 by 28.5 MB (whole float sequences and GoPs). With streaming: compress +1.8 MB at most,
decompress +0.2 MB, test +1.2 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

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


CHILD = r"""
import sys, torch
from tests.conftest import TINY_OVERRIDES
from vvc_lightning.configuration.config import load_config
from vvc_lightning.training.model import VideoCompressionModel
from vvc_lightning.codec.pipeline.files import compress_file, decompress_file
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
torch.set_num_threads(1)
torch.manual_seed(0)
model = VideoCompressionModel(load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES)).eval()
model.codec.update_tables(force=True)
codec = VideoCodec(model, batch=1)
mode, src, dst = sys.argv[1:4]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
(compress_file if mode == "compress" else decompress_file)(codec, src, dst)
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")))
"""


def coding_peak(mode: str, src, dst) -> int:
    """Peak RSS in bytes of the coding alone (VmHWM reset after the model is built), in a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_ARENA_MAX="1")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(src), str(dst)], env=env, capture_output=True, text=True
    )
    if "clear_refs" in proc.stderr:
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.split()[-1]) * 1024


def moving_clip(path, n: int, h: int, w: int) -> None:
    """n frames of a random texture sliding sideways, written frame by frame."""
    base = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    write_video(path, (np.roll(base, i, axis=1) for i in range(n)), 25.0)


def assert_flat(short: int, long: int, what: str) -> None:
    assert long - short < MARGIN, (
        f"{what}: peak RSS grew by {(long - short) / 2**20:.1f} MiB from {SHORT} to {LONG} frames "
        f"({short / 2**20:.0f} -> {long / 2**20:.0f} MiB)")


@pytest.mark.slow  # minutes on 2 cores; benchmarks/bench_stream_rss.py measures the same at 1080p
def test_compress_and_decompress_peak_rss_is_flat_in_the_sequence_length(tmp_path):
    peaks: dict[str, list[int]] = {"compress": [], "decompress": []}
    for n in (SHORT, LONG):
        src, vvc, out = (
            tmp_path / f"clip{n}_384x256_25.yuv",
            tmp_path / f"clip{n}.vvc",
            tmp_path / f"out{n}.y4m",
        )
        moving_clip(src, n, 256, 384)
        peaks["compress"].append(coding_peak("compress", src, vvc))
        peaks["decompress"].append(coding_peak("decompress", vvc, out))
        assert out.stat().st_size > n * 256 * 384 * 3 // 2
    for what, (short, long) in peaks.items():
        assert_flat(short, long, what)


@pytest.mark.slow  # ~1-2 min: a fit (tiny_ckpt) and four runs of `test`
def test_the_test_command_peak_rss_is_flat_in_the_sequence_length(tmp_path, tiny_ckpt):
    peaks = []
    for n in (SHORT, LONG):
        clip = tmp_path / f"clip{n}.y4m"
        moving_clip(clip, n, 128, 192)
        peaks.append(
            peak_rss(
                [
                    "test",
                    "--ckpt",
                    str(tiny_ckpt),
                    f"data.test_dir={clip}",
                    "data.test_max_frames=100",
                    "test.metrics=[psnr]",
                    "test.codec.batch=1",
                ],
                tmp_path,
            )
        )
    assert_flat(*peaks, "test")
