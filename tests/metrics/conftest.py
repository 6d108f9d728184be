"""Small real clips for the metric tests (cut from bikes.mp4) and degraded copies of them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import small_clip


@pytest.fixture(scope="session")
def clip(bikes_frames) -> np.ndarray:
    """9 real frames, 96x160, uint8 (9,96,160,3)."""
    return small_clip(bikes_frames, 9, 96, 160)


def add_noise(frames: np.ndarray, amplitude: int, seed: int = 0) -> np.ndarray:
    """Frames plus uniform integer noise in [-amplitude, amplitude], clipped to uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amplitude, amplitude + 1, frames.shape)
    return np.clip(frames.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def blur(frames: np.ndarray, k: int = 7) -> np.ndarray:
    """Gaussian-blurred frames."""
    import cv2

    return np.stack([cv2.GaussianBlur(f, (k, k), 0) for f in frames])
