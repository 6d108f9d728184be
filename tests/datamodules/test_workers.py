"""Loader workers after video was decoded in the parent, and the watchdog of a loader that stalls."""

from __future__ import annotations

import itertools
import multiprocessing
import time

import av
import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import Dataset

from vvc_lightning.datamodules.workers import (
    LoaderStalled,
    WatchedDataLoader,
    loader_options,
    where_it_waits,
)
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import DATAMODULES
from vvc_lightning.video.video_sources import AVSource


class Steps(pl.LightningModule):
    """Counts the training batches it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = 0

    def training_step(self, batch, _):
        self.seen += 1
        return (self.w - batch.mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.timeout(240)
def test_fit_with_two_workers_after_this_process_converted_frames(shard_dir, index_mp4s):
    # our reader, then PyAV as a user's notebook calls it: FFmpeg's scaler now keeps a thread pool in this
    # process, and a forked worker would wait on its locks forever
    frames = list(itertools.islice(AVSource(index_mp4s[0]).iter_frames(), 3))
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    with av.open(str(index_mp4s[1])) as container:
        for frame in itertools.islice(container.decode(video=0), 3):
            assert frame.to_ndarray(format="rgb24").shape == (48, 64, 3)
    dm = DATAMODULES.create("openvid", train_shards=str(shard_dir), crop_size=16, batch_size=2,
                            epoch_length=4, num_workers=2, loader_timeout=120)
    model = Steps()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert model.seen == 2


class Blocks(Dataset):
    """Item 0 waits far longer than any test's timeout."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        return wait_for_nothing()


def wait_for_nothing() -> torch.Tensor:
    time.sleep(3600)
    return torch.zeros(1)


@pytest.mark.timeout(120)
def test_watchdog_names_the_blocked_worker_and_where_it_waits():
    loader = WatchedDataLoader(Blocks(), batch_size=1, **loader_options(1, 3.0))
    start = time.monotonic()
    with pytest.raises(LoaderStalled) as info:
        next(iter(loader))
    message = str(info.value)
    assert time.monotonic() - start < 60
    assert "\n" not in message
    assert "no batch in 3 s" in message and "worker 0 (pid " in message
    assert "wait_for_nothing (tests/datamodules/test_workers.py:" in message
    assert "data.loader_timeout" in message


def test_where_it_waits_reads_the_signalled_thread():
    dump = (
        'Thread 0x00007f01 (most recent call first):\n  File "/x/threading.py", line 320 in wait\n\n'
        'Current thread 0x00007f02 (most recent call first):\n'
        '  File "/env/lib/site-packages/vvc_lightning/video/video_sources.py", line 87 in _rgb\n'
        '  File "/env/lib/site-packages/vvc_lightning/video/video_sources.py", line 171 in read_clip\n'
    )
    assert where_it_waits(dump) == ("_rgb (vvc_lightning/video/video_sources.py:87) <- "
                                    "read_clip (vvc_lightning/video/video_sources.py:171)")


def fork_converts(path: str, queue) -> None:
    queue.put(len(list(itertools.islice(AVSource(path).iter_frames(), 3))))


@pytest.mark.timeout(120)
def test_our_reader_leaves_no_scaler_threads_for_a_forked_child(index_mp4s):
    # a user's own DataLoader may fork: a process that decoded only through our readers must allow it
    list(itertools.islice(AVSource(index_mp4s[0]).iter_frames(), 3))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=fork_converts, args=(str(index_mp4s[0]), queue))
    child.start()
    try:
        assert queue.get(timeout=60) == 3
    finally:
        child.kill()
        child.join()


def test_workers_never_fork():
    options = loader_options(2, 5.0)
    assert options["multiprocessing_context"].get_start_method() in ("forkserver", "spawn")
    assert loader_options(0, 5.0) == {"num_workers": 0}


@pytest.mark.parametrize("value", [-1, "soon", True, float("inf")])
def test_loader_timeout_is_checked(shard_dir, value):
    with pytest.raises(ConfigError, match="data.loader_timeout must be a number of seconds"):
        DATAMODULES.create("openvid", train_shards=str(shard_dir), loader_timeout=value)
