"""The codec runs no more threads than the cores other processes leave free."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.conftest import small_clip
from vvc_lightning.codec.pipeline.threads import ThreadGovernor, choose_threads, usable_cores
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.video.video_io import Video


@pytest.mark.parametrize(
    "limit,cores,busy,threads",
    [
        (2, 2, 0.0, 2),  # quiet 2-core machine: both cores
        (2, 2, 0.4, 2),  # a little background work
        (2, 2, 1.0, 1),  # one busy process beside: one thread
        (2, 2, 7.5, 1),  # a heavy job: never fewer than one
        (16, 16, 1.0, 15),
        (8, 16, 1.0, 8),  # never more than torch's own count
        (4, 2, 0.0, 2),  # never more than the usable cores
    ],
)
def test_choose_threads(limit, cores, busy, threads):
    assert choose_threads(limit, cores, busy) == threads


def test_usable_cores_respects_the_affinity():
    assert 1 <= usable_cores() <= len(__import__("os").sched_getaffinity(0))


def test_a_busy_process_beside_is_seen_and_our_own_work_is_not_counted(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"]
    )
    try:
        time.sleep(0.3)
        gov = ThreadGovernor()
        with gov:
            t0 = time.process_time()
            while time.process_time() - t0 < 0.4:  # this process busy too: not counted as "others"
                pass
            others = gov.others_busy()
    finally:
        child.kill()
        child.wait()
    assert others >= 0.6, f"a busy process beside was seen as {others:.2f} busy cores"
    assert gov.history and all(1 <= n <= usable_cores() for n in gov.history)


def test_explicit_threads_are_used_and_restored(monkeypatch):
    before = torch.get_num_threads()
    with ThreadGovernor(3) as gov:
        assert torch.get_num_threads() == 3
        gov.update()
    assert torch.get_num_threads() == before and gov.history == [3, 3]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the environment's count is an explicit choice
    assert ThreadGovernor().fixed == torch.get_num_threads()


def test_codec_threads_change_no_byte(tiny_model, bikes_frames):
    video = Video(small_clip(bikes_frames, 9, 32, 48), 25)
    one, two = VideoCodec(tiny_model, gop=5, threads=1), VideoCodec(tiny_model, gop=5, threads=2)
    data = one.encode(video)
    assert two.encode(video) == data and one.thread_history == [1] and two.thread_history == [2]
    assert np.array_equal(one.decode(data).frames, two.decode(data).frames)
